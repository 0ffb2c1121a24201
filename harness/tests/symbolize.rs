//! Symbolizing crash reports with the tree's decode_stacktrace.sh
//! (harness/src/symbolize.rs).
//!
//! * `fake_script_*`: always run, against a stand-in script and stand-in
//!   tools in a temporary directory: the argument order, the environment
//!   that picks the tools, the timeout (the whole process group is
//!   killed), the errors, the cache.
//! * `real_*_or_skipped_loudly`: decode a 20-frame report made of real
//!   functions and call sites of a kernel hidvm built (the newest
//!   `~/.cache/hidvm/kbuild/*/<cell>/out/*/` or, as older hidvm left
//!   them, `~/.cache/hidvm/kernels/<cell>-*/`, with a `record.json`), with that
//!   cell's tools: every frame gets a file:line and inlined frames show.
//!   Without such a kernel they pass after saying on stderr why they did
//!   not run.
use hidvm::judge::symbolize::{symbolize_console, SymbolizeError, Symbolizer, Tools};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// A stand-in tree

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    /// A tree whose decode_stacktrace.sh is `script`, stand-in LLVM tools
    /// in `<dir>/bin/` (so `Tools::Llvm("<dir>/bin/")`) and a vmlinux.
    fn new(script: &str) -> Fake {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tree/scripts")).unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        write_exe(&dir.path().join("tree/scripts/decode_stacktrace.sh"), script);
        for tool in ["llvm-readelf", "llvm-addr2line", "llvm-nm"] {
            write_exe(&dir.path().join("bin").join(tool), "#!/bin/sh\nexit 0\n");
        }
        std::fs::write(dir.path().join("vmlinux"), b"not really an ELF").unwrap();
        Fake { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn tools(&self) -> Tools {
        Tools::Llvm(format!("{}/", self.path("bin").display()))
    }

    fn symbolizer(&self) -> Symbolizer {
        Symbolizer::new(&self.path("vmlinux"), &self.path("tree"), self.tools())
    }
}

fn write_exe(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

const REPORT: &str = "\
[    1.0] BUG: unable to handle page fault for address: ffffe8ffffc03a10
[    1.0] RIP: 0010:__srcu_read_unlock+0x11/0x20
[    1.0] Code: 90 90 <65> 48 ff 44 f0 10 c3
[    1.0] Call Trace:
[    1.0]  <TASK>
[    1.0]  ? dispatch_hid_bpf_output_report+0xa8/0xd0
[    1.0]  ? hidraw_write+0x3c/0x60
[    1.0]  </TASK>";

/// Echoes its arguments and LLVM, then each input line, frames with a
/// made-up location.
const ECHO_SCRIPT: &str = r#"#!/usr/bin/env bash
echo "args: $1|$2|${3-none}|LLVM=${LLVM-unset}|CROSS_COMPILE=${CROSS_COMPILE-unset}"
while IFS= read -r line; do
  if [[ $line =~ \+0x[0-9a-f]+/0x[0-9a-f]+ ]]; then
    echo "${line%%+0x*} (fake/file.c:12 include/linux/inl.h:3)"
  else
    echo "$line"
  fi
done
"#;

#[test]
fn fake_script_gets_vmlinux_tree_and_modules_in_order_and_the_llvm_variable() {
    let fake = Fake::new(ECHO_SCRIPT);
    let mut s = fake.symbolizer();
    s.modules = Some(fake.path("modules"));
    let out = s.decode(REPORT).expect("decodes");
    assert_eq!(
        out.lines[0],
        format!(
            "args: {}|{}|{}|LLVM={}/|CROSS_COMPILE=unset",
            fake.path("vmlinux").display(),
            fake.path("tree").display(),
            fake.path("modules").display(),
            fake.path("bin").display()
        )
    );
    assert_eq!((out.frames, out.resolved), (3, 3), "{:#?}", out.lines);
    assert!(out
        .lines
        .contains(&"[    1.0]  ? dispatch_hid_bpf_output_report (fake/file.c:12 include/linux/inl.h:3)".into()));
    // Code: lines are not disassembled by default: they come back as they were.
    assert!(out.lines.contains(&"[    1.0] Code: 90 90 <65> 48 ff 44 f0 10 c3".to_string()), "{:#?}", out.lines);
}

#[test]
fn fake_script_other_lines_come_back_exactly() {
    // Like the real script: `read` without -r, and with debuginfod-find
    // installed the `PID: N Comm:` line swallowed.
    let fake = Fake::new(
        r#"#!/usr/bin/env bash
while read line; do
  if [[ $line =~ PID:\ [0-9]+\ Comm: ]]; then :
  elif [[ $line =~ \+0x ]]; then echo "${line%%+0x*} (a.c:1)"
  else echo "$line"; fi
done
"#,
    );
    let report = "[    1.0] CPU: 0 UID: 0 PID: 34 Comm: init Not tainted 6.12.118 #1\n\
                  [    1.0]  <TASK>\n\
                  [    1.0] hid: \\x01 raw\n\
                  [    1.0]  ? vfs_write+0x96/0x14c";
    let out = fake.symbolizer().decode(report).unwrap();
    let want: Vec<&str> = report.lines().take(3).collect();
    assert_eq!(&out.lines[..3], &want[..]);
    assert_eq!(out.lines[3], "[    1.0]  ? vfs_write (a.c:1)");
}

#[test]
fn fake_script_binutils_runs_without_llvm_in_the_environment() {
    let fake = Fake::new(ECHO_SCRIPT);
    let s = Symbolizer::new(&fake.path("vmlinux"), &fake.path("tree"), Tools::Binutils);
    if s.check().is_err() {
        eprintln!("SKIPPED: binutils' readelf/addr2line/nm are not on PATH here: {}", s.check().unwrap_err());
        return;
    }
    let out = s.decode(REPORT).expect("decodes");
    assert!(out.lines[0].ends_with("|none|LLVM=unset|CROSS_COMPILE=unset"), "{}", out.lines[0]);
}

#[test]
fn fake_script_that_hangs_is_killed_with_its_children_at_the_timeout() {
    let fake = Fake::new("");
    let pidfile = fake.path("child.pid");
    write_exe(
        &fake.path("tree/scripts/decode_stacktrace.sh"),
        &format!("#!/usr/bin/env bash\nsleep 300 &\necho $! > {}\nwait\n", pidfile.display()),
    );
    let mut s = fake.symbolizer();
    s.timeout = Duration::from_millis(700);
    let started = Instant::now();
    let err = s.decode(REPORT).expect_err("must time out");
    let took = started.elapsed();
    assert!(matches!(err, SymbolizeError::Timeout { .. }), "{err}");
    assert!(
        err.to_string().starts_with("could not symbolize: decode_stacktrace.sh did not finish within 0.7 s"),
        "{err}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let child: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    // The grandchild (the script's `sleep`) went with it.
    let deadline = Instant::now() + Duration::from_secs(3);
    while Path::new(&format!("/proc/{child}")).exists() && !is_zombie(child) {
        assert!(Instant::now() < deadline, "the script's child {child} survived the timeout");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(true)
}

#[test]
fn fake_script_a_missing_tool_script_or_vmlinux_is_a_clear_error() {
    let fake = Fake::new(ECHO_SCRIPT);
    std::fs::remove_file(fake.path("bin/llvm-addr2line")).unwrap();
    let err = fake.symbolizer().decode(REPORT).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SymbolizeError::MissingTool { .. }), "{msg}");
    assert!(msg.starts_with("could not symbolize: `") && msg.contains("llvm-addr2line` is not on PATH"), "{msg}");

    let s = Symbolizer::new(&fake.path("vmlinux"), &fake.path("tree"), Tools::Llvm("-999".into()));
    let msg = s.decode(REPORT).unwrap_err().to_string();
    assert!(msg.contains("`llvm-readelf-999` is not on PATH") && msg.contains("install llvm-999"), "{msg}");

    let fake = Fake::new(ECHO_SCRIPT);
    std::fs::remove_file(fake.path("tree/scripts/decode_stacktrace.sh")).unwrap();
    let msg = fake.symbolizer().decode(REPORT).unwrap_err().to_string();
    assert!(msg.starts_with("could not symbolize: decode_stacktrace.sh ") && msg.ends_with("does not exist"), "{msg}");

    let fake = Fake::new(ECHO_SCRIPT);
    std::fs::remove_file(fake.path("vmlinux")).unwrap();
    let msg = fake.symbolizer().decode(REPORT).unwrap_err().to_string();
    assert!(msg.starts_with("could not symbolize: vmlinux "), "{msg}");
}

#[test]
fn fake_script_that_resolves_nothing_is_not_passed_off_as_symbolized() {
    // What the real script does when addr2line finds nothing: the input back.
    let fake = Fake::new("#!/usr/bin/env bash\necho 'WARNING! No debugging info' >&2\ncat\n");
    let err = fake.symbolizer().decode(REPORT).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SymbolizeError::NothingResolved { frames: 3, .. }), "{msg}");
    assert!(
        msg.contains("none of the report's 3 frames got a file:line") && msg.contains("No debugging info"),
        "{msg}"
    );
}

