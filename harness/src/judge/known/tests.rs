use super::*;
use crate::judge::guest::FailedCheck;
use crate::judge::title::parse_report;

const ENTRY: &str = r#"
[[known]]
test = "race_destroy_vs_output_report"
kernels = ["6.12.118-1", "7.3.4-1~bpo13+1"]
cells = ["*"]
rate = "1 in 20"
reason = "check-then-lock window in dispatch_hid_bpf_output_report"

[[known.signature]]
ends_as = "kernel-crash"
title = "BUG: unable to handle page fault in __srcu_read_unlock"
stack = ["dispatch_hid_bpf_output_report"]

[[known]]
test = "progs::Huion__Dial-2"
kernels = ["7.3.4-1~bpo13+1"]
cells = ["*"]
rate = "always"
reason = "LogicalMaximum_i8(0) where LogicalMinimum_i8(0) belongs"

[[known.signature]]
ends_as = "check-failed"
check = "step 8: report descriptor (sysfs)"
seen_contains = ["85 03 25 00 25 01"]
"#;

fn list() -> KnownFailures {
    KnownFailures::parse(ENTRY, "test").unwrap()
}

fn crash(kind: FailureKind) -> Verdict {
    Verdict::Fail { kind, class: Some("bug".into()), reason: "r".into() }
}

