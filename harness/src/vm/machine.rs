//! Running one VM with a deadline. QEMU's exit status is recorded but
//! never taken as success: a kernel panic with panic=-1 also exits 0.
use crate::base::timeline::{Phase, Timeline};
use crate::vm::feature::{Feature, CONSOLE_CHARDEV};
use crate::vm::process::{command_line, connect_console, copy_console, spawn_qemu, KillOnDrop};
use crate::vm::qmp::Qmp;
use crate::vm::snapshot::Restore;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Vm {
    pub qemu: PathBuf,
    pub features: Vec<Box<dyn Feature>>,
    pub deadline: Duration,
    /// The console socket (see `feature::Console`) and the log it is copied to.
    pub console_socket: PathBuf,
    pub console_log: PathBuf,
    /// The QMP socket (see `feature::QmpMonitor`), used for hang diagnostics.
    pub qmp_socket: Option<PathBuf>,
    /// Start from a snapshot (QEMU runs with `-incoming defer`).
    pub restore: Option<Restore>,
    /// The result channel's file, watched for the guest's verdict.
    pub results: Option<PathBuf>,
}

#[derive(Debug)]
pub struct VmOutcome {
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    pub elapsed: Duration,
    /// What QEMU itself printed (errors such as a bad -kernel image).
    pub qemu_output: String,
    /// Why restoring the snapshot failed (the guest never ran its job).
    pub restore_failed: Option<String>,
    /// The guest sent its verdict but did not end: QEMU was stopped.
    pub stuck_after_verdict: bool,
    /// From starting QEMU to the agent's first line on the result channel
    /// (for `hidvm bench`; 5 ms resolution).
    pub first_answer: Option<Duration>,
    /// Where the VM's time went: QEMU's start, the restore, the guest's
    /// job, its shutdown.
    pub phases: Vec<Phase>,
}

/// Sysrq keys sent over the serial console when a VM hangs: `w` dumps
/// blocked (D state) tasks, `l` backtraces every CPU.
const SYSRQ_DIAGNOSTICS: &[u8] = b"wl";
const SYSRQ_SETTLE: Duration = Duration::from_millis(1500);

impl VmOutcome {
    /// A VM hidvm stopped before its guest ran its job (no console, or a
    /// restore that failed): QEMU's words, and why.
    fn stopped(started: Instant, qemu_output: String, restore_failed: Option<String>) -> VmOutcome {
        VmOutcome {
            status: None,
            timed_out: false,
            elapsed: started.elapsed(),
            qemu_output,
            restore_failed,
            stuck_after_verdict: false,
            first_answer: None,
            phases: Vec::new(),
        }
    }
}

/// The restore failed (`why`): stop QEMU, keep what its guest printed on
/// the console, and say why.
fn stop_after_failed_restore(
    guard: KillOnDrop<'_>,
    pump: Option<std::thread::JoinHandle<()>>,
    started: Instant,
    why: String,
) -> std::io::Result<VmOutcome> {
    let handle = guard.0;
    let _ = handle.kill();
    std::mem::forget(guard);
    let output = handle.wait()?;
    if let Some(p) = pump {
        let _ = p.join();
    }
    let said = String::from_utf8_lossy(&output.stdout).trim().to_string();
    Ok(VmOutcome::stopped(started, said, Some(why)))
}

impl Vm {
    pub fn args(&self) -> Vec<String> {
        command_line(&self.features)
    }

    pub fn run(&self) -> std::io::Result<VmOutcome> {
        let mut args = self.args();
        if self.restore.is_some() {
            args.extend(["-incoming".to_string(), "defer".to_string()]);
        }
        let started = Instant::now();
        let handle = spawn_qemu(&self.qemu, &args)?;
        let guard = KillOnDrop(&handle);
        let mut timeline = Timeline::since(started);

        // QEMU waits for us on the console socket before starting the guest.
        let Some(console) = connect_console(&self.console_socket, &handle, started + Duration::from_secs(10)) else {
            return self.stop_without_console(guard, started);
        };
        timeline.mark("QEMU start");
        let pump = console.try_clone().ok().map(|c| {
            let log = self.console_log.clone();
            std::thread::spawn(move || copy_console(c, &log))
        });
        // Kept open until QEMU ends: the guest's port stays connected.
        let mut _delivery = None;
        let mut first_answer = None;
        if let (Some(restore), Some(qmp)) = (&self.restore, &self.qmp_socket) {
            let exited = || match handle.try_wait() {
                Ok(Some(out)) => Some(format!("exit status {}", out.status)),
                Ok(None) => None,
                Err(e) => Some(format!("waiting for it: {e}")),
            };
            match restore.start(qmp, &exited, &mut timeline) {
                Ok(stream) => {
                    // start() returns once the guest answered.
                    first_answer = Some(started.elapsed());
                    _delivery = Some(stream);
                }
                Err(why) => return stop_after_failed_restore(guard, pump, started, why),
            }
        }

        let (finished, stuck_after_verdict) = self.wait(&handle, started, &mut first_answer)?;
        let timed_out = finished.is_none() && !stuck_after_verdict;
        if stuck_after_verdict {
            let _ = handle.kill();
        }
        if timed_out {
            if let Some(qmp) = &self.qmp_socket {
                let _ = ask_for_diagnostics(qmp, &console);
            }
            let _ = handle.kill();
        }
        std::mem::forget(guard);
        let output = handle.wait()?;
        let exited = started.elapsed();
        if let Some(p) = pump {
            let _ = p.join();
        }
        self.mark_guest_phases(&mut timeline, first_answer, exited);
        Ok(VmOutcome {
            status: (!timed_out).then_some(output.status),
            timed_out,
            elapsed: started.elapsed(),
            qemu_output: String::from_utf8_lossy(&output.stdout).trim().to_string(),
            restore_failed: None,
            stuck_after_verdict,
            first_answer,
            phases: timeline.into_phases(),
        })
    }