#[test]
fn fake_script_that_fails_says_so() {
    let fake = Fake::new("#!/usr/bin/env bash\necho 'ERROR! vmlinux image must be specified' >&2\nexit 1\n");
    let msg = fake.symbolizer().decode(REPORT).unwrap_err().to_string();
    assert!(msg.starts_with("could not symbolize: decode_stacktrace.sh failed (exit status: 1)"), "{msg}");
    assert!(msg.contains("vmlinux image must be specified"), "{msg}");
}

#[test]
fn fake_script_results_are_cached_per_vmlinux_and_report() {
    let fake = Fake::new("");
    let count = fake.path("runs");
    write_exe(
        &fake.path("tree/scripts/decode_stacktrace.sh"),
        &format!("#!/usr/bin/env bash\necho run >> {}\nsed 's/+0x.*/ (a.c:1)/'\n", count.display()),
    );
    let s = fake.symbolizer();
    let first = s.decode(REPORT).unwrap();
    let second = s.decode(REPORT).unwrap();
    assert!(!first.cached && second.cached);
    assert_eq!(first.lines, second.lines);
    assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 1);
    s.decode(&format!("{REPORT}\n")).unwrap_or_else(|e| panic!("{e}"));
    s.decode("RIP: 0010:other+0x1/0x2").unwrap();
    assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 3, "another report runs again");
    // A rebuilt vmlinux (other size) is another key.
    std::fs::write(fake.path("vmlinux"), b"rebuilt: not really an ELF either").unwrap();
    assert!(!s.decode(REPORT).unwrap().cached);
}

