//! Crash titles (harness/src/title.rs): the title of every golden sample in
//! `tests/splats/`, their stability, and synthetic reports for each rule.
//!
//! * `sample::<file>`: the sample's first report has the title (and guilty
//!   function) of the [`EXPECTED`] table; a sample without an entry fails;
//! * `stable::<file>`: the same sample with every address, offset, PID,
//!   CPU number, duration and timestamp changed has the same title;
//! * `rule::<name>`: one rule of the title module, on a synthetic report.
use hidvm::judge::title::{crash_reports, parse_report, CrashReport};
mod common;

use libtest_mimic::{Arguments, Failed, Trial};
use std::path::PathBuf;

/// (sample file stem, title, guilty function).
const EXPECTED: &[(&str, &str, Option<&str>)] = &[
    (
        "atomic-sleep",
        "BUG: sleeping function called from invalid context in put_files_struct",
        Some("put_files_struct"),
    ),
    ("bug-lkdtm", "kernel BUG in lkdtm_BUG", Some("lkdtm_BUG")),
    ("bug-null-deref-lkdtm", "BUG: kernel NULL pointer dereference in lkdtm_ACCESS_NULL", Some("lkdtm_ACCESS_NULL")),
    ("cfi-lkdtm", "CFI failure in lkdtm_indirect_call", Some("lkdtm_indirect_call")),
    ("debug-objects", "ODEBUG: free active timer_list in hfsplus_fill_super", Some("hfsplus_fill_super")),
    ("gpf", "general protection fault in list_lru_add", Some("list_lru_add")),
    ("hard-lockup", "Watchdog detected hard LOCKUP in memory_bm_find_bit", Some("memory_bm_find_bit")),
    ("hung-task-lkdtm", "INFO: task hung in lkdtm_HUNG_TASK", Some("lkdtm_HUNG_TASK")),
    ("kasan-lkdtm", "KASAN: slab-use-after-free Read in lkdtm_READ_AFTER_FREE", Some("lkdtm_READ_AFTER_FREE")),
    ("kfence", "KFENCE: use-after-free read in nvme_command_effects", Some("nvme_command_effects")),
    ("kmemleak", "memory leak in tipc_group_create_member", Some("tipc_group_create_member")),
    ("list-add-corruption-lkdtm", "list_add corruption in lkdtm_CORRUPT_LIST_ADD", Some("lkdtm_CORRUPT_LIST_ADD")),
    ("list-del-corruption-lkdtm", "list_del corruption in lkdtm_CORRUPT_LIST_DEL", Some("lkdtm_CORRUPT_LIST_DEL")),
    ("lockdep-rcu", "WARNING: suspicious RCU usage in fib6_del", Some("fib6_del")),
    ("lockdep", "possible deadlock in blkdev_put", Some("blkdev_put")),
    // A panic's message is its identity (syzbot: "kernel panic: <msg>").
    ("panic-lkdtm", "Kernel panic - not syncing: dumptest", Some("lkdtm_PANIC")),
    // The stall report names no stalled function (the GP kthread starved).
    ("rcu-stall", "INFO: rcu detected stall", None),
    (
        "refcount-lkdtm",
        "refcount_t: decrement hit 0; leaking memory in lkdtm_REFCOUNT_DEC_ZERO",
        Some("lkdtm_REFCOUNT_DEC_ZERO"),
    ),
    ("soft-lockup-lkdtm", "BUG: soft lockup in lkdtm_SOFTLOCKUP", Some("lkdtm_SOFTLOCKUP")),
    ("srcu-cleanup-warning-6.12-gcc", "WARNING in cleanup_srcu_struct", Some("cleanup_srcu_struct")),
    ("srcu-page-fault-7.3-llvm", "BUG: unable to handle page fault in __srcu_read_unlock", Some("__srcu_read_unlock")),
    ("ubsan-lkdtm", "UBSAN: array-index-out-of-bounds in lkdtm_ARRAY_BOUNDS", Some("lkdtm_ARRAY_BOUNDS")),
    ("warning-lkdtm", "WARNING in lkdtm_WARNING", Some("lkdtm_WARNING")),
    // Nothing in a workqueue lockup names a function.
    ("workqueue-lockup", "BUG: workqueue lockup", None),
];

