//! KTAP, the kernel's test-result format: parsed (the kernel's own
//! selftests print it) and written (`--ktap FILE`).
use crate::base::error::{Error, Result};
use crate::base::layout::write_atomic;
use crate::results::records::{Results, Status};
use std::path::Path;

/// One KTAP result line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KtapResult {
    /// `hid_bpf.test_create_uhid` (fixture.test, as the harness names it).
    pub name: String,
    pub outcome: Outcome,
}

/// The plan (`1..N`) and every `ok`/`not ok` line of a KTAP (or TAP 13)
/// stream, top level only (indented subtest lines are the harness's).
pub fn parse(lines: &[String]) -> (Option<usize>, Vec<KtapResult>) {
    let mut plan = None;
    let mut results = Vec::new();
    // Diagnostics since the last result: a failure without a directive is
    // explained by the harness's assertion line ("hid_bpf.c:154:...:Expected ...").
    let mut since: Vec<&str> = Vec::new();
    for line in lines {
        if let Some(n) = line.strip_prefix("1..") {
            plan = n.trim().parse().ok();
            continue;
        }
        if let Some(d) = line.strip_prefix("# ") {
            since.push(d.trim());
        }
        let (ok, rest) = if let Some(r) = line.strip_prefix("not ok ") {
            (false, r)
        } else if let Some(r) = line.strip_prefix("ok ") {
            (true, r)
        } else {
            continue;
        };
        // "<n> <name>[ # <directive>]"
        let rest = rest.split_once(' ').map(|(_, r)| r).unwrap_or("");
        let (name, directive) = match rest.split_once(" # ") {
            Some((n, d)) => (n.trim(), Some(d.trim())),
            None => (rest.trim(), None),
        };
        let outcome = match directive {
            Some(d) if d.to_ascii_uppercase().starts_with("SKIP") => {
                Outcome::Skip(d[4..].trim().trim_start_matches(':').trim().to_string())
            }
            _ if ok => Outcome::Pass,
            Some(d) if !d.is_empty() => Outcome::Fail(d.to_string()),
            _ => Outcome::Fail(
                since
                    .iter()
                    .find(|l| l.contains(":Expected ") || l.contains("assert"))
                    .or_else(|| since.iter().rev().find(|l| !l.trim_start().starts_with("FAIL")))
                    .map(|l| l.to_string())
                    .unwrap_or_default(),
            ),
        };
        since.clear();
        results.push(KtapResult { name: name.to_string(), outcome });
    }
    (plan, results)
}

/// KTAP version 1: one top-level result per test, `# SKIP` for skips,
/// `# XFAIL` for known kernel bugs, the reason as a diagnostic line.
pub fn render(results: &Results) -> String {
    let mut out = format!("KTAP version 1\n1..{}\n", results.records.len());
    for (i, r) in results.records.iter().enumerate() {
        let n = i + 1;
        let reason = r.reason.as_deref().map(one_line).unwrap_or_default();
        if matches!(r.status, Status::Fail | Status::Error | Status::Flaky) && !reason.is_empty() {
            out.push_str(&format!("# {}: {reason}\n", r.test));
        }
        let line = match r.status {
            Status::Pass => format!("ok {n} {}", r.test),
            Status::Skip => format!("ok {n} {} # SKIP {reason}", r.test),
            Status::Known => format!("not ok {n} {} # XFAIL known kernel bug: {reason}", r.test),
            Status::Fail | Status::Error | Status::Flaky => format!("not ok {n} {}", r.test),
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub fn write(results: &Results, path: &Path) -> Result<()> {
    write_atomic(path, render(results).as_bytes()).map_err(Error::io(format!("writing {}", path.display())))
}

/// The reason on one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::records::test_record;

    /// The KTAP file parses back with the same parser `hidvm selftests`
    /// uses for the kernel's own KTAP, with the same outcomes.
    #[test]
    fn ktap_output_parses_as_ktap() {
        let r = Results::new(vec![
            test_record("6.12", "gcc", "a", Status::Pass),
            test_record("6.12", "gcc", "b", Status::Fail),
            test_record("6.12", "gcc", "c", Status::Skip),
            test_record("6.12", "gcc", "d", Status::Known),
        ]);
        let text = render(&r);
        assert!(text.starts_with("KTAP version 1\n1..4\n"), "{text}");
        let lines: Vec<String> = text.lines().map(String::from).collect();
        let (plan, parsed) = parse(&lines);
        assert_eq!(plan, Some(4));
        assert_eq!(parsed[0].outcome, Outcome::Pass);
        assert!(matches!(parsed[1].outcome, Outcome::Fail(_)));
        assert_eq!(parsed[2].outcome, Outcome::Skip("why".into()));
        assert!(matches!(&parsed[3].outcome, Outcome::Fail(w) if w.starts_with("XFAIL")));
        assert_eq!(parsed[1].name, "6.12-gcc::b");
    }
}
