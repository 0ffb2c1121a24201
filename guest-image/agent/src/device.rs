//! A scenario device: the uhid device plus the hidraw and evdev nodes the
//! kernel made for it. A re-probe (rdesc_fixup attach or release) replaces
//! the nodes; `refresh` finds and opens the new ones.
use crate::hidraw::Hidraw;
use crate::input::EvdevSet;
use crate::uhid::VirtualDevice;
use hidvm_proto::DeviceDef;
use std::path::PathBuf;
use std::time::Duration;

pub struct Device {
    pub vdev: VirtualDevice,
    pub hid_id: u32,
    pub sysfs: PathBuf,
    pub hidraw: Hidraw,
    pub evdev: EvdevSet,
    /// UHID_STARTs seen when the nodes were opened.
    pub opened_at_start: u32,
    /// Output reports the kernel sent on its own when the nodes were
    /// opened (7.x syncs keyboard LEDs): not stale output of a step.
    pub connect_outputs: Vec<Vec<u8>>,
}

/// How long a device with Output items is given to receive the kernel's
/// own output reports after its nodes open, before the first step.
const CONNECT_OUTPUT_SETTLE: Duration = Duration::from_millis(100);

fn connect_outputs(vdev: &VirtualDevice) -> Vec<Vec<u8>> {
    if hidvm_proto::devices::has_output_items(&vdev.def.descriptor.0) {
        vdev.take_outputs(CONNECT_OUTPUT_SETTLE)
    } else {
        Vec::new()
    }
}

impl Device {
    pub fn create(id: &str, def: &DeviceDef, index: usize) -> Result<Device, String> {
        let vdev = VirtualDevice::create(id, def, index)?;
        let wait = crate::budget::node_wait();
        if vdev.wait_starts(1, wait) < 1 {
            return Err(format!("{id}: no UHID_START within {wait:?}"));
        }
        let (sysfs, hid_id) = vdev.sysfs_dir(crate::budget::node_wait())?;
        let hidraw = Hidraw::open(&sysfs, crate::budget::node_wait())?;
        let evdev = EvdevSet::open(&sysfs, crate::budget::node_wait())?;
        let opened_at_start = vdev.starts();
        let connect_outputs = connect_outputs(&vdev);
        Ok(Device { vdev, hid_id, sysfs, hidraw, evdev, opened_at_start, connect_outputs })
    }

    pub fn describe(&self) -> String {
        format!(
            "{}: {} hid_id={} {} {} {}{}",
            self.vdev.id,
            self.vdev.def.name,
            self.hid_id,
            self.sysfs.display(),
            self.hidraw.path,
            self.evdev.path,
            connect_note(&self.connect_outputs)
        )
    }

    /// Reopen the nodes if the device instance behind them is gone (the
    /// device was re-probed). Returns a note when it did.
    pub fn refresh(&mut self) -> Result<Option<String>, String> {
        if !self.hidraw.is_gone() && self.vdev.starts() == self.opened_at_start {
            return Ok(None);
        }
        self.reopen().map(Some)
    }

    /// Wait for the device to have been started `n` times, then reopen the
    /// nodes if that changed anything.
    pub fn wait_starts(&mut self, n: u32, deadline: Duration) -> Result<u32, String> {
        let got = self.vdev.wait_starts(n, deadline);
        self.refresh()?;
        Ok(got)
    }

    fn reopen(&mut self) -> Result<String, String> {
        // The new instance's nodes appear during its probe; UHID_START
        // comes from the same probe, so wait for both.
        let want = self.opened_at_start + 1;
        let starts = self.vdev.wait_starts(want, crate::budget::node_wait());
        if starts < want {
            return Err(format!(
                "{}: its nodes went away but the device was not started again (UHID_START #{want}) within {:?}",
                self.vdev.id,
                crate::budget::node_wait()
            ));
        }
        self.hidraw = Hidraw::open(&self.sysfs, crate::budget::node_wait())?;
        self.evdev = EvdevSet::open(&self.sysfs, crate::budget::node_wait())?;
        self.opened_at_start = starts;
        self.connect_outputs = connect_outputs(&self.vdev);
        Ok(format!(
            "{} was re-probed (start #{starts}): now {} {}{}",
            self.vdev.id,
            self.hidraw.path,
            self.evdev.path,
            connect_note(&self.connect_outputs)
        ))
    }

    /// A fresh evdev client (empty buffer, no SYN_DROPPED state).
    pub fn reopen_evdev(&mut self) -> Result<(), String> {
        self.evdev = EvdevSet::open(&self.sysfs, crate::budget::node_wait())?;
        Ok(())
    }

    /// The report descriptor as the kernel now parses it.
    pub fn descriptor(&self) -> Result<Vec<u8>, String> {
        let p = self.sysfs.join("report_descriptor");
        std::fs::read(&p).map_err(|e| format!("read {}: {e}", p.display()))
    }
}

fn connect_note(outputs: &[Vec<u8>]) -> String {
    if outputs.is_empty() {
        return String::new();
    }
    let shown: Vec<String> =
        outputs.iter().map(|o| o.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")).collect();
    format!("; the kernel sent it output report(s) on connect: {}", shown.join(", "))
}