#[test]
fn fake_script_symbolize_console_takes_a_report_range_and_the_build_dir() {
    let fake = Fake::new(ECHO_SCRIPT);
    std::fs::create_dir_all(fake.path("build")).unwrap();
    std::fs::rename(fake.path("vmlinux"), fake.path("build/vmlinux")).unwrap();
    let console = format!("[    0.5] hidvm: step 1: write to hidraw\n{REPORT}\n[    1.1] hidvm: step 1: FAILED\n");
    let report = hidvm::judge::title::crash_reports(&console).remove(0);
    assert_eq!(report.lines, 1..9);
    let out = symbolize_console(&console, report.lines.clone(), &fake.path("build"), &fake.path("tree"), fake.tools())
        .unwrap();
    assert!(out.lines[0].contains(&format!("{}|", fake.path("build/vmlinux").display())), "{}", out.lines[0]);
    assert!(out.lines[0].contains(&format!("|{}|", fake.path("build").display())), "modules dir: {}", out.lines[0]);
    assert_eq!(out.lines.len(), 1 + 8);
    assert!(!out.lines.iter().any(|l| l.contains("hidvm: step")));
}

// ---------------------------------------------------------------------------
// Real kernels

/// A finished kernel build: (build dir, tree, tools, cell, kernel version).
type Built = (PathBuf, PathBuf, Tools, String, String);

