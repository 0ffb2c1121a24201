//! The guest's initramfs, written by the harness as a newc cpio archive: no
//! root, no downloads, no device nodes on the host. The kernel unpacks it
//! into its rootfs and runs `/init`, our agent.
use std::io::Cursor;
use std::path::Path;

/// One archive member.
#[derive(Clone)]
pub enum Entry {
    Dir { path: String },
    File { path: String, mode: u32, data: Vec<u8> },
    CharDev { path: String, major: u32, minor: u32 },
}

#[derive(Default, Clone)]
pub struct Initramfs {
    entries: Vec<Entry>,
}

impl Initramfs {
    /// The skeleton every hidvm guest has: mount points, /dev/console (so
    /// PID 1 has a console before devtmpfs is mounted) and the agent.
    pub fn with_agent(agent: &[u8]) -> Initramfs {
        let mut fs = Initramfs::default();
        for d in ["dev", "proc", "sys", "tmp", "hidvm/fixtures"] {
            fs.dir(d);
        }
        fs.entries.push(Entry::CharDev { path: "dev/console".into(), major: 5, minor: 1 });
        fs.file("init", 0o755, agent.to_vec());
        fs
    }

    /// Add a directory, and its parents first.
    pub fn dir(&mut self, path: &str) -> &mut Self {
        let path = path.trim_start_matches('/').trim_end_matches('/');
        if path.is_empty() || self.has_dir(path) {
            return self;
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.entries.push(Entry::Dir { path: path.into() });
        self
    }

    fn has_dir(&self, path: &str) -> bool {
        self.entries.iter().any(|e| matches!(e, Entry::Dir { path: p } if p == path))
    }

    /// Add a file, and its parent directories first: the kernel's unpacker
    /// silently drops a member whose directory does not exist yet.
    pub fn file(&mut self, path: &str, mode: u32, data: Vec<u8>) -> &mut Self {
        let path = path.trim_start_matches('/');
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.entries.push(Entry::File { path: path.into(), mode, data });
        self
    }

    pub fn add_host_file(&mut self, path: &str, mode: u32, host: &Path) -> std::io::Result<&mut Self> {
        let data = std::fs::read(host)?;
        Ok(self.file(path, mode, data))
    }

    pub fn to_bytes(&self) -> std::io::Result<Vec<u8>> {
        use cpio::newc::{Builder, ModeFileType};
        let members = self.entries.iter().enumerate().map(|(i, e)| {
            let ino = i as u32 + 1;
            let (builder, data): (Builder, &[u8]) = match e {
                Entry::Dir { path } => {
                    (Builder::new(path).ino(ino).mode(0o755).nlink(2).set_mode_file_type(ModeFileType::Directory), &[])
                }
                Entry::File { path, mode, data } => (
                    Builder::new(path).ino(ino).mode(*mode).nlink(1).set_mode_file_type(ModeFileType::Regular),
                    data.as_slice(),
                ),
                Entry::CharDev { path, major, minor } => (
                    Builder::new(path)
                        .ino(ino)
                        .mode(0o600)
                        .nlink(1)
                        .rdev_major(*major)
                        .rdev_minor(*minor)
                        .set_mode_file_type(ModeFileType::Char),
                    &[],
                ),
            };
            (builder.uid(0).gid(0), Cursor::new(data))
        });
        cpio::write_cpio(members, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_round_trips_through_a_cpio_reader() {
        let mut fs = Initramfs::with_agent(b"\x7fELF-agent");
        fs.file("hidvm/job.json", 0o644, b"{}".to_vec());
        fs.file("/hidvm/modules/x.ko", 0o644, b"ko".to_vec());
        let bytes = fs.to_bytes().unwrap();
        let mut names = Vec::new();
        let mut rest = bytes.as_slice();
        loop {
            let r = cpio::NewcReader::new(rest).unwrap();
            if r.entry().is_trailer() {
                break;
            }
            let e = r.entry();
            names.push((e.name().to_string(), e.mode(), e.file_size(), e.rdev_major()));
            rest = r.finish().unwrap();
        }
        assert!(names.contains(&("init".into(), 0o100755, 10, 0)));
        assert!(names.contains(&("dev/console".into(), 0o020600, 0, 5)));
        assert!(names.contains(&("hidvm/job.json".into(), 0o100644, 2, 0)));
        assert!(names.iter().any(|(n, m, _, _)| n == "hidvm/fixtures" && m & 0o170000 == 0o040000));
        // Parents come before their members, or the kernel drops the member.
        let pos = |name: &str| names.iter().position(|(n, ..)| n == name).unwrap();
        assert!(pos("hidvm") < pos("hidvm/fixtures") && pos("hidvm") < pos("hidvm/job.json"));
    }
}
