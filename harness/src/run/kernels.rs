//! `hidvm kernels` and `hidvm fetch`: each kernel's exact source, where it
//! is, and moving the lock (`guest-image/kernels.lock`) to what Debian's
//! suites carry now.
use crate::base::error::Result;
use crate::kernel::debian::{self, Found, Index};
use crate::kernel::lockfile::{self, Pin, Pins};
use crate::kernel::spec::{self, KernelSpec};
use crate::run::suite::Suite;

/// One kernel as `hidvm kernels` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub name: String,
    /// The exact source label (`6.12.118-1~deb12u1`), once known.
    pub label: String,
    /// What the lock says, or that it says nothing.
    pub lock: String,
    /// Where the source is (cached, installed, not fetched, a tree).
    pub place: String,
}

/// Every kernel a name can refer to, without the network.
pub fn show(suite: &Suite) -> Vec<Shown> {
    suite.all_kernels.iter().map(|k| shown(suite, k)).collect()
}

fn shown(suite: &Suite, k: &KernelSpec) -> Shown {
    let pinned = (k.tree.is_none() && k.image.is_none()).then(|| suite.pins.get(k.base_name()));
    let (lock, place) = match pinned {
        None => ("(not locked: your own kernel)".to_string(), String::new()),
        Some(None) => ("not in kernels.lock: run `hidvm kernels --update`".to_string(), String::new()),
        Some(Some(pin)) => {
            let installed = k.installed.then(|| debian::installed_tarball(&pin.package));
            let place = match debian::find(&suite.cache, pin, installed.as_deref()) {
                Ok(Found::Cached(p)) => format!("cached: {}", p.display()),
                Ok(Found::Installed(p)) => format!("installed: {}", p.display()),
                Ok(Found::Missing) => "not fetched yet (`hidvm fetch` gets it; a run would)".to_string(),
                Err(e) => e.to_string(),
            };
            (pin.describe(), place)
        }
    };
    // The label is known without fetching for a pristine Debian tree; a
    // tree or a series needs its source resolved (no network if cached).
    let label = match pinned {
        Some(Some(pin)) if k.patches.is_none() => pin.version.clone(),
        _ if place.starts_with("not fetched") => "?".into(),
        _ => suite.source(&k.name).map(|s| s.label).unwrap_or_else(|e| format!("? ({e})")),
    };
    let place = if place.is_empty() { suite.source(&k.name).map(|s| s.description).unwrap_or_default() } else { place };
    Shown { name: k.name.clone(), label, lock, place }
}

/// What `--update` did to one kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Same(Pin),
    Moved {
        from: Option<Pin>,
        to: Pin,
    },
    /// The suite no longer has the package: the pin is kept, and why.
    Kept(Option<Pin>, String),
}

impl Change {
    pub fn describe(&self, name: &str) -> String {
        match self {
            Change::Same(p) => format!("kernel {name}: unchanged, {}", p.describe()),
            Change::Moved { from: Some(f), to } => {
                format!("kernel {name}: {} {} -> {} {} ({})", f.package, f.version, to.package, to.version, to.suite)
            }
            Change::Moved { from: None, to } => format!("kernel {name}: now locked: {}", to.describe()),
            Change::Kept(_, why) => format!("kernel {name}: {why}"),
        }
    }
}

/// Move every Debian kernel of kernels.toml to the newest version its
/// suite carries (a `newest` kernel: the highest linux-source-X.Y of the
/// configured suites), fetching what is new; returns the new lock and what
/// changed, kernel by kernel.
pub fn update(
    cache: &std::path::Path,
    file: &std::path::Path,
    pins: &Pins,
    index: &dyn Index,
) -> Result<(Pins, Vec<(String, Change)>)> {
    let suites = spec::suites(file)?;
    let mut pins = pins.clone();
    let mut changes = Vec::new();
    for k in spec::load(file)? {
        let old = pins.get(&k.name).cloned();
        let found = if k.newest {
            newest_of(&suites, index)?
                .map(|(s, package)| debian::pin_newest(cache, &k.name, &s, &package, None, index))
                .transpose()?
                .flatten()
        } else {
            let (s, package) = (k.suite.clone().unwrap_or_default(), k.package.clone().unwrap_or_default());
            let installed = k.installed.then(|| debian::installed_tarball(&package));
            debian::pin_newest(cache, &k.name, &s, &package, installed.as_deref(), index)?
        };
        let change = match found {
            Some(p) if old.as_ref() == Some(&p) => Change::Same(p),
            Some(p) => {
                pins.set(p.clone());
                Change::Moved { from: old, to: p }
            }
            None => {
                let why = format!(
                    "{} is no longer in {}: kept at {} (it works while it is cached; `--kernels newest` follows Debian)",
                    k.package.as_deref().unwrap_or("its package"),
                    k.suite.as_deref().unwrap_or("its suite"),
                    old.as_ref().map(|p| p.version.as_str()).unwrap_or("nothing")
                );
                Change::Kept(old, why)
            }
        };
        changes.push((k.name.clone(), change));
    }
    Ok((pins, changes))
}

