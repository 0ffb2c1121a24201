//! `hidvm shell`: boot a target's kernel with an interactive busybox shell
//! on this terminal, for debugging by hand. bpffs and debugfs are mounted
//! (the agent does that in every VM), the programs are in /hidvm/fixtures
//! (the named scenario's, or every catalogue fixture), the agent is /init,
//! and with a scenario (a file of yours or a catalogue name) its devices
//! exist and its attach steps before its first release are done: its
//! programs attached. With the hid-tools userspace built (`hidvm
//! userspace`), the shell is bash inside it. `exit` (or Ctrl-D)
//! ends the VM; QEMU dies with hidvm, so nothing is left behind.
use crate::base::error::{Error, Result};
use crate::base::layout::new_run_dir;
use crate::base::tools::{self, Tool};
use crate::catalogue::fixtures::{self, FixtureRef};
use crate::kernel::spec::Target;
use crate::run::suite::Suite;
use crate::vm::accel::Accel;
use crate::vm::feature::Feature;
use crate::vm::feature::{
    ExitOnReboot, Initramfs as InitrdFeature, Kernel, MicroVm, PanicEndsVm, ReadOnlyDisk, ResultPort, StdioConsole,
};
use crate::vm::initramfs::Initramfs;
use hidvm_proto::job::{BUSYBOX_PATH, FIXTURE_DIR, MODULE_DIR};
use hidvm_proto::steps::Attach;
use hidvm_proto::{DeviceDef, GuestFixture, Job, JobMode, Step, JOB_PATH};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const BUSYBOX: Tool<'static> =
    Tool { name: "/bin/busybox", what: "static busybox for `hidvm shell`", package: "busybox-static" };

/// A dynamically linked busybox (package `busybox`) cannot run in a guest
/// without a libc: its ELF header names an interpreter.
fn is_static(path: &Path) -> bool {
    let head = std::fs::read(path).map(|b| b.into_iter().take(4096).collect::<Vec<u8>>()).unwrap_or_default();
    head.starts_with(b"\x7fELF") && !head.windows(14).any(|w| w == b"/lib64/ld-linu")
}

/// Boot the shell on `terminal` (default: this process's) and return
/// QEMU's exit status once the guest's shell exited.
pub fn run(
    suite: &Suite,
    target: &Target,
    scenario: Option<&str>,
    terminal: Option<std::os::fd::OwnedFd>,
) -> Result<i32> {
    let busybox = tools::require(&BUSYBOX)?;
    if !is_static(&busybox) {
        return Err(Error::Other(format!(
            "{} is dynamically linked (package busybox?): the guest has no libc; install busybox-static",
            busybox.display()
        )));
    }
    let qemu = tools::require(&tools::QEMU)?;
    let kernel = suite.kernel(target)?;
    let source = suite.source(&target.kernel)?;
    let Programs { devices, refs, bpf_include, attach } = programs(suite, target, scenario)?;
    let ctx = fixtures::CompileContext {
        repo: &suite.repo,
        cache: &suite.cache,
        kernel: &kernel,
        kernel_tree: &source.root,
        bpf_include: &bpf_include,
    };
    let objects = fixtures::compile(&ctx, &refs)?;
    let agent_bin = crate::vm::agent::ensure(&suite.repo)?;
    let agent = std::fs::read(&agent_bin).map_err(Error::io(format!("reading {}", agent_bin.display())))?;
    let run_dir = new_run_dir(&suite.repo.runs_dir().join(target.label()).join("shell"))?;
    let probe =
        crate::vm::boot::accelerator(&suite.cache, &qemu, &kernel.boot_image, &kernel.cell.name, &agent, &run_dir)?;

    let mut fs = Initramfs::with_agent(&agent);
    let fixtures = add_files(&mut fs, &busybox, &objects, &kernel.modules)?;
    let listed: Vec<&String> = fixtures.values().map(|f| &f.path).collect();
    let mut banner = vec![
        format!("hidvm shell on {target} (Linux {}), {}", source.version, probe.accel.name()),
        format!(
            "programs: {}",
            if listed.is_empty() { "none".into() } else { format!("{} in {FIXTURE_DIR}", listed.len()) }
        ),
        "bpffs on /sys/fs/bpf, debugfs on /sys/kernel/debug; `exit` or Ctrl-D ends the VM".into(),
    ];
    let disk = userspace(suite, target, &mut fs, &mut banner)?;
    let job = Job {
        cell: target.cell.clone(),
        nonce: format!("shell-{}", std::process::id()),
        deadline_ms: 0,
        detectors: kernel.detectors()?,
        mode: JobMode::Shell { devices, banner, attach, fixtures, userspace: disk.is_some() },
    };
    fs.file(JOB_PATH, 0o644, serde_json::to_vec_pretty(&job).expect("job serializes"));
    let initrd = run_dir.join("initramfs.cpio");
    std::fs::write(&initrd, fs.to_bytes().map_err(Error::io("assembling the initramfs"))?)
        .map_err(Error::io(format!("writing {}", initrd.display())))?;
    let mut features = features(probe.accel, &kernel.boot_image, initrd, &run_dir);
    if let Some(image) = disk {
        features.push(Box::new(ReadOnlyDisk { image }));
    }
    let args = crate::vm::process::command_line(&features);
    let _ = std::fs::write(run_dir.join("qemu-command.txt"), args.join("\n"));
    let status = crate::vm::process::run_interactive(&qemu, &args, terminal)
        .map_err(Error::io(format!("running {}", qemu.display())))?;
    Ok(status.code().unwrap_or(1))
}

