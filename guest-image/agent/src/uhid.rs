//! Virtual HID devices through /dev/uhid, using the uhid-virt crate.
//!
//! uhid-virt opens /dev/uhid non-blocking and gives no access to the fd, so
//! the device sits behind a mutex and a reader thread polls it every
//! millisecond. The reader must keep running while a program is attached or
//! detached: an rdesc_fixup attach re-probes the device inside the attach
//! syscall, and the probe may wait on GET_REPORT answers.
use hidvm_proto::DeviceDef;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use uhid_virt::{Bus, CreateParams, OutputEvent, StreamError, UHIDDevice};

/// Errno uhid passes back for GET_REPORT requests the models do not serve.
const EIO: u16 = 5;

#[derive(Default, Debug)]
struct Events {
    starts: u32,
    stops: u32,
    /// UHID_OUTPUT payloads not yet taken by a step.
    outputs: Vec<Vec<u8>>,
}

pub struct VirtualDevice {
    pub id: String,
    pub phys: String,
    pub def: Arc<DeviceDef>,
    dev: Arc<Mutex<UHIDDevice<File>>>,
    events: Arc<(Mutex<Events>, Condvar)>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl VirtualDevice {
    pub fn create(id: &str, def: &DeviceDef, index: usize) -> Result<Self, String> {
        let def = Arc::new(def.clone());
        // phys is how we find our device in sysfs (HID_PHYS in uevent).
        let phys = format!("hidvm/{index}/{id}");
        let params = CreateParams {
            // The device's own name: programs' probes may check it (Huion
            // Kamvas Pro 19 does). phys tells our devices apart.
            name: def.name.clone(),
            phys: phys.clone(),
            uniq: format!("hidvm-{index}"),
            bus: bus(def.bus)?,
            vendor: def.vendor,
            product: def.product,
            version: 0,
            country: 0,
            rd_data: def.descriptor.0.clone(),
        };
        let dev = UHIDDevice::create(params).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                " (no /dev/uhid: the kernel needs CONFIG_UHID=y)"
            } else {
                ""
            };
            format!("UHID_CREATE2 for {id}: {e}{hint}")
        })?;
        let dev = Arc::new(Mutex::new(dev));
        let events = Arc::new((Mutex::new(Events::default()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (dev, events, stop, def) = (dev.clone(), events.clone(), stop.clone(), def.clone());
            std::thread::spawn(move || read_loop(&dev, &def, &events, &stop))
        };
        Ok(VirtualDevice { id: id.into(), phys, def, dev, events, stop, reader: Some(reader) })
    }

    /// Wait until the device was started `n` times (UHID_START; every
    /// re-probe stops and starts it again). Returns the count reached.
    pub fn wait_starts(&self, n: u32, deadline: Duration) -> u32 {
        let (lock, cv) = &*self.events;
        let guard = lock.lock().unwrap();
        let (guard, _) = cv.wait_timeout_while(guard, deadline, |e| e.starts < n).unwrap();
        guard.starts
    }

    pub fn starts(&self) -> u32 {
        self.events.0.lock().unwrap().starts
    }

    /// Output reports the device received, oldest first; waits up to
    /// `wait` for the first one when none arrived yet.
    pub fn take_outputs(&self, wait: Duration) -> Vec<Vec<u8>> {
        let (lock, cv) = &*self.events;
        let guard = lock.lock().unwrap();
        let (mut guard, _) = cv.wait_timeout_while(guard, wait, |e| e.outputs.is_empty()).unwrap();
        std::mem::take(&mut guard.outputs)
    }

    /// A handle other threads can inject through (race steps).
    pub fn injector(&self) -> Injector {
        Injector { id: self.id.clone(), dev: self.dev.clone() }
    }

    /// UHID_INPUT2: processed synchronously, including HID-BPF dispatch,
    /// before write() returns.
    pub fn inject(&self, report: &[u8]) -> Result<(), String> {
        let mut dev = self.dev.lock().unwrap();
        dev.write(report).map(|_| ()).map_err(|e| format!("UHID_INPUT2 to {}: {e}", self.id))
    }

    /// Find `/sys/bus/hid/devices/<BUS>:<VID>:<PID>.<hid_id>` by our phys.
    pub fn sysfs_dir(&self, deadline: Duration) -> Result<(PathBuf, u32), String> {
        crate::wait::poll_until(deadline, Duration::from_millis(5), || find_by_phys(&self.phys)).ok_or_else(|| {
            format!("{}: no /sys/bus/hid/devices entry with HID_PHYS={} after {deadline:?}", self.id, self.phys)
        })
    }

    /// UHID_DESTROY and stop the reader.
    pub fn destroy(mut self) -> Result<(), String> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), String> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let mut dev = self.dev.lock().unwrap();
        dev.destroy().map(|_| ()).map_err(|e| format!("UHID_DESTROY for {}: {e}", self.id))
    }
}

/// Injects into a device from another thread; after the device was
/// destroyed, injections fail (the kernel refuses UHID_INPUT2).
pub struct Injector {
    id: String,
    dev: Arc<Mutex<UHIDDevice<File>>>,
}

