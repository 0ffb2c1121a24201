//! `Command` jobs: run one program (the kernel's HID selftests) with bpffs
//! and debugfs mounted, stream what it prints to the host line by line
//! (so a hang still shows how far it got), and report its exit status.
use hidvm_proto::GuestMsg;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

pub fn run(argv: &[String], cwd: &str) -> GuestMsg {
    let Some((program, args)) = argv.split_first() else {
        return GuestMsg::Done { passed: false, summary: "command job without a program (host bug)".into() };
    };
    // stdout and stderr into one pipe, so their lines keep their order.
    let (reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => return GuestMsg::Done { passed: false, summary: format!("pipe: {e}") },
    };
    let writer2 = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => return GuestMsg::Done { passed: false, summary: format!("pipe: {e}") },
    };
    // PID 1 changes its own directory: with Command::current_dir, spawning
    // failed in these guests with EAFNOSUPPORT (measured on 6.12).
    if let Err(e) = std::env::set_current_dir(cwd) {
        return GuestMsg::Done { passed: false, summary: format!("chdir {cwd}: {e}") };
    }
    let child = Command::new(program).args(args).stdin(Stdio::null()).stdout(writer).stderr(writer2).spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return GuestMsg::Done { passed: false, summary: format!("starting {program}: {e}") },
    };
    for line in BufReader::new(reader).lines() {
        match line {
            Ok(line) => crate::channel::send(&GuestMsg::Output { line }),
            Err(_) => break,
        }
    }
    match child.wait() {
        Ok(status) => GuestMsg::Done { passed: status.success(), summary: format!("{program} exited: {status}") },
        Err(e) => GuestMsg::Done { passed: false, summary: format!("waiting for {program}: {e}") },
    }
}
