//! A kernel the user built (`--kernel PATH` / HIDVM_KERNEL): a vmlinux, a
//! bzImage, or a build (O=) directory holding them, with its .config.
//!
//! Nothing is built. Before anything boots, the .config is checked against
//! every option hidvm's fragments ask for (the same requested-vs-resolved
//! check as for its own builds; a bzImage need not have CONFIG_PVH, which
//! only the direct vmlinux boot uses), and `vmlinux.h` is generated from
//! the image's BTF, which programs are compiled against. Its tests are
//! named `prebuilt-<gcc|llvm>::...` after the compiler its .config names.
use crate::base::error::{one_line, Error, Result};
use crate::base::layout::{sha256_parts, write_atomic, Repo};
use crate::base::lock::{FileLock, Mode};
use crate::kernel::build::{BuildRecord, BuiltKernel};
use crate::kernel::image::PrebuiltImage;
use crate::kernel::kconfig::{self, Fragment};
use std::path::{Path, PathBuf};

/// hidvm's own fragments every kernel must satisfy (not the flavours', nor
/// the hid-tools suite's: a distribution kernel has its drivers built in and
/// no modules tree for the suite, and only `hidvm hid-tools` needs them).
fn base_fragments(repo: &Repo) -> Result<Vec<Fragment>> {
    let dir = repo.fragments_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(Error::io(format!("reading {}", dir.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "config"))
        .filter(|p| !p.file_name().unwrap_or_default().to_string_lossy().starts_with("flavour-"))
        .filter(|p| p.file_name().unwrap_or_default() != crate::kernel::build::HIDTOOLS_FRAGMENT)
        .collect();
    paths.sort();
    paths.iter().map(|p| Fragment::read(p).map_err(Error::io(format!("reading {}", p.display())))).collect()
}

/// The prebuilt kernel, checked and ready: its vmlinux.h generated once
/// (cached by the image's identity), its .config copied where
/// [`BuiltKernel::config`] reads it.
pub fn prepare(repo: &Repo, cache: &Path, image: &PrebuiltImage, header_tree: &Path) -> Result<BuiltKernel> {
    let missing = image.missing_options(&base_fragments(repo)?);
    if !missing.is_empty() {
        return Err(Error::Other(format!(
            "prebuilt kernel {} (Linux {}) lacks {} option(s) hidvm needs: {}; rebuild it with hidvm's fragments merged (scripts/kconfig/merge_config.sh .config {}/*.config), or let hidvm build your tree (--kernel-src)",
            image.boot_image.display(),
            image.version,
            missing.len(),
            missing.join(", "),
            repo.fragments_dir().display()
        )));
    }
    let meta =
        std::fs::metadata(&image.boot_image).map_err(Error::io(format!("reading {}", image.boot_image.display())))?;
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).unwrap_or_default();
    let identity = format!("prebuilt:{}:{}:{}", image.boot_image.display(), meta.len(), mtime.as_nanos());
    let key = sha256_parts([identity.as_bytes(), image.config_text.as_bytes()]);
    let dir = cache.join("prebuilt").join(&key[..12]);
    std::fs::create_dir_all(dir.join("build")).map_err(Error::io(format!("creating {}", dir.display())))?;
    let lease = FileLock::acquire(&dir.join("lock"), Mode::Exclusive, "a prebuilt kernel's vmlinux.h")
        .map_err(Error::io("prebuilt kernel lock"))?;
    let vmlinux_h = dir.join("vmlinux.h");
    let vmlinux = match &image.vmlinux {
        Some(v) => v.clone(),
        None => extract_vmlinux(&image.boot_image, &dir, header_tree)?,
    };
    if !vmlinux_h.exists() {
        let bpftool = crate::base::tools::require(&crate::base::tools::BPFTOOL)?;
        let out = duct::cmd!(bpftool, "btf", "dump", "file", &vmlinux, "format", "c")
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(Error::io("running bpftool"))?;
        if !out.status.success() || out.stdout.is_empty() {
            return Err(Error::Other(format!(
                "prebuilt kernel {}: no BTF to generate vmlinux.h from ({}); it needs CONFIG_DEBUG_INFO_BTF=y",
                vmlinux.display(),
                one_line(&String::from_utf8_lossy(&out.stderr), 2)
            )));
        }
        write_atomic(&vmlinux_h, &out.stdout).map_err(Error::io(format!("writing {}", vmlinux_h.display())))?;
    }
    write_atomic(&dir.join("build/.config"), image.config_text.as_bytes()).map_err(Error::io("copying the .config"))?;
    let h = std::fs::read(&vmlinux_h).map_err(Error::io(format!("reading {}", vmlinux_h.display())))?;
    let cell = image.cell();
    let record = BuildRecord {
        cell: cell.name.clone(),
        request_key: key.clone(),
        kernel_version: image.version.clone(),
        kernel_source: String::new(),
        source_root: image.boot_image.clone(),
        source_identity: identity,
        source_base: None,
        compiler: kconfig::parse(&image.config_text)
            .get("CONFIG_CC_VERSION_TEXT")
            .cloned()
            .flatten()
            .unwrap_or_default()
            .trim_matches('"')
            .to_string(),
        fragments: vec![],
        resolved_config_sha256: sha256_parts([image.config_text.as_bytes()]),
        vmlinux_size: std::fs::metadata(&vmlinux).map(|m| m.len()).unwrap_or(0),
        vmlinux_mtime_ns: 0,
        vmlinux_h_sha256: sha256_parts([h.as_slice()]),
        build_seconds: 0.0,
        ccache: None,
        modules_release: None,
    };
    Ok(BuiltKernel::from_parts(cell, dir, vmlinux, image.boot_image.clone(), vmlinux_h, record, lease))
}

