//! Crash titles: a stable identity for a kernel report, in the style of
//! syzbot (syzkaller's pkg/report/linux.go), so a known kernel bug can be
//! matched by *signature* — a title plus functions of its stack — and a
//! different crash in the same test is not mistaken for it.
//!
//! A title is "<kind> in <function>": the kind of report ("BUG: unable to
//! handle page fault", "WARNING", "KASAN: slab-use-after-free Read", …)
//! and the guilty function, with nothing that changes from run to run: no
//! addresses, offsets, PIDs, task names, CPU numbers, durations or
//! timestamps, and no compiler suffixes (`.isra.0`, `.constprop.0`, `.cold`,
//! `.part.3`, and the `.llvm.<hash>` LLVM gives promoted statics), so a
//! gcc and an LLVM kernel crashing in the same function give the same
//! title. File and line numbers are kept apart ([`CrashReport::file_line`]):
//! they change between kernel versions.
//!
//! Where the guilty function comes from, per kind:
//! * faults, `kernel BUG`, Oops traps, lockups: the `RIP: 0010:` function;
//! * WARNING: the function on the `WARNING:` line (6.12's `WARNING: CPU: N
//!   PID: N at file:line func+…` and 7.3's `WARNING: file:line at func+…,
//!   CPU#N: comm/pid`);
//! * KASAN, KFENCE, CFI: the function their headline names;
//! * lockdep cycles: the functions of the two `at:` lines;
//! * hung tasks: the blocked task's frames (syzkaller's anchors and skips);
//! * kmemleak: the first frame of the backtrace that is not an allocator;
//! * otherwise the call trace;
//!
//! each time the first candidate that is not reporting machinery, a
//! sanitizer, a lock primitive, a list/refcount helper or a string/copy
//! helper (the [`SKIP`] table, ours, after syzkaller's list). Unlike
//! syzkaller, SRCU functions are never skipped (`__srcu_read_unlock`,
//! `cleanup_srcu_struct`): hidvm's known bugs live there.
//!
//! Decisions where syzbot's titles were not followed or not enough:
//! * UBSAN: the title names the function (from the stack, as syzbot) and
//!   keeps the file:line the headline prints in `file_line`; without a
//!   stack, "UBSAN: <check> in <file>" (the file without its line);
//! * a panic's title is its message, normalized ("Kernel panic - not
//!   syncing: dumptest"); a panic that follows a report (`Fatal
//!   exception`, `panic_on_warn set`, …) is part of that report, whose
//!   title stands, and sets [`CrashReport::panicked`];
//! * lockdep cycles are titled "possible deadlock in <function>" (syzbot's
//!   words) while their kind says what lockdep printed;
//! * hung tasks in `synchronize_srcu` keep that name (syzbot folds it into
//!   `synchronize_rcu`);
//! * syscall wrappers are named by their syscall in a title (`ksys_write`,
//!   `__x64_sys_write` -> `write`), as syzbot does;
//! * shapes this module does not know get the headline itself as title,
//!   with addresses and numbers normalized ([`normalize`]), and no
//!   function.
//!
//! On hidvm's kernels (tinyconfig: `CONFIG_UNWINDER_GUESS`) *every* frame
//! of a trace is printed with `?`, so a trace with no reliable frame keeps
//! all its frames ([`CrashReport::guessed_stack`]); a trace with reliable
//! frames (ORC, frame pointers) drops the `?` ones from `stack` and counts
//! them in [`CrashReport::unreliable`].
use crate::judge::console;
use std::ops::Range;

/// How far a report is read at most, from its headline.
pub const MAX_REPORT_LINES: usize = 400;

/// One frame of a call trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The symbol without compiler suffixes: `full_proxy_write` for
    /// `full_proxy_write.llvm.18334568591257520893`.
    pub function: String,
    /// The symbol as printed.
    pub symbol: String,
    pub offset: Option<u64>,
    pub size: Option<u64>,
    /// `[hid]`: the module the function is in.
    pub module: Option<String>,
    /// false: printed with `?` (the unwinder found the address on the stack
    /// but cannot vouch for it).
    pub reliable: bool,
    /// An already symbolized `func file:line [inline]` frame (syzbot's
    /// reports).
    pub inlined: bool,
    /// The innermost `<IRQ>`, `<NMI>`, `<SOFTIRQ>`, `<TASK>` section the
    /// frame is printed in, if any.
    pub section: Option<String>,
}

/// A kernel report, read from the console, and its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashReport {
    /// "BUG: unable to handle page fault in __srcu_read_unlock".
    pub title: String,
    /// "BUG: unable to handle page fault", "WARNING", "KASAN: slab-use-after-free Read", …
    pub kind: String,
    /// The guilty function; None when the report has none (workqueue
    /// lockups) or its shape is unknown (then the title is the headline
    /// with numbers and addresses normalized).
    pub function: Option<String>,
    /// Function names of the main call trace, innermost first, without
    /// offsets and compiler suffixes.
    pub stack: Vec<String>,
    /// For WARNING, kernel BUG, UBSAN, sleeping in atomic, suspicious RCU:
    /// "kernel/rcu/srcutree.c:686", relative to the tree.
    pub file_line: Option<String>,
    /// Every frame of the main call trace, `?` frames included.
    pub frames: Vec<Frame>,
    /// `?` frames left out of `stack`.
    pub unreliable: usize,
    /// No frame of the trace was reliable (a guess unwinder): `stack` holds
    /// every frame, some of them stale.
    pub guessed_stack: bool,
    /// A `Kernel panic - not syncing` line ended the report.
    pub panicked: bool,
    /// The console class of the headline (console::SPLAT_PATTERNS).
    pub class: &'static str,
    /// The report's lines in the console it was read from (0-based,
    /// end exclusive).
    pub lines: Range<usize>,
    /// The report's first line, prefixes stripped.
    pub headline: String,
}

impl CrashReport {
    /// Whether `function` (compared without compiler suffixes) is in the
    /// stack.
    pub fn stack_contains(&self, function: &str) -> bool {
        let want = strip_suffixes(function);
        self.stack.iter().any(|f| f == want)
    }

    /// A known bug's signature: this title, and every one of `functions`
    /// in the stack.
    pub fn matches(&self, title: &str, functions: &[&str]) -> bool {
        self.title == title && functions.iter().all(|f| self.stack_contains(f))
    }
}

/// Every report on the console, in order. Lines that belong to a report
/// (an `Oops:` after its `BUG:`, the `Kernel panic - not syncing: Fatal
/// exception` after its end marker) do not start another.
pub fn crash_reports(console: &str) -> Vec<CrashReport> {
    let lines: Vec<&str> = console.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if headline_class(strip_prefixes(lines[i])).is_some() {
            let r = parse_lines(&lines, i);
            i = r.lines.end.max(i + 1);
            out.push(r);
        } else {
            i += 1;
        }
    }
    out
}