/// The SRCU page fault, as the golden sample has it (frames trimmed).
const SRCU_FAULT: &str = "\
BUG: unable to handle page fault for address: ffffffffa0000010
#PF: supervisor read access in kernel mode
Oops: Oops: 0000 [#1] SMP
RIP: 0010:__srcu_read_unlock+0x12/0x30
Call Trace:
 <TASK>
 ? dispatch_hid_bpf_output_report+0x9e/0xd0
 ? hidraw_write+0x3b/0x60
 ? vfs_write+0xd1/0x3f0
 </TASK>
---[ end trace 0000000000000000 ]---
Kernel panic - not syncing: Fatal exception
";

/// A different crash in the same row: the WARNING the issue's broken
/// kernel showed.
const CLEANUP_WARNING: &str = "\
WARNING: CPU: 0 PID: 41 at kernel/rcu/srcutree.c:690 cleanup_srcu_struct+0x10b/0x120
Call Trace:
 <TASK>
 ? hid_bpf_destroy_device+0x4a/0x60
 ? hid_destroy_device+0x11/0x50
 ? uhid_char_write+0x2c7/0x500
 </TASK>
---[ end trace 0000000000000000 ]---
";

fn seen_crash(kind: FailureKind, report: &str) -> Vec<Seen> {
    seen_in(&crash(kind), &[parse_report(report)], &[])
}

#[test]
fn the_known_crash_with_its_signature_on_a_named_kernel_is_known() {
    let l = list();
    let seen = seen_crash(FailureKind::KernelCrash, SRCU_FAULT);
    let k =
        l.classify("race_destroy_vs_output_report", "llvm", "7.3.4-1~bpo13+1", &crash(FailureKind::KernelCrash), &seen);
    assert!(matches!(k, Known::Failed(0, _)), "{k:?}");
}

#[test]
fn a_different_crash_in_a_known_row_is_a_mismatch_naming_both() {
    let l = list();
    let seen = seen_crash(FailureKind::KernelSplat, CLEANUP_WARNING);
    let k = l.classify("race_destroy_vs_output_report", "gcc", "6.12.118-1", &crash(FailureKind::KernelSplat), &seen);
    let Known::Mismatch(0, expected, what) = k else { panic!("{k:?}") };
    assert!(expected.contains("BUG: unable to handle page fault in __srcu_read_unlock"), "{expected}");
    assert!(what.contains("WARNING in cleanup_srcu_struct"), "{what}");
    // The same title reached from another caller is not the known bug either.
    let other_caller = SRCU_FAULT.replace("dispatch_hid_bpf_output_report", "dispatch_hid_bpf_raw_requests");
    let seen = seen_crash(FailureKind::KernelCrash, &other_caller);
    let k = l.classify("race_destroy_vs_output_report", "gcc", "6.12.118-1", &crash(FailureKind::KernelCrash), &seen);
    assert!(matches!(k, Known::Mismatch(..)), "{k:?}");
    // The known crash followed by another report: the other one is not explained.
    let mut both = seen_crash(FailureKind::KernelCrash, SRCU_FAULT);
    both.extend(seen_crash(FailureKind::KernelCrash, CLEANUP_WARNING));
    let k = l.classify("race_destroy_vs_output_report", "gcc", "6.12.118-1", &crash(FailureKind::KernelCrash), &both);
    assert!(matches!(k, Known::Mismatch(..)), "{k:?}");
}

#[test]
fn timeouts_leaks_and_could_not_look_are_never_known() {
    let l = list();
    for kind in [FailureKind::Timeout, FailureKind::Unchecked, FailureKind::NoVerdict, FailureKind::NoAnswer] {
        let v = Verdict::Fail { kind, class: None, reason: "r".into() };
        let seen = seen_in(&v, &[], &[]);
        let k = l.classify("race_destroy_vs_output_report", "gcc", "6.12.118-1", &v, &seen);
        assert!(matches!(k, Known::Mismatch(..)), "{kind:?}: {k:?}");
    }
    let leak = Verdict::Fail { kind: FailureKind::KernelSplat, class: Some("bpf-leak".into()), reason: "r".into() };
    let k = l.classify("race_destroy_vs_output_report", "gcc", "6.12.118-1", &leak, &seen_in(&leak, &[], &[]));
    assert!(matches!(k, Known::Mismatch(..)), "{k:?}");
}

#[test]
fn entries_apply_only_to_the_kernels_they_name_exactly() {
    let l = list();
    let v = crash(FailureKind::KernelCrash);
    let seen = seen_crash(FailureKind::KernelCrash, SRCU_FAULT);
    // A patched tree, a user tree, another Debian revision, a prefix: not named.
    for label in
        ["6.12.118-1+hid-bpf-srcu-until-free@1a2b3c4d", "tree:6.12.118@00ff00ff", "6.12.118-2", "6.12.118", "6.12"]
    {
        assert_eq!(l.classify("race_destroy_vs_output_report", "gcc", label, &v, &seen), Known::None, "{label}");
    }
    assert_eq!(l.classify("race_destroy_vs_event", "gcc", "6.12.118-1", &v, &seen), Known::None);
}

#[test]
fn a_check_signature_names_the_check_and_what_it_saw() {
    let l = list();
    let v = Verdict::Fail { kind: FailureKind::Check, class: None, reason: "r".into() };
    let typo = FailedCheck::new("step 8: report descriptor (sysfs)", "05 01 09 07 a1 01 85 03 25 00 25 01 05 0d", "");
    let k = l.classify(
        "progs::Huion__Dial-2",
        "gcc",
        "7.3.4-1~bpo13+1",
        &v,
        &seen_in(&v, &[], std::slice::from_ref(&typo)),
    );
    assert!(matches!(k, Known::Failed(1, _)), "{k:?}");
    // Another byte wrong, another check failing, or a second failed check: not known.
    let other_bytes = FailedCheck::new(typo.check.clone(), "05 01 09 07 a1 01 85 03 15 00 26 01", "");
    let other_check = FailedCheck::new("step 9: evdev /dev/input/event0", typo.seen.clone(), "");
    for checks in [vec![other_bytes], vec![other_check.clone()], vec![typo, other_check]] {
        let k = l.classify("progs::Huion__Dial-2", "gcc", "7.3.4-1~bpo13+1", &v, &seen_in(&v, &[], &checks));
        assert!(matches!(k, Known::Mismatch(..)), "{checks:?}: {k:?}");
    }
    assert_eq!(l.classify("progs::Huion__Dial-2", "gcc", "7.3.4-1~bpo13+1", &Verdict::Pass, &[]), Known::Passed(1));
}

#[test]
fn bare_kinds_wildcards_and_unmeasured_rates_are_refused_at_load() {
    let base = |kernels: &str, rate: &str, sig: &str| {
        format!(
            "[[known]]\ntest = \"x\"\nkernels = [{kernels}]\ncells = [\"*\"]\nrate = \"{rate}\"\nreason = \"r\"\n{sig}"
        )
    };
    let good_sig = "[[known.signature]]\nends_as = \"kernel-crash\"\ntitle = \"WARNING in f\"\nstack = [\"f\"]\n";
    assert!(KnownFailures::parse(&base("\"6.12.118-1\"", "always", good_sig), "t").is_ok());
    let cases = [
        (base("\"6.12.118-1\"", "always", ""), "no `[[known.signature]]`"),
        (base("\"*\"", "always", good_sig), "not an exact source label"),
        (base("\"6.12\"", "always", good_sig), "not an exact source label"),
        (base("\"6.12.118-1\"", "sometimes", good_sig), "`rate`"),
        (base("\"6.12.118-1\"", "0 in 20", good_sig), "`rate`"),
        (base("\"6.12.118-1\"", "always", "[[known.signature]]\nends_as = \"kernel-crash\"\n"), "needs `title`"),
        (
            base("\"6.12.118-1\"", "always", "[[known.signature]]\nends_as = \"kernel-crash\"\ntitle = \"t\"\n"),
            "needs `title`",
        ),
        (base("\"6.12.118-1\"", "always", "[[known.signature]]\nends_as = \"timeout\"\n"), "cannot be known"),
        (base("\"6.12.118-1\"", "always", "[[known.signature]]\nends_as = \"unchecked\"\n"), "cannot be known"),
        (base("\"6.12.118-1\"", "always", "[[known.signature]]\nends_as = \"no-verdict\"\n"), "cannot be known"),
        (
            base(
                "\"6.12.118-1\"",
                "always",
                "[[known.signature]]\nends_as = \"check-failed\"\ncheck = \"step 1: x\"\n",
            ),
            "needs `check`",
        ),
    ];
    for (text, want) in cases {
        let e = KnownFailures::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains(want), "{want}: {e}\n{text}");
    }
}

