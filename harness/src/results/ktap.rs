//! KTAP, the kernel's test-result format, written (`--ktap FILE`); the
//! parser is `judge::tap`'s (the kernel's own selftests print KTAP).
use crate::base::error::{Error, Result};
use crate::base::layout::write_atomic;
use crate::results::records::{Results, Status};
use std::path::Path;

/// KTAP version 1: one top-level result per test, `# SKIP` for skips,
/// `ok … # XFAIL` for known kernel bugs (as kselftest writes an expected
/// failure), the reason of a failure as a diagnostic line.
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
            Status::Known => format!("ok {n} {} # XFAIL known kernel bug: {reason}", r.test),
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
    use crate::judge::tap::{parse, Outcome};
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
        assert!(matches!(&parsed[3].outcome, Outcome::XFail(w) if w.starts_with("known kernel bug")), "{parsed:?}");
        assert!(text.contains("\nok 4 6.12-gcc::d # XFAIL"), "kselftest writes XFAIL as ok: {text}");
        // A `not ok` line stays a failure whatever its directive says.
        let (_, odd) = parse(&["not ok 1 x # XFAIL".to_string()]);
        assert!(matches!(odd[0].outcome, Outcome::Fail(_)), "{odd:?}");
        assert_eq!(parsed[1].name, "6.12-gcc::b");
    }
}