/// The hid-tools userspace, if it is built: its image (attached as a disk)
/// and the target's bundle (the tree's suite and programs, the modules) in
/// the initramfs; the banner says what the shell has.
fn userspace(suite: &Suite, target: &Target, fs: &mut Initramfs, banner: &mut Vec<String>) -> Result<Option<PathBuf>> {
    let Ok(image) = crate::vm::userspace::find(&suite.repo, &suite.cache) else {
        banner.push(
            "a busybox shell: `hidvm userspace` builds the Debian userspace (hid-tools, bpftool) it can have".into(),
        );
        return Ok(None);
    };
    let bundle = crate::run::hidtools::bundle::prepare(suite, target)?;
    for (path, mode, data) in bundle.files {
        fs.file(&path, mode, data);
    }
    banner.push(format!(
        "bash in the hid-tools userspace ({}): hid-recorder, hid-replay, hid-decode, bpftool, python3, modprobe; the suite in {}, the programs in /hidvm/fixtures",
        image.file_name().unwrap_or_default().to_string_lossy(),
        hidvm_proto::job::PYTEST_DIR
    ));
    Ok(Some(image))
}

/// The devices, programs, header directories and attach steps (those
/// expected to succeed, before the first release) of the named scenario (a catalogue name or
/// a path to a scenario file), or (without one) no device and every
/// catalogue program, attached nowhere.
fn programs(suite: &Suite, target: &Target, scenario: Option<&str>) -> Result<Programs> {
    match scenario {
        Some(name) => {
            let entry = suite.scenario(name)?;
            let loaded = suite.load(&entry, &target.kernel)?;
            let attach = loaded
                .scenario
                .steps
                .iter()
                .take_while(|s| !matches!(s, Step::Release(_)))
                .filter_map(|s| match s {
                    Step::Attach(a) if a.expect_error.is_none() => Some(a.clone()),
                    _ => None,
                })
                .collect();
            Ok(Programs { devices: loaded.devices, refs: loaded.fixtures, bpf_include: loaded.bpf_include, attach })
        }
        None => {
            let dir = suite.repo.fixtures_dir();
            let mut refs = BTreeMap::new();
            for e in std::fs::read_dir(&dir).map_err(Error::io(format!("reading {}", dir.display())))?.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(stem) = name.strip_suffix(".bpf.c") {
                    refs.insert(stem.to_string(), FixtureRef::Catalogue(stem.to_string()));
                }
            }
            Ok(Programs { devices: BTreeMap::new(), refs, bpf_include: Vec::new(), attach: Vec::new() })
        }
    }
}

/// What a shell sets up: devices, programs (name -> where from), header
/// directories, and the attach steps done before the prompt.
struct Programs {
    devices: BTreeMap<String, DeviceDef>,
    refs: BTreeMap<String, FixtureRef>,
    bpf_include: Vec<PathBuf>,
    attach: Vec<Attach>,
}

/// Busybox, the compiled programs and the cell's modules into the
/// initramfs; each program as the guest finds it (`/hidvm/fixtures/<name>.bpf.o`:
/// a catalogue fixture's name, or the file's stem).
fn add_files(
    fs: &mut Initramfs,
    busybox: &Path,
    objects: &BTreeMap<String, fixtures::Compiled>,
    modules: &[PathBuf],
) -> Result<BTreeMap<String, GuestFixture>> {
    fs.add_host_file(BUSYBOX_PATH, 0o755, busybox).map_err(Error::io(format!("reading {}", busybox.display())))?;
    let mut out = BTreeMap::new();
    for (name, c) in objects {
        let plain = !name.contains('/') && !name.contains('.');
        let stem = c.guest_name.split_once('-').map_or(c.guest_name.as_str(), |(_, s)| s);
        let guest = if plain { format!("{FIXTURE_DIR}/{name}.bpf.o") } else { format!("{FIXTURE_DIR}/{stem}") };
        fs.add_host_file(&guest, 0o644, &c.object).map_err(Error::io(format!("reading {}", c.object.display())))?;
        out.insert(name.clone(), GuestFixture { path: guest, config: c.config.clone() });
    }
    for m in modules {
        let name = m.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        fs.add_host_file(&format!("{MODULE_DIR}/{name}"), 0o644, m)
            .map_err(Error::io(format!("reading {}", m.display())))?;
    }
    Ok(out)
}

/// A shell VM: the terminal is its console.
fn features(accel: Accel, image: &Path, initrd: PathBuf, run_dir: &Path) -> Vec<Box<dyn Feature>> {
    vec![
        Box::new(MicroVm { memory_mib: 512, cpus: 2 }),
        Box::new(accel),
        Box::new(Kernel { image: image.to_path_buf() }),
        Box::new(InitrdFeature { cpio: initrd }),
        Box::new(StdioConsole),
        Box::new(ResultPort { file: run_dir.join("results.jsonl") }),
        Box::new(ExitOnReboot),
        Box::new(PanicEndsVm),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_busybox_is_told_apart_from_a_static_one() {
        let d = tempfile::tempdir().unwrap();
        let dynamic = d.path().join("dyn");
        std::fs::write(&dynamic, b"\x7fELF....../lib64/ld-linux-x86-64.so.2....").unwrap();
        let stat = d.path().join("static");
        std::fs::write(&stat, b"\x7fELF.........").unwrap();
        assert!(!is_static(&dynamic));
        assert!(is_static(&stat));
        assert!(!is_static(&d.path().join("missing")));
    }
}
