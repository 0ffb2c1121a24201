//! Reading the kernel console: finding splats (oopses, BUGs, WARNINGs,
//! panics, sanitizer reports, lockups, leaks) and attributing them to the
//! scenario step that was running.

/// A class of kernel problem and the console text that announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplatPattern {
    pub class: &'static str,
    /// Substring of the report's headline, as the kernel prints it.
    pub needle: &'static str,
    /// Whether this class, on its own, ends the kernel (panic).
    pub fatal: bool,
}

const fn p(class: &'static str, needle: &'static str) -> SplatPattern {
    SplatPattern { class, needle, fatal: false }
}

/// Every pattern that fails a scenario, most specific first: the first
/// pattern a line contains decides its class. Each needle is the headline
/// the kernel prints, and each has a real report among the golden samples
/// in harness/tests/splats/ (tests/splat_patterns.rs checks that). Reports
/// without a specific pattern still fail through the generic ones at the
/// end ("BUG: ", "WARNING: "), only with a less precise class.
pub const SPLAT_PATTERNS: &[SplatPattern] = &[
    SplatPattern { class: "panic", needle: "Kernel panic - not syncing", fatal: true },
    p("kasan", "BUG: KASAN: "),
    // kCFI (CONFIG_CFI / CFI_CLANG): an indirect call to a function of the
    // wrong type; the trap that follows is reported as a BUG or Oops.
    p("cfi", "CFI failure at "),
    p("kfence", "BUG: KFENCE: "),
    p("ubsan", "UBSAN: "),
    p("kmemleak", "new suspected memory leaks"),
    p("lockdep", "WARNING: possible circular locking dependency"),
    p("lockdep", "WARNING: suspicious RCU usage"),
    p("atomic-sleep", "BUG: sleeping function called from invalid context"),
    p("soft-lockup", "BUG: soft lockup"),
    p("hard-lockup", "Watchdog detected hard LOCKUP"),
    p("workqueue-lockup", "BUG: workqueue lockup"),
    p("rcu-stall", "rcu: INFO: rcu_"),
    p("hung-task", " blocked for more than "),
    p("list-corruption", "list_add corruption"),
    p("list-corruption", "list_del corruption"),
    p("debug-objects", "ODEBUG: "),
    p("refcount", "refcount_t: "),
    p("gpf", "general protection fault"),
    p("bug", "kernel BUG at "),
    p("bug", "BUG: "),
    p("oops", "Oops: "),
    p("warning", "WARNING: "),
];

/// Every class name, for validating self-test expectations.
pub fn classes() -> Vec<&'static str> {
    let mut c: Vec<&str> = SPLAT_PATTERNS.iter().map(|p| p.class).collect();
    c.extend(["taint", "bpf-leak"]);
    c.sort();
    c.dedup();
    c
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splat {
    pub class: &'static str,
    pub fatal: bool,
    pub line_no: usize,
    pub line: String,
    /// The report's first lines, for the failure message.
    pub context: Vec<String>,
    /// Which part of the scenario was running ("during step 3: …").
    pub during: String,
}

impl Splat {
    /// The step the splat came in or after (None: boot or device setup).
    pub fn step_number(&self) -> Option<usize> {
        let rest = self.during.strip_prefix("during step ").or_else(|| self.during.strip_prefix("after step "))?;
        rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    }
}

/// Every splat on the console, in order.
pub fn find_splats(console: &str) -> Vec<Splat> {
    assert!(!SPLAT_PATTERNS.is_empty(), "the splat pattern list must never be empty");
    let lines: Vec<&str> = console.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(pat) = SPLAT_PATTERNS.iter().find(|p| line.contains(p.needle)) {
            let end = (i + 12).min(lines.len());
            out.push(Splat {
                class: pat.class,
                fatal: pat.fatal,
                line_no: i + 1,
                line: strip_timestamp(line).to_string(),
                context: lines[i..end].iter().map(|l| l.trim_end().to_string()).collect(),
                during: during(&lines[..i]),
            });
        }
    }
    out
}

/// The hid-tools test (pytest node id) that was running when the kernel
/// printed `splat`, if one was.
pub fn pytest_test(splat: &Splat) -> Option<&str> {
    splat.during.strip_prefix(DURING_PYTEST)
}

/// "[   12.345678] text" -> "text".
pub fn strip_timestamp(line: &str) -> &str {
    let l = line.trim();
    match (l.starts_with('['), l.find("] ")) {
        (true, Some(end)) => l[end + 2..].trim_end(),
        _ => l,
    }
}

/// What a splat's `during` says when it came while the hid-tools test
/// `<nodeid>` ran (see [`pytest_test`]).
const DURING_PYTEST: &str = "during pytest test ";

/// The agent writes "hidvm: step N: <what>" before and "hidvm: step N:
/// ok|FAILED" after each step, and the hid-tools suite's pytest plugin
/// "hidvm: pytest start <nodeid>" and "hidvm: pytest end <nodeid> …"
/// around each test; the last marker before a line says what was running
/// when the kernel printed it.
fn during(before: &[&str]) -> String {
    for line in before.iter().rev() {
        let text = strip_timestamp(line);
        if let Some(test) = text.strip_prefix("hidvm: pytest start ") {
            return format!("{DURING_PYTEST}{test}");
        }
        if let Some(rest) = text.strip_prefix("hidvm: pytest end ") {
            return format!("after pytest test {}", ended_test(rest));
        }
        if let Some(rest) = text.strip_prefix("hidvm: ") {
            if rest.starts_with("scenario done") {
                return "after the last step".into();
            }
            if rest.starts_with("scenario ") {
                return "while creating devices".into();
            }
            if let Some(step) = rest.strip_prefix("step ") {
                let (n, what) = step.split_once(": ").unwrap_or((step, ""));
                return match what {
                    "ok" | "FAILED" => format!("after step {n}"),
                    _ => format!("during step {n} ({what})"),
                };
            }
        }
    }
    "during boot, before the agent ran".into()
}