    /// QEMU did not open the console socket in time. Without the console
    /// nothing can be judged, and QEMU (wait=on) would sit until the
    /// deadline: stop now and say why.
    fn stop_without_console(&self, guard: KillOnDrop<'_>, started: Instant) -> std::io::Result<VmOutcome> {
        let handle = guard.0;
        let _ = handle.kill();
        std::mem::forget(guard);
        let output = handle.wait()?;
        let mut said = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if said.is_empty() {
            said = format!(
                "QEMU did not open the console socket {} within 10 s; the command is in qemu-command.txt",
                self.console_socket.display()
            );
        }
        Ok(VmOutcome::stopped(started, said, None))
    }

    /// The guest's phases, once QEMU has exited: its start (to its first
    /// line), its job (to its verdict), its shutdown.
    fn mark_guest_phases(&self, timeline: &mut Timeline, first_answer: Option<Duration>, exited: Duration) {
        if let Some(at) = first_answer {
            timeline.mark_at("guest start (to its first line)", at);
        }
        // The results file was last written with the verdict.
        if let Some(when) = self.results.as_ref().and_then(|r| std::fs::metadata(r).ok()?.modified().ok()) {
            timeline.mark_wall("guest job (to its verdict)", when);
        }
        timeline.mark_at("guest shutdown and QEMU exit", exited);
    }

    /// Wait for QEMU to exit, until the deadline, or until the guest has
    /// sent its verdict and then not ended within SHUTDOWN_GRACE (a CPU
    /// left spinning on purpose can keep reboot from ever finishing):
    /// (exit status, whether it was stuck after its verdict).
    fn wait(
        &self,
        handle: &duct::Handle,
        started: Instant,
        first_answer: &mut Option<Duration>,
    ) -> std::io::Result<(Option<std::process::Output>, bool)> {
        let mut verdict_seen: Option<Instant> = None;
        loop {
            let remaining = self.deadline.saturating_sub(started.elapsed());
            let slice = remaining.min(Duration::from_millis(if first_answer.is_none() { 5 } else { 50 }));
            if let Some(out) = handle.wait_timeout(slice)? {
                return Ok((Some(out.clone()), false));
            }
            if remaining.is_zero() {
                return Ok((None, false));
            }
            let Some(results) = &self.results else { continue };
            if first_answer.is_none() {
                if std::fs::metadata(results).map(|m| m.len() > 0).unwrap_or(false) {
                    *first_answer = Some(started.elapsed());
                }
                continue;
            }
            match verdict_seen {
                Some(at) if at.elapsed() > SHUTDOWN_GRACE => return Ok((None, true)),
                Some(_) => {}
                None => {
                    let text = std::fs::read_to_string(results).unwrap_or_default();
                    let done = text
                        .lines()
                        .filter_map(hidvm_proto::GuestMsg::from_line)
                        .any(|m| matches!(m, Ok(hidvm_proto::GuestMsg::Done { .. })));
                    if done {
                        verdict_seen = Some(Instant::now());
                    }
                }
            }
        }
    }
}

/// A guest ends in well under a second after its verdict (teardown is
/// done by then; reboot=t is immediate).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// A serial BREAK followed by a key is a magic sysrq on the guest's
/// console UART.
fn ask_for_diagnostics(qmp_socket: &Path, console: &UnixStream) -> std::io::Result<()> {
    let mut qmp = Qmp::connect(qmp_socket)?;
    let mut console = console;
    for key in SYSRQ_DIAGNOSTICS {
        qmp.execute("chardev-send-break", serde_json::json!({ "id": CONSOLE_CHARDEV }))?;
        console.write_all(&[*key])?;
        std::thread::sleep(SYSRQ_SETTLE);
    }
    Ok(())
}