/// The vmlinux inside a bzImage, with the kernel's own
/// scripts/extract-vmlinux (from the header tree: the script is generic).
fn extract_vmlinux(bzimage: &Path, dir: &Path, tree: &Path) -> Result<PathBuf> {
    let out_path = dir.join("vmlinux");
    if out_path.exists() {
        return Ok(out_path);
    }
    let script = tree.join("scripts/extract-vmlinux");
    let out = duct::cmd!("sh", &script, bzimage)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(Error::io("running extract-vmlinux"))?;
    if !out.status.success() || !out.stdout.starts_with(b"\x7fELF") {
        return Err(Error::Other(format!(
            "cannot extract vmlinux from {} ({}); give the vmlinux next to it",
            bzimage.display(),
            one_line(&String::from_utf8_lossy(&out.stderr), 2)
        )));
    }
    write_atomic(&out_path, &out.stdout).map_err(Error::io(format!("writing {}", out_path.display())))?;
    Ok(out_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::cell::BootImage;

    fn image_dir(config: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("vmlinux"), b"\x7fELF fake").unwrap();
        std::fs::write(d.path().join(".config"), config).unwrap();
        d
    }

    #[test]
    fn a_config_without_what_hidvm_needs_lists_each_missing_option() {
        let repo = Repo::locate();
        let d = image_dir("#\n# Linux/x86 6.13.0 Kernel Configuration\n#\nCONFIG_PVH=y\nCONFIG_UHID=m\nCONFIG_CC_IS_CLANG=y\nCONFIG_SERIAL_8250_NR_UARTS=32\n");
        let img = PrebuiltImage::locate(d.path(), None).unwrap();
        assert_eq!((img.version.as_str(), img.compiler, img.boot), ("6.13.0", "llvm", BootImage::Vmlinux));
        let missing = img.missing_options(&base_fragments(&repo).unwrap());
        assert!(missing.contains(&"CONFIG_UHID (wanted y, has m)".to_string()), "{missing:?}");
        assert!(missing.contains(&"CONFIG_HID_BPF (wanted y, has not set)".to_string()), "{missing:?}");
        assert!(!missing.iter().any(|m| m.starts_with("CONFIG_SERIAL_8250_NR_UARTS")), "32 UARTs are at least 4");
        let e = match prepare(&repo, tempfile::tempdir().unwrap().path(), &img, Path::new("/nonexistent")) {
            Ok(_) => panic!("a kernel without UHID=y passed the check"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("lacks") && e.contains("CONFIG_UHID (wanted y, has m)") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn a_kernel_with_every_option_passes_the_check() {
        let repo = Repo::locate();
        let wanted = kconfig::requested(&base_fragments(&repo).unwrap());
        let mut text = "# Linux/x86 7.3.4 Kernel Configuration\n".to_string();
        for (k, v) in &wanted {
            if let Some(v) = v {
                text.push_str(&format!("{k}={v}\n"));
            }
        }
        let d = image_dir(&text);
        let img = PrebuiltImage::locate(d.path(), None).unwrap();
        assert_eq!(img.missing_options(&base_fragments(&repo).unwrap()), Vec::<String>::new());
        assert_eq!(img.cell().name, "gcc");
    }

    #[test]
    fn bad_paths_and_configs_say_what_to_give() {
        let e = PrebuiltImage::locate(Path::new("/nonexistent/vmlinux"), None).unwrap_err().to_string();
        assert!(e.contains("give a vmlinux, a bzImage or a build directory"), "{e}");
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("vmlinux"), b"\x7fELF").unwrap();
        let e = PrebuiltImage::locate(d.path(), None).unwrap_err().to_string();
        assert!(e.contains("--kernel-config"), "{e}");
        let nopvh = image_dir("# Linux/x86 6.12.1 Kernel Configuration\n");
        let e = PrebuiltImage::locate(nopvh.path(), None).unwrap_err().to_string();
        assert!(e.contains("CONFIG_PVH"), "{e}");
    }
}
