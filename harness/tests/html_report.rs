//! The HTML report and the step summary, from results records as a run
//! writes them (and run directories with their files).
use hidvm::kernel::spec::Target;
use hidvm::results::html::{
    byte_diff, extras_of, from_results, from_results_with, render_html, render_markdown_summary, CellStatus, Context,
    Group, RaceHits, RecordExtras, REPORT_LINK_PLACEHOLDER,
};
use hidvm::results::records::{Results, Status, TestRecord};
use hidvm_proto::{Check, GuestMsg, StepReport};
use std::collections::BTreeMap;
use std::path::Path;

const TARGETS: [&str; 4] = ["6.12-gcc", "6.12-llvm", "7.3-gcc", "7.3-llvm"];

fn target(label: &str) -> Target {
    let (k, c) = label.split_once('-').unwrap();
    Target::new(k, c)
}

fn rec(label: &str, row: &str, status: Status, reason: Option<&str>) -> TestRecord {
    let t = target(label);
    let mut r = TestRecord::without_run(&format!("{label}::{row}"), row, &t, status, reason.unwrap_or(""));
    r.reason = reason.map(str::to_string);
    r.kernel_version = Some(if t.kernel == "6.12" { "6.12.118".into() } else { "7.3.4".into() });
    if status == Status::Fail {
        r.kind = Some("check-failed".into());
    }
    r
}

/// A run directory as a test leaves it: console, report, the guest's step
/// lines (one failing check when `check` is given).
fn run_dir(root: &Path, r: &mut TestRecord, check: Option<(&str, &str, &str)>) {
    let dir = root.join("runs").join(r.target().label()).join(r.test.replace("::", "."));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("console.log"), "[    0.000000] Linux version …\n").unwrap();
    let report = serde_json::json!({
        "test": r.test, "accel": "tcg", "accel_reason": "no /dev/kvm", "started_from": "snapshot 3f9a0c1e",
        "vm_seconds": r.seconds.unwrap_or(2.0),
    });
    std::fs::write(dir.join("report.json"), report.to_string()).unwrap();
    let mut steps = vec![StepReport {
        index: 1,
        what: "attach `invert`".into(),
        ms: 40,
        checks: vec![Check::equal("link created", "yes", "yes")],
        notes: vec![],
        error: None,
        observed: None,
        race: None,
    }];
    if let Some((what, expected, seen)) = check {
        steps.push(StepReport {
            index: 2,
            what: "inject report 1 on mouse".into(),
            ms: 12,
            checks: vec![Check::equal("evdev events", "REL_Y -3", "REL_Y -3"), Check::equal(what, expected, seen)],
            notes: vec![],
            error: None,
            observed: None,
            race: None,
        });
    }
    let lines: String = steps.into_iter().map(|s| GuestMsg::Step(s).to_line() + "\n").collect();
    std::fs::write(dir.join("results.jsonl"), lines).unwrap();
    if check.is_some() {
        std::fs::write(dir.join("trace.txt"), "invert: y=3 -> -3\n").unwrap();
    }
    r.run_dir = Some(dir);
}

/// The HTML's position of a text (panics with the page when absent).
fn at(html: &str, needle: &str) -> usize {
    html.find(needle).unwrap_or_else(|| panic!("{needle:?} not in the page:\n{html}"))
}

