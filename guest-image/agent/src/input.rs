//! Reading evdev events: what users of the device actually see, after
//! hid-input parsed the (possibly rewritten) report.
use crate::wait::{drain_or_wait, wait_node};
use hidvm_proto::EvdevEvent;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

const EV_SYN: u16 = 0;

pub struct Evdev {
    pub path: String,
    dev: evdev::Device,
}

impl Evdev {
    /// Open the first event node of the HID device at `sysfs_dir`.
    pub fn open(sysfs_dir: &Path, deadline: Duration) -> Result<Self, String> {
        let path = wait_node(deadline, || {
            let input = crate::uhid::child_node(sysfs_dir.join("input").as_path(), "input")?;
            let event = crate::uhid::child_node(&sysfs_dir.join("input").join(input), "event")?;
            Some(format!("/dev/input/{event}"))
        })
        .ok_or_else(|| format!("no evdev node under {}/input after {deadline:?}", sysfs_dir.display()))?;
        let dev = evdev::Device::open(&path).map_err(|e| format!("open {path}: {e}"))?;
        dev.set_nonblocking(true).map_err(|e| format!("{path}: O_NONBLOCK: {e}"))?;
        Ok(Evdev { path, dev })
    }

    /// All queued frames (events between SYN_REPORTs), keeping only the
    /// compared event types. Waits up to `wait` for the first frame if none
    /// is queued and `wait` is set.
    pub fn frames(&mut self, wait: Option<Duration>) -> Result<Vec<Vec<EvdevEvent>>, String> {
        let fd = self.dev.as_fd().try_clone_to_owned().map_err(|e| format!("{}: {e}", self.path))?;
        drain_or_wait(fd.as_fd(), wait, || self.drain())
    }

    /// Keys and buttons the node advertises (EVIOCGBIT(EV_KEY), read at
    /// open; a node without EV_KEY advertises none).
    pub fn supported_keys(&self) -> Vec<u16> {
        self.dev.supported_keys().map(|k| k.iter().map(|k| k.0).collect()).unwrap_or_default()
    }

    /// Write an EV_LED event (and SYN_REPORT) to the node; hid-input turns
    /// it into an output report from a work item.
    pub fn set_led(&mut self, code: u16, value: i32) -> Result<(), String> {
        let led = evdev::InputEvent::new(evdev::EventType::LED.0, code, value);
        let syn = evdev::InputEvent::new(evdev::EventType::SYNCHRONIZATION.0, 0, 0);
        self.dev.send_events(&[led, syn]).map_err(|e| format!("write {}: {e}", self.path))
    }

    /// True when the input device behind the node is gone (evdev then
    /// reports POLLHUP/POLLERR to readers).
    pub fn is_gone(&self) -> bool {
        use rustix::event::PollFlags;
        crate::wait::poll_fd(self.dev.as_fd(), Duration::ZERO)
            .is_none_or(|r| r.intersects(PollFlags::HUP | PollFlags::ERR))
    }

    fn drain(&mut self) -> Result<Vec<Vec<EvdevEvent>>, String> {
        let mut frames = Vec::new();
        let mut current = Vec::new();
        loop {
            let batch: Vec<evdev::InputEvent> = match self.dev.fetch_events() {
                Ok(events) => events.collect(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("read {}: {e}", self.path)),
            };
            if batch.is_empty() {
                break;
            }
            for ev in batch {
                let kind = ev.event_type().0;
                if kind == EV_SYN {
                    // fetch_events only yields complete frames; SYN_REPORT
                    // ends one. Frames with nothing compared (LED echoes,
                    // MSC-only frames) are not frames a check cares about.
                    if !current.is_empty() {
                        frames.push(std::mem::take(&mut current));
                    }
                } else {
                    let e = EvdevEvent { kind, code: ev.code(), value: ev.value() };
                    if e.is_compared() {
                        current.push(e);
                    }
                }
            }
        }
        if !current.is_empty() {
            frames.push(current);
        }
        Ok(frames)
    }
}
