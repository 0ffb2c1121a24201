//! `guest-image/kernels.lock`: the exact Debian source package each kernel
//! of `kernels.toml` is built from (package, Debian version, suite, the
//! .deb's and the tarball's SHA256). Runs and `hidvm fetch` use exactly
//! these; `hidvm kernels --update` moves them to what the suites carry
//! now. A kernel that Debian moves on from keeps working from the cache,
//! and every report can say which source a column was built from.
use crate::base::error::{toml_error, Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One kernel's pinned source.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// The kernel's name in kernels.toml.
    pub name: String,
    pub package: String,
    /// The Debian version (`7.3.4-1~bpo13+1`): a pristine tree's label.
    pub version: String,
    pub suite: String,
    /// SHA256 of the .deb, as the suite's signed index gives it.
    pub deb_sha256: String,
    /// SHA256 of the source tarball inside it (`usr/src/<package>.tar.xz`).
    pub tarball_sha256: String,
}

impl Pin {
    /// `linux-source-7.3 7.3.4-1~bpo13+1 (trixie-backports, tarball sha256 76df1aff…)`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} ({}, tarball sha256 {})",
            self.package,
            self.version,
            self.suite,
            &self.tarball_sha256[..self.tarball_sha256.len().min(16)]
        )
    }

    /// The .deb's file name as Debian's pool names it.
    pub fn deb_name(&self) -> String {
        format!("{}_{}_all.deb", self.package, self.version.replace(':', "%3a"))
    }
}

#[derive(Serialize, Deserialize, Default, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Pins {
    #[serde(default)]
    pub kernel: Vec<Pin>,
}

const HEADER: &str = "\
# The exact Debian source package each kernel of kernels.toml is built from.
# Written by `hidvm kernels --update` (which says what changed); read by every
# run and by `hidvm fetch`, which fetch exactly these versions. A tarball in
# the cache whose SHA256 matches is used without the network, also after
# Debian has moved on.

";

/// The lock file next to kernels.toml.
pub fn path_for(kernels_file: &Path) -> PathBuf {
    kernels_file.with_file_name("kernels.lock")
}

impl Pins {
    /// The lock file; a missing file is an empty lock.
    pub fn load(file: &Path) -> Result<Pins> {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Pins::default()),
            Err(e) => return Err(Error::io(format!("reading {}", file.display()))(e)),
        };
        let bad = |m: String| Error::Other(format!("kernel lock {}: {m}", file.display()));
        let pins: Pins = toml::from_str(&text).map_err(|e| bad(toml_error(&text, &e)))?;
        for p in &pins.kernel {
            let hex = |s: &str| s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit());
            if !hex(&p.deb_sha256) || !hex(&p.tarball_sha256) {
                return Err(bad(format!("kernel `{}`: the SHA256 fields must be 64 hex digits", p.name)));
            }
        }
        Ok(pins)
    }

    pub fn get(&self, name: &str) -> Option<&Pin> {
        self.kernel.iter().find(|p| p.name == name)
    }

    /// Set (or add) a kernel's pin; returns the one it replaced.
    pub fn set(&mut self, pin: Pin) -> Option<Pin> {
        match self.kernel.iter_mut().find(|p| p.name == pin.name) {
            Some(p) => Some(std::mem::replace(p, pin)),
            None => {
                self.kernel.push(pin);
                None
            }
        }
    }

    /// A `newest` kernel is the package and suite its pin resolved it to.
    pub fn apply(&self, specs: &mut [crate::kernel::spec::KernelSpec]) {
        for k in specs.iter_mut().filter(|k| k.newest) {
            if let Some(p) = self.get(&k.name) {
                k.package = Some(p.package.clone());
                k.suite = Some(p.suite.clone());
            }
        }
    }

    pub fn render(&self) -> String {
        format!("{HEADER}{}", toml::to_string(self).expect("pins serialize"))
    }

    pub fn write(&self, file: &Path) -> Result<()> {
        crate::base::layout::write_atomic(file, self.render().as_bytes())
            .map_err(Error::io(format!("writing {}", file.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(name: &str, version: &str) -> Pin {
        Pin {
            name: name.into(),
            package: "linux-source-7.3".into(),
            version: version.into(),
            suite: "trixie-backports".into(),
            deb_sha256: "a".repeat(64),
            tarball_sha256: "b".repeat(64),
        }
    }

    #[test]
    fn a_lock_round_trips_and_set_says_what_it_replaced() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("kernels.lock");
        assert_eq!(Pins::load(&f).unwrap(), Pins::default(), "no file: an empty lock");
        let mut pins = Pins::default();
        assert!(pins.set(pin("7.3", "7.3.4-1~bpo13+1")).is_none());
        pins.write(&f).unwrap();
        let mut read = Pins::load(&f).unwrap();
        assert_eq!(read, pins);
        let old = read.set(pin("7.3", "7.3.5-1~bpo13+1")).unwrap();
        assert_eq!(old.version, "7.3.4-1~bpo13+1");
        assert_eq!(read.get("7.3").unwrap().deb_name(), "linux-source-7.3_7.3.5-1~bpo13+1_all.deb");
        std::fs::write(&f, "[[kernel]]\nname = \"x\"\npackage = \"p\"\nversion = \"1\"\nsuite = \"s\"\ndeb_sha256 = \"00\"\ntarball_sha256 = \"00\"\n").unwrap();
        assert!(Pins::load(&f).unwrap_err().to_string().contains("64 hex digits"));
    }

    #[test]
    fn the_repository_lock_pins_every_debian_kernel() {
        let repo = crate::base::layout::Repo::locate();
        let pins = Pins::load(&path_for(&repo.kernels_file())).unwrap();
        for k in crate::kernel::spec::load(&repo.kernels_file()).unwrap() {
            let p = pins.get(&k.name).unwrap_or_else(|| panic!("kernel {} is not in kernels.lock", k.name));
            assert!(k.newest || k.package.as_deref() == Some(p.package.as_str()), "{} pins {}", k.name, p.package);
            if !k.newest {
                assert_eq!(k.suite.as_deref(), Some(p.suite.as_str()), "kernel {}", k.name);
            }
        }
    }
}