#[test]
fn a_failing_row_comes_before_passing_rows_and_every_run_links_its_files() {
    let d = tempfile::tempdir().unwrap();
    let mut records = Vec::new();
    for row in ["aaa_passes", "mouse_invert_y_close_link", "zzz_passes"] {
        for t in TARGETS {
            let failing = row == "mouse_invert_y_close_link" && t == "6.12-llvm";
            let mut r = rec(t, row, if failing { Status::Fail } else { Status::Pass }, None);
            r.seconds = Some(2.5);
            run_dir(d.path(), &mut r, failing.then_some(("hidraw report", "01 05 fd ff", "01 05 03 01")));
            records.push(r);
        }
    }
    let results = Results::new(records.clone());
    let ctx = Context { link_dir: Some(d.path().to_path_buf()), ..Default::default() };
    let report = from_results(&results, &ctx);

    let order: Vec<&str> = report.ordered_rows().iter().map(|(_, r)| r.name.as_str()).collect();
    assert_eq!(order, ["mouse_invert_y_close_link", "aaa_passes", "zzz_passes"]);
    let failing = &report.rows[1];
    assert_eq!(failing.group(&report.targets), Group::Problem);
    assert_eq!(failing.flags[0].text(), "compiler-dependent (6.12)");
    // What the run directory told: the failed check, how the guest started, the accelerator.
    let cell = &failing.cells[1];
    assert_eq!(cell.status, CellStatus::Fail);
    assert_eq!(cell.checks.len(), 1, "{:?}", cell.checks);
    assert_eq!((cell.checks[0].expected.as_str(), cell.checks[0].seen.as_str()), ("01 05 fd ff", "01 05 03 01"));
    assert_eq!(cell.checks[0].step, "step 2 (inject report 1 on mouse)");
    assert_eq!(cell.started_from.as_deref(), Some("snapshot 3f9a0c1e"));
    assert_eq!(report.targets[0].accel.as_deref(), Some("tcg (no /dev/kvm)"));
    assert_eq!(report.targets[3].source.as_deref(), Some("Linux 7.3.4"));

    let html = render_html(&report);
    assert!(at(&html, "mouse_invert_y_close_link") < at(&html, "aaa_passes"));
    assert!(at(&html, "aaa_passes") < at(&html, "zzz_passes"));
    // The passing rows are collapsed.
    assert!(at(&html, "<details class=\"group\" id=\"g-fine\">") < at(&html, "aaa_passes"));
    // Every cell with a run directory links its console and report, relative to the page.
    for r in &records {
        let rel = r.run_dir.as_ref().unwrap().strip_prefix(d.path()).unwrap().display().to_string();
        for file in ["console.log", "report.json", "results.jsonl"] {
            assert!(html.contains(&format!("href=\"{rel}/{file}\"")), "{rel}/{file}");
        }
    }
    // Only the failing run left a trace.
    assert_eq!(html.matches("/trace.txt\"").count(), 2, "the cell and its details");
    // The failing cell leads to its details, which show the byte diff.
    assert!(html.contains("href=\"#d-1-1\""));
    assert!(at(&html, "id=\"d-1-1\"") < at(&html, "2 of 4 bytes differ"));
}

#[test]
fn reasons_and_names_are_escaped() {
    let mut r = rec("6.12-gcc", "evil<script>alert(1)</script>", Status::Fail, Some("saw <script>x</script> & \"q\""));
    r.kind = Some("check-failed\"><b>".into());
    let report = from_results(&Results::new(vec![r]), &Context::default());
    let html = render_html(&report);
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("check-failed\"><b>") && html.contains("check-failed&quot;&gt;&lt;b&gt;"), "{html}");
    assert!(html.contains("evil&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("title=\"saw &lt;script&gt;x&lt;/script&gt; &amp; &quot;q&quot;\""));
    let md = render_markdown_summary(&report);
    // Markdown escapes with a backslash: every `<` of the name and reason has one.
    for (i, _) in md.match_indices("<script").chain(md.match_indices("<b>")).chain(md.match_indices("</script")) {
        assert_eq!(&md[i - 1..i], "\\", "unescaped at {i}: {md}");
    }
}

#[test]
fn the_byte_diff_marks_exactly_the_differing_bytes() {
    let cmp = byte_diff("01 05 fd ff", "01 05 03 01").unwrap();
    assert_eq!(cmp.iter().map(|b| b.differs).collect::<Vec<_>>(), [false, false, true, true]);
    // `..` matches any byte; a longer seen marks its extra byte.
    let cmp = byte_diff("01 .. ff", "01 77 fe 00").unwrap();
    assert_eq!(cmp.iter().map(|b| b.differs).collect::<Vec<_>>(), [false, false, true, true]);
    assert_eq!(cmp[3].expected, None);
    assert!(byte_diff("REL_Y -3", "REL_Y 3").is_none());
    assert!(byte_diff("", "01").is_none());

    let mut r = rec("6.12-gcc", "inject", Status::Fail, None);
    r.run_dir = None;
    let ctx = Context::default();
    let report = from_results_with(&Results::new(vec![r]), &ctx, |_| RecordExtras {
        checks: vec![hidvm::results::html::FailedCheck {
            step: "step 2 (inject)".into(),
            what: "hidraw report".into(),
            expected: "01 05 fd ff 10".into(),
            seen: "01 05 03 ff 10".into(),
        }],
        ..Default::default()
    });
    let html = render_html(&report);
    assert_eq!(html.matches("<span class=\"d\">").count(), 2, "one byte, on each side");
    assert!(html.contains("<span class=\"d\">fd</span>") && html.contains("<span class=\"d\">03</span>"));
    assert!(html.contains("1 of 5 bytes differ"));
}

