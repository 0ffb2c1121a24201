//! `hidvm shell`: an interactive busybox shell on the console, for poking
//! at a kernel by hand. The scenario's devices (if any) are created first
//! and its attach steps done (programs matched, probed and
//! attached); devices and links stay alive while the shell runs; the
//! fixtures are in /hidvm/fixtures. When the shell exits, the VM ends.
//! With the hid-tools userspace attached the shell is bash inside it
//! (hid-tools' hid-recorder, hid-replay and hid-decode, bpftool, python3,
//! the kernel's modules, the fixtures in /hidvm/fixtures there too).
use crate::device::Device;
use crate::state::Runner;
use hidvm_proto::job::BUSYBOX_PATH;
use hidvm_proto::steps::Attach;
use hidvm_proto::{DeviceDef, GuestFixture, GuestMsg};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};

const CONSOLE: &str = "/dev/ttyS0";

pub fn run(
    defs: BTreeMap<String, DeviceDef>,
    banner: &[String],
    attach: &[Attach],
    fixtures: BTreeMap<String, GuestFixture>,
    userspace: bool,
) -> GuestMsg {
    let fail = |summary: String| GuestMsg::Done { passed: false, summary };
    // The applets (sh, ls, cat, …) as links to busybox.
    let installed = Command::new(BUSYBOX_PATH).args(["--install", "-s", "/bin"]).status();
    if !matches!(installed, Ok(s) if s.success()) {
        return fail(format!("{BUSYBOX_PATH} --install failed: {installed:?}"));
    }
    let console = match std::fs::OpenOptions::new().read(true).write(true).open(CONSOLE) {
        Ok(f) => f,
        Err(e) => return fail(format!("opening {CONSOLE}: {e}")),
    };
    let say = |line: &str| {
        use std::io::Write;
        let _ = (&console).write_all(format!("{line}\r\n").as_bytes());
    };
    // Held until the shell exits: dropping a device destroys it, dropping
    // a link releases it.
    let mut runner = Runner::new(defs.clone(), fixtures, BTreeMap::new(), false);
    for (index, (id, def)) in defs.iter().enumerate() {
        match Device::create(id, def, index) {
            Ok(d) => {
                say(&format!("hidvm shell: device {}", d.describe()));
                runner.devices.insert(id.clone(), d);
            }
            Err(e) => say(&format!("hidvm shell: device {id} could not be created: {e}")),
        }
    }
    attach_all(&mut runner, attach, &say);
    for line in banner {
        say(line);
    }
    if userspace {
        match crate::userspace::mount_all(true) {
            Ok(notes) => notes.iter().for_each(|n| say(&format!("hidvm shell: {n}"))),
            Err(e) => return fail(format!("assembling the userspace: {e}")),
        }
        if let Err(e) = crate::userspace::expose(hidvm_proto::job::FIXTURE_DIR, hidvm_proto::job::FIXTURE_DIR) {
            say(&format!("hidvm shell: the programs are not in the userspace: {e}"));
        }
    }
    let dup = |f: &std::fs::File| f.try_clone().map(Stdio::from);
    let (Ok(i), Ok(o), Ok(e)) = (dup(&console), dup(&console), dup(&console)) else {
        return fail("duplicating the console fd".into());
    };
    // A session of its own with the console as its controlling terminal
    // (Ctrl-C reaches the shell's foreground job): busybox's `setsid -c`.
    // Not a pre_exec closure: std's fork path fails in these guests with
    // EAFNOSUPPORT, its posix_spawn path works.
    let mut cmd = Command::new("/bin/setsid");
    if userspace {
        let root = crate::userspace::ROOT;
        cmd.args(["-c", "/init", crate::userspace::CHROOT_ARG, root, "/root", "/bin/bash", "--norc", "-i"])
            .env_clear()
            .env("PATH", crate::userspace::PATH)
            .env("HOME", "/root")
            .env("TERM", "vt100")
            .env("LANG", "C.UTF-8");
    } else {
        cmd.args(["-c", "/bin/sh"]).env("PATH", "/bin:/sbin:/usr/bin:/usr/sbin").env("HOME", "/");
    }
    cmd.env("PS1", "hidvm# ").stdin(i).stdout(o).stderr(e);
    let status = match cmd.spawn().and_then(|mut c| c.wait()) {
        Ok(s) => s,
        Err(e) => return fail(format!("running /bin/sh: {e}")),
    };
    // Links before devices, as a well-behaved user releases them.
    runner.links.clear();
    runner.objects.clear();
    drop(runner);
    GuestMsg::Done { passed: true, summary: format!("shell exited: {status}") }
}

/// The scenario's attach steps (the host chose them), each said on the console with
/// what went wrong (a failed one leaves the shell without that link).
fn attach_all(runner: &mut Runner, attach: &[Attach], say: &dyn Fn(&str)) {
    if !attach.is_empty() {
        crate::bpf::install_logger();
    }
    for a in attach {
        let o = crate::steps::links::attach(runner, a);
        let fixture = a.fixture.as_deref().unwrap_or("?");
        let what = format!("{fixture} to {} as link `{}`", a.device.as_deref().unwrap_or("?"), a.link);
        say(&format!("hidvm shell: attach {what}: {}", if o.ok() { "attached" } else { "FAILED" }));
        for c in o.checks.iter().filter(|c| !c.ok()) {
            say(&format!("hidvm shell:   {}: {}", c.what, c.comparison()));
        }
        for n in o.notes.iter().chain(o.error.iter()) {
            say(&format!("hidvm shell:   {n}"));
        }
    }
}
