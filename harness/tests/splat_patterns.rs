//! Golden tests for the splat detector (harness/src/console.rs).
//!
//! `tests/splats/*.txt` are real kernel reports: captured from hidvm's own
//! VMs (lkdtm self-tests) or copied from public reports (the `# source:`
//! line says where). Two kinds of tests:
//! * `sample::<file>`: the sample's first splat has the class its
//!   `# class:` line names (and a fatal class ends the kernel);
//! * `pattern::<class>::<needle>`: some sample contains a line this pattern
//!   matches and classifies as its class, so no pattern is untested.
use hidvm::judge::console::{find_splats, SPLAT_PATTERNS};
mod common;

use libtest_mimic::{Arguments, Failed, Trial};

struct Sample {
    name: String,
    class: String,
    text: String,
}

fn samples() -> Vec<Sample> {
    common::splat_files()
        .into_iter()
        .map(|(name, text)| {
            let class = text
                .lines()
                .find_map(|l| l.strip_prefix("# class:"))
                .unwrap_or_else(|| panic!("{name}.txt has no `# class:` line"))
                .trim()
                .to_string();
            assert!(text.lines().any(|l| l.starts_with("# source:")), "{name}.txt has no `# source:` line");
            Sample { name, class, text }
        })
        .collect()
}

fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    let samples = std::sync::Arc::new(samples());
    let mut trials = vec![Trial::test("pattern_list_is_not_empty", || {
        if SPLAT_PATTERNS.is_empty() {
            return Err("SPLAT_PATTERNS is empty: nothing would ever fail a scenario".into());
        }
        Ok(())
    })];
    for i in 0..samples.len() {
        let s = samples.clone();
        trials.push(Trial::test(format!("sample::{}", samples[i].name), move || {
            let sample = &s[i];
            let body = common::body(&sample.text);
            let found = find_splats(&body);
            let first = found.first().ok_or_else(|| Failed::from(format!("no splat found in {}", sample.name)))?;
            if first.class != sample.class {
                return Err(format!(
                    "first splat classified `{}`, sample says `{}`: {}",
                    first.class, sample.class, first.line
                )
                .into());
            }
            Ok(())
        }));
    }
    for (i, pat) in SPLAT_PATTERNS.iter().enumerate() {
        let s = samples.clone();
        let name: String = pat
            .needle
            .trim()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
            .collect();
        trials.push(Trial::test(format!("pattern::{}::{i:02}_{}", pat.class, name.trim_matches('_')), move || {
            let hit = s.iter().any(|sample| {
                sample.text.lines().any(|l| {
                    l.contains(pat.needle) && find_splats(l).first().is_some_and(|sp| sp.class == pat.class)
                })
            });
            if hit {
                Ok(())
            } else {
                Err(format!(
                    "no golden sample exercises pattern `{}` (class {}): add a real report as harness/tests/splats/<class>-<origin>.txt",
                    pat.needle, pat.class
                )
                .into())
            }
        }));
    }
    libtest_mimic::run(&args, trials).exit_code()
}