#[test]
fn the_page_is_self_contained() {
    let d = tempfile::tempdir().unwrap();
    let html = render_html(&demo(d.path()));
    for bad in ["http://", "https://", "<script", "<link", " src=", "url(", "@import", "@font-face"] {
        assert!(!html.contains(bad), "{bad} in the page");
    }
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
}

#[test]
fn the_repeat_heat_map_is_there_only_with_rounds() {
    let rows = |rounds: bool| {
        let records =
            vec![rec("6.12-gcc", "steady", Status::Pass, None), rec("6.12-gcc", "wobbly", Status::Flaky, None)];
        let report = from_results_with(&Results::new(records), &Context::default(), |r| RecordExtras {
            rounds: match (rounds, r.row.as_str()) {
                (false, _) => vec![],
                (true, "steady") => vec![CellStatus::Pass; 5],
                (true, _) => {
                    vec![CellStatus::Pass, CellStatus::Fail, CellStatus::Pass, CellStatus::Pass, CellStatus::Pass]
                }
            },
            ..Default::default()
        });
        render_html(&report)
    };
    let without = rows(false);
    assert!(!without.contains("id=\"repeat\""));
    let with = rows(true);
    assert!(with.contains("id=\"repeat\""));
    assert!(with.contains("1 of 2 tests passed every round; 1 did not"), "{with}");
    assert!(with.contains("6.12-gcc::wobbly") && !with.contains("6.12-gcc::steady"));
    assert!(with.contains("FLAKY 1/5 failed"));
}

#[test]
fn a_missing_target_and_a_lost_result_are_said() {
    let records = vec![
        rec("6.12-gcc", "a", Status::Pass, None),
        rec("6.12-gcc", "b", Status::Pass, None),
        rec("6.12-llvm", "a", Status::Pass, None),
    ];
    let ctx = Context {
        expected_targets: vec!["6.12-gcc".into(), "6.12-llvm".into(), "7.3-llvm".into()],
        ..Default::default()
    };
    let report = from_results(&Results::new(records), &ctx);
    let c = report.counts();
    assert_eq!(c.missing_targets, ["7.3-llvm"]);
    assert_eq!(c.lost, 1, "b on 6.12-llvm");
    assert_eq!(report.rows_in(Group::Problem).iter().map(|(_, r)| r.name.as_str()).collect::<Vec<_>>(), ["b"]);
    assert!(c.headline().contains("targets missing: 7.3-llvm"), "{}", c.headline());
    let html = render_html(&report);
    assert!(html.contains("<b>7.3-llvm</b></td><td colspan=\"3\">? missing"), "{html}");
    assert!(!html.contains("<th>7.3-llvm</th>"), "not a column of its own");
}

