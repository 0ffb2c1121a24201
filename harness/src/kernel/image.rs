//! A kernel the user built (`--kernel PATH` / HIDVM_KERNEL), as found on
//! disk: a vmlinux, a bzImage, or a build (O=) directory holding them, with
//! its .config; the cell it stands for, and the options hidvm needs that
//! its .config lacks. Getting it ready to boot is [`super::prebuilt`]'s.
use crate::base::error::{Error, Result};
use crate::kernel::cell::{BootImage, KernelCell};
use crate::kernel::kconfig::{self, Fragment};
use std::path::{Path, PathBuf};

pub const ENV_VAR: &str = "HIDVM_KERNEL";
pub const CONFIG_ENV_VAR: &str = "HIDVM_KERNEL_CONFIG";

#[derive(Clone, Debug, PartialEq)]
pub struct PrebuiltImage {
    /// What QEMU boots.
    pub boot_image: PathBuf,
    pub boot: BootImage,
    /// The uncompressed kernel, when there is one next to it (BTF source).
    pub vmlinux: Option<PathBuf>,
    pub config_path: PathBuf,
    pub config_text: String,
    /// From the .config header ("Linux/x86 6.12.0 Kernel Configuration").
    pub version: String,
    /// "gcc" or "llvm", from CONFIG_CC_IS_CLANG.
    pub compiler: &'static str,
}

fn is_elf(path: &Path) -> bool {
    std::fs::read(path).map(|b| b.starts_with(b"\x7fELF")).unwrap_or(false)
}

impl PrebuiltImage {
    /// `path` is a vmlinux, a bzImage, or a directory holding `vmlinux`
    /// and/or `arch/x86/boot/bzImage` (an O= build directory); the .config
    /// is `config` if given, else `.config` next to the image (or in the
    /// directory).
    pub fn locate(path: &Path, config: Option<&Path>) -> Result<PrebuiltImage> {
        let bad = |problem: String| Error::Other(format!("prebuilt kernel {}: {problem}", path.display()));
        let (vmlinux, bzimage, dir) = if path.is_dir() {
            let v = path.join("vmlinux");
            let b = path.join("arch/x86/boot/bzImage");
            (v.is_file().then_some(v), b.is_file().then_some(b), path.to_path_buf())
        } else if path.is_file() {
            let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            if is_elf(path) {
                (Some(path.to_path_buf()), None, dir)
            } else {
                (dir.join("vmlinux").is_file().then(|| dir.join("vmlinux")), Some(path.to_path_buf()), dir)
            }
        } else {
            return Err(bad(format!(
                "no such file or directory; give a vmlinux, a bzImage or a build directory ({ENV_VAR}=PATH or --kernel PATH)"
            )));
        };
        let config_path = match config {
            Some(c) => c.to_path_buf(),
            None => dir.join(".config"),
        };
        let config_text = std::fs::read_to_string(&config_path).map_err(|e| {
            bad(format!(
                "cannot read its .config {} ({e}); put it next to the image or give it with --kernel-config FILE ({CONFIG_ENV_VAR})",
                config_path.display()
            ))
        })?;
        let map = kconfig::parse(&config_text);
        let version = config_text
            .lines()
            .take(5)
            .find_map(|l| {
                let rest = l.strip_prefix("# Linux/")?;
                rest.split_whitespace().nth(1).map(str::to_string)
            })
            .ok_or_else(|| {
                bad(format!(
                    "{} has no `# Linux/<arch> <version> Kernel Configuration` header; is it a kernel .config?",
                    config_path.display()
                ))
            })?;
        let compiler = if map.get("CONFIG_CC_IS_CLANG") == Some(&Some("y".into())) { "llvm" } else { "gcc" };
        // Boot the vmlinux directly when it can (PVH), else the bzImage.
        let pvh = map.get("CONFIG_PVH") == Some(&Some("y".into()));
        let (boot_image, boot) = match (&vmlinux, &bzimage) {
            (Some(v), _) if pvh => (v.clone(), BootImage::Vmlinux),
            (_, Some(b)) => (b.clone(), BootImage::BzImage),
            (Some(_), None) => return Err(bad(
                "a vmlinux without CONFIG_PVH cannot be booted directly; give the bzImage (or build with CONFIG_PVH=y)"
                    .into(),
            )),
            (None, None) => return Err(bad("holds neither vmlinux nor arch/x86/boot/bzImage".into())),
        };
        Ok(PrebuiltImage { boot_image, boot, vmlinux, config_path, config_text, version, compiler })
    }

    /// The cell it stands for: named after its compiler, checked by the
    /// same /proc/version banner as hidvm's own cells.
    pub fn cell(&self) -> KernelCell {
        let (compiler, banner) = if self.compiler == "llvm" { ("clang", "clang version") } else { ("gcc", "gcc") };
        KernelCell {
            name: self.compiler.to_string(),
            summary: format!("prebuilt kernel {}", self.boot_image.display()),
            make: Default::default(),
            compiler: compiler.into(),
            banner: banner.into(),
            needs: vec![],
            fragments: vec![],
            modules: vec![],
            default_run: true,
            boot: self.boot,
        }
    }

    /// Options hidvm's fragments ask for that this .config does not give,
    /// rendered like a build's dropped options.
    pub fn missing_options(&self, fragments: &[Fragment]) -> Vec<String> {
        let have = kconfig::parse(&self.config_text);
        // Renamed options are asked for by the name this kernel has.
        let known: std::collections::BTreeSet<String> =
            have.keys().map(|k| k.trim_start_matches("CONFIG_").to_string()).collect();
        let mut wanted = kconfig::requested(&kconfig::adapt(fragments, &known));
        if self.boot == BootImage::BzImage {
            wanted.remove("CONFIG_PVH");
        }
        wanted
            .iter()
            .filter(|(k, want)| {
                let got = have.get(*k).cloned().flatten();
                match (want, got.as_deref()) {
                    (None, got) => got.is_some_and(|g| g != "n"),
                    // Numbers (UART counts) are floors: more is fine.
                    (Some(w), Some(g)) if w.parse::<u64>().is_ok() => {
                        g.parse::<u64>().map_or(true, |g| g < w.parse::<u64>().unwrap_or(0))
                    }
                    (Some(w), got) => got != Some(w.as_str()),
                }
            })
            .map(|(k, want)| {
                let show = |v: Option<&Option<String>>| match v {
                    Some(Some(v)) => v.clone(),
                    _ => "not set".to_string(),
                };
                format!("{k} (wanted {}, has {})", show(Some(want)), show(have.get(k)))
            })
            .collect()
    }
}