#[test]
fn a_race_that_crashes_far_more_often_than_recorded_is_a_change() {
    let rate = Rate::parse("1 in 20").unwrap();
    // One crash in one run, or 2 in 20: luck.
    assert_eq!(far_more_often(rate, 1, 1), None);
    assert_eq!(far_more_often(rate, 2, 20), None);
    // Every one of four targets, or 10 in 20: far more often.
    assert!(far_more_often(rate, 4, 4).is_some());
    assert!(far_more_often(rate, 10, 20).is_some());
    assert_eq!(far_more_often(Rate::Always, 5, 5), None);
    assert!((tail_probability(1, 1, 0.05) - 0.05).abs() < 1e-9);
    assert!((tail_probability(20, 20, 0.5) - 0.5f64.powi(20)).abs() < 1e-12);
    assert!((tail_probability(0, 20, 0.5) - 1.0).abs() < 1e-12);
}

#[test]
fn the_repository_list_is_valid() {
    repository_list();
}

#[test]
fn seen_contains_looks_in_a_checks_detail_too() {
    // A rejected load saw "load: EACCES"; the verifier's reason is the detail.
    let l = repository_list();
    let v = Verdict::Fail { kind: FailureKind::Check, class: None, reason: "r".into() };
    let check = "step 5: load Generic__touchpad.hidvm.bpf.c";
    let rejected = FailedCheck::new(
        check,
        "load: EACCES",
        "the verifier rejected it: invalid access to map value, value_size=1024 off=1024 size=1; At: probe @ hid_bpf_helpers.h:431:20",
    );
    let k = l.classify("progs::Generic__touchpad", "llvm", "7.3.4-1~bpo13+1", &v, &seen_in(&v, &[], &[rejected]));
    assert!(matches!(k, Known::Failed(..)), "{k:?}");
    // Another rejection of the same load (another line) is not the known bug.
    let other = FailedCheck::new(check, "load: EACCES", "the verifier rejected it: R1 invalid mem access 'scalar'");
    let k = l.classify("progs::Generic__touchpad", "llvm", "7.3.4-1~bpo13+1", &v, &seen_in(&v, &[], &[other]));
    assert!(matches!(k, Known::Mismatch(..)), "{k:?}");
}