/// The report whose headline is line `start` (0-based) of `console`, read
/// up to its end marker, the next report's headline, or
/// [`MAX_REPORT_LINES`].
pub fn report_at(console: &str, start: usize) -> CrashReport {
    let lines: Vec<&str> = console.lines().collect();
    parse_lines(&lines, start.min(lines.len().saturating_sub(1)))
}

/// The report a splat starts, read from the whole console (the splat's own
/// context is only its first lines).
pub fn report_for_splat(console: &str, splat: &console::Splat) -> CrashReport {
    report_at(console, splat.line_no.saturating_sub(1))
}

/// A report given as its own lines, the headline first.
pub fn parse_report(text: &str) -> CrashReport {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| headline_class(strip_prefixes(l)).is_some()).unwrap_or(0);
    parse_lines(&lines, start)
}

// ---------------------------------------------------------------------------
// Lines

/// "[   12.345678][    T1] text" -> "text" (timestamps and printk caller
/// ids, any number of them), trimmed.
pub fn strip_prefixes(line: &str) -> &str {
    let mut l = line.trim();
    while let Some(rest) = l.strip_prefix('[') {
        let Some(end) = rest.find(']') else { break };
        let inner = rest[..end].trim();
        let timestamp = !inner.is_empty() && inner.chars().all(|c| c.is_ascii_digit() || c == '.');
        let caller = inner.len() > 1
            && (inner.starts_with('T') || inner.starts_with('C'))
            && inner[1..].chars().all(|c| c.is_ascii_digit());
        if !(timestamp || caller) {
            break;
        }
        l = rest[end + 1..].trim_start();
    }
    l
}

fn headline_class(text: &str) -> Option<&'static str> {
    if let Some(p) = console::SPLAT_PATTERNS.iter().find(|p| text.contains(p.needle)) {
        return Some(p.class);
    }
    // Each leaked object of a kmemleak dump is a report of its own.
    text.starts_with("unreferenced object 0x").then_some("kmemleak")
}

fn is_trace_start(t: &str) -> bool {
    t.starts_with("Call Trace:")
        || t.starts_with("Call trace:")
        || t == "backtrace:"
        || t.starts_with("backtrace (crc")
        || t.starts_with("Backtrace:")
        // KFENCE: "Use-after-free read at 0x… (in kfence-#12):" then its frames.
        || (t.contains(" at 0x") && t.contains("(in kfence-#"))
}

/// Register dump lines (x86-64), also repeated after a fatal report's end
/// marker.
fn is_register_line(t: &str) -> bool {
    const HEADS: &[&str] = &[
        "RIP:",
        "RSP:",
        "RAX:",
        "RBX:",
        "RDX:",
        "RBP:",
        "R08:",
        "R10:",
        "R13:",
        "FS:",
        "GS:",
        "CS:",
        "CR2:",
        "DR0:",
        "DR3:",
        "PKRU:",
        "Code:",
        "Modules linked in",
        "Kernel Offset:",
    ];
    HEADS.iter().any(|h| t.starts_with(h))
}

/// A panic that is the consequence of the report before it (oops=panic,
/// panic_on_warn, hung_task_panic, softlockup_panic, …).
fn is_panic_consequence(t: &str) -> bool {
    let Some(msg) = t.split_once("Kernel panic - not syncing: ").map(|x| x.1) else { return false };
    ["Fatal exception", "panic_on_warn set", "hung_task: blocked tasks", "softlockup: hung tasks", "Hard LOCKUP"]
        .iter()
        .any(|m| msg.contains(m))
}

/// printk's own notices inside another message's lines ("** replaying
/// previous printk message **" when a console line was interrupted, "** 3
/// printk messages dropped **"): not a line of any report.
fn is_printk_notice(t: &str) -> bool {
    t.starts_with("** ") && t.ends_with(" **") && t.contains("printk")
}

fn is_rule(t: &str) -> bool {
    t.len() >= 10 && t.chars().all(|c| c == '=')
}

/// Where the report starting at `start` ends (exclusive), and whether a
/// panic line ended it.
fn report_end(lines: &[&str], start: usize) -> (usize, bool) {
    let limit = lines.len().min(start + MAX_REPORT_LINES);
    let mut trace_started = false;
    let mut i = start + 1;
    while i < limit {
        let t = strip_prefixes(lines[i]);
        if t.starts_with("hidvm: ") {
            return (i, false);
        }
        if t.starts_with("---[ end trace") {
            // A fatal report prints its registers again, then panics.
            let mut j = i + 1;
            let mut panicked = false;
            while j < limit {
                let t = strip_prefixes(lines[j]);
                if is_panic_consequence(t) {
                    panicked = true;
                } else if !(is_register_line(t) || is_printk_notice(t) || t.starts_with("---[ end Kernel panic")) {
                    break;
                }
                j += 1;
            }
            return (j, panicked);
        }
        if is_panic_consequence(t) {
            let mut j = i + 1;
            while j < limit {
                let t = strip_prefixes(lines[j]);
                if !(t.starts_with("Kernel Offset:") || t.starts_with("---[ end Kernel panic")) {
                    break;
                }
                j += 1;
            }
            return (j, true);
        }
        if trace_started && (headline_class(t).is_some() || is_rule(t)) {
            return (if is_rule(t) { i + 1 } else { i }, false);
        }
        if is_trace_start(t) {
            trace_started = true;
        }
        i += 1;
    }
    (limit, false)
}

// ---------------------------------------------------------------------------
// Frames

/// "name+0x1f/0x90" (also "0010:name+…", "(name+…)", "name+…,") ->
/// (name, offset, size).
fn parse_symbol_offset(token: &str) -> Option<(&str, u64, u64)> {
    let t = token.trim_start_matches('(').trim_end_matches([')', ',', ';']);
    let t = match t.split_once(':') {
        Some((seg, rest)) if seg.len() == 4 && seg.chars().all(|c| c.is_ascii_hexdigit()) => rest,
        _ => t,
    };
    let (name, rest) = t.rsplit_once('+')?;
    let (off, size) = rest.split_once('/')?;
    let hex = |s: &str| u64::from_str_radix(s.strip_prefix("0x")?, 16).ok();
    if !is_symbol_name(name) {
        return None;
    }
    Some((name, hex(off)?, hex(size)?))
}

fn is_symbol_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$')
}

