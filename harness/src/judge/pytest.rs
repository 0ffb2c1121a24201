//! One pytest session of the kernel's hid-tools suite, read: pytest-tap's
//! TAP stream gives the verdicts (`judge::tap`'s parser and rules), the
//! `hidvm_pytest` plugin's `@hidvm-pytest` lines beside it give each
//! result's pytest node id (TAP names are not node ids, and not unique: an
//! inherited test is named after the file that defines it, and a class
//! imported into two modules gives two identical names), so results are
//! matched to node ids by position. The plugin also reports what the TAP
//! stream leaves out: a failure in a test's teardown, where
//! `udev-hid-bpf remove` runs.
//!
//! Some skips mean the environment is broken, not that the test does not
//! apply; they are failures whatever a known list says.
use crate::judge::tap::{self, KtapResult, Outcome};
use std::collections::BTreeMap;

/// What the plugin's lines start with.
pub const PLUGIN_PREFIX: &str = "@hidvm-pytest ";
/// Node ids are relative to selftests/hid; rows leave out this prefix.
pub const TESTS_PREFIX: &str = "tests/";

/// Skip reasons that say the userspace, the loader, the bundle or the
/// kernel's modules are broken, never that the test does not apply.
const ENVIRONMENT_SKIPS: &[&str] = &[
    "udev-hid-bpf not found",
    "not in the kernel tree",
    "could not be loaded",
    "got empty parameter set",
    "hidtools >=",
    "have hidtools",
    "No module named",
    "Insufficient permissions",
];

/// Whether a skip reason says the environment is broken.
pub fn environment_skip(why: &str) -> bool {
    ENVIRONMENT_SKIPS.iter().any(|s| why.contains(s))
}

/// A session's output, read.
#[derive(Debug, Default)]
pub struct Session {
    /// TAP's plan (`1..N`): what pytest collected for this session.
    pub plan: Option<usize>,
    /// One per TAP result, named by node id without `tests/`.
    pub results: Vec<KtapResult>,
    /// The node ids the plugin saw start, in order (with `tests/`).
    pub started: Vec<String>,
    /// Node id (without `tests/`) -> the kernel's taint flags after it.
    pub taint_after: Vec<(String, u64)>,
    /// Node id -> the pytest process's resident memory after it, in kB.
    pub rss_kb: BTreeMap<String, u64>,
    /// What does not add up (result and start counts).
    pub problems: Vec<String>,
}

/// A node id as a row names it: `test_mouse.py::TestSimpleMouse::test_creation`.
pub fn short_id(nodeid: &str) -> &str {
    nodeid.strip_prefix(TESTS_PREFIX).unwrap_or(nodeid)
}

/// Read one session's output lines (TAP stream and plugin lines mixed).
pub fn read_session(lines: &[String]) -> Session {
    let mut s = Session::default();
    let mut teardown: BTreeMap<String, String> = BTreeMap::new();
    let mut tap_lines = Vec::new();
    for line in lines {
        let Some(rest) = line.strip_prefix(PLUGIN_PREFIX) else {
            tap_lines.push(line.clone());
            continue;
        };
        if let Some(id) = rest.strip_prefix("start ") {
            s.started.push(id.to_string());
        } else if let Some(r) = rest.strip_prefix("teardown-failed ") {
            let (id, why) = r.split_once('\t').unwrap_or((r, ""));
            teardown.insert(id.to_string(), why.to_string());
        } else if let Some(r) = rest.strip_prefix("end ") {
            let (id, fields) = r.split_once('\t').unwrap_or((r, ""));
            let field = |k: &str| fields.split_whitespace().find_map(|f| f.strip_prefix(k)?.parse::<u64>().ok());
            if let Some(t) = field("taint=") {
                s.taint_after.push((short_id(id).to_string(), t));
            }
            if let Some(kb) = field("rss=") {
                s.rss_kb.insert(short_id(id).to_string(), kb);
            }
        }
    }
    let (plan, mut results) = tap::parse(&tap_lines);
    s.plan = plan;
    for (r, text) in results.iter_mut().zip(failure_texts(&tap_lines)) {
        if let (Outcome::Fail(why), Some(text)) = (&mut r.outcome, text) {
            *why = text;
        }
    }
    if s.started.len() != results.len() {
        s.problems.push(format!(
            "{} TAP results for {} tests started: results cannot be matched to node ids",
            results.len(),
            s.started.len()
        ));
    } else {
        for (r, id) in results.iter_mut().zip(&s.started) {
            r.name = short_id(id).to_string();
            if let Some(why) = teardown.get(id) {
                r.outcome = Outcome::Fail(format!("teardown failed: {why}"));
            }
        }
    }
    for r in &mut results {
        if let Outcome::Skip(why) = &r.outcome {
            if environment_skip(why) {
                r.outcome = Outcome::Fail(format!("skipped for a reason that means the environment is broken: {why}"));
            }
        }
    }
    s.results = results;
    s
}