/// The face of race_attach_vs_destroy CI met on 7.3-llvm (2026-12-07): the
/// attach's synchronize_srcu() faults on the freed per-CPU data of the
/// SRCU struct UHID_DESTROY cleaned up (frames trimmed).
const SRCU_GP_FAULT: &str = "\
BUG: unable to handle page fault for address: ffff88809d2f4018
#PF: supervisor read access in kernel mode
#PF: error_code(0x0000) - not-present page
Oops: Oops: 0000 [#1] SMP
RIP: 0010:srcu_gp_start_if_needed+0x30f/0x390
Call Trace:
 <TASK>
 ? __synchronize_srcu+0x86/0xa0
 ? rcu_test_sync_prims+0x10/0x10
 ? hid_bpf_reg+0x120/0x140
 ? bpf_trampoline_6442494456+0x7e/0x120
 ? bpf_struct_ops_link_create+0xfa/0x150
 ? __sys_bpf+0x2b6/0x6e0
 </TASK>
---[ end trace 0000000000000000 ]---
Kernel panic - not syncing: Fatal exception
";

fn repository_list() -> KnownFailures {
    KnownFailures::load(&crate::base::layout::Repo::locate().root.join("tests/known-failures.toml")).unwrap()
}

#[test]
fn a_title_family_matches_its_kind_in_any_function_of_the_family_via_the_stack() {
    let l = repository_list();
    let v = crash(FailureKind::KernelCrash);
    let classify = |report: &str| {
        l.classify(
            "race_attach_vs_destroy",
            "llvm",
            "7.3.4-1~bpo13+1",
            &v,
            &seen_crash(FailureKind::KernelCrash, report),
        )
    };
    assert!(matches!(classify(SRCU_GP_FAULT), Known::Failed(..)), "{:?}", classify(SRCU_GP_FAULT));
    // The same kind and function reached from elsewhere: not this bug.
    let elsewhere = SRCU_GP_FAULT.replace("hid_bpf_reg+0x120/0x140", "hid_bpf_destroy_device+0x20/0x40");
    assert!(matches!(classify(&elsewhere), Known::Mismatch(..)), "{:?}", classify(&elsewhere));
    // The same stack faulting outside SRCU: not this bug.
    let outside = SRCU_GP_FAULT.replace("RIP: 0010:srcu_gp_start_if_needed", "RIP: 0010:hid_bpf_prog_run");
    assert!(matches!(classify(&outside), Known::Mismatch(..)), "{:?}", classify(&outside));
    // Another kind in the same SRCU function: not this signature.
    let gpf = SRCU_GP_FAULT.replace(
        "BUG: unable to handle page fault for address: ffff88809d2f4018",
        "Oops: general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP",
    );
    assert!(matches!(classify(&gpf), Known::Mismatch(..)), "{:?}", classify(&gpf));
}

#[test]
fn title_globs_keep_the_kind_exact_and_name_a_family() {
    assert!(title_matches("WARNING in f", "WARNING in f"));
    assert!(!title_matches("WARNING in f", "WARNING in g"));
    let fam = "BUG: unable to handle page fault in *srcu*";
    for f in ["srcu_gp_start_if_needed", "__srcu_read_unlock", "check_init_srcu_struct", "srcu"] {
        assert!(title_matches(fam, &format!("BUG: unable to handle page fault in {f}")), "{f}");
    }
    assert!(!title_matches(fam, "BUG: unable to handle page fault in rcu_core"));
    assert!(!title_matches(fam, "BUG: kernel NULL pointer dereference in srcu_irq_work"));
    assert!(title_matches("WARNING in srcu_*_struct", "WARNING in srcu_cleanup_struct"));
    assert!(!title_matches("WARNING in srcu_*_struct", "WARNING in srcu_struct_x"));
    assert!(!title_matches("WARNING in ab*ba", "WARNING in aba"));
    let refuse = |title: &str, want: &str| {
        let text = format!(
            "[[known]]\ntest = \"x\"\nkernels = [\"6.12.118-1\"]\ncells = [\"*\"]\nrate = \"always\"\nreason = \"r\"\n[[known.signature]]\nends_as = \"kernel-crash\"\ntitle = \"{title}\"\nstack = [\"f\"]\n"
        );
        let e = KnownFailures::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains(want), "{title}: {e}");
    };
    refuse("BUG: * in srcu_irq_work", "the kind (before ` in `) must be exact");
    refuse("* in *srcu*", "the kind (before ` in `) must be exact");
    refuse("BUG: unable to handle page fault in *", "keep at least 4");
    refuse("BUG: unable to handle page fault in *rcu*", "keep at least 4");
    refuse("BUG: unable*", "no ` in `");
}

/// The face the masking self-test met on 6.12-gcc (2026-12-07): the SRCU
/// callback work of the cleaned-up struct, on the rcu_gp workqueue.
const SRCU_CALLBACK_NULL: &str = "\
BUG: kernel NULL pointer dereference, address: 0000000000000068
#PF: supervisor read access in kernel mode
Oops: Oops: 0000 [#1] SMP
Workqueue: rcu_gp srcu_invoke_callbacks
RIP: 0010:srcu_invoke_callbacks+0x81/0x1a0
Call Trace:
 <TASK>
 ? process_scheduled_works+0x1a5/0x380
 ? worker_thread+0x2a1/0x3c0
 ? kthread+0xd2/0x100
 ? ret_from_fork+0x34/0x50
 </TASK>
---[ end trace 0000000000000000 ]---
Kernel panic - not syncing: Fatal exception
";

#[test]
fn the_srcu_callback_face_is_known_only_in_its_row_and_by_its_title() {
    let l = repository_list();
    let v = crash(FailureKind::KernelCrash);
    let seen = seen_crash(FailureKind::KernelCrash, SRCU_CALLBACK_NULL);
    let k = l.classify("race_attach_vs_destroy", "gcc", "6.12.118-1~deb12u1", &v, &seen);
    assert!(matches!(k, Known::Failed(..)), "{k:?}");
    // The same crash in another known row is not that row's bug.
    let k = l.classify("race_destroy_vs_output_report", "gcc", "6.12.118-1~deb12u1", &v, &seen);
    assert!(matches!(k, Known::Mismatch(..)), "{k:?}");
}