#[test]
fn a_race_that_hits_sometimes_takes_no_side_and_its_hits_are_charted() {
    let mut records: Vec<TestRecord> = TARGETS
        .iter()
        .map(|t| {
            rec(
                t,
                "race_destroy_vs_led",
                Status::Pass,
                Some("20 runs: 20 passed, 0 failed as a known kernel bug says, 0 failed otherwise"),
            )
        })
        .collect();
    records[2].status = Status::Known;
    records[2].reason = Some("20 runs: 17 passed, 3 failed as a known kernel bug says, 0 failed otherwise".into());
    // As `vm-test --repeat 20` writes it: each round's end.
    records[2].rounds = [vec![Status::Pass; 17], vec![Status::Known; 3]].concat();
    // The window the kernel saw open, as the race step reports it.
    for (i, r) in records.iter_mut().enumerate() {
        r.race = Some(hidvm::results::report::RaceCount { hits: 10 + i as u32, rounds: 50 });
    }
    let report = from_results(&Results::new(records), &Context::default());
    let row = &report.rows[0];
    assert!(row.flags.is_empty(), "{:?}", row.flags);
    assert_eq!(row.cells[2].race, Some(RaceHits { hits: 12, rounds: 50 }));
    assert_eq!(row.cells[2].label, "KNOWN 3/20");
    assert_eq!(row.cells[0].race, Some(RaceHits { hits: 10, rounds: 50 }));
    let html = render_html(&report);
    assert!(
        html.contains("id=\"races\"") && html.contains("12/50") && html.contains("aria-label=\"12 of 50 rounds hit\""),
        "{html}"
    );
}

#[test]
fn a_change_from_the_baseline_is_flagged() {
    let base = Results::new(vec![rec("6.12-gcc", "a", Status::Pass, None), rec("6.12-gcc", "b", Status::Pass, None)]);
    let now = Results::new(vec![rec("6.12-gcc", "a", Status::Pass, None), rec("6.12-gcc", "b", Status::Known, None)]);
    let report = from_results(&now, &Context { baseline: Some(&base), ..Default::default() });
    assert_eq!(report.counts().baseline_differs, ["b"]);
    assert_eq!(report.rows[1].flags[0].text(), "differs from baseline (6.12-gcc)");
    assert!(render_markdown_summary(&report).contains("**Differ from the baseline:** `b` (on 6.12-gcc)"));
}

#[test]
fn the_step_summary_leads_with_failures_differences_and_missing_targets() {
    let d = tempfile::tempdir().unwrap();
    let report = demo(d.path());
    let md = render_markdown_summary(&report);
    let lines: Vec<&str> = md.lines().collect();
    assert!(lines[0].starts_with("## ✘ hidvm report: 2 failed, 1 could not run, 1 flaky"), "{md}");
    assert!(lines[0].contains("targets missing: 7.3-llvm-debug"), "{md}");
    assert_eq!(lines[1], "");
    assert!(
        lines[2].starts_with("- **Failed (4):** `6.12-llvm::mouse_invert_y_close_link` (FAIL (check-failed))"),
        "{md}"
    );
    assert!(lines[3].starts_with("- **Differ between compilers:** `mouse_invert_y_close_link` (on 6.12)"), "{md}");
    assert!(lines[4].contains("`progs::Huion__Dial-2` (on gcc, llvm)"), "{md}");
    assert_eq!(lines[5], "- **Targets missing:** `7.3-llvm-debug`");
    assert!(lines[6].contains(&format!("]({REPORT_LINK_PLACEHOLDER})")), "{md}");
    // Rows that need a look in the open table, passing rows collapsed.
    let open = at(&md, "| `mouse_invert_y_close_link` |");
    let details = at(&md, "<details><summary>");
    assert!(open < details && details < at(&md, "| `mouse_swap_buttons` |"));
    assert!(md.contains("| `race_attach_vs_destroy` | K KNOWN (kernel-splat: warning) | K KNOWN (kernel-splat: warning) | K KNOWN (kernel-crash: bug) |"), "{md}");
    assert!(md.trim_end().ends_with("</details>"));
    // With a link, the link.
    let linked = hidvm::results::html::Report { html_link: Some("https://example.invalid/r.html".into()), ..report };
    assert!(render_markdown_summary(&linked).contains("](https://example.invalid/r.html)"));
}

#[test]
fn today_s_records_fill_what_they_have() {
    // A record without a run directory and without the new fields: no links, no checks.
    let r = rec("7.3-llvm", "race_attach_vs_destroy", Status::Known, Some("bug during step 3 (race), console line 801: BUG: kernel NULL pointer dereference, address: 0000000000000010"));
    let mut r = r;
    r.kind = Some("kernel-crash".into());
    let x = extras_of(&r);
    assert_eq!(x.crash_title.as_deref(), Some("BUG: kernel NULL pointer dereference, address: 0000000000000010"));
    assert_eq!(x.race, None, "no race record: no window hits to chart");
    assert_eq!(x.source.as_deref(), Some("Linux 7.3.4"));
    assert!(x.rounds.is_empty() && x.checks.is_empty() && x.started_from.is_none());
}