/// For each TAP result, the text of its failure (None: it did not fail);
/// pytest-tap's diagnostics follow the `not ok` line (the traceback); the `E ` lines
/// and the final `file:line: Error` line say what failed.
fn failure_texts(lines: &[String]) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = Vec::new();
    let mut diag: Vec<&str> = Vec::new();
    let finish = |out: &mut Vec<Option<String>>, diag: &mut Vec<&str>| {
        if let Some(last) = out.last_mut() {
            if last.is_some() {
                let errors: Vec<&str> = diag.iter().filter_map(|l| l.strip_prefix("E ")).map(str::trim).collect();
                let place = diag.iter().rev().find(|l| l.contains(".py:") && l.contains(": ")).map(|l| l.trim());
                let mut text = errors.iter().take(3).copied().collect::<Vec<_>>().join(" | ");
                if let Some(p) = place {
                    text = if text.is_empty() { p.to_string() } else { format!("{text} ({p})") };
                }
                if text.is_empty() {
                    text = "failed (pytest-tap wrote no diagnostics)".into();
                }
                *last = Some(text);
            }
        }
        diag.clear();
    };
    for line in lines {
        if line.starts_with("ok ") || line.starts_with("not ok ") {
            finish(&mut out, &mut diag);
            out.push(line.starts_with("not ok ").then(String::new));
        } else if let Some(d) = line.strip_prefix("# ").or_else(|| (line == "#").then_some("")) {
            diag.push(d);
        }
    }
    finish(&mut out, &mut diag);
    out
}

