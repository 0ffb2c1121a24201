//! Running one VM with a deadline. QEMU's exit status is recorded but
//! never taken as success: a kernel panic with panic=-1 also exits 0.
use super::Feature;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Vm {
    pub qemu: PathBuf,
    pub features: Vec<Box<dyn Feature>>,
    pub deadline: Duration,
}

#[derive(Debug)]
pub struct VmOutcome {
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    pub elapsed: Duration,
    /// What QEMU itself printed (errors such as a bad -kernel image).
    pub qemu_output: String,
    pub command: String,
}

impl Vm {
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = self.features.iter().flat_map(|f| f.qemu_args()).collect();
        let cmdline: Vec<String> = self.features.iter().flat_map(|f| f.kernel_args()).collect();
        args.push("-append".into());
        args.push(cmdline.join(" "));
        args
    }

    pub fn run(&self) -> std::io::Result<VmOutcome> {
        let args = self.args();
        let command = format!("{} {}", self.qemu.display(), shell_words(&args));
        let started = Instant::now();
        let handle = duct::cmd(&self.qemu, &args)
            .stdin_null()
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .before_spawn(|cmd| {
                use std::os::unix::process::CommandExt;
                // If this process dies (nextest timeout, Ctrl-C, crash), the
                // kernel kills QEMU too: no orphaned VMs.
                unsafe {
                    cmd.pre_exec(|| {
                        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                            .map_err(std::io::Error::from)
                    });
                }
                Ok(())
            })
            .start()?;
        let guard = KillOnDrop(&handle);
        let finished = handle.wait_timeout(self.deadline)?;
        let timed_out = finished.is_none();
        if timed_out {
            let _ = handle.kill();
        }
        std::mem::forget(guard);
        let output = handle.wait()?;
        Ok(VmOutcome {
            status: (!timed_out).then_some(output.status),
            timed_out,
            elapsed: started.elapsed(),
            qemu_output: String::from_utf8_lossy(&output.stdout).trim().to_string(),
            command,
        })
    }
}

/// Kill QEMU if we unwind past it (a panic in the harness).
struct KillOnDrop<'a>(&'a duct::Handle);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.chars().all(|c| c.is_ascii_alphanumeric() || "-_=,./:".contains(c)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
