//! Reading reports from /dev/hidrawN: one read() is one report, with the
//! report ID as first byte when the device numbers its reports. hidraw sees
//! the report after HID-BPF rewrote it.
use crate::wait::{drain_or_wait, poll_fd, wait_node};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

pub struct Hidraw {
    pub path: String,
    file: File,
}

impl Hidraw {
    /// Open the hidraw node of the HID device at `sysfs_dir`.
    pub fn open(sysfs_dir: &Path, deadline: Duration) -> Result<Self, String> {
        let path = wait_node(deadline, || {
            crate::uhid::child_node(&sysfs_dir.join("hidraw"), "hidraw").map(|n| format!("/dev/{n}"))
        })
        .ok_or_else(|| format!("no hidraw node under {} after {deadline:?}", sysfs_dir.display()))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(&path)
            .map_err(|e| format!("open {path}: {e}"))?;
        Ok(Hidraw { path, file })
    }

    /// Every report queued now. If none is queued and `wait` is set, wait up
    /// to `wait` for the first one (reports written through uhid are
    /// delivered before the write returns, so this is only a safety margin).
    pub fn reports(&mut self, wait: Option<Duration>) -> Result<Vec<Vec<u8>>, String> {
        let fd = self.file.try_clone().map_err(|e| format!("{}: {e}", self.path))?;
        drain_or_wait(fd.as_fd(), wait, || self.drain())
    }

    /// HIDIOCGFEATURE: ask the device (through any hid_hw_request program)
    /// for feature report `report_id`. Ok(bytes) or Err(errno).
    pub fn get_feature(&self, report_id: u8, len: usize) -> Result<Vec<u8>, i32> {
        let mut buf = vec![0u8; len.max(1)];
        buf[0] = report_id;
        // _IOC(_IOC_READ|_IOC_WRITE, 'H', 0x07, len)
        let req = (3u64 << 30) | ((buf.len() as u64) << 16) | ((b'H' as u64) << 8) | 0x07;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.file);
        // SAFETY: buf is valid for buf.len() bytes, the size encoded in req.
        let r = unsafe { libc::ioctl(fd, req as _, buf.as_mut_ptr()) };
        if r < 0 {
            return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
        }
        buf.truncate(r as usize);
        Ok(buf)
    }

    /// HIDIOCSFEATURE: send feature report `report` (ID first) through
    /// hid_hw_request. Ok(bytes written) or Err(errno).
    pub fn set_feature(&self, report: &[u8]) -> Result<usize, i32> {
        let mut buf = report.to_vec();
        // _IOC(_IOC_READ|_IOC_WRITE, 'H', 0x06, len)
        let req = (3u64 << 30) | ((buf.len() as u64) << 16) | ((b'H' as u64) << 8) | 0x06;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.file);
        // SAFETY: buf is valid for buf.len() bytes, the size encoded in req.
        let r = unsafe { libc::ioctl(fd, req as _, buf.as_mut_ptr()) };
        if r < 0 {
            return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
        }
        Ok(r as usize)
    }

    /// write() an output report: goes through hid_hw_output_report (and
    /// so through any hid_hw_output_report program). Err(errno) on failure.
    pub fn write_output(&self, report: &[u8]) -> Result<usize, i32> {
        use std::io::Write;
        (&self.file).write(report).map_err(|e| e.raw_os_error().unwrap_or(0))
    }

    /// True when the node belongs to a HID device instance that is gone
    /// (re-probed or destroyed): hidraw then reports POLLHUP/POLLERR.
    pub fn is_gone(&self) -> bool {
        use rustix::event::PollFlags;
        poll_fd(self.file.as_fd(), Duration::ZERO).is_none_or(|r| r.intersects(PollFlags::HUP | PollFlags::ERR))
    }

    fn drain(&mut self) -> Result<Vec<Vec<u8>>, String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.file.read(&mut buf) {
                Ok(n) => out.push(buf[..n].to_vec()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(out),
                Err(e) => return Err(format!("read {}: {e}", self.path)),
            }
        }
    }
}