/// Each test's wall time from the plugin's kernel-log markers
/// (`[ 12.345678] hidvm: pytest start|end <nodeid>`), by short node id.
pub fn test_seconds(console: &str) -> BTreeMap<String, f64> {
    let mut started: BTreeMap<String, f64> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for line in console.lines() {
        let Some((stamp, text)) = line.trim().strip_prefix('[').and_then(|l| l.split_once("] ")) else { continue };
        let Ok(t) = stamp.trim().parse::<f64>() else { continue };
        if let Some(id) = text.strip_prefix("hidvm: pytest start ") {
            started.insert(short_id(id.trim()).to_string(), t);
        } else if let Some(rest) = text.strip_prefix("hidvm: pytest end ") {
            let id = short_id(crate::judge::console::ended_test(rest)).to_string();
            if let Some(t0) = started.get(&id) {
                out.insert(id, t - t0);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(String::from).collect()
    }

    const SESSION: &str = "1..4\n\
        @hidvm-pytest start tests/test_mouse.py::TestSimpleMouse::test_creation\n\
        ok 1 tests/base.py::TestSimpleMouse.test_creation\n\
        @hidvm-pytest end tests/test_mouse.py::TestSimpleMouse::test_creation\ttaint=0 rss=53000\n\
        @hidvm-pytest start tests/test_apple_keyboard.py::TestArrayKeyboard::test_creation\n\
        not ok 2 tests/test_keyboard.py::TestArrayKeyboard.test_creation\n\
        # self = <x>\n\
        # >       assert uhdev.get_evdev() is not None\n\
        # E       assert None is not None\n\
        # \n\
        # tests/base.py:355: AssertionError\n\
        @hidvm-pytest end tests/test_apple_keyboard.py::TestArrayKeyboard::test_creation\ttaint=0 rss=54000\n\
        @hidvm-pytest start tests/test_tablet.py::TestXPPen_Artist24_28bd_093a::test_x[a -> b]\n\
        ok 3 tests/test_tablet.py::TestXPPen_Artist24_28bd_093a.test_x[a -> b]\n\
        @hidvm-pytest teardown-failed tests/test_tablet.py::TestXPPen_Artist24_28bd_093a::test_x[a -> b]\tFailed: Couldn't unload hid-bpf programs | udev-hid-bpf: Error: remove 0003:28BD:093A.0003: bpf_link 7 is still in the kernel\n\
        @hidvm-pytest end tests/test_tablet.py::TestXPPen_Artist24_28bd_093a::test_x[a -> b]\ttaint=512 rss=55000\n\
        @hidvm-pytest start tests/test_usb_crash.py::TestUSBDevice::test_creation[NOTSET]\n\
        ok 4 tests/test_usb_crash.py::TestUSBDevice.test_creation[NOTSET] # SKIP got empty parameter set ['usbVidPid']\n";

    #[test]
    fn results_are_named_by_node_id_with_their_failure_text() {
        let s = read_session(&lines(SESSION));
        assert_eq!(s.plan, Some(4));
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        let names: Vec<&str> = s.results.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names[0], "test_mouse.py::TestSimpleMouse::test_creation");
        assert_eq!(names[1], "test_apple_keyboard.py::TestArrayKeyboard::test_creation", "by position, not TAP name");
        assert_eq!(s.results[0].outcome, Outcome::Pass);
        assert_eq!(
            s.results[1].outcome,
            Outcome::Fail("assert None is not None (tests/base.py:355: AssertionError)".into())
        );
        assert_eq!(
            s.taint_after.last().unwrap(),
            &("test_tablet.py::TestXPPen_Artist24_28bd_093a::test_x[a -> b]".into(), 512)
        );
        assert_eq!(s.rss_kb["test_mouse.py::TestSimpleMouse::test_creation"], 53000);
    }

    #[test]
    fn a_teardown_failure_fails_a_passed_test() {
        let s = read_session(&lines(SESSION));
        let Outcome::Fail(why) = &s.results[2].outcome else { panic!("{:?}", s.results[2]) };
        assert!(
            why.starts_with("teardown failed: Failed: Couldn't unload") && why.contains("still in the kernel"),
            "{why}"
        );
    }

    #[test]
    fn environment_skips_are_failures() {
        let s = read_session(&lines(SESSION));
        assert!(matches!(&s.results[3].outcome, Outcome::Fail(w) if w.contains("environment is broken")));
        for why in
            ["udev-hid-bpf not found in $PATH, skipping", "module hid-apple could not be loaded, skipping the test"]
        {
            assert!(environment_skip(why));
        }
        assert!(!environment_skip("Device not compatible, missing Invert usage"));
    }

    #[test]
    fn results_that_cannot_be_matched_to_node_ids_are_a_problem() {
        let s = read_session(&lines("1..2\n@hidvm-pytest start tests/a.py::T::x\nok 1 a\nok 2 b\n"));
        assert!(s.problems[0].contains("2 TAP results for 1 tests started"), "{:?}", s.problems);
    }

    #[test]
    fn test_times_come_from_the_kernel_log_markers() {
        let console = "[    1.500000] hidvm: pytest start tests/a.py::T::x\n[    2.250000] hidvm: pytest end tests/a.py::T::x taint=0 rss=1kB\n";
        assert_eq!(test_seconds(console)["a.py::T::x"], 0.75);
        // Parameters with spaces (most of test_tablet.py, test_usb_crash.py).
        let spaced = "[    3.000000] hidvm: pytest start tests/b.py::T::y[a -> b]\n[    3.500000] hidvm: pytest end tests/b.py::T::y[a -> b] taint=0 rss=1kB\n";
        assert_eq!(test_seconds(spaced).get("b.py::T::y[a -> b]"), Some(&0.5), "{:?}", test_seconds(spaced));
    }
}
