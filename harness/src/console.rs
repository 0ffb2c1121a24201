//! Reading the kernel console: finding splats (oopses, BUGs, WARNINGs,
//! panics, sanitizer reports, lockups) and quoting its tail.

/// A class of kernel problem and the console text that announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplatPattern {
    pub class: &'static str,
    /// Substring that starts the report on the console.
    pub needle: &'static str,
}

/// Every pattern that fails a scenario. Substrings, matched per line, so
/// each is easy to audit against the kernel source that prints it.
pub const SPLAT_PATTERNS: &[SplatPattern] = &[
    SplatPattern { class: "panic", needle: "Kernel panic - not syncing" },
    SplatPattern { class: "oops", needle: "Oops: " },
    SplatPattern { class: "bug", needle: "BUG: " },
    SplatPattern { class: "bug", needle: "kernel BUG at " },
    SplatPattern { class: "warning", needle: "WARNING: " },
    SplatPattern { class: "gpf", needle: "general protection fault" },
    SplatPattern { class: "kasan", needle: "KASAN: " },
    SplatPattern { class: "ubsan", needle: "UBSAN: " },
    SplatPattern { class: "kmemleak", needle: "kmemleak: " },
    SplatPattern { class: "lockdep", needle: "possible circular locking dependency" },
    SplatPattern { class: "rcu-stall", needle: "rcu: INFO: " },
    SplatPattern { class: "hung-task", needle: "blocked for more than" },
    SplatPattern { class: "soft-lockup", needle: "soft lockup" },
    SplatPattern { class: "hard-lockup", needle: "hard LOCKUP" },
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splat {
    pub class: &'static str,
    pub line_no: usize,
    pub line: String,
    /// The report's first lines, for the failure message.
    pub context: Vec<String>,
}

/// Every splat on the console, in order.
pub fn find_splats(console: &str) -> Vec<Splat> {
    assert!(!SPLAT_PATTERNS.is_empty(), "the splat pattern list must never be empty");
    let lines: Vec<&str> = console.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(p) = SPLAT_PATTERNS.iter().find(|p| line.contains(p.needle)) {
            let end = (i + 12).min(lines.len());
            out.push(Splat {
                class: p.class,
                line_no: i + 1,
                line: line.trim_end().to_string(),
                context: lines[i..end].iter().map(|l| l.trim_end().to_string()).collect(),
            });
        }
    }
    out
}

/// The last `n` lines, for failure messages.
pub fn tail(console: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = console.lines().collect();
    lines[lines.len().saturating_sub(n)..].iter().map(|l| l.trim_end().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_boot_has_no_splats_and_a_warning_is_found() {
        let clean = "[    0.1] Linux version 6.12.117\n[    1.0] Run /init as init process\n";
        assert!(find_splats(clean).is_empty());
        let warn = "[    2.0] ------------[ cut here ]------------\n[    2.0] WARNING: CPU: 0 PID: 1 at drivers/hid/bpf/hid_bpf_struct_ops.c:250 hid_bpf_unreg+0x1/0x2\n";
        let s = find_splats(warn);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].class, s[0].line_no), ("warning", 2));
    }
}