/// A realistic run: four targets and a fifth that sent nothing, ~40 rows,
/// a `--repeat 20` run with a failing inject, a compiler-dependent row, a
/// kernel-dependent known bug, races with hits, skips, an error.
#[expect(
    clippy::too_many_lines,
    reason = "one made-up run as data: the table of rows, then one match arm per cell that is not a plain pass; the arms only make sense next to the rows they pick"
)]
fn demo(root: &Path) -> hidvm::results::html::Report {
    let rows: &[(&str, f64)] = &[
        ("mouse_invert_y_close_link", 2.1),
        ("mouse_drop_report", 1.9),
        ("mouse_report_ids", 2.0),
        ("mouse_scale_movement", 2.2),
        ("mouse_swap_buttons", 1.8),
        ("keyboard_capslock_to_ctrl", 2.3),
        ("keyboard_swallow_key", 2.0),
        ("feature_request_answer", 2.4),
        ("feature_request_filter", 2.5),
        ("output_report_filter", 2.6),
        ("order_before_flag", 3.1),
        ("order_before_is_lifo", 3.3),
        ("rdesc_fixup_lifecycle", 4.2),
        ("release_close_then_destroy", 2.8),
        ("release_cycle_1000", 24.0),
        ("release_cycle_fresh_objects", 9.5),
        ("release_destroy_device_first", 2.7),
        ("release_detach_pinned", 2.9),
        ("release_holder_exits", 3.4),
        ("release_holder_killed", 3.6),
        ("release_pin_then_unpin", 2.6),
        ("release_while_flooding", 7.8),
        ("target_by_hid_id", 2.2),
        ("error_program_limit", 5.1),
        ("error_verifier_rejects", 1.7),
        ("race_attach_vs_destroy", 12.0),
        ("race_destroy_vs_event", 48.0),
        ("race_destroy_vs_led", 52.0),
        ("race_destroy_vs_output_report", 55.0),
        ("race_release_vs_event", 46.0),
        ("race_release_vs_led", 58.0),
        ("progs::Huion__Dial-2", 2.4),
        ("progs::XPPen__ACK05", 2.6),
        ("progs::Mistel__MD770", 2.1),
        ("progs::FR-TEC__Raptor-Mach-2", 2.3),
        ("progs::HP__Elite-Presenter", 2.2),
        ("selftest::fixture_not_rewriting_is_caught", 3.0),
        ("selftest::kasan_use_after_free_is_reported", 6.5),
        ("selftest::hang_is_reported_with_diagnostics", 31.0),
    ];
    const ROUNDS: usize = 20;
    let mut records = Vec::new();
    let mut extras: BTreeMap<String, RecordExtras> = BTreeMap::new();
    for (ti, t) in TARGETS.iter().enumerate() {
        for (ri, (row, secs)) in rows.iter().enumerate() {
            let on_713 = t.starts_with("7.3");
            let mut x = RecordExtras { rounds: vec![CellStatus::Pass; ROUNDS], ..Default::default() };
            let varied = |known: &[usize], failed: &[usize]| {
                (0..ROUNDS)
                    .map(|i| {
                        if failed.contains(&i) {
                            CellStatus::Fail
                        } else if known.contains(&i) {
                            CellStatus::Known
                        } else {
                            CellStatus::Pass
                        }
                    })
                    .collect::<Vec<_>>()
            };
            let mut r = match (*row, *t) {
                ("mouse_invert_y_close_link", "6.12-llvm") => {
                    x.rounds = vec![CellStatus::Fail; ROUNDS];
                    rec(t, row, Status::Fail, Some("during step 4 (inject report 1 on mouse after releasing link `invert` (close)): hidraw report: expected 01 05 fd ff, saw 01 05 03 01: the released program still rewrites reports"))
                }
                ("keyboard_capslock_to_ctrl", "7.3-gcc") => {
                    x.rounds = vec![CellStatus::Error; ROUNDS];
                    rec(t, row, Status::Error, Some("compiling keyboard_capslock.bpf.c for 7.3-gcc: clang-19 exited with status 1: vmlinux.h:91234: error: redefinition of 'hid_bpf_ctx'"))
                }
                ("release_while_flooding", "7.3-llvm") => {
                    x.rounds = varied(&[], &[13]);
                    rec(
                        t,
                        row,
                        Status::Flaky,
                        Some("20 runs: 19 passed, 0 failed as a known kernel bug says, 1 failed otherwise"),
                    )
                }
                ("error_program_limit", "6.12-gcc") => {
                    x.rounds = vec![CellStatus::Fail; ROUNDS];
                    let mut r = rec(
                        t,
                        row,
                        Status::Fail,
                        Some("timeout: no verdict within 60 s (last step 9 (attach program 17 of 32))"),
                    );
                    r.kind = Some("timeout".into());
                    r
                }
                ("race_attach_vs_destroy", _) => {
                    x.rounds = vec![CellStatus::Known; ROUNDS];
                    let mut r = rec(
                        t,
                        row,
                        Status::Known,
                        Some(if on_713 {
                            "bug during step 3 (race attach vs destroy), console line 912: BUG: kernel NULL pointer dereference, address: 0000000000000010"
                        } else {
                            "warning during step 3 (race attach vs destroy), console line 877: WARNING: CPU: 0 PID: 61 at kernel/rcu/srcutree.c:674 cleanup_srcu_struct+0x1a5/0x1d0"
                        }),
                    );
                    r.kind = Some(if on_713 { "kernel-crash" } else { "kernel-splat" }.into());
                    r.class = Some(if on_713 { "bug" } else { "warning" }.into());
                    r
                }
                ("race_destroy_vs_output_report", "7.3-llvm") => {
                    x.rounds = varied(&[2, 9, 16], &[]);
                    let mut r = rec(
                        t,
                        row,
                        Status::Known,
                        Some("20 runs: 17 passed, 3 failed as a known kernel bug says, 0 failed otherwise"),
                    );
                    r.kind = Some("kernel-crash".into());
                    r
                }
                ("race_destroy_vs_led", "7.3-gcc") => {
                    x.rounds = varied(&[11], &[]);
                    rec(
                        t,
                        row,
                        Status::Known,
                        Some("20 runs: 19 passed, 1 failed as a known kernel bug says, 0 failed otherwise"),
                    )
                }
                ("progs::Huion__Dial-2" | "progs::XPPen__ACK05", _) if on_713 => {
                    x.rounds = vec![CellStatus::Known; ROUNDS];
                    rec(t, row, Status::Known, Some("during step 2 (check the fixed report descriptor): report descriptor: expected 15 00 at byte 50, saw 25 00"))
                }
                ("progs::Mistel__MD770", _) if !on_713 => {
                    x.rounds = vec![];
                    rec(t, row, Status::Skip, Some("needs Linux >= 6.13 (min_kernel); kernel 6.12 is 6.12"))
                }
                ("selftest::kasan_use_after_free_is_reported", _) => {
                    x.rounds = vec![];
                    rec(t, row, Status::Skip, Some("needs a debug cell (KASAN): gcc-debug, llvm-debug"))
                }
                _ => rec(t, row, Status::Pass, None),
            };
            if row.starts_with("race_") {
                let hits = x.rounds.iter().filter(|s| **s == CellStatus::Known).count() as u32;
                x.race = Some(RaceHits { hits, rounds: ROUNDS as u32 });
                if r.status == Status::Pass {
                    r.reason =
                        Some("20 runs: 20 passed, 0 failed as a known kernel bug says, 0 failed otherwise".into());
                }
            }
            if r.status != Status::Skip {
                // Seconds vary a little by target and row.
                r.seconds = Some(secs * (1.0 + 0.07 * ti as f64) + 0.13 * (ri % 5) as f64);
                let check = (*row == "mouse_invert_y_close_link" && *t == "6.12-llvm").then_some((
                    "hidraw report",
                    "01 05 fd ff",
                    "01 05 03 01",
                ));
                run_dir(root, &mut r, check);
            }
            extras.insert(r.test.clone(), x);
            records.push(r);
        }
    }
    let results = Results::new(records);
    let ctx = Context {
        title: "hidvm report".into(),
        generated_at: Some("2026-12-07 14:02 UTC".into()),
        expected_targets: TARGETS.iter().map(|t| t.to_string()).chain(["7.3-llvm-debug".to_string()]).collect(),
        link_dir: Some(root.to_path_buf()),
        notes: vec!["vm-test --repeat 20, 3 VMs at a time; wall time 3412.6 s".into()],
        ..Default::default()
    };
    let mut report = from_results_with(&results, &ctx, |r| {
        let mut x = extras_of(r);
        let given = extras.get(&r.test).cloned().unwrap_or_default();
        x.rounds = given.rounds;
        x.race = given.race.or(x.race);
        x.source = Some(if r.kernel == "6.12" {
            "linux-source-6.12 6.12.118-1 sha256:53b1c0f2e9d4a7c6".into()
        } else {
            "linux-source-7.3 7.3.4-1~bpo13+1 sha256:9e0d4f7ab3c21e58".into()
        });
        x
    });
    report.generated_by = "hidvm 0.1.0".into();
    report
}