/// A call trace line as a frame: `[<pc>] ? name+0x1/0x2 [module]`, or a
/// symbolized `name file.c:12 [inline]`.
pub fn parse_frame(line: &str) -> Option<Frame> {
    let mut rest = strip_prefixes(line);
    while let Some(r) = rest.strip_prefix("[<") {
        rest = r[r.find(">]")? + 2..].trim_start();
    }
    let mut reliable = true;
    if let Some(r) = rest.strip_prefix("? ") {
        reliable = false;
        rest = r.trim_start();
    }
    let (token, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let after = after.trim();
    if let Some((name, offset, size)) = parse_symbol_offset(token) {
        let module = after
            .strip_prefix('[')
            .and_then(|m| m.split(']').next())
            .and_then(|m| m.split_whitespace().next())
            .map(str::to_string);
        return Some(Frame {
            function: strip_suffixes(name).to_string(),
            symbol: name.to_string(),
            offset: Some(offset),
            size: Some(size),
            module,
            reliable,
            inlined: false,
            section: None,
        });
    }
    if after.ends_with("[inline]") && is_symbol_name(token) {
        return Some(Frame {
            function: strip_suffixes(token).to_string(),
            symbol: token.to_string(),
            offset: None,
            size: None,
            module: None,
            reliable,
            inlined: true,
            section: None,
        });
    }
    None
}

/// The compiler's suffixes off a symbol: `foo.isra.0`, `foo.constprop.0`,
/// `foo.cold`, `foo.part.3`, `foo.llvm.1234` -> `foo`.
pub fn strip_suffixes(symbol: &str) -> &str {
    symbol.split('.').next().unwrap_or(symbol)
}

/// The frames of the report's main trace: from its first trace header up
/// to the end of that trace.
fn main_trace(texts: &[&str]) -> Vec<Frame> {
    let Some(start) = texts.iter().position(|t| is_trace_start(t)) else { return Vec::new() };
    let mut frames = Vec::new();
    let mut sections: Vec<String> = Vec::new();
    for t in &texts[start + 1..] {
        if let Some(name) = t.strip_prefix("</").and_then(|s| s.strip_suffix('>')) {
            sections.retain(|s| s != name);
            if name == "TASK" && sections.is_empty() {
                break;
            }
            continue;
        }
        if let Some(name) = t.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
            sections.push(name.to_string());
            continue;
        }
        if let Some(mut f) = parse_frame(t) {
            f.section = sections.last().cloned();
            frames.push(f);
            continue;
        }
        let interrupted_regs = is_register_line(t) && !t.starts_with("Modules linked in");
        if t.is_empty() || !interrupted_regs {
            if frames.is_empty() && t.is_empty() {
                continue;
            }
            break;
        }
    }
    frames
}

fn rip_function(texts: &[&str]) -> Option<String> {
    texts.iter().find_map(|t| {
        let rest = t.strip_prefix("RIP: ")?;
        if rest.starts_with("0033:") {
            return None;
        }
        let token = rest.split_whitespace().next()?;
        parse_symbol_offset(token).map(|(name, _, _)| strip_suffixes(name).to_string())
    })
}

// ---------------------------------------------------------------------------
// Frames that are never the guilty one