/// The suite and package of the highest linux-source-X.Y across `suites`
/// (the newer version when two suites carry the same series).
fn newest_of(suites: &[String], index: &dyn Index) -> Result<Option<(String, String)>> {
    let mut best: Option<(String, String, debian::IndexEntry)> = None;
    for s in suites {
        if let Err(why) = index.refresh(s) {
            crate::base::output::note(format!("hidvm: Debian {s} cannot be read ({why}): left out"));
            continue;
        }
        let Some((package, entry)) = debian::newest_source(index, s) else { continue };
        let series = |p: &str| spec::parse_series(p.strip_prefix("linux-source-").unwrap_or_default());
        let better = best.as_ref().is_none_or(|(_, bp, be)| {
            series(&package)
                .cmp(&series(bp))
                .then_with(|| debian::compare_versions(&entry.version, &be.version))
                .is_gt()
        });
        if better {
            best = Some((s.clone(), package, entry));
        }
    }
    Ok(best.map(|(s, p, _)| (s, p)))
}

/// Write `pins` as the repository's lock.
pub fn write(suite: &Suite, pins: &Pins) -> Result<()> {
    pins.write(&lockfile::path_for(&suite.repo.kernels_file()))
}

/// `hidvm fetch`: each Debian kernel of the run, exactly as locked, into
/// the cache (or found there or installed); one line each.
pub fn fetch(suite: &Suite, index: &dyn Index) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for k in suite.kernels.iter().filter(|k| k.tree.is_none() && k.image.is_none()) {
        let base = k.base_name();
        let pin = suite.pins.get(base).ok_or_else(|| {
            crate::base::error::Error::Other(format!(
                "kernel {base} is not in guest-image/kernels.lock: run `hidvm kernels --update` to pin it"
            ))
        })?;
        let installed = k.installed.then(|| debian::installed_tarball(&pin.package));
        let tarball = debian::locate(&suite.cache, pin, installed.as_deref(), index)?;
        lines.push(format!("kernel {}: {}: {}", k.name, pin.describe(), tarball.display()));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::debian::fake::FakeIndex;

    const KERNELS: &str = "suites = [\"trixie\", \"trixie-backports\"]\n\
        [[kernel]]\nname = \"7.3\"\nsummary = \"s\"\npackage = \"linux-source-7.3\"\nsuite = \"trixie-backports\"\n\
        [[kernel]]\nname = \"newest\"\nsummary = \"s\"\nnewest = true\n";

    /// `hidvm kernels --update`: each kernel moves to what its suite has
    /// now, `newest` to the highest series of all suites; a package the
    /// suite dropped keeps its pin and says so.
    #[test]
    fn update_moves_each_pin_and_newest_follows_debian() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("kernels.toml");
        std::fs::write(&file, KERNELS).unwrap();
        let mut index = FakeIndex::default();
        index.add("trixie", "linux-source-6.12", "6.12.60-1", "6.12");
        index.add("trixie-backports", "linux-source-7.3", "7.3.4-1~bpo13+1", "7.3.4");
        let (pins, changes) = update(d.path(), &file, &Pins::default(), &index).unwrap();
        assert_eq!(pins.get("7.3").unwrap().version, "7.3.4-1~bpo13+1");
        assert_eq!(pins.get("newest").unwrap().package, "linux-source-7.3");
        assert!(matches!(changes[0].1, Change::Moved { from: None, .. }));
        index.add("trixie-backports", "linux-source-7.3", "7.3.5-1~bpo13+1", "7.3.5");
        let (pins, changes) = update(d.path(), &file, &pins, &index).unwrap();
        assert_eq!(
            changes[0].1.describe("7.3"),
            "kernel 7.3: linux-source-7.3 7.3.4-1~bpo13+1 -> linux-source-7.3 7.3.5-1~bpo13+1 (trixie-backports)"
        );
        let (same, _) = update(d.path(), &file, &pins, &index).unwrap();
        assert_eq!(same, pins, "nothing new: nothing moves");
        // Debian moves on to 7.4 and drops 7.3.
        index.suites.get_mut("trixie-backports").unwrap().clear();
        index.add("trixie-backports", "linux-source-7.4", "7.4.1-1~bpo13+1", "7.4.1");
        let (moved, changes) = update(d.path(), &file, &pins, &index).unwrap();
        assert_eq!(moved.get("7.3"), pins.get("7.3"), "kept: it works while it is cached");
        assert!(changes[0]
            .1
            .describe("7.3")
            .contains("linux-source-7.3 is no longer in trixie-backports: kept at 7.3.5-1~bpo13+1"));
        assert_eq!(moved.get("newest").unwrap().package, "linux-source-7.4");
    }
}
