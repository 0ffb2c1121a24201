//! JUnit XML (`--junit FILE`), what CI systems show per test: one
//! `<testsuite>` per target, one `<testcase>` per record (classname is
//! everything before the test's last `::`), failures, errors and flaky
//! runs as `<failure>`, skips as `<skipped>`, known kernel bugs as passed
//! test cases whose `<system-out>` says which entry they matched.
use crate::base::error::{Error, Result};
use crate::base::layout::write_atomic;
use crate::results::records::{Results, Status, TestRecord};
use std::collections::BTreeMap;
use std::path::Path;

/// XML text with the five predefined entities escaped and characters XML
/// 1.0 cannot hold dropped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

fn testcase(r: &TestRecord) -> String {
    let (class, name) = r.test.rsplit_once("::").unwrap_or(("", r.test.as_str()));
    let time = r.seconds.map(|s| format!(" time=\"{s:.3}\"")).unwrap_or_default();
    let reason = esc(r.reason.as_deref().unwrap_or(""));
    let body = match r.status {
        Status::Pass => String::new(),
        Status::Known => format!("<system-out>known kernel bug: {reason}</system-out>"),
        Status::Skip => format!("<skipped message=\"{reason}\"/>"),
        Status::Fail | Status::Error | Status::Flaky => {
            let kind = esc(r.kind.as_deref().unwrap_or(match r.status {
                Status::Error => "error",
                Status::Flaky => "flaky",
                _ => "failed",
            }));
            let where_ = r.run_dir.as_ref().map(|d| format!("\nrun directory: {}", d.display())).unwrap_or_default();
            format!("<failure message=\"{reason}\" type=\"{kind}\">{reason}{}</failure>", esc(&where_))
        }
    };
    format!("    <testcase classname=\"{}\" name=\"{}\"{time}>{body}</testcase>\n", esc(class), esc(name))
}

pub fn render(results: &Results) -> String {
    let mut suites: BTreeMap<String, Vec<&TestRecord>> = BTreeMap::new();
    for r in &results.records {
        suites.entry(r.target().label()).or_default().push(r);
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"hidvm\">\n");
    for (label, records) in suites {
        let count = |f: fn(Status) -> bool| records.iter().filter(|r| f(r.status)).count();
        let failures = count(|s| matches!(s, Status::Fail | Status::Flaky));
        let errors = count(|s| s == Status::Error);
        let skipped = count(|s| s == Status::Skip);
        let time: f64 = records.iter().filter_map(|r| r.seconds).sum();
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time:.3}\">\n",
            esc(&label),
            records.len()
        ));
        for r in records {
            out.push_str(&testcase(r));
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

pub fn write(results: &Results, path: &Path) -> Result<()> {
    write_atomic(path, render(results).as_bytes()).map_err(Error::io(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::records::test_record;

    #[test]
    fn one_suite_per_target_with_each_outcome_in_its_element() {
        let mut fail = test_record("6.12", "gcc", "hidtools::test_a.py::T::test_x[a -> b]", Status::Fail);
        fail.reason = Some("assert 1 == 2 <&>".into());
        let r = Results::new(vec![
            test_record("6.12", "gcc", "mouse_invert_y_close_link", Status::Pass),
            fail,
            test_record("6.12", "gcc", "c", Status::Skip),
            test_record("7.3", "llvm", "d", Status::Known),
        ]);
        let x = render(&r);
        assert!(
            x.contains("<testsuite name=\"6.12-gcc\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\""),
            "{x}"
        );
        assert!(
            x.contains("<testcase classname=\"6.12-gcc::hidtools::test_a.py::T\" name=\"test_x[a -&gt; b]\">"),
            "{x}"
        );
        assert!(x.contains("<failure message=\"assert 1 == 2 &lt;&amp;&gt;\" type=\"check-failed\">"), "{x}");
        assert!(x.contains("<skipped message=\"why\"/>"), "{x}");
        assert!(x.contains("<system-out>known kernel bug: why</system-out>"), "{x}");
        assert_eq!(x.matches("<testsuite ").count(), 2);
        assert_eq!(esc("a\u{1}b"), "ab", "no control characters in XML 1.0");
    }
}