/// Every finished build of the cells whose make variables use LLVM (or
/// not), newest first: (major.minor, the build).
fn every_built(llvm: bool) -> Vec<(String, Built)> {
    let repo = hidvm::base::layout::Repo::locate();
    let Ok(cells) = hidvm::kernel::cell::load(&repo.cells_file()) else { return Vec::new() };
    let mut found = Vec::new();
    for (record_dir, build) in build_dirs() {
        let Ok(text) = std::fs::read_to_string(record_dir.join("record.json")) else { continue };
        let Ok(record) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        let field = |k: &str| record[k].as_str().unwrap_or_default().to_string();
        let Some(cell) = cells.iter().find(|c| c.name == field("cell")) else { continue };
        let tools = Tools::for_make_vars(&cell.make);
        let vmlinux = build.join("vmlinux");
        // The tree as the compiler saw it (a workspace's build tree).
        let tree = Some(field("source_base")).filter(|b| !b.is_empty()).unwrap_or_else(|| field("source_root"));
        if matches!(tools, Tools::Llvm(_)) != llvm || !vmlinux.exists() {
            continue;
        }
        let mtime = std::fs::metadata(&vmlinux).and_then(|m| m.modified()).ok();
        let version: String = field("kernel_version").split('.').take(2).collect::<Vec<_>>().join(".");
        found.push((version, mtime, (build, PathBuf::from(tree), tools, cell.name.clone(), field("kernel_version"))));
    }
    found.sort_by(|a, b| (&b.0, b.1).cmp(&(&a.0, a.1)));
    found.into_iter().map(|(v, _, b)| (v, b)).collect()
}

/// Every finished build (LLVM or not), newest first.
fn every_built_kernel(llvm: bool) -> Vec<Built> {
    every_built(llvm).into_iter().map(|(_, b)| b).collect()
}

/// The newest finished build per kernel version of the cells whose make
/// variables use LLVM (or not).
fn built_kernels(llvm: bool) -> Result<Vec<Built>, String> {
    let mut newest: Vec<Built> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (version, b) in every_built(llvm) {
        if seen.insert(version) {
            newest.push(b);
        }
    }
    if newest.is_empty() {
        return Err(format!(
            "no finished {} kernel build under {}",
            if llvm { "LLVM" } else { "gcc" },
            hidvm::base::layout::cache_root().display()
        ));
    }
    newest.reverse();
    Ok(newest)
}

/// Why the frames of `body` (a kernel report) do not fit `syms`: the kernel
/// prints kallsyms sizes, the distance to the next symbol, so the ELF size
/// (nm -S) plus the alignment padding. None: every frame fits.
fn sizes_mismatch(body: &[&str], syms: &std::collections::HashMap<String, (u64, u64)>) -> Option<String> {
    for line in body {
        let rip = line.split_once("RIP: 0010:").map(|x| x.1);
        let Some(frame) =
            rip.and_then(hidvm::judge::title::parse_frame).or_else(|| hidvm::judge::title::parse_frame(line))
        else {
            continue;
        };
        let elf = syms.get(&frame.symbol).map(|s| s.1).unwrap_or_default();
        let printed = frame.size.unwrap_or_default();
        if !(elf > 0 && printed >= elf && printed - elf < 64) {
            return Some(format!("{} is {printed:#x} in the report but {elf:#x} in this vmlinux", frame.symbol));
        }
    }
    None
}

