//! Reading evdev events: what users of the device actually see, after
//! hid-input parsed the (possibly rewritten) report. A HID device can have
//! several input nodes (hid-generic makes one per application collection):
//! [`EvdevSet`] watches all of them, so no event goes unseen.
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

/// Every evdev node of one HID device, seen as one.
pub struct EvdevSet {
    /// The nodes' paths, for messages ("/dev/input/event0+event1").
    pub path: String,
    nodes: Vec<Evdev>,
}

impl EvdevSet {
    /// Open every event node of the HID device at `sysfs_dir`. Call it once
    /// the hidraw node exists: hid-core connects hid-input before hidraw,
    /// so by then every input device is registered (their /dev nodes may
    /// still be on their way; each is waited for). A device hid-input
    /// makes no input device for has an empty set.
    pub fn open(sysfs_dir: &Path, deadline: Duration) -> Result<Self, String> {
        let input = sysfs_dir.join("input");
        let mut names: Vec<String> = Vec::new();
        for dev in std::fs::read_dir(&input).into_iter().flatten().flatten() {
            for ev in std::fs::read_dir(dev.path()).into_iter().flatten().flatten() {
                let n = ev.file_name().to_string_lossy().into_owned();
                if n.starts_with("event") {
                    names.push(n);
                }
            }
        }
        // event2 before event10: creation order.
        names.sort_by_key(|n| n.trim_start_matches("event").parse::<u32>().unwrap_or(u32::MAX));
        let mut nodes = Vec::new();
        for n in &names {
            let path = wait_node(deadline, || Some(format!("/dev/input/{n}")))
                .ok_or_else(|| format!("/dev/input/{n} did not appear within {deadline:?}"))?;
            let dev = evdev::Device::open(&path).map_err(|e| format!("open {path}: {e}"))?;
            dev.set_nonblocking(true).map_err(|e| format!("{path}: O_NONBLOCK: {e}"))?;
            nodes.push(Evdev { path, dev });
        }
        let path = match names.as_slice() {
            [] => "(no evdev node)".to_string(),
            [first, rest @ ..] => {
                let mut p = format!("/dev/input/{first}");
                for r in rest {
                    p.push('+');
                    p.push_str(r);
                }
                p
            }
        };
        Ok(EvdevSet { path, nodes })
    }

    /// Frames queued on every node (node by node); waits up to `wait` for
    /// any node to have one if none is queued.
    pub fn frames(&mut self, wait: Option<Duration>) -> Result<Vec<Vec<EvdevEvent>>, String> {
        let mut out = self.drain_all()?;
        if let (Some(wait), true) = (wait, out.is_empty()) {
            if self.wait_readable(wait) {
                out = self.drain_all()?;
            }
        }
        Ok(out)
    }

    fn drain_all(&mut self) -> Result<Vec<Vec<EvdevEvent>>, String> {
        let mut out = Vec::new();
        for n in &mut self.nodes {
            out.extend(n.frames(None)?);
        }
        Ok(out)
    }

    fn wait_readable(&self, wait: Duration) -> bool {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        if self.nodes.is_empty() {
            std::thread::sleep(wait);
            return false;
        }
        let mut fds: Vec<PollFd<'_>> = self.nodes.iter().map(|n| PollFd::new(&n.dev, PollFlags::IN)).collect();
        let ts = Timespec { tv_sec: wait.as_secs() as i64, tv_nsec: wait.subsec_nanos() as i64 };
        poll(&mut fds, Some(&ts)).is_ok_and(|n| n > 0)
    }

    /// Keys and buttons any node advertises.
    pub fn supported_keys(&self) -> Vec<u16> {
        let mut keys: Vec<u16> = self.nodes.iter().flat_map(|n| n.supported_keys()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Set an LED on the node that has it.
    pub fn set_led(&mut self, code: u16, value: i32) -> Result<(), String> {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.dev.supported_leds().is_some_and(|l| l.contains(evdev::LedCode(code))))
            .ok_or_else(|| format!("no evdev node of {} has LED {code}", self.path))?;
        node.set_led(code, value)
    }

    /// True when every node's input device is gone.
    pub fn is_gone(&self) -> bool {
        self.nodes.iter().all(Evdev::is_gone)
    }
}