struct Sample {
    name: String,
    body: String,
}

fn samples() -> Vec<Sample> {
    common::splat_files().into_iter().map(|(name, text)| Sample { name, body: common::body(&text) }).collect()
}

fn first_report(text: &str) -> Result<CrashReport, Failed> {
    crash_reports(text).into_iter().next().ok_or_else(|| "no report found".into())
}

fn check<A: std::fmt::Debug + PartialEq<B>, B: std::fmt::Debug>(what: &str, got: A, want: B) -> Result<(), Failed> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}").into())
    }
}

/// Every number that changes between runs changed: hex runs of 8+ digits
/// (addresses, register values, hashed pointers), `0x` numbers (offsets,
/// sizes), and decimal numbers where the kernel prints timestamps, PIDs,
/// CPU numbers, durations, counts and line numbers. Digits inside
/// identifiers (`do_syscall_64`, `ip6_fib`) and in fixed message text
/// ("decrement hit 0") stay.
fn perturb(text: &str) -> String {
    const BEFORE_A_NUMBER: &[&str] = &[
        "[", "CPU:", "PID:", "UID:", "pid", "pid:", "CPU#", ":", "/", "for", "than", "age", "jiffies", "[#", "#", "(",
        "cpu",
    ];
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let bump = |c: char| -> char {
        match c {
            '0'..='8' => ((c as u8) + 1) as char,
            '9' => '1',
            'a'..='e' => ((c as u8) + 1) as char,
            'f' => 'a',
            _ => c,
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let word_start = i == 0 || !(chars[i - 1].is_ascii_alphanumeric() || chars[i - 1] == '_');
        if word_start && chars[i] == '0' && chars.get(i + 1) == Some(&'x') {
            out.push_str("0x");
            i += 2;
            while i < chars.len() && chars[i].is_ascii_hexdigit() {
                out.push(bump(chars[i]));
                i += 1;
            }
            continue;
        }
        if word_start && chars[i].is_ascii_hexdigit() {
            let mut j = i;
            while j < chars.len() && chars[j].is_ascii_hexdigit() {
                j += 1;
            }
            let boundary = j == chars.len() || !(chars[j].is_ascii_alphanumeric() || chars[j] == '_');
            let mut k = i;
            while k < chars.len() && chars[k].is_ascii_digit() {
                k += 1;
            }
            // The text before the number, back to the previous word.
            let before: String =
                out.trim_end_matches(' ').chars().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
            if boundary && j - i >= 8 {
                out.extend(chars[i..j].iter().map(|&c| bump(c)));
                i = j;
                continue;
            }
            if k > i && BEFORE_A_NUMBER.iter().any(|b| before.ends_with(b)) {
                out.extend(chars[i..k].iter().map(|&c| bump(c)));
                i = k;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------
// Synthetic reports

const PAGE_FAULT_GCC: &str = "\
[   41.118201] BUG: unable to handle page fault for address: ffffe8ffffc03a10
[   41.118340] #PF: supervisor write access in kernel mode
[   41.118401] #PF: error_code(0x0002) - not-present page
[   41.118450] PGD 2a0c067 P4D 2a0c067 PUD 2a0e067 PMD 0
[   41.118512] Oops: Oops: 0002 [#1] PREEMPT SMP
[   41.118570] CPU: 1 UID: 0 PID: 61 Comm: init Not tainted 7.3.4 #1 PREEMPTLAZY
[   41.118630] RIP: 0010:__srcu_read_unlock+0x11/0x20
[   41.118700] Code: 90 90 90 90 f3 0f 1e fa 0f 1f 44 00 00 f0 83 44 24 fc 00 48 63 f6 48 8b 47 08 <65> 48 ff 44 f0 10 c3
[   41.118800] RSP: 0018:ffffc9000013bd50 EFLAGS: 00010246
[   41.119100] Call Trace:
[   41.119150]  <TASK>
[   41.119200]  ? __die+0x23/0x70
[   41.119260]  ? page_fault_oops+0x17b/0x4c0
[   41.119300]  ? exc_page_fault+0x6c/0x150
[   41.119340]  ? asm_exc_page_fault+0x26/0x30
[   41.119400]  dispatch_hid_bpf_output_report+0xa8/0xd0
[   41.119450]  hidraw_send_report.isra.0+0x10e/0x1f0
[   41.119500]  hidraw_write+0x3c/0x60
[   41.119550]  vfs_write+0xd9/0x410
[   41.119600]  ? __fget_light+0x51/0x90
[   41.119650]  ksys_write+0x6b/0xe0
[   41.119700]  do_syscall_64+0x54/0x120
[   41.119750]  entry_SYSCALL_64_after_hwframe+0x76/0x7e
[   41.119800]  </TASK>
[   41.119850] CR2: ffffe8ffffc03a10
[   41.119900] ---[ end trace 0000000000000000 ]---
[   41.119950] RIP: 0010:__srcu_read_unlock+0x11/0x20
[   41.120000] Kernel panic - not syncing: Fatal exception
[   41.120050] Kernel Offset: disabled
";

/// The same crash as an LLVM kernel prints it: other offsets, a promoted
/// static with `.llvm.<hash>`, unreliable `?` frames mixed in (ORC), a CPU
/// and PID of its own, and the hidraw_send_report frame inlined away.
const PAGE_FAULT_LLVM: &str = "\
[    3.004417] BUG: unable to handle page fault for address: ffffe8ffffc41b08
[    3.004500] #PF: supervisor write access in kernel mode
[    3.004550] #PF: error_code(0x0002) - not-present page
[    3.004600] PGD 4a0c067 P4D 4a0c067 PUD 4a0e067 PMD 0
[    3.004650] Oops: Oops: 0002 [#1] SMP
[    3.004700] CPU: 0 UID: 0 PID: 37 Comm: hidvm-race Not tainted 7.3.4 #1 PREEMPTLAZY
[    3.004750] RIP: 0010:__srcu_read_unlock+0x14/0x28
[    3.004850] RSP: 0018:ffffc90000147d70 EFLAGS: 00010282
[    3.004900] Call Trace:
[    3.004950]  <TASK>
[    3.005000]  ? __die_body+0x1a/0x60
[    3.005050]  ? page_fault_oops+0x14a/0x4a0
[    3.005100]  ? srcu_gp_start_if_needed.llvm.5532207614312712339+0x40/0x400
[    3.005150]  dispatch_hid_bpf_output_report+0xc2/0xf0
[    3.005250]  hidraw_write.llvm.10297061834375474612+0x11d/0x1c8
[    3.005300]  ? full_proxy_write.llvm.18334568591257520893+0x67/0x88
[    3.005350]  vfs_write+0xff/0x248
[    3.005400]  ksys_write+0x77/0xc8
[    3.005450]  do_syscall_64+0x72/0x1d8
[    3.005500]  entry_SYSCALL_64_after_hwframe+0x4b/0x53
[    3.005550]  </TASK>
[    3.005600] ---[ end trace 0000000000000000 ]---
[    3.005650] Kernel panic - not syncing: Fatal exception
";

type Rule = fn() -> Result<(), Failed>;

#[expect(
    clippy::too_many_lines,
    reason = "the list of title rule tests: one short named closure per rule, each its own trial; split up, the list would no longer show every rule in one place"
)]
fn rules() -> Vec<(&'static str, Rule)> {
    vec![
        ("gcc_and_llvm_renderings_have_one_title", || {
            let gcc = first_report(PAGE_FAULT_GCC)?;
            let llvm = first_report(PAGE_FAULT_LLVM)?;
            check("gcc title", gcc.title.as_str(), "BUG: unable to handle page fault in __srcu_read_unlock")?;
            check("llvm title", llvm.title.as_str(), gcc.title.as_str())?;
            check("llvm unreliable frames dropped", llvm.unreliable, 4)?;
            check("gcc unreliable frames dropped", gcc.unreliable, 5)?;
            let want = ["dispatch_hid_bpf_output_report", "hidraw_write", "vfs_write", "ksys_write"];
            for r in [&gcc, &llvm] {
                for f in want {
                    if !r.stack_contains(f) {
                        return Err(format!("{f} not in the stack {:?}", r.stack).into());
                    }
                }
            }
            check("llvm stack", &llvm.stack[..3], ["dispatch_hid_bpf_output_report", "hidraw_write", "vfs_write"])?;
            check("gcc stack keeps inlining differences", gcc.stack.contains(&"hidraw_send_report".to_string()), true)?;
            check("panic is part of the oops", (gcc.panicked, llvm.panicked), (true, true))?;
            check(
                "one report each",
                (crash_reports(PAGE_FAULT_GCC).len(), crash_reports(PAGE_FAULT_LLVM).len()),
                (1, 1),
            )
        }),
        ("a_known_signature_matches_only_its_crash", || {
            let title = "BUG: unable to handle page fault in __srcu_read_unlock";
            let sig = ["dispatch_hid_bpf_output_report", "hidraw_write"];
            for text in [PAGE_FAULT_GCC, PAGE_FAULT_LLVM] {
                check("the known crash", first_report(text)?.matches(title, &sig), true)?;
            }
            // Another crash in the same function, from another caller.
            let other = PAGE_FAULT_LLVM.replace("hidraw_write", "hidraw_ioctl");
            check("other caller", first_report(&other)?.matches(title, &sig), false)?;
            // Another crash in the same row: the WARNING of the destroy path.
            let warning = parse_report(
                "WARNING: CPU: 0 PID: 52 at kernel/rcu/srcutree.c:667 cleanup_srcu_struct+0x69/0x185\n\
                 Call Trace:\n <TASK>\n ? dispatch_hid_bpf_output_report+0x1/0x2\n ? hidraw_write+0x1/0x2\n </TASK>",
            );
            check("other kind", warning.matches(title, &sig), false)
        }),
        ("same_report_with_other_numbers_has_one_title", || {
            for text in [PAGE_FAULT_GCC, PAGE_FAULT_LLVM] {
                let a = first_report(text)?;
                let b = first_report(&perturb(text))?;
                check("title", &b.title, &a.title)?;
                check("stack", &b.stack, &a.stack)?;
            }
            Ok(())
        }),
        ("warning_formats_of_6_12_and_7_3_agree", || {
            let v612 = parse_report(
                "WARNING: CPU: 0 PID: 52 at kernel/rcu/srcutree.c:667 cleanup_srcu_struct+0x69/0x185\n\
                 RIP: 0010:cleanup_srcu_struct+0x69/0x185\nCall Trace:\n <TASK>\n ? hid_bpf_destroy_device+0x2d/0x37\n </TASK>",
            );
            let v73 = parse_report(
                "WARNING: kernel/rcu/srcutree.c:714 at cleanup_srcu_struct+0x7c/0x1b0, CPU#1: init/58\n\
                 Modules linked in:\nRIP: 0010:cleanup_srcu_struct+0x7c/0x1b0\nCall Trace:\n <TASK>\n \
                 ? hid_bpf_destroy_device.llvm.77+0x31/0x40\n </TASK>",
            );
            check("6.12", v612.title.as_str(), "WARNING in cleanup_srcu_struct")?;
            check("7.3", v73.title.as_str(), "WARNING in cleanup_srcu_struct")?;
            check(
                "file:line apart",
                (v612.file_line.as_deref(), v73.file_line.as_deref()),
                (Some("kernel/rcu/srcutree.c:667"), Some("kernel/rcu/srcutree.c:714")),
            )?;
            check("stacks", &v612.stack, &v73.stack)?;
            let nofile =
                parse_report("WARNING: at hid_bpf_foo+0x1/0x2, CPU#0: init/1\nCall Trace:\n hid_bpf_foo+0x1/0x2\n");
            check(
                "7.3 without file",
                (nofile.title.as_str(), nofile.file_line),
                ("WARNING in hid_bpf_foo", None::<String>),
            )
        }),
        ("warning_message_before_or_after_the_warning_line", || {
            // 6.12 prints a WARN's message first, 7.3 after the WARNING line.
            let before = parse_report(
                "refcount_t: underflow; use-after-free.\n\
                 WARNING: CPU: 1 PID: 34 at lib/refcount.c:28 refcount_warn_saturate+0x9e/0xec\n\
                 RIP: 0010:refcount_warn_saturate+0x9e/0xec\nCall Trace:\n <TASK>\n hid_bpf_release+0x30/0x50\n </TASK>",
            );
            let after = parse_report(
                "WARNING: lib/refcount.c:28 at refcount_warn_saturate+0xa1/0x100, CPU#0: init/40\n\
                 refcount_t: underflow; use-after-free.\nModules linked in:\n\
                 RIP: 0010:refcount_warn_saturate+0xa1/0x100\nCall Trace:\n <TASK>\n hid_bpf_release+0x33/0x58\n </TASK>",
            );
            let want = "refcount_t: underflow; use-after-free in hid_bpf_release";
            check("before", before.title.as_str(), want)?;
            check("after", after.title.as_str(), want)
        }),
        ("oops_alone_and_double_prefix", || {
            let r = parse_report("Oops: Oops: 0000 [#1] SMP\nRIP: 0010:hid_input_report+0x40/0x1a0\nCall Trace:\n");
            check("bare oops", (r.kind.as_str(), r.title.as_str()), ("Oops", "Oops in hid_input_report"))?;
            let r = parse_report("Oops: invalid opcode: 0000 [#1] SMP\nRIP: 0010:foo_bar.cold+0x2/0x10\n");
            check("trap", r.title.as_str(), "invalid opcode in foo_bar")?;
            let r = parse_report(
                "Oops: general protection fault, probably for non-canonical address 0xdffffc0000000002: 0000 [#1] SMP KASAN\n\
                 KASAN: null-ptr-deref in range [0x0000000000000010-0x0000000000000017]\n\
                 RIP: 0010:hid_bpf_get_data+0x2b/0x90\n",
            );
            check("gpf", r.title.as_str(), "general protection fault in hid_bpf_get_data")
        }),
        ("null_deref_then_oops_is_one_report", || {
            let text = "[ 1.0] BUG: kernel NULL pointer dereference, address: 0000000000000008\n\
                        [ 1.0] #PF: supervisor read access in kernel mode\n\
                        [ 1.0] Oops: Oops: 0000 [#1] SMP\n\
                        [ 1.0] RIP: 0010:check_init_srcu_struct+0x5/0x50\n\
                        [ 1.0] Call Trace:\n[ 1.0]  <TASK>\n[ 1.0]  ? synchronize_srcu+0x1c/0x110\n[ 1.0]  </TASK>\n\
                        [ 1.0] ---[ end trace 0000000000000000 ]---\n\
                        [ 1.0] RIP: 0010:check_init_srcu_struct+0x5/0x50\n\
                        [ 1.0] Kernel panic - not syncing: Fatal exception\n";
            let all = crash_reports(text);
            check("reports", all.len(), 1)?;
            check("title", all[0].title.as_str(), "BUG: kernel NULL pointer dereference in check_init_srcu_struct")?;
            check("range", all[0].lines.clone(), 0..text.lines().count())?;
            check("panicked", all[0].panicked, true)
        }),
        ("panic_alone_keeps_a_stable_message", || {
            let a = parse_report(
                "[ 9.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\n[ 9.1] CPU: 1 PID: 1",
            );
            let b =
                parse_report("[ 3.0] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)");
            check(
                "kill init",
                a.title.as_str(),
                "Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b",
            )?;
            check(
                "vfs",
                b.title.as_str(),
                "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(N,N)",
            )?;
            let lone = parse_report("Kernel panic - not syncing: Fatal exception in interrupt");
            check("a lone consequence", lone.title.as_str(), "Kernel panic - not syncing: Fatal exception in interrupt")
        }),
        ("soft_lockup_drops_cpu_duration_and_task", || {
            let a = parse_report(
                "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [kworker/0:1:12]\nRIP: 0010:hid_bpf_spin+0x4/0x8\n",
            );
            let b = parse_report(
                "watchdog: BUG: soft lockup - CPU#3 stuck for 45s! [init:1]\nRIP: 0010:hid_bpf_spin+0x6/0x8\n",
            );
            check("a", a.title.as_str(), "BUG: soft lockup in hid_bpf_spin")?;
            check("b", b.title.as_str(), a.title.as_str())
        }),
        ("hung_task_in_synchronize_srcu", || {
            let r = parse_report(
                "INFO: task init:41 blocked for more than 10 seconds.\n      Not tainted 6.12.118 #1\n\
                 task:init state:D stack:0 pid:41 tgid:1 ppid:0 flags:0x00004000\nCall Trace:\n <TASK>\n \
                 __schedule+0x464/0x49e\n schedule+0x2c/0x3d\n schedule_timeout+0x9e/0xd0\n \
                 wait_for_completion+0x70/0x110\n __synchronize_srcu+0x9a/0xd0\n synchronize_srcu+0x2c/0x110\n \
                 hid_bpf_reg+0x121/0x161\n </TASK>",
            );
            check("title", r.title.as_str(), "INFO: task hung in __synchronize_srcu")?;
            let r = parse_report(
                "INFO: task kworker/u4:2:77 blocked for more than 122 seconds.\nCall Trace:\n <TASK>\n \
                 __schedule+0x1/0x2\n schedule+0x1/0x2\n schedule_preempt_disabled+0x1/0x2\n \
                 __mutex_lock+0x1/0x2\n hid_bpf_unreg+0x1/0x2\n </TASK>",
            );
            check("no anchor", r.title.as_str(), "INFO: task hung in hid_bpf_unreg")
        }),
        ("kmemleak_7_3_shape", || {
            let r = parse_report(
                "unreferenced object 0xffff888004c2d000 (size 64):\n  comm \"init\", pid 35, jiffies 4294892113\n\
                 \x20 hex dump (first 32 bytes):\n    00 00 00 00  ................\n  backtrace (crc 9a4c1f31):\n\
                 \x20   __kmalloc_cache_noprof+0x2d3/0x3b0\n    kmemleak_test_init+0x4e/0x1b0 [kmemleak_test]\n\
                 \x20   do_one_initcall+0x9a/0x2b0\n",
            );
            check("title", r.title.as_str(), "memory leak in kmemleak_test_init")?;
            check("module", r.frames[1].module.as_deref(), Some("kmemleak_test"))
        }),
        ("every_leak_of_a_dump_is_a_report", || {
            let text = "kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n\
                        unreferenced object 0xffff888004c2d000 (size 64):\n  backtrace (crc 0):\n    kmalloc_trace+0x2a/0xa0\n    hid_bpf_a+0x1/0x2\n\
                        unreferenced object 0xffff888004c2e000 (size 32):\n  backtrace (crc 0):\n    kmalloc_trace+0x2a/0xa0\n    hid_bpf_b+0x1/0x2\n";
            let titles: Vec<String> = crash_reports(text).into_iter().map(|r| r.title).collect();
            check(
                "titles",
                titles,
                vec!["memory leak in hid_bpf_a".to_string(), "memory leak in hid_bpf_b".to_string()],
            )
        }),
        ("lockdep_cycle_with_its_stack", || {
            let r = parse_report(
                "======================================================\n\
                 WARNING: possible circular locking dependency detected\n6.12.118 #1 Not tainted\n\
                 ------------------------------------------------------\ninit/40 is trying to acquire lock:\n\
                 ffff888004a1c0d8 (&hdev->ll_open_lock){+.+.}-{3:3}, at: hid_hw_close+0x1e/0x60\n\n\
                 but task is already holding lock:\nffffffff82a4b8e0 (&hid_bpf_lock){+.+.}-{3:3}, at: hid_bpf_unreg+0x30/0x110\n\n\
                 which lock already depends on the new lock.\n\nstack backtrace:\nCPU: 0 UID: 0 PID: 40 Comm: init\n\
                 Call Trace:\n <TASK>\n dump_stack_lvl+0x6e/0xa0\n print_circular_bug+0x2cf/0x3b0\n \
                 check_noncircular+0x112/0x130\n __lock_acquire+0x12a4/0x2020\n lock_acquire+0xcf/0x2d0\n \
                 __mutex_lock+0x8c/0xa40\n hid_hw_close+0x1e/0x60\n hid_bpf_unreg+0x4a/0x110\n </TASK>",
            );
            check("title", r.title.as_str(), "possible deadlock in hid_hw_close")?;
            check("kind", r.kind.as_str(), "possible circular locking dependency")?;
            check("stack", r.stack.last().map(String::as_str), Some("hid_bpf_unreg"))
        }),
        ("suspicious_rcu_without_a_stack_names_the_file", || {
            let r = parse_report(
                "=============================\nWARNING: suspicious RCU usage\n6.12.118 #1 Not tainted\n\
                 -----------------------------\ndrivers/hid/bpf/hid_bpf_dispatch.c:93 suspicious rcu_dereference_check() usage!\n",
            );
            check("title", r.title.as_str(), "WARNING: suspicious RCU usage at drivers/hid/bpf/hid_bpf_dispatch.c")?;
            check("file_line", r.file_line.as_deref(), Some("drivers/hid/bpf/hid_bpf_dispatch.c:93"))
        }),
        ("ubsan_keeps_the_file_out_of_the_title", || {
            let a = parse_report(
                "UBSAN: shift-out-of-bounds in /home/x/linux/drivers/hid/hid-core.c:1349:31\nshift exponent 32 is too large\n\
                 Call Trace:\n <TASK>\n dump_stack_lvl+0x1/0x2\n __ubsan_handle_shift_out_of_bounds+0x1/0x2\n \
                 hid_field_extract.cold+0x1/0x2\n hid_input_report+0x1/0x2\n </TASK>",
            );
            check("title", a.title.as_str(), "UBSAN: shift-out-of-bounds in hid_field_extract")?;
            check("file_line", a.file_line.as_deref(), Some("drivers/hid/hid-core.c:1349:31"))?;
            let b = parse_report(
                "UBSAN: array-index-out-of-bounds in drivers/hid/hid-core.c:99:1\nindex 9 is out of range\n",
            );
            check("no stack", b.title.as_str(), "UBSAN: array-index-out-of-bounds in drivers/hid/hid-core.c")
        }),
        ("cfi_failure_names_the_caller", || {
            let r = parse_report(
                "CFI failure at hid_bpf_ops_call.llvm.123+0x1b/0x20 (target: bad_func+0x0/0x18; expected type: 0x7e0c52a5)\n\
                 Oops: invalid opcode: 0000 [#1] SMP\nRIP: 0010:hid_bpf_ops_call.llvm.123+0x1b/0x20\n",
            );
            check("title", r.title.as_str(), "CFI failure in hid_bpf_ops_call")
        }),
        ("irq_sections_and_modules", || {
            let r = parse_report(
                "WARNING: CPU: 0 PID: 0 at drivers/hid/hid-core.c:10 hid_x+0x1/0x2 [hid]\nCall Trace:\n <IRQ>\n \
                 hid_x+0x1/0x2 [hid]\n ? irq_y+0x1/0x2\n __do_softirq+0x1/0x2\n </IRQ>\n <TASK>\n \
                 RIP: 0010:default_idle+0xb/0x10\n RSP: 0018:ffffffff82803e68 EFLAGS: 00000246\n \
                 default_idle_call+0x1/0x2\n do_idle+0x1/0x2\n </TASK>\n",
            );
            check("title", r.title.as_str(), "WARNING in hid_x")?;
            check("stack", &r.stack, &["hid_x", "__do_softirq", "default_idle_call", "do_idle"])?;
            check(
                "sections",
                r.frames.iter().map(|f| f.section.as_deref()).collect::<Vec<_>>(),
                vec![Some("IRQ"), Some("IRQ"), Some("IRQ"), Some("TASK"), Some("TASK")],
            )?;
            check("module", r.frames[0].module.as_deref(), Some("hid"))?;
            check("unreliable", r.unreliable, 1)
        }),
        ("unknown_shapes_are_normalized_and_say_so", || {
            let a =
                parse_report("BUG: Bad rss-counter state mm:00000000c0ffee12 type:MM_FILEPAGES val:1 Comm:init Pid:35");
            let b =
                parse_report("BUG: Bad rss-counter state mm:00000000deadbeef type:MM_FILEPAGES val:3 Comm:init Pid:77");
            check(
                "title",
                a.title.as_str(),
                "BUG: Bad rss-counter state mm:ADDR type:MM_FILEPAGES val:N Comm:init Pid:N",
            )?;
            check("stable", b.title.as_str(), a.title.as_str())?;
            check("function", a.function.clone(), None)
        }),
        ("splat_context_alone_is_enough_for_a_title", || {
            let text = std::fs::read_to_string(
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/splats/warning-lkdtm.txt"),
            )
            .map_err(|e| Failed::from(e.to_string()))?;
            let body: String = text.lines().filter(|l| !l.starts_with("# ")).collect::<Vec<_>>().join("\n");
            let splat = hidvm::judge::console::find_splats(&body).into_iter().next().ok_or("no splat")?;
            let r = hidvm::judge::title::report_for_splat(&body, &splat);
            check("title", r.title.as_str(), "WARNING in lkdtm_WARNING")?;
            check("from context", parse_report(&splat.context.join("\n")).title, r.title)
        }),
    ]
}

fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    let samples = std::sync::Arc::new(samples());
    let mut trials = Vec::new();
    for i in 0..samples.len() {
        let s = samples.clone();
        trials.push(Trial::test(format!("sample::{}", samples[i].name), move || {
            let sample = &s[i];
            let Some(&(_, title, function)) = EXPECTED.iter().find(|e| e.0 == sample.name) else {
                let got = first_report(&sample.body).map(|r| r.title).unwrap_or_default();
                return Err(format!("no expected title for {} in EXPECTED (it gets {got:?})", sample.name).into());
            };
            let r = first_report(&sample.body)?;
            check("title", r.title.as_str(), title)?;
            check("function", r.function.as_deref(), function)
        }));
        let s = samples.clone();
        trials.push(Trial::test(format!("stable::{}", samples[i].name), move || {
            let sample = &s[i];
            let a = first_report(&sample.body)?;
            let changed = perturb(&sample.body);
            if changed == sample.body {
                return Err("perturb changed nothing".into());
            }
            let b = first_report(&changed)?;
            check("title after changing every number", &b.title, &a.title)?;
            check("stack after changing every number", &b.stack, &a.stack)
        }));
    }
    let s = samples.clone();
    trials.push(Trial::test("sample::every_splat_pattern_gets_a_stable_title", move || {
        // For each pattern, the report at a golden line it classifies.
        let mut bad = Vec::new();
        for pat in hidvm::judge::console::SPLAT_PATTERNS {
            let found = s.iter().find_map(|sample| {
                let lines: Vec<&str> = sample.body.lines().collect();
                let i = lines.iter().position(|l| {
                    l.contains(pat.needle)
                        && hidvm::judge::console::find_splats(l).first().is_some_and(|sp| sp.class == pat.class)
                })?;
                Some(hidvm::judge::title::report_at(&sample.body, i))
            });
            let Some(r) = found else {
                bad.push(format!("{}: no golden line", pat.needle));
                continue;
            };
            let unstable = r.title.contains("0x")
                || r.title.split(|c: char| !c.is_ascii_hexdigit()).any(|w| w.len() >= 8)
                || r.title.contains('[');
            if r.title.is_empty() || unstable {
                bad.push(format!("{}: {:?}", pat.needle, r.title));
            }
        }
        check("patterns without a stable title", bad, Vec::<String>::new())
    }));
    let s = samples.clone();
    trials.push(Trial::test("sample::every_expected_title_has_its_sample", move || {
        let missing: Vec<&str> = EXPECTED.iter().map(|e| e.0).filter(|n| !s.iter().any(|x| x.name == *n)).collect();
        check("entries without a sample", missing, Vec::<&str>::new())
    }));
    for (name, f) in rules() {
        trials.push(Trial::test(format!("rule::{name}"), f));
    }
    libtest_mimic::run(&args, trials).exit_code()
}