#[derive(Clone, Copy)]
enum Pat {
    Exact(&'static str),
    Prefix(&'static str),
    Contains(&'static str),
}

impl Pat {
    fn matches(self, f: &str) -> bool {
        match self {
            Pat::Exact(s) => f == s,
            Pat::Prefix(s) => f.starts_with(s),
            Pat::Contains(s) => f.contains(s),
        }
    }
}

use Pat::{Contains as C, Exact as E, Prefix as P};

/// Reporting machinery, sanitizers, lock primitives and helpers: a report
/// is never *about* these (after syzkaller's skip list, anchored so that
/// `__srcu_read_unlock` is not taken for a rwlock's `read_unlock`).
const SKIP: &[Pat] = &[
    // Printing the report, traps and fault handling.
    P("dump_stack"),
    P("__dump_stack"),
    C("show_stack"),
    P("show_regs"),
    P("__show_regs"),
    P("show_trace"),
    P("__warn"),
    P("warn_slowpath"),
    E("report_bug"),
    P("__report_bug"),
    E("fixup_bug"),
    P("handle_bug"),
    P("exc_"),
    P("asm_"),
    P("do_error_trap"),
    P("do_trap"),
    E("die"),
    E("die_addr"),
    E("__die"),
    P("__die_"),
    E("oops_end"),
    P("page_fault_oops"),
    P("kernelmode_fixup_or_oops"),
    P("__bad_area"),
    P("bad_area"),
    P("do_user_addr_fault"),
    P("do_kern_addr_fault"),
    P("handle_page_fault"),
    P("fixup_exception"),
    E("panic"),
    P("vpanic"),
    P("nmi_panic"),
    P("check_panic_on_warn"),
    P("print_report"),
    P("print_address_description"),
    P("print_usage_bug"),
    P("print_tainted"),
    P("printk"),
    P("_printk"),
    P("vprintk"),
    // Sanitizers and debug checkers.
    C("kasan"),
    C("kmsan"),
    P("__asan"),
    P("__sanitizer"),
    P("check_memory_region"),
    P("ubsan_"),
    P("__ubsan_"),
    P("kfence_"),
    P("__kfence_"),
    P("kmemleak_alloc"),
    P("kmemleak_vmalloc"),
    P("kmemleak_free"),
    P("__kmemleak"),
    P("debug_object"),
    P("__debug_object"),
    P("debug_print_object"),
    P("debug_check_no_obj"),
    P("__debug_check_no_obj"),
    P("lockdep_"),
    P("__lockdep_"),
    E("lock_acquire"),
    E("lock_release"),
    E("lock_acquired"),
    P("__lock_acquire"),
    P("__lock_release"),
    P("mark_lock"),
    P("check_prev_add"),
    P("check_prevs_add"),
    P("validate_chain"),
    P("check_noncircular"),
    P("print_circular_bug"),
    P("__might_sleep"),
    P("___might_sleep"),
    P("__might_resched"),
    P("might_sleep"),
    P("__might_fault"),
    P("refcount_"),
    P("__refcount_"),
    P("kref_"),
    P("__list_add_valid"),
    P("__list_del_entry_valid"),
    P("list_add"),
    P("__list_add"),
    P("list_del"),
    P("__list_del"),
    P("__cfi_"),
    P("report_cfi_failure"),
    P("handle_cfi_failure"),
    // Lock primitives (not SRCU's: its functions name hidvm's known bugs).
    P("_raw_spin_"),
    P("do_raw_spin_"),
    P("spin_"),
    P("queued_spin_"),
    P("native_queued_spin_"),
    P("_raw_read_"),
    P("_raw_write_"),
    P("do_raw_read_"),
    P("do_raw_write_"),
    P("queued_read_"),
    P("queued_write_"),
    P("mutex_lock"),
    P("mutex_unlock"),
    P("mutex_trylock"),
    P("__mutex_lock"),
    P("__mutex_unlock"),
    P("down_read"),
    P("down_write"),
    P("up_read"),
    P("up_write"),
    E("down"),
    E("up"),
    P("rt_mutex"),
    P("__rt_mutex"),
    // Memory, string and user-copy helpers; retpolines.
    P("memcpy"),
    P("__memcpy"),
    P("memset"),
    P("__memset"),
    P("memmove"),
    P("__memmove"),
    P("memcmp"),
    P("strcpy"),
    P("strncpy"),
    P("strscpy"),
    P("strlen"),
    P("strnlen"),
    P("strcmp"),
    P("strncmp"),
    P("copy_to_user"),
    P("copy_from_user"),
    P("_copy_to_user"),
    P("_copy_from_user"),
    P("rep_movs"),
    P("rep_stos"),
    C("_indirect_thunk_"),
    P("__x86_return_thunk"),
];

/// Allocators: a leak or a bad free is about their caller.
const ALLOCATORS: &[Pat] = &[
    P("kmem_cache_alloc"),
    P("__kmem_cache_alloc"),
    P("kmem_cache_free"),
    P("kmalloc"),
    P("__kmalloc"),
    P("kzalloc"),
    P("kcalloc"),
    P("kvmalloc"),
    P("__kvmalloc"),
    P("kvzalloc"),
    P("krealloc"),
    P("kmemdup"),
    P("kstrdup"),
    P("kstrndup"),
    P("kasprintf"),
    P("kvasprintf"),
    E("kfree"),
    E("kvfree"),
    P("slab_"),
    P("__slab_"),
    P("alloc_pages"),
    P("__alloc_pages"),
    P("alloc_slab"),
    P("allocate_slab"),
    P("new_slab"),
    P("create_object"),
    P("__create_object"),
    P("vmalloc"),
    P("__vmalloc"),
    P("vzalloc"),
    P("pcpu_alloc"),
    P("__alloc_percpu"),
    P("alloc_percpu"),
];

/// A hung task is about what it waited for, not the waiting (syzkaller's
/// linuxHangTaskFrameExtractor).
const HANG_SKIP: &[Pat] = &[
    C("sched"),
    C("_lock"),
    C("_slowlock"),
    C("down"),
    C("rwsem"),
    C("completion"),
    C("kthread"),
    C("wait"),
    C("context_switch"),
    C("__switch_to"),
    C("cancel_delayed_work"),
    C("rcu_barrier"),
];

/// Hangs in these are grouped by them (syzkaller maps the SRCU and net
/// ones to synchronize_rcu; hidvm keeps the name: SRCU is where its bugs
/// are).
const HANG_ANCHORS: &[&str] = &["synchronize_rcu", "synchronize_srcu", "synchronize_net", "rtnl_lock"];

const ODEBUG_SKIP: &[Pat] =
    &[P("debug_"), P("__debug_"), P("hrtimer_"), P("timer_"), P("__timer"), P("work_"), P("__free_"), P("kobject_")];

const WORKQUEUE_LOCKS: &[Pat] = &[
    E("process_one_work"),
    P("flush_workqueue"),
    P("__flush_workqueue"),
    E("drain_workqueue"),
    E("destroy_workqueue"),
];

const SCHEDULE: &[Pat] = &[P("schedule"), P("__schedule"), P("__cond_resched"), P("_cond_resched")];

fn skipped(f: &str, extra: &[Pat]) -> bool {
    SKIP.iter().chain(extra).any(|p| p.matches(f))
}

/// Syscall wrappers name the same syscall differently per compiler and
/// version (`__x64_sys_write`, `__se_sys_write`, `ksys_write`): a title
/// uses the syscall's name.
fn strip_syscall_prefix(f: &str) -> &str {
    const PREFIXES: &[&str] =
        &["__x64_sys_", "__ia32_sys_", "__se_sys_", "__do_sys_", "____sys_", "___sys_", "__sys_", "ksys_"];
    PREFIXES.iter().find_map(|p| f.strip_prefix(p)).filter(|s| !s.is_empty()).unwrap_or(f)
}

// ---------------------------------------------------------------------------
// Report shapes

/// What the report's header lines say it is. `rank`: the most specific
/// line wins (a `list_add corruption.` over the `kernel BUG at` it
/// causes, `refcount_t:` over its WARNING, a `BUG: kernel NULL pointer
/// dereference` over its `Oops:`).
#[derive(Debug, Clone)]
enum Shape {
    Cfi(Option<String>),
    Kasan { bug: String, access: Option<String>, func: Option<String> },
    Kfence { what: String, func: Option<String> },
    Ubsan { what: String, file: Option<String> },
    MemoryLeak,
    ListCorruption(&'static str),
    Refcount(String),
    Odebug(String),
    Lockdep { kind: &'static str },
    SuspiciousRcu(Option<String>),
    AtomicSleep(Option<String>),
    SchedulingWhileAtomic,
    SoftLockup,
    HardLockup,
    WorkqueueLockup,
    RcuStall,
    HungTask,
    StackGuard,
    NullDeref,
    PageFault,
    Gpf,
    KernelBug(Option<String>),
    Trap(String),
    Warning { file: Option<String>, func: Option<String> },
    Panic(String),
    Unknown(String),
}

impl Shape {
    fn rank(&self) -> u8 {
        match self {
            Shape::Cfi(_) => 0,
            Shape::Kasan { .. } | Shape::Kfence { .. } | Shape::Ubsan { .. } | Shape::MemoryLeak => 1,
            Shape::ListCorruption(_) | Shape::Refcount(_) | Shape::Odebug(_) => 2,
            Shape::Lockdep { .. } | Shape::SuspiciousRcu(_) => 3,
            Shape::AtomicSleep(_)
            | Shape::SchedulingWhileAtomic
            | Shape::SoftLockup
            | Shape::HardLockup
            | Shape::WorkqueueLockup
            | Shape::RcuStall
            | Shape::HungTask
            | Shape::StackGuard => 4,
            Shape::NullDeref | Shape::PageFault | Shape::Gpf | Shape::KernelBug(_) => 5,
            Shape::Warning { .. } | Shape::Trap(_) => 6,
            Shape::Panic(_) => 7,
            Shape::Unknown(_) => 8,
        }
    }
}

/// Top-level directories of a kernel tree, to cut a build machine's path
/// ("/root/.cache/hidvm/src/linux-…/drivers/misc/lkdtm/bugs.c:406:16")
/// down to the tree-relative one. `usr` is left out: it is far likelier
/// to be the start of the machine's path than the tree's `usr/`.
const TREE_DIRS: &[&str] = &[
    "arch", "block", "certs", "crypto", "drivers", "fs", "include", "init", "io_uring", "ipc", "kernel", "lib", "mm",
    "net", "rust", "samples", "scripts", "security", "sound", "tools", "virt",
];

/// A source location relative to the kernel tree.
pub fn tree_relative(path: &str) -> &str {
    if !path.starts_with('/') {
        return path;
    }
    let mut at = 0;
    for component in path.split('/') {
        if TREE_DIRS.contains(&component) {
            return &path[at..];
        }
        at += component.len() + 1;
    }
    path
}

/// "drivers/misc/lkdtm/bugs.c:406:16" -> "drivers/misc/lkdtm/bugs.c".
fn without_line(file_line: &str) -> &str {
    let mut s = file_line;
    while let Some((head, tail)) = s.rsplit_once(':') {
        if tail.is_empty() || !tail.chars().all(|c| c.is_ascii_digit()) {
            break;
        }
        s = head;
    }
    s
}

fn looks_like_file_line(token: &str) -> bool {
    let base = without_line(token);
    base.len() < token.len()
        && base.contains('.')
        && (base.contains('/') || base.ends_with(".c") || base.ends_with(".h"))
}

/// The function a headline names: "… in func+0x12/0x90 [module]".
fn named_function(text: &str, after: &str) -> Option<String> {
    let rest = text.split_once(after)?.1;
    let token = rest.split_whitespace().next()?;
    parse_symbol_offset(token).map(|(n, _, _)| strip_suffixes(n).to_string())
}

/// 6.12: `WARNING: CPU: 1 PID: 34 at drivers/x.c:112 func+0x11/0x14 [mod]`;
/// 7.3: `WARNING: drivers/x.c:112 at func+0x11/0x14, CPU#1: init/34`;
/// either without the file.
fn parse_warning(text: &str) -> Option<Shape> {
    let rest = text.split_once("WARNING: ")?.1;
    if !rest.contains("at ") {
        return None;
    }
    let mut file = None;
    let mut func = None;
    for token in rest.split_whitespace() {
        let token = token.trim_end_matches(',');
        if func.is_none() {
            if let Some((name, _, _)) = parse_symbol_offset(token) {
                func = Some(strip_suffixes(name).to_string());
                continue;
            }
        }
        if file.is_none() && looks_like_file_line(token) {
            file = Some(tree_relative(token).to_string());
        }
    }
    if func.is_none() && file.is_none() {
        return None;
    }
    Some(Shape::Warning { file, func })
}

/// The shape of a crash headline, or None when `t` is not one. The checks run
/// in this order: a lockdep or RCU report also starts with "WARNING: ", and
/// the generic "WARNING: ", "Oops: " and "BUG: " match almost anything.
fn shape_of(t: &str) -> Option<Shape> {
    let t = t.trim();
    if let Some(rest) = t.split_once("CFI failure at ").map(|x| x.1) {
        return Some(Shape::Cfi(
            parse_symbol_offset(rest.split_whitespace().next()?).map(|(n, _, _)| strip_suffixes(n).to_string()),
        ));
    }
    sanitizer_shape(t)
        .or_else(|| debug_check_shape(t))
        .or_else(|| lock_shape(t))
        .or_else(|| context_shape(t))
        .or_else(|| fault_shape(t))
        .or_else(|| generic_shape(t))
}

/// KASAN, KFENCE, UBSAN and kmemleak reports.
fn sanitizer_shape(t: &str) -> Option<Shape> {
    if let Some(rest) = t.split_once("BUG: KASAN: ").map(|x| x.1) {
        let bug = rest.split(" in ").next().unwrap_or(rest).split_whitespace().next().unwrap_or("").to_string();
        let bug = match bug.as_str() {
            "double-free" | "invalid-free" => "invalid-free".to_string(),
            _ => bug,
        };
        return Some(Shape::Kasan { bug, access: None, func: named_function(rest, " in ") });
    }
    if let Some(rest) = t.split_once("BUG: KFENCE: ").map(|x| x.1) {
        let what = rest.split(" in ").next().unwrap_or(rest).trim().to_string();
        return Some(Shape::Kfence { what, func: named_function(rest, " in ") });
    }
    if let Some(rest) = t.split_once("UBSAN: ").map(|x| x.1) {
        let (what, file) = match rest.split_once(" in ") {
            Some((w, f)) => (w.trim(), f.split_whitespace().next()),
            None => (rest.trim(), None),
        };
        let what = if what.eq_ignore_ascii_case("Undefined behaviour") { "undefined-behaviour" } else { what };
        return Some(Shape::Ubsan { what: what.to_string(), file: file.map(|f| tree_relative(f).to_string()) });
    }
    if t.starts_with("unreferenced object 0x") || t.contains("new suspected memory leak") || t == "BUG: memory leak" {
        return Some(Shape::MemoryLeak);
    }
    None
}

/// The list, refcount_t and debugobjects checks.
fn debug_check_shape(t: &str) -> Option<Shape> {
    for list in ["list_add", "list_del"] {
        if t.contains(&format!("{list} corruption")) {
            return Some(Shape::ListCorruption(list));
        }
    }
    if let Some(rest) = t.split_once("refcount_t: ").map(|x| x.1) {
        return Some(Shape::Refcount(rest.trim_end_matches(['.', '!', '?']).trim().to_string()));
    }
    if let Some(rest) = t.split_once("ODEBUG: ").map(|x| x.1) {
        // "free active (active state 0) object: ffff… object type: timer_list hint: …"
        let op = rest.split(" (").next().unwrap_or(rest).split(" object").next().unwrap_or(rest).trim();
        let ty = rest.split_once("object type: ").and_then(|(_, r)| r.split_whitespace().next());
        return Some(Shape::Odebug(match ty {
            Some(ty) => format!("{op} {ty}"),
            None => op.to_string(),
        }));
    }
    None
}

/// Lockdep and RCU-lockdep reports.
fn lock_shape(t: &str) -> Option<Shape> {
    for (needle, kind) in [
        ("possible circular locking dependency detected", "possible circular locking dependency"),
        ("possible recursive locking detected", "possible recursive locking"),
        ("possible irq lock inversion dependency detected", "possible irq lock inversion dependency"),
        ("inconsistent lock state", "inconsistent lock state"),
    ] {
        if (t.starts_with("WARNING: ") || t.starts_with("INFO: ")) && t.contains(needle) {
            return Some(Shape::Lockdep { kind });
        }
    }
    if t.contains("WARNING: suspicious RCU usage") || t.contains("INFO: suspicious RCU usage") {
        return Some(Shape::SuspiciousRcu(None));
    }
    None
}

/// Sleeping in atomic context, lockups, stalls, hung tasks and stack
/// overflows.
fn context_shape(t: &str) -> Option<Shape> {
    if let Some(rest) = t.split_once("BUG: sleeping function called from invalid context").map(|x| x.1) {
        let file = rest.trim().strip_prefix("at ").map(|f| tree_relative(f.trim()).to_string());
        return Some(Shape::AtomicSleep(file));
    }
    if t.contains("BUG: scheduling while atomic") {
        return Some(Shape::SchedulingWhileAtomic);
    }
    if t.contains("BUG: soft lockup") {
        return Some(Shape::SoftLockup);
    }
    if t.contains("Watchdog detected hard LOCKUP") {
        return Some(Shape::HardLockup);
    }
    if t.contains("BUG: workqueue lockup") {
        return Some(Shape::WorkqueueLockup);
    }
    if t.contains("rcu: INFO: rcu_") || (t.starts_with("INFO: rcu_") && t.contains("stall")) {
        return Some(Shape::RcuStall);
    }
    if t.starts_with("INFO: task ") && t.contains(" blocked") {
        return Some(Shape::HungTask);
    }
    if t.contains("stack guard page was hit") {
        return Some(Shape::StackGuard);
    }
    None
}

/// Faults on a bad address and BUG_ON.
fn fault_shape(t: &str) -> Option<Shape> {
    if t.contains("BUG: kernel NULL pointer dereference") || t.contains("BUG: unable to handle kernel NULL pointer") {
        return Some(Shape::NullDeref);
    }
    if t.contains("BUG: unable to handle page fault") || t.contains("BUG: unable to handle kernel paging request") {
        return Some(Shape::PageFault);
    }
    if t.contains("general protection fault") {
        return Some(Shape::Gpf);
    }
    if let Some(rest) = t.split_once("kernel BUG at ").map(|x| x.1) {
        let file = rest.trim_end_matches('!').split_whitespace().next().map(|f| tree_relative(f).to_string());
        return Some(Shape::KernelBug(file));
    }
    None
}

/// Panics, then the generic WARNING, Oops and BUG headlines.
fn generic_shape(t: &str) -> Option<Shape> {
    if let Some(rest) = t.split_once("Kernel panic - not syncing: ").map(|x| x.1) {
        return Some(Shape::Panic(normalize(rest)));
    }
    if t.contains("WARNING: ") {
        return Some(parse_warning(t).unwrap_or_else(|| Shape::Unknown(normalize(t))));
    }
    if let Some(pos) = t.find("Oops: ") {
        let mut rest = &t[pos..];
        while let Some(r) = rest.strip_prefix("Oops: ") {
            rest = r;
        }
        let trap = rest.split([':', ',']).next().unwrap_or("").trim();
        return Some(if trap.is_empty() || trap.starts_with(|c: char| c.is_ascii_digit()) || trap == "Oops" {
            Shape::Trap("Oops".into())
        } else {
            Shape::Trap(trap.to_string())
        });
    }
    if t.contains("BUG: ") {
        return Some(Shape::Unknown(normalize(&t[t.find("BUG: ").unwrap_or(0)..])));
    }
    None
}

/// A line with nothing that changes between runs: `func+0x1/0x2` ->
/// `func`, addresses (12+ hex digits) -> `ADDR`, decimal numbers that start
/// a word (PIDs, CPUs, seconds, counts) -> `N`, spaces collapsed.
pub fn normalize(text: &str) -> String {
    let mut words = Vec::new();
    for word in text.split_whitespace() {
        if let Some((name, _, _)) = parse_symbol_offset(word) {
            words.push(strip_suffixes(name).to_string());
            continue;
        }
        let mut out = String::new();
        let chars: Vec<char> = word.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let word_start = i == 0 || !(chars[i - 1].is_ascii_alphanumeric() || chars[i - 1] == '_');
            if word_start && c.is_ascii_hexdigit() {
                let hex0x = c == '0' && chars.get(i + 1) == Some(&'x');
                let from = if hex0x { i + 2 } else { i };
                let mut j = from;
                while j < chars.len() && chars[j].is_ascii_hexdigit() {
                    j += 1;
                }
                let boundary = j == chars.len() || !(chars[j].is_ascii_alphanumeric() || chars[j] == '_');
                if j - from >= 12 && boundary {
                    out.push_str("ADDR");
                    i = j;
                    continue;
                }
                if c.is_ascii_digit() && !hex0x {
                    let mut k = i;
                    while k < chars.len() && chars[k].is_ascii_digit() {
                        k += 1;
                    }
                    out.push('N');
                    i = k;
                    continue;
                }
            }
            out.push(c);
            i += 1;
        }
        words.push(out);
    }
    words.join(" ")
}

// ---------------------------------------------------------------------------
// Putting it together

fn parse_lines(lines: &[&str], start: usize) -> CrashReport {
    let (end, panicked) = if lines.is_empty() { (0, false) } else { report_end(lines, start) };
    let texts: Vec<&str> = lines[start..end].iter().map(|l| strip_prefixes(l)).collect();
    let headline = texts.first().copied().unwrap_or("").to_string();
    let class = headline_class(&headline).unwrap_or("unknown");

    let header_end = texts.iter().position(|t| is_trace_start(t)).unwrap_or(texts.len());
    let mut shape: Option<Shape> = None;
    for t in &texts[..header_end] {
        if let Some(s) = shape_of(t) {
            if shape.as_ref().is_none_or(|cur| s.rank() < cur.rank()) {
                shape = Some(s);
            }
        }
    }
    // A lone panic line (nothing before it in this report) is the report.
    let mut shape = shape.unwrap_or_else(|| Shape::Unknown(normalize(&headline)));
    match &mut shape {
        Shape::Kasan { access, .. } => {
            *access = texts.iter().find_map(|t| {
                let w = t.split_whitespace().next()?;
                (matches!(w, "Read" | "Write") && (t.contains(" of size ") || t.contains(" at addr")))
                    .then(|| w.to_string())
            });
        }
        Shape::SuspiciousRcu(file) => {
            *file = texts[..header_end].iter().find_map(|t| {
                let token = t.split_whitespace().next()?;
                (t.contains("suspicious") && looks_like_file_line(token)).then(|| tree_relative(token).to_string())
            });
        }
        _ => {}
    }

    let frames = main_trace(&texts);
    let reliable_frames = frames.iter().filter(|f| f.reliable).count();
    let guessed_stack = reliable_frames == 0 && !frames.is_empty();
    let stack: Vec<String> =
        frames.iter().filter(|f| f.reliable || guessed_stack).map(|f| f.function.clone()).collect();
    let unreliable = if guessed_stack { 0 } else { frames.len() - reliable_frames };
    let rip = rip_function(&texts);

    let lock_at: Vec<String> = texts
        .iter()
        .filter_map(|t| t.split_once(" at: ").map(|x| x.1))
        .filter_map(|r| parse_symbol_offset(r.split_whitespace().next()?))
        .map(|(n, _, _)| strip_suffixes(n).to_string())
        .take(2)
        .collect();
    let warning_function = texts[..header_end].iter().find_map(|t| match parse_warning(t) {
        Some(Shape::Warning { func, .. }) => func,
        _ => None,
    });
    let plan = plan(&shape, &stack, rip, lock_at, warning_function);
    let function = if plan.candidates.is_empty() { None } else { pick(&plan.candidates, &plan.skip) };
    let head = plan.head.unwrap_or_else(|| plan.kind.clone());
    let title = match (&function, plan.function_in_title) {
        (Some(f), true) => format!("{head} in {f}"),
        // Without a function, say where.
        (None, true) if matches!(shape, Shape::Ubsan { .. } | Shape::SuspiciousRcu(_)) => {
            let word = if matches!(shape, Shape::Ubsan { .. }) { "in" } else { "at" };
            match plan.file_line.as_deref() {
                Some(fl) => format!("{head} {word} {}", without_line(fl)),
                None => head,
            }
        }
        _ => head,
    };
    CrashReport {
        title,
        kind: plan.kind,
        function,
        stack,
        file_line: plan.file_line,
        frames,
        unreliable,
        guessed_stack,
        panicked: panicked || matches!(shape, Shape::Panic(_)),
        class,
        lines: start..end,
        headline,
    }
}

/// How a shape makes its title.
struct Plan {
    kind: String,
    /// The title before " in <function>", when it is not the kind.
    head: Option<String>,
    /// Where the guilty function may come from, in order.
    candidates: Vec<String>,
    /// Frames skipped for this kind, beyond [`SKIP`].
    skip: Vec<Pat>,
    file_line: Option<String>,
    /// false: the title is `head` alone (panics, unknown shapes).
    function_in_title: bool,
}

fn plan(
    shape: &Shape,
    stack: &[String],
    rip: Option<String>,
    lock_at: Vec<String>,
    warning_function: Option<String>,
) -> Plan {
    let with = |first: Vec<Option<String>>| -> Vec<String> {
        first.into_iter().flatten().chain(stack.iter().cloned()).collect()
    };
    let p = |kind: &str, candidates: Vec<String>, skip: &[Pat], file_line: Option<String>| Plan {
        kind: kind.to_string(),
        head: None,
        candidates,
        skip: skip.to_vec(),
        file_line,
        function_in_title: true,
    };
    match shape {
        Shape::Cfi(f) => p("CFI failure", with(vec![f.clone(), rip]), &[], None),
        Shape::Kasan { bug, access, func } => {
            let kind = match access {
                Some(a) if bug != "invalid-free" => format!("KASAN: {bug} {a}"),
                _ => format!("KASAN: {bug}"),
            };
            let skip: &[Pat] = if bug == "invalid-free" { ALLOCATORS } else { &[] };
            p(&kind, with(vec![func.clone()]), skip, None)
        }
        Shape::Kfence { what, func } => p(&format!("KFENCE: {what}"), with(vec![func.clone()]), &[], None),
        Shape::Ubsan { what, file } => {
            p(&format!("UBSAN: {what}"), stack.to_vec(), &[P("ubsan"), C("overflow")], file.clone())
        }
        Shape::MemoryLeak => p("memory leak", stack.to_vec(), ALLOCATORS, None),
        Shape::ListCorruption(list) => p(&format!("{list} corruption"), with(vec![rip]), &[], None),
        Shape::Refcount(msg) => p(&format!("refcount_t: {msg}"), with(vec![rip]), &[], None),
        Shape::Odebug(what) => {
            let mut plan = p(&format!("ODEBUG: {what}"), with(vec![warning_function, rip]), ODEBUG_SKIP, None);
            plan.skip.extend_from_slice(ALLOCATORS);
            plan
        }
        Shape::Lockdep { kind } => {
            let mut plan = p(kind, lock_at.into_iter().chain(stack.iter().cloned()).collect(), WORKQUEUE_LOCKS, None);
            if kind.starts_with("possible") {
                plan.head = Some("possible deadlock".into());
            }
            plan
        }
        Shape::SuspiciousRcu(file) => {
            p("WARNING: suspicious RCU usage", stack.to_vec(), &[C("rcu"), P("kmem"), P("slab")], file.clone())
        }
        Shape::AtomicSleep(file) => {
            p("BUG: sleeping function called from invalid context", stack.to_vec(), SCHEDULE, file.clone())
        }
        Shape::SchedulingWhileAtomic => p("BUG: scheduling while atomic", stack.to_vec(), SCHEDULE, None),
        Shape::SoftLockup => p("BUG: soft lockup", with(vec![rip]), &[], None),
        Shape::HardLockup => p("Watchdog detected hard LOCKUP", with(vec![rip]), &[], None),
        Shape::WorkqueueLockup => p("BUG: workqueue lockup", Vec::new(), &[], None),
        Shape::RcuStall => p("INFO: rcu detected stall", rip.into_iter().collect(), &[C("rcu")], None),
        Shape::HungTask => {
            let anchor = stack.iter().find(|f| HANG_ANCHORS.iter().any(|a| f.contains(a))).cloned();
            p("INFO: task hung", anchor.map(|a| vec![a]).unwrap_or_else(|| stack.to_vec()), HANG_SKIP, None)
        }
        Shape::StackGuard => p("BUG: stack guard page was hit", with(vec![rip]), &[], None),
        Shape::NullDeref => p("BUG: kernel NULL pointer dereference", with(vec![rip]), &[], None),
        Shape::PageFault => p("BUG: unable to handle page fault", with(vec![rip]), &[], None),
        Shape::Gpf => p("general protection fault", with(vec![rip]), &[], None),
        Shape::KernelBug(file) => p("kernel BUG", with(vec![rip]), &[], file.clone()),
        Shape::Trap(trap) => p(trap, with(vec![rip]), &[], None),
        Shape::Warning { file, func } => p("WARNING", with(vec![func.clone(), rip]), &[], file.clone()),
        Shape::Panic(msg) => {
            // The message is the identity (syzbot: "kernel panic: <msg>");
            // the function is still found, for the report.
            let mut plan = p("Kernel panic - not syncing", stack.to_vec(), &[], None);
            plan.head = Some(format!("Kernel panic - not syncing: {msg}"));
            plan.function_in_title = false;
            plan
        }
        Shape::Unknown(text) => Plan {
            kind: text.clone(),
            head: None,
            candidates: Vec::new(),
            skip: Vec::new(),
            file_line: None,
            function_in_title: false,
        },
    }
}

/// The first candidate that is not skipped; if every one is, the first one
/// (a title naming a helper beats one naming nothing).
fn pick(candidates: &[String], extra: &[Pat]) -> Option<String> {
    candidates.iter().find(|f| !skipped(f, extra)).or(candidates.first()).map(|f| strip_syscall_prefix(f).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_printk_replay_notice_inside_the_repeated_registers_keeps_the_panic_in_its_oops() {
        // Real (7.3-gcc, race_attach_vs_destroy, hidvm bench 2026-12-07): a
        // line of the registers repeated after the end marker was cut by
        // another CPU's message, and printk replayed it.
        let console = r#"[    4.207090] BUG: kernel NULL pointer dereference, address: 0000000000000060
[    4.208291] #PF: supervisor read access in kernel mode
[    4.208468] #PF: error_code(0x0000) - not-present page
[    4.208671] PGD 0 P4D 0 
[    4.208856] Oops: Oops: 0000 [#1] SMP
[    4.209053] CPU: 1 UID: 0 PID: 1 Comm: init Tainted: G        W           7.3.4 #2 PREEMPTLAZY  
[    4.210089] Tainted: [W]=WARN
[    4.210184] RIP: 0010:check_init_srcu_struct+0x9/0x50
[    4.210340] Code: 00 00 c6 47 10 04 31 f6 e9 b3 fc ff ff f3 0f 1e fa 0f 1f 44 00 00 c6 47 10 08 31 f6 e9 9f fc ff ff 0f 1f 44 00 00 48 8b 47 18 <48> 8b 40 60 a8 03 74 3e 55 53 48 8b 47 18 48 89 fb 48 8d 78 38 e8
[    4.210797] RSP: 0018:ffffc9000000be80 EFLAGS: 00000286
[    4.210934] RAX: 0000000000000000 RBX: ffff888002e63ce0 RCX: ffff888000600db0
[    4.211110] RDX: ffff888002e63cb8 RSI: ffff88800274da00 RDI: ffff888002e63ce0
[    4.211292] RBP: ffff888002e62000 R08: ffffc9000000be98 R09: ffffc9000000be90
[    4.211839] R10: 0000000000000009 R11: ffff888000600e20 R12: ffff888002e63cc8
[    4.212663] R13: ffff8880002559a0 R14: ffff888000257980 R15: 0000000000000000
[    4.212873] FS:  000055556c2df440(0000) GS:ffff88809d2fb000(0000) knlGS:0000000000000000
[    4.213131] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
[    4.213360] CR2: 0000000000000060 CR3: 0000000000587000 CR4: 00000000000006b0
[    4.213556] Call Trace:
[    4.213648]  <TASK>
[    4.213712]  ? synchronize_srcu+0x16/0xd6
[    4.213881]  ? hid_bpf_unreg+0x68/0xab
[    4.214009]  ? bpf_struct_ops_map_link_dealloc+0x2e/0x40
[    4.214325]  ? bpf_link_release+0x12/0x15
[    4.214448]  ? __fput+0x100/0x1b9
[    4.214544]  ? __x64_sys_close+0x43/0x73
[    4.214650]  ? do_syscall_64+0x6b/0x191
[    4.214762]  ? entry_SYSCALL_64_after_hwframe+0x4b/0x53
[    4.214913]  </TASK>
[    4.214991] Modules linked in:
[    4.216396] CR2: 0000000000000060
[    4.216710] ---[ end trace 0000000000000000 ]---
[    4.222083] RIP: 0010:check_init_srcu_struct+0x9/0x50
[    4.222136] Code: 00 00 c6 47 10 04 31 f6 e9 b3 fc ff ff f3 0f 1e fa 0f 1f 44 00 00 c6 47 10 08 31 f6 e9 9f fc ff ff 0f 1f 44 00 00 48 8b 47 18 <48> 8b 40 60 a8 03 74 3e 55 53 48 8b 47 18 48 89 fb 48 8d 78 38 e8
[    4.222146] RSP: 0018:ffffc9000000be80 EFLAGS: 00000286
[    4.222161] RAX: 0000000000000000 RBX: ffff888002e63ce0 RCX: ffff888000600db0
** replaying previous printk message **
[    4.222161] RAX: 0000000000000000 RBX: ffff888002e63ce0 RCX: ffff888000600db0
[    4.222167] RDX: ffff888002e63cb8 RSI: ffff88800274da00 RDI: ffff888002e63ce0
[    4.222172] RBP: ffff888002e62000 R08: ffffc9000000be98 R09: ffffc9000000be90
[    4.222177] R10: 0000000000000009 R11: ffff888000600e20 R12: ffff888002e63cc8
[    4.222182] R13: ffff8880002559a0 R14: ffff888000257980 R15: 0000000000000000
[    4.222188] FS:  000055556c2df440(0000) GS:ffff88809d2fb000(0000) knlGS:0000000000000000
[    4.222195] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
[    4.222200] CR2: 0000000000000060 CR3: 0000000000587000 CR4: 00000000000006b0
[    4.237495] Kernel panic - not syncing: Fatal exception
[    4.243818] Kernel Offset: disabled
"#;
        let reports = crash_reports(console);
        assert_eq!(reports.len(), 1, "{reports:#?}");
        assert_eq!(reports[0].title, "BUG: kernel NULL pointer dereference in check_init_srcu_struct");
        assert!(reports[0].panicked);
        assert!(reports[0].stack_contains("hid_bpf_unreg"));
        // Without the notice the same holds (the ordinary shape).
        let plain: String = console.lines().filter(|l| !l.starts_with("** ")).map(|l| format!("{l}\n")).collect();
        assert_eq!(crash_reports(&plain).len(), 1);
        assert!(is_printk_notice("** 3 printk messages dropped **"));
        assert!(!is_printk_notice("** something else **"));
    }

    #[test]
    fn prefixes_are_stripped() {
        assert_eq!(strip_prefixes("[   29.1][    T1] general protection fault"), "general protection fault");
        assert_eq!(strip_prefixes("[    7.822294]"), "");
        assert_eq!(strip_prefixes("    [<000000005bada299>] kmalloc+0x1/0x2"), "[<000000005bada299>] kmalloc+0x1/0x2");
    }

    #[test]
    fn frames_parse() {
        let f = parse_frame("[ 0.97]  ? full_proxy_write.llvm.18334568591257520893+0x67/0x88 [hid]").unwrap();
        assert_eq!((f.function.as_str(), f.reliable, f.module.as_deref()), ("full_proxy_write", false, Some("hid")));
        assert_eq!((f.offset, f.size), (Some(0x67), Some(0x88)));
        let f = parse_frame(" __debug_check_no_obj_freed lib/debugobjects.c:990 [inline]").unwrap();
        assert!(f.inlined);
        assert!(parse_frame("RIP: 0010:lkdtm_BUG+0x9/0xb").is_none());
        assert!(parse_frame("Call Trace:").is_none());
        assert_eq!(
            parse_frame("[<00000000e7bcdc9f>] tipc_group_create_member+0x3c/0x190").unwrap().function,
            "tipc_group_create_member"
        );
    }

    #[test]
    fn suffixes_and_wrappers() {
        for s in ["foo.isra.0", "foo.constprop.0", "foo.cold", "foo.part.102", "foo.llvm.123456", "foo.isra.56.cold.74"]
        {
            assert_eq!(strip_suffixes(s), "foo");
        }
        assert_eq!(strip_syscall_prefix("__x64_sys_write"), "write");
        assert_eq!(strip_syscall_prefix("ksys_write"), "write");
        assert_eq!(strip_syscall_prefix("hidraw_write"), "hidraw_write");
    }

    #[test]
    fn normalize_removes_what_changes() {
        assert_eq!(
            normalize("watchdog: BUG: soft lockup - CPU#1 stuck for 3s! [init:34] at ffffffff81234567 foo+0x1/0x2"),
            "watchdog: BUG: soft lockup - CPU#N stuck for Ns! [init:N] at ADDR foo"
        );
        assert_eq!(normalize("error 0x0002 in ext4"), "error 0x0002 in ext4");
    }

    #[test]
    fn tree_relative_paths() {
        assert_eq!(
            tree_relative("/root/.cache/hidvm/src/linux-f51b596a553dab29/drivers/misc/lkdtm/bugs.c:406:16"),
            "drivers/misc/lkdtm/bugs.c:406:16"
        );
        assert_eq!(tree_relative("/usr/src/linux/kernel/rcu/srcutree.c:686"), "kernel/rcu/srcutree.c:686");
        assert_eq!(tree_relative("kernel/rcu/srcutree.c:686"), "kernel/rcu/srcutree.c:686");
    }
}