/// The node id of a "hidvm: pytest end <nodeid> taint=… rss=…kB" marker
/// (after its prefix). A node id may hold spaces (`test_creation[wacom.ko
/// 17ef:6004]`, most of test_tablet.py's parameters), so it ends at the
/// plugin's own ` taint=`, not at the first space.
pub fn ended_test(rest: &str) -> &str {
    rest.rsplit_once(" taint=").map_or(rest, |(id, _)| id).trim()
}

/// The last `n` lines, for failure messages.
pub fn tail(console: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = console.lines().collect();
    lines[lines.len().saturating_sub(n)..].iter().map(|l| l.trim_end().to_string()).collect()
}

/// Taint flag letters (Documentation/admin-guide/tainted-kernels.rst).
pub fn taint_letters(mask: u64) -> String {
    const LETTERS: &[u8] = b"PFSRMBUDAWCIOELKXTN";
    let mut s = String::new();
    for (bit, l) in LETTERS.iter().enumerate() {
        if mask & (1 << bit) != 0 {
            s.push(*l as char);
        }
    }
    if s.is_empty() {
        "none".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_boot_has_no_splats() {
        let clean =
            "[    0.1] Linux version 6.12.117\n[    1.0] Run /init as init process\n[    1.1] hidvm: step 1: ok\n";
        assert!(find_splats(clean).is_empty());
    }

    #[test]
    fn splats_are_attributed_to_the_running_step() {
        let log = "[ 1.0] hidvm: scenario x on cell gcc: start\n\
                   [ 1.1] hidvm: step 1: attach fixture f to mouse\n\
                   [ 1.2] hidvm: step 1: ok\n\
                   [ 1.3] hidvm: step 2: release link `l` (close), expect it gone\n\
                   [ 1.4] ------------[ cut here ]------------\n\
                   [ 1.4] WARNING: CPU: 0 PID: 1 at drivers/hid/bpf/hid_bpf_struct_ops.c:250 hid_bpf_unreg+0x1/0x2\n";
        let s = find_splats(log);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].class, s[0].line_no), ("warning", 6));
        assert_eq!(s[0].during, "during step 2 (release link `l` (close), expect it gone)");
        assert!(s[0].line.starts_with("WARNING: CPU: 0"));
        assert_eq!(
            find_splats("[ 0.5] BUG: kernel NULL pointer dereference")[0].during,
            "during boot, before the agent ran"
        );
    }

    #[test]
    fn splats_are_attributed_to_the_running_pytest_test() {
        let log = "[ 1.0] hidvm: pytest --tap-stream --udevd @/hidvm/shard.txt\n\
                   [ 1.1] hidvm: pytest start tests/test_mouse.py::TestSimpleMouse::test_creation\n\
                   [ 1.2] hidvm: udev-hid-bpf add 0003:0001:0002.0001 x.bpf.o: bpf_link [4] pinned\n\
                   [ 1.3] WARNING: CPU: 0 PID: 1 at drivers/hid/hid-core.c:1 x+0x1/0x2\n\
                   [ 1.4] hidvm: pytest end tests/test_mouse.py::TestSimpleMouse::test_creation taint=512 rss=1kB\n\
                   [ 1.5] BUG: kernel NULL pointer dereference, address: 0000000000000008\n";
        let s = find_splats(log);
        assert_eq!(pytest_test(&s[0]), Some("tests/test_mouse.py::TestSimpleMouse::test_creation"));
        assert_eq!(s[1].during, "after pytest test tests/test_mouse.py::TestSimpleMouse::test_creation");
        assert_eq!(pytest_test(&s[1]), None);
        let spaced = "[ 2.0] hidvm: pytest end tests/test_usb_crash.py::TestUSBDevice::test_creation[wacom.ko 17ef:6004] taint=0 rss=1kB\n\
                      [ 2.1] WARNING: CPU: 0 PID: 1 at drivers/hid/hid-core.c:1 x+0x1/0x2\n";
        assert_eq!(
            find_splats(spaced)[0].during,
            "after pytest test tests/test_usb_crash.py::TestUSBDevice::test_creation[wacom.ko 17ef:6004]"
        );
    }

    #[test]
    fn specific_classes_win_over_generic_ones() {
        let class = |l: &str| find_splats(l)[0].class;
        assert_eq!(class("BUG: KASAN: slab-use-after-free in hid_bpf_unreg+0x12/0x90"), "kasan");
        assert_eq!(class("WARNING: possible circular locking dependency detected"), "lockdep");
        assert_eq!(class("watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [x:1]"), "soft-lockup");
        assert_eq!(class("BUG: unable to handle page fault for address: ffff"), "bug");
    }

    #[test]
    fn taint_masks_decode_to_letters() {
        assert_eq!(taint_letters(0), "none");
        assert_eq!(taint_letters(1 << 9), "W");
        assert_eq!(taint_letters((1 << 9) | (1 << 7)), "DW");
    }
}
