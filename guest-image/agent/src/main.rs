//! hidvm guest agent: PID 1 of every hidvm VM.
//!
//! It mounts the pseudo filesystems, reads the job the host put into the
//! initramfs (or, restored from a snapshot, was delivered: `snapshot.rs`),
//! runs it, reports JSON lines on the result UART and ends the VM with a
//! reboot (QEMU runs with -no-reboot, so that is an exit). It never
//! returns: PID 1 exiting would panic the kernel.
mod bpf;
mod budget;
mod channel;
mod command;
mod device;
mod health;
mod hidraw;
mod holder;
mod init;
mod input;
mod loader;
mod pytest;
mod run;
mod shell;
mod snapshot;
mod state;
mod steps;
mod tracer;
mod uhid;
mod userspace;
mod wait;

use hidvm_proto::{GuestMsg, Job, JobMode, JOB_PATH};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // The same binary is the link holder, the chroot helper and, called by
    // that name inside the hid-tools userspace, udev-hid-bpf.
    if args.first().and_then(|a| a.rsplit('/').next()) == Some(hidvm_proto::job::UDEV_HID_BPF) {
        loader::main(&args[1..]);
    }
    match args.get(1).map(String::as_str) {
        Some(holder::HELPER_ARG) => holder::helper_main(&args[2..]),
        Some(userspace::CHROOT_ARG) => userspace::chroot_exec_main(&args[2..]),
        _ => {}
    }
    // Everything after this point reports through the channel; a panic is
    // turned into a failed verdict so the host sees why, not only a timeout.
    init::mount_pseudo_filesystems();
    channel::open();
    std::panic::set_hook(Box::new(|info| {
        let summary = format!("agent panicked: {info}");
        channel::kmsg(&summary);
        channel::send_done(&GuestMsg::Done { passed: false, summary });
        init::end_vm();
    }));

    // A snapshot template is frozen in here; a restored guest goes on
    // from it with the files its cold twin would have had.
    let delivered = if snapshot::is_template() { snapshot::await_delivery() } else { Ok(()) };
    let job = delivered.and_then(|()| load_job());
    channel::send(&init::hello(job.as_ref().map(|j| j.nonce.as_str()).unwrap_or("")));
    let done = match job {
        Ok(job) => {
            budget::set_vm_deadline(std::time::Duration::from_millis(job.deadline_ms));
            match job.mode {
                JobMode::Probe => GuestMsg::Done { passed: true, summary: "probe: guest booted".into() },
                JobMode::Scenario { scenario, devices, fixtures, replays, bless } => {
                    run::run_scenario(run::ScenarioJob {
                        cell: &job.cell,
                        scenario: &scenario,
                        defs: devices,
                        fixtures,
                        replays,
                        bless,
                        detectors: job.detectors,
                    })
                }
                JobMode::Command { argv, cwd } => command::run(&argv, &cwd),
                JobMode::Shell { devices, banner, attach, fixtures, userspace } => {
                    shell::run(devices, &banner, &attach, fixtures, userspace)
                }
                JobMode::Pytest { args, broken_remove } => pytest::run(&args, broken_remove),
            }
        }
        Err(e) => GuestMsg::Done { passed: false, summary: format!("no job ({JOB_PATH}): {e}") },
    };
    channel::send_done(&done);
    init::end_vm();
}

fn load_job() -> Result<Job, String> {
    let text = std::fs::read_to_string(JOB_PATH).map_err(|e| format!("cannot read it: {e}"))?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}