/// (directory with record.json, directory with vmlinux) of every finished
/// build: `kbuild/*/<cell>/out/<key>/` and the older `kernels/<cell>-*/`.
fn build_dirs() -> Vec<(PathBuf, PathBuf)> {
    let root = hidvm::base::layout::cache_root();
    let list = |d: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(d).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect()
    };
    let mut out: Vec<(PathBuf, PathBuf)> =
        list(&root.join("kernels")).into_iter().map(|d| (d.clone(), d.join("build"))).collect();
    for ws in list(&root.join("kbuild")) {
        for cell in list(&ws) {
            out.extend(list(&cell.join("out")).into_iter().map(|d| (d.clone(), d)));
        }
    }
    out
}

/// Symbols of vmlinux: name -> (address, size), with binutils' nm (reads
/// LLVM-built ELF as well). Assembly symbols without a size get the
/// distance to the next symbol, as kallsyms prints it.
fn symbols(vmlinux: &Path) -> std::collections::HashMap<String, (u64, u64)> {
    let out =
        std::process::Command::new("nm").args(["-S", "-n", "--defined-only"]).arg(vmlinux).output().expect("nm runs");
    let hex = |s: &str| u64::from_str_radix(s, 16).unwrap_or(0);
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    let mut map = std::collections::HashMap::new();
    for (i, w) in rows.iter().enumerate() {
        let (addr, size, kind, name) = match w.as_slice() {
            [a, s, k, n] => (hex(a), hex(s), *k, *n),
            [a, k, n] => {
                let next = rows[i + 1..].iter().map(|r| hex(r[0])).find(|&n| n > hex(a)).unwrap_or(hex(a));
                (hex(a), next - hex(a), *k, *n)
            }
            _ => continue,
        };
        if matches!(kind, "t" | "T") && size > 0 {
            map.entry(name.to_string()).or_insert((addr, size));
        }
    }
    map
}

