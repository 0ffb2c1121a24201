//! What an installed hidvm carries: its data (kernel fragments, cells and
//! kernels, bpf-fixtures, the scenario catalogue, known lists, patches,
//! examples) and the guest agent binary, packed by `harness/build.rs` into
//! one archive the binary embeds. On first use it is unpacked into the
//! cache, under its own hash (`<cache>/install/<sha256[..16]>/`), laid out
//! as a checkout is, so every path the harness knows works unchanged.
//!
//! The archive: the 8 bytes `HIDVMB1\n`, then per file: the path's length
//! (u32 LE), the path (UTF-8, relative, `/`-separated), the mode (u32 LE),
//! the data's length (u64 LE), the data. `harness/build.rs` writes it.
use crate::base::error::{Error, Result};
use std::path::{Component, Path, PathBuf};

pub const MAGIC: &[u8; 8] = b"HIDVMB1\n";
/// Where the agent binary is in the bundle (and so in the unpacked data).
pub const AGENT_PATH: &str = "libexec/hidvm-agent";
/// Written last into an unpacked bundle: without it, the directory is not one.
const COMPLETE: &str = ".hidvm-bundle-complete";

/// One file of the archive.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub path: &'a str,
    pub mode: u32,
    pub data: &'a [u8],
}

/// The archive's files, in order; a malformed archive is an error.
pub fn entries(bytes: &[u8]) -> std::result::Result<Vec<Entry<'_>>, String> {
    let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or("not a hidvm bundle (wrong magic)")?;
    let mut r = Reader { bytes: rest, at: 0 };
    let mut out = Vec::new();
    while r.at < r.bytes.len() {
        let len = r.u32()? as usize;
        let path = std::str::from_utf8(r.take(len)?).map_err(|_| "a path is not UTF-8")?;
        let mode = r.u32()?;
        let len = usize::try_from(r.u64()?).map_err(|_| "a file is too large")?;
        let data = r.take(len)?;
        let p = Path::new(path);
        if path.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(format!("`{path}` is not a relative path inside the bundle"));
        }
        out.push(Entry { path, mode, data });
    }
    Ok(out)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len()).ok_or("the bundle is cut off")?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
}

/// The bundle unpacked under `cache` (done once per bundle hash; concurrent
/// hidvm processes unpack into temporary directories and the first rename
/// wins): the directory that holds it.
pub fn unpack(bytes: &[u8], sha256: &str, cache: &Path) -> Result<PathBuf> {
    let parent = cache.join("install");
    let dest = parent.join(&sha256[..16.min(sha256.len())]);
    if dest.join(COMPLETE).exists() {
        return Ok(dest);
    }
    let bad = |e: String| Error::Other(format!("unpacking hidvm's data into {}: {e}", dest.display()));
    let files = entries(bytes).map_err(bad)?;
    std::fs::create_dir_all(&parent).map_err(|e| bad(e.to_string()))?;
    let tmp = tempfile::Builder::new().prefix(".unpack-").tempdir_in(&parent).map_err(|e| bad(e.to_string()))?;
    for f in &files {
        let path = tmp.path().join(f.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
        }
        std::fs::write(&path, f.data).map_err(|e| bad(format!("{}: {e}", f.path)))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode & 0o7777))
            .map_err(|e| bad(e.to_string()))?;
    }
    std::fs::write(tmp.path().join(COMPLETE), sha256).map_err(|e| bad(e.to_string()))?;
    let done = tmp.keep();
    if std::fs::rename(&done, &dest).is_err() {
        // Another process got there first (or left a half-made directory,
        // which has no marker: replace it).
        if !dest.join(COMPLETE).exists() {
            let _ = std::fs::remove_dir_all(&dest);
            std::fs::rename(&done, &dest).map_err(|e| bad(e.to_string()))?;
        } else {
            let _ = std::fs::remove_dir_all(&done);
        }
    }
    Ok(dest)
}

/// The hidvm checkout `dir` is in (it, or one of its parents), if any: a
/// directory with `guest-image/kernels.toml` and the agent's and harness's
/// manifests.
pub fn checkout_around(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| {
            d.join("guest-image/kernels.toml").is_file()
                && d.join("guest-image/agent/Cargo.toml").is_file()
                && d.join("harness/Cargo.toml").is_file()
        })
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An archive as build.rs writes it.
    fn pack(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for (p, mode, data) in files {
            out.extend((p.len() as u32).to_le_bytes());
            out.extend(p.as_bytes());
            out.extend(mode.to_le_bytes());
            out.extend((data.len() as u64).to_le_bytes());
            out.extend(*data);
        }
        out
    }

    #[test]
    fn a_bundle_unpacks_once_with_its_modes() {
        let cache = tempfile::tempdir().unwrap();
        let bytes = pack(&[("guest-image/cells.toml", 0o644, b"x"), (AGENT_PATH, 0o755, b"\x7fELF")]);
        let root = unpack(&bytes, "0123456789abcdef0123", cache.path()).unwrap();
        assert_eq!(root, cache.path().join("install/0123456789abcdef"));
        assert_eq!(std::fs::read(root.join("guest-image/cells.toml")).unwrap(), b"x");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.join(AGENT_PATH)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        // Unpacked already: not written again.
        std::fs::write(root.join("guest-image/cells.toml"), "edited").unwrap();
        assert_eq!(unpack(&bytes, "0123456789abcdef0123", cache.path()).unwrap(), root);
        assert_eq!(std::fs::read(root.join("guest-image/cells.toml")).unwrap(), b"edited");
    }

    #[test]
    fn a_malformed_bundle_is_refused() {
        assert!(entries(b"nothing").unwrap_err().contains("wrong magic"));
        let mut cut = pack(&[("a", 0o644, b"abc")]);
        cut.pop();
        assert!(entries(&cut).unwrap_err().contains("cut off"));
        assert!(entries(&pack(&[("../etc/passwd", 0o644, b"")])).unwrap_err().contains("not a relative path"));
        assert!(entries(&pack(&[("/abs", 0o644, b"")])).is_err());
    }

    #[test]
    fn a_checkout_is_found_from_inside_it() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        assert_eq!(checkout_around(&root.join("tests/scenarios")).as_deref(), Some(root));
        assert_eq!(checkout_around(Path::new("/")), None);
    }
}
