//! `hidvm test --bless`: what replay steps observed, written into their
//! expectation files instead of compared.
use crate::base::error::{Error, Result};
use crate::base::layout::write_atomic;
use crate::catalogue::scenarios::ResolvedReplay;
use crate::judge::guest::GuestReport;
use crate::run::suite::Suite;
use std::collections::BTreeMap;

/// Write what each replay step observed to its expectation files. Two
/// targets that observed different output must not overwrite each other.
pub fn bless(
    suite: &Suite,
    target: &str,
    replays: &BTreeMap<usize, ResolvedReplay>,
    guest: &GuestReport,
) -> Result<()> {
    for (index, r) in replays {
        let observed = guest
            .steps
            .iter()
            .find(|s| s.index == *index)
            .and_then(|s| s.observed.clone())
            .ok_or_else(|| Error::Other(format!("step {index} reported nothing to bless")))?;
        for (file, lines) in [(&r.evdev_file, &observed.evdev), (&r.hidraw_file, &observed.hidraw)] {
            let Some(file) = file else { continue };
            let text = format!(
                "# written by `hidvm test --bless` on {target}: one line per replayed report; review before committing\n{}\n",
                lines.join("\n")
            );
            let body = lines.join("\n");
            let mut blessed = suite.blessed.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((other, seen)) = blessed.get(file) {
                if *seen != body {
                    return Err(Error::Other(format!(
                        "{other} and {target} observed different output for {}: not blessed (a compiler- or kernel-dependent difference; look at both runs)",
                        file.display()
                    )));
                }
                continue;
            }
            write_atomic(file, text.as_bytes()).map_err(Error::io(format!("writing {}", file.display())))?;
            crate::base::output::note(format!(
                "hidvm: blessed {} ({} lines) from {target}",
                file.display(),
                lines.len()
            ));
            blessed.insert(file.clone(), (target.to_string(), body));
        }
    }
    Ok(())
}