/// The offset of the return address after a call from `caller` to
/// `callee` (any call if it has none: inlined or a tail call), as a
/// trace prints it.
fn return_offset(vmlinux: &Path, (addr, size): (u64, u64), callee: Option<&str>) -> u64 {
    let out = std::process::Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(format!("--start-address=0x{addr:x}"))
        .arg(format!("--stop-address=0x{:x}", addr + size))
        .arg(vmlinux)
        .output()
        .expect("objdump runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let insns: Vec<(u64, &str)> = text
        .lines()
        .filter_map(|l| {
            let (a, rest) = l.trim().split_once(':')?;
            Some((u64::from_str_radix(a, 16).ok()?, rest))
        })
        .collect();
    let is_call = |i: &&(u64, &str)| i.1.contains("call") && !i.1.contains("__fentry__");
    let call = insns
        .iter()
        .filter(is_call)
        .find(|i| callee.is_some_and(|c| i.1.contains(&format!("<{c}>")) || i.1.contains(&format!("<{c}."))))
        .or_else(|| insns.iter().find(is_call));
    match call.and_then(|c| insns.iter().find(|i| i.0 > c.0)) {
        Some(next) => next.0 - addr,
        None => size / 2,
    }
}

/// A page fault report with ~20 frames, innermost first: `chain[0]` in
/// RIP, each next one the caller of the one before (where there is such
/// a call), then stale `?` frames of the destroy path.
fn realistic_report(vmlinux: &Path) -> (String, usize) {
    let syms = symbols(vmlinux);
    let chains: [&[&str]; 3] = [
        &[
            "__srcu_read_unlock",
            "dispatch_hid_bpf_output_report",
            "hidraw_send_report",
            "hidraw_write",
            "vfs_write",
            "ksys_write",
            "__x64_sys_write",
            "do_syscall_64",
            "entry_SYSCALL_64_after_hwframe",
        ],
        &["cleanup_srcu_struct", "hid_bpf_destroy_device", "hid_destroy_device", "uhid_dev_destroy", "uhid_char_write"],
        &[
            "synchronize_srcu",
            "__hid_bpf_ops_destroy_device",
            "lkdtm_BUG",
            "lkdtm_do_action",
            "direct_entry",
            "full_proxy_write",
        ],
    ];
    let mut lines = vec![
        "[   41.118201] BUG: unable to handle page fault for address: ffffe8ffffc03a10".to_string(),
        "[   41.118512] Oops: Oops: 0002 [#1] SMP".to_string(),
    ];
    let mut frames = 0;
    let find = |name: &str| -> Option<(String, (u64, u64))> {
        syms.get(name).map(|s| (name.to_string(), *s)).or_else(|| {
            // A promoted static on LLVM: name.llvm.<hash>.
            syms.iter().find(|(k, _)| k.starts_with(&format!("{name}.llvm."))).map(|(k, s)| (k.clone(), *s))
        })
    };
    for (c, chain) in chains.iter().enumerate() {
        let present: Vec<(String, (u64, u64))> = chain.iter().filter_map(|n| find(n)).collect();
        for (i, (name, sym)) in present.iter().enumerate() {
            let callee = i.checked_sub(1).map(|j| present[j].0.split('.').next().unwrap_or_default().to_string());
            let size = if sym.1 == 0 { 0x50 } else { sym.1 };
            if c == 0 && i == 0 {
                lines.push(format!("[   41.118630] RIP: 0010:{name}+0x{:x}/0x{size:x}", size / 2));
                lines.push("[   41.119100] Call Trace:".into());
                lines.push("[   41.119150]  <TASK>".into());
            } else {
                let off = return_offset(vmlinux, (sym.0, size), callee.as_deref());
                let q = if c == 0 { "" } else { "? " };
                lines.push(format!("[   41.119400]  {q}{name}+0x{off:x}/0x{size:x}"));
            }
            frames += 1;
        }
    }
    lines.push("[   41.119800]  </TASK>".into());
    (lines.join("\n"), frames)
}

fn decode_real(llvm: bool) {
    let which = if llvm { "llvm" } else { "gcc" };
    let kernels = match built_kernels(llvm) {
        Ok(k) => k,
        Err(why) => {
            eprintln!(
                "SKIPPED real_{which}: {why}: build one with `hidvm build` (the test needs a vmlinux with debug info)"
            );
            return;
        }
    };
    for kernel in kernels {
        decode_one(kernel);
    }
}

fn decode_one((build, tree, tools, cell, version): Built) {
    let vmlinux = build.join("vmlinux");
    let (report, frames) = realistic_report(&vmlinux);
    assert!(frames >= 18, "only {frames} of the report's functions are in {}", vmlinux.display());
    let mut s = Symbolizer::new(&vmlinux, &tree, tools.clone());
    s.modules = Some(build.clone());
    let out = s.decode(&report).unwrap_or_else(|e| panic!("{cell} {version}: {e}"));
    eprintln!(
        "{cell} ({version}, {tools:?}): {frames} frames decoded in {:.2} s, {} resolved\n{}",
        out.elapsed.as_secs_f64(),
        out.resolved,
        out.lines.join("\n")
    );
    // Every frame line has a file:line.
    let unresolved: Vec<&String> =
        out.lines.iter().filter(|l| l.contains("+0x") && !l.contains("Code:")).collect::<Vec<_>>();
    assert!(unresolved.is_empty(), "{cell}: frames left undecoded: {unresolved:#?}");
    assert_eq!(out.resolved, frames, "{cell}: {:#?}", out.lines);
    // Inlined frames show: the frame of dispatch_hid_bpf_output_report,
    // returning from __srcu_read_unlock, is inside srcu_read_unlock()
    // (include/linux/srcu.h) inlined into it.
    let dispatch = out.lines.iter().find(|l| l.contains("dispatch_hid_bpf_output_report (")).expect("dispatch frame");
    assert!(dispatch.contains("include/linux/srcu.h:"), "{cell}: no inlined srcu_read_unlock in {dispatch}");
    assert!(dispatch.contains("drivers/hid/bpf/hid_bpf_dispatch.c:"), "{cell}: {dispatch}");
    // Paths are relative to the tree.
    assert!(!out.lines.iter().any(|l| l.contains(&*tree.to_string_lossy())), "{cell}: absolute paths left");
    // The second time is served from the cache.
    assert!(s.decode(&report).unwrap().cached);
}

#[test]
fn real_gcc_vmlinux_frames_get_file_line_or_skipped_loudly() {
    decode_real(false);
}

#[test]
fn real_llvm_vmlinux_frames_get_file_line_or_skipped_loudly() {
    decode_real(true);
}

#[test]
fn real_vmlinux_with_the_wrong_tools_still_decodes_or_says_why() {
    // binutils' addr2line on an LLVM vmlinux: what a caller gets with the
    // wrong Tools. Either way the result is honest: decoded, or an error.
    let Some((build, tree, _, cell, _)) = built_kernels(true).ok().and_then(|k| k.into_iter().next()) else {
        eprintln!("SKIPPED real_vmlinux_with_the_wrong_tools: no finished LLVM kernel build");
        return;
    };
    let report =
        format!("RIP: 0010:__srcu_read_unlock+0x1/0x{:x}", symbols(&build.join("vmlinux"))["__srcu_read_unlock"].1);
    match Symbolizer::new(&build.join("vmlinux"), &tree, Tools::Binutils).decode(&report) {
        Ok(out) => assert_eq!(out.resolved, 1, "{cell}: {:#?}", out.lines),
        Err(e) => assert!(e.to_string().starts_with("could not symbolize: "), "{e}"),
    }
}

#[test]
fn real_srcu_sample_matches_the_7_3_llvm_kernel_or_skipped_loudly() {
    // tests/splats/srcu-page-fault-7.3-llvm.txt is a real crash of that
    // cell's kernel: its sizes are the vmlinux's, and it decodes to the story of
    // the bug (srcu_read_unlock inlined into dispatch_hid_bpf_output_report,
    // called from hidraw_write).
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/splats/srcu-page-fault-7.3-llvm.txt");
    let text = std::fs::read_to_string(path).unwrap();
    let body: Vec<&str> = text.lines().filter(|l| !l.starts_with("# ")).collect();
    // Only the very kernel that crashed can decode its addresses: among
    // every 7.3.4 LLVM build in the cache, the one whose symbol sizes are
    // those the report printed (a config change, e.g. a new fragment, makes
    // another kernel).
    let candidates: Vec<Built> = every_built_kernel(true).into_iter().filter(|k| k.4 == "7.3.4").collect();
    let mut mismatches = Vec::new();
    let mut found = None;
    for k in candidates {
        match sizes_mismatch(&body, &symbols(&k.0.join("vmlinux"))) {
            None => {
                found = Some(k);
                break;
            }
            Some(why) => mismatches.push(format!("{}: {why}", k.0.display())),
        }
    }
    let Some((build, tree, tools, _cell, _version)) = found else {
        eprintln!(
            "SKIPPED real_srcu_sample: the sample's kernel is not in the cache (a 7.3.4 LLVM build of the config it crashed on); {}",
            if mismatches.is_empty() { "no 7.3.4 LLVM build at all".to_string() } else { mismatches.join("; ") }
        );
        return;
    };
    let report = hidvm::judge::title::parse_report(&body.join("\n"));
    let mut s = Symbolizer::new(&build.join("vmlinux"), &tree, tools);
    s.modules = Some(build.clone());
    let out = s.decode(&body[report.lines.clone()].join("\n")).unwrap();
    let line = |f: &str| out.lines.iter().find(|l| l.contains(&format!("{f} ("))).cloned().unwrap_or_default();
    assert!(line("dispatch_hid_bpf_output_report").contains("include/linux/srcu.h:"), "{:#?}", out.lines);
    assert!(line("hidraw_send_report").contains("drivers/hid/hidraw.c:"), "{:#?}", out.lines);
    assert!(line("__srcu_read_unlock").contains("kernel/rcu/srcutree.c:"), "{:#?}", out.lines);
}