impl Injector {
    pub fn inject(&self, report: &[u8]) -> Result<(), std::io::Error> {
        let mut dev = self.dev.lock().unwrap_or_else(|e| e.into_inner());
        dev.write(report)
            .map(|_| ())
            .map_err(|e| std::io::Error::new(e.kind(), format!("UHID_INPUT2 to {}: {e}", self.id)))
    }
}

impl Drop for VirtualDevice {
    fn drop(&mut self) {
        if self.reader.is_some() {
            let _ = self.shutdown();
        }
    }
}

/// uhid-virt only knows these buses (linux/input.h BUS_*); anything else
/// is refused rather than silently created as USB.
fn bus(code: u16) -> Result<Bus, String> {
    match code {
        0x01 => Ok(Bus::PCI),
        0x03 => Ok(Bus::USB),
        0x05 => Ok(Bus::BLUETOOTH),
        0x06 => Ok(Bus::VIRTUAL),
        0x18 => Ok(Bus::I2C),
        0x19 => Ok(Bus::HOST),
        0x1c => Ok(Bus::SPI),
        0x1f => Ok(Bus::INTEL_ISHTP),
        other => Err(format!(
            "bus {other:#04x} is not one uhid-virt can create (PCI, USB, BLUETOOTH, VIRTUAL, I2C, HOST, SPI, INTEL_ISHTP)"
        )),
    }
}

fn read_loop(dev: &Mutex<UHIDDevice<File>>, def: &DeviceDef, events: &(Mutex<Events>, Condvar), stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let mut d = dev.lock().unwrap();
        match d.read() {
            Ok(ev) => {
                let (lock, cv) = events;
                let mut e = lock.lock().unwrap();
                match ev {
                    OutputEvent::Start { .. } => e.starts += 1,
                    OutputEvent::Stop => e.stops += 1,
                    OutputEvent::Output { data } => e.outputs.push(data),
                    OutputEvent::GetReport { id, report_number, .. } => match def.feature_report(report_number) {
                        Some(data) => {
                            let _ = d.write_get_report_reply(id, 0, data.to_vec());
                        }
                        None => {
                            let _ = d.write_get_report_reply(id, EIO, Vec::new());
                        }
                    },
                    OutputEvent::SetReport { id, .. } => {
                        let _ = d.write_set_report_reply(id, 0);
                    }
                    OutputEvent::Open | OutputEvent::Close => {}
                }
                cv.notify_all();
                continue; // drain without sleeping
            }
            Err(StreamError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(StreamError::Io(_)) | Err(StreamError::UnknownEventType(_)) => {}
        }
        drop(d);
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn find_by_phys(phys: &str) -> Option<(PathBuf, u32)> {
    let want = format!("HID_PHYS={phys}");
    for entry in std::fs::read_dir("/sys/bus/hid/devices").ok()?.flatten() {
        let path = entry.path();
        let uevent = std::fs::read_to_string(path.join("uevent")).unwrap_or_default();
        if uevent.lines().any(|l| l == want) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let hid_id = name.rsplit('.').next().and_then(|s| u32::from_str_radix(s, 16).ok())?;
            // Resolve the bus symlink so later lookups survive re-probes.
            let real = std::fs::canonicalize(&path).unwrap_or(path);
            return Some((real, hid_id));
        }
    }
    None
}

/// The sysfs directory of the HID device with this hid id (the hex number
/// after the `.` in its name), if one exists.
pub fn sysfs_by_hid_id(id: u32) -> Option<PathBuf> {
    let suffix = format!(".{id:04X}");
    std::fs::read_dir("/sys/bus/hid/devices").ok()?.flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.ends_with(&suffix).then(|| std::fs::canonicalize(e.path()).unwrap_or(e.path()))
    })
}

/// (bus, group, vendor, product) from a HID device's modalias,
/// `hid:b0003g0001v00001D6Bp00000101`: the group is the kernel's.
pub fn modalias(sysfs: &Path) -> Result<(u16, u16, u32, u32), String> {
    let path = sysfs.join("modalias");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    parse_modalias(text.trim()).ok_or_else(|| format!("{} holds `{}`, not a HID modalias", path.display(), text.trim()))
}

fn parse_modalias(m: &str) -> Option<(u16, u16, u32, u32)> {
    let rest = m.strip_prefix("hid:b")?;
    let (bus, rest) = rest.split_once('g')?;
    let (group, rest) = rest.split_once('v')?;
    let (vendor, product) = rest.split_once('p')?;
    Some((
        u16::from_str_radix(bus, 16).ok()?,
        u16::from_str_radix(group, 16).ok()?,
        u32::from_str_radix(vendor, 16).ok()?,
        u32::from_str_radix(product, 16).ok()?,
    ))
}

/// First `<dir>/<class>/<prefix>N` entry, as `/dev/...` path.
pub fn child_node(dir: &Path, prefix: &str) -> Option<String> {
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let n = e.file_name().to_string_lossy().into_owned();
        n.starts_with(prefix).then_some(n)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn modalias_fields_are_hex() {
        assert_eq!(super::parse_modalias("hid:b0003g0001v00001D6Bp00000101"), Some((3, 1, 0x1d6b, 0x0101)));
        assert_eq!(super::parse_modalias("usb:v1234"), None);
    }
}
