//! `Pytest` jobs: the kernel's hid-tools suite. The userspace is assembled
//! (`userspace`), pytest runs inside it as PID 1's child with its lines
//! streamed to the host (the TAP stream and the plugin's `@hidvm-pytest`
//! lines), and the kernel's health around the run is reported: taint, BPF
//! objects (every program the suite loaded must be gone), kmemleak.
use crate::health::{self, LeakWatch};
use crate::userspace;
use hidvm_proto::job::{BROKEN_REMOVE_ENV, PYTEST_DIR};
use hidvm_proto::{GuestMsg, Health};
use std::time::Instant;

/// Where the pytest plugin sits inside the userspace.
const PLUGIN_DIR: &str = "/hidvm/python";

pub fn run(args: &[String], broken_remove: bool) -> GuestMsg {
    let fail = |summary: String| GuestMsg::Done { passed: false, summary };
    match userspace::mount_all(true) {
        Ok(notes) => notes.iter().for_each(|n| crate::channel::kmsg(n)),
        Err(e) => return fail(format!("assembling the userspace: {e}")),
    }
    let taint_before = health::taint();
    let bpf_objects_before = health::objects();
    let prog_memory = health::ProgMemory::baseline();
    let leaks = LeakWatch::start();
    let mut base: Vec<&str> = vec!["-u", "-m", "pytest", "-p", "hidvm_pytest", "-p", "no:cacheprovider", "--color=no"];
    let rootdir = format!("--rootdir={PYTEST_DIR}");
    base.push(&rootdir);
    base.extend(args.iter().map(String::as_str));
    let mut cmd = userspace::chrooted(PYTEST_DIR, "/usr/bin/python3", &base);
    // udevd's complaints go to the kernel log, not into whichever test's
    // captured output is open when it writes.
    cmd.env("SYSTEMD_LOG_TARGET", "kmsg").env("PYTHONPATH", PLUGIN_DIR).env("PYTHONDONTWRITEBYTECODE", "1");
    if broken_remove {
        cmd.env(BROKEN_REMOVE_ENV, "1");
    }
    crate::channel::kmsg(&format!("pytest {}", args.join(" ")));
    let started = Instant::now();
    let status = crate::command::stream(cmd);
    let teardown_done = Instant::now();
    crate::channel::kmsg(&format!("pytest done after {:.1} s: {status:?}", started.elapsed().as_secs_f64()));
    // Freed programs' memory back at its baseline: the deferred frees done.
    let (bpf_objects_after, settled) = health::wait_objects(&bpf_objects_before, &prog_memory);
    crate::channel::kmsg(&format!("teardown done ({settled})"));
    crate::channel::send(&GuestMsg::Health(Health {
        taint_before,
        taint_after: health::taint(),
        bpf_objects_after,
        bpf_objects_before,
        kmemleak: leaks.finish(teardown_done),
    }));
    match status {
        Ok(s) => GuestMsg::Done { passed: s.success(), summary: format!("pytest exited: {s}") },
        Err(e) => fail(format!("pytest: {e}")),
    }
}