/// Writes the demo report where HIDVM_HTML_DEMO says (with its run
/// directories beside it), for a look in a browser:
/// `HIDVM_HTML_DEMO=/tmp/r/report.html cargo nextest run -p hidvm --run-ignored only -E 'test(demo)'`.
#[test]
#[ignore = "writes files; run with HIDVM_HTML_DEMO=path"]
fn demo_report() {
    let Some(path) = std::env::var_os("HIDVM_HTML_DEMO") else { return };
    let path = std::path::PathBuf::from(path);
    let dir = path.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let report = demo(dir);
    std::fs::write(&path, render_html(&report)).unwrap();
    std::fs::write(path.with_extension("md"), render_markdown_summary(&report)).unwrap();
}

#[test]
fn a_run_problem_fails_the_step_summary_and_comes_first() {
    // Every cell passed, but a planned target was short of tests (what
    // `hidvm summary --expect` finds): the summary must not be green.
    let records = vec![rec("6.12-gcc", "a", Status::Pass, None), rec("6.12-llvm", "a", Status::Pass, None)];
    let ok = from_results(&Results::new(records.clone()), &Context::default());
    assert!(render_markdown_summary(&ok).starts_with("## ✔ "), "{}", render_markdown_summary(&ok));
    let ctx =
        Context { problems: vec!["6.12-llvm: 1 of 2 planned tests have no record: b".into()], ..Default::default() };
    let report = from_results(&Results::new(records), &ctx);
    let md = render_markdown_summary(&report);
    let lines: Vec<&str> = md.lines().collect();
    assert!(lines[0].starts_with("## ✘ hidvm report: 1 problem(s) with the run, nothing failed"), "{md}");
    assert_eq!(lines[2], "- **Problem:** 6.12-llvm: 1 of 2 planned tests have no record: b", "{md}");
    assert!(lines[3].starts_with("- **Failed (0):** none"), "{md}");
    let html = render_html(&report);
    assert!(html.contains("<b>Problem:</b> 6.12-llvm: 1 of 2 planned tests") && !html.contains("all good"), "{html}");
}

#[test]
fn a_cells_own_test_is_not_a_lost_result_when_the_results_are_complete() {
    // As vm-test writes it: an llvm-only self-test has no gcc record.
    let records = vec![
        rec("6.12-gcc", "a", Status::Pass, None),
        rec("6.12-llvm", "a", Status::Pass, None),
        rec("6.12-llvm", "selftest::llvm_only", Status::Pass, None),
    ];
    let partial = from_results(&Results::new(records.clone()), &Context::default());
    assert_eq!(partial.counts().lost, 1, "without a plan, an absent cell is lost");
    let report = from_results(&Results::new(records), &Context { complete: true, ..Default::default() });
    let c = report.counts();
    assert_eq!((c.lost, c.tests, c.skipped), (0, 3, 0), "{c:?}");
    assert!(c.all_good());
    assert_eq!(report.rows[1].cells[0].status, CellStatus::NotHere);
    assert!(render_markdown_summary(&report).starts_with("## ✔ "));
    assert!(render_html(&report).contains("all good"));
}
