//! Start tests from a snapshot instead of booting: a guest is booted once
//! per kernel image, agent, initramfs, QEMU and command line (the *key*),
//! frozen while its agent waits for a job (QEMU migration into a file),
//! and every test restores its own copy of that frozen guest, then gets
//! its job and fixtures over a virtio port (see the agent's
//! `snapshot.rs`). Each test is still its own VM: the snapshot file is only
//! read, so nothing one test does (a crash, a leak) reaches the next.
//!
//! A stale snapshot cannot be used: anything that changes the guest (the
//! kernel image, the agent, the modules, QEMU, an argument) changes the key.
use crate::base::error::{Error, Result};
use crate::base::layout::sha256_parts;
use crate::base::lock::{FileLock, Mode};
use crate::base::timeline::Timeline;
use crate::vm::accel::Accel;
use crate::vm::feature::Feature;
use crate::vm::initramfs::Initramfs;
use crate::vm::process::{command_line, connect_console, copy_console, spawn_qemu, KillOnDrop};
use crate::vm::qmp::Qmp;
use crate::vm::snapshot_prune;
use hidvm_proto::GuestMsg;
use serde_json::json;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// `HIDVM_SNAPSHOT=off` boots every test cold, as before snapshots.
pub fn enabled() -> bool {
    !matches!(std::env::var("HIDVM_SNAPSHOT").as_deref(), Ok("off" | "0" | "no"))
}

/// How long a template may take to boot to its agent, and to be written.
const TEMPLATE_DEADLINE: Duration = Duration::from_secs(90);
/// How long a restored guest may take to answer its delivery before the
/// test boots cold instead.
const RESTORE_ANSWER: Duration = Duration::from_secs(15);

/// The paths one VM's features name; placeholders when computing the key.
pub struct VmPaths {
    pub initrd: PathBuf,
    /// Guest RAM ([`crate::vm::feature::RamFile`]), and whether it is the
    /// template's own (shared) or a restored test's private view of it.
    pub ram: PathBuf,
    pub ram_shared: bool,
    pub console_socket: PathBuf,
    pub qmp_socket: PathBuf,
    pub results: PathBuf,
    pub delivery_socket: PathBuf,
}

impl VmPaths {
    fn placeholders() -> VmPaths {
        VmPaths {
            initrd: "@initrd".into(),
            ram: "@ram".into(),
            ram_shared: true,
            console_socket: "@console".into(),
            qmp_socket: "@qmp".into(),
            results: "@results".into(),
            delivery_socket: "@delivery".into(),
        }
    }
}

/// What a template is made of; `features` builds the VM for given paths
/// (the same function boots the template and every restored copy).
pub struct Template<'a> {
    pub qemu: &'a Path,
    pub image: &'a Path,
    pub initramfs: &'a Initramfs,
    pub accel: Accel,
    pub features: &'a dyn Fn(&VmPaths) -> Vec<Box<dyn Feature>>,
    /// 0: the template every run shares. N > 0: a template of its own,
    /// booted afresh (`vm-test --repeat` samples a new boot each round:
    /// timing, memory layout, seeds), removed with [`remove`].
    pub generation: u32,
}

/// A frozen guest in the cache.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub key: String,
    pub dir: PathBuf,
}

impl Snapshot {
    pub fn state(&self) -> PathBuf {
        self.dir.join("state")
    }
    pub fn initrd(&self) -> PathBuf {
        self.dir.join("initramfs.cpio")
    }
    /// The frozen guest's RAM (a sparse file of the VM's memory size).
    pub fn ram(&self) -> PathBuf {
        self.dir.join("ram")
    }
    /// The template's console up to the freeze: a restored guest's console
    /// log starts with it, so a boot-time splat is still seen by every test.
    pub fn boot_console(&self) -> PathBuf {
        self.dir.join("boot-console.log")
    }
}

fn file_identity(p: &Path) -> Vec<u8> {
    let meta = std::fs::metadata(p).ok();
    let mtime = meta
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}:{}:{mtime}", p.display(), meta.map(|m| m.len()).unwrap_or(0)).into_bytes()
}

/// What the snapshot depends on, hashed.
pub fn key(t: &Template, initramfs_bytes: &[u8]) -> String {
    let args = command_line(&(t.features)(&VmPaths::placeholders())).join("\u{1f}");
    let qemu = file_identity(t.qemu);
    let image = file_identity(t.image);
    let accel = t.accel.name();
    let version = env!("CARGO_PKG_VERSION");
    // Generation 0 adds nothing, so its key is what it always was.
    let generation = if t.generation == 0 { String::new() } else { format!("generation {}", t.generation) };
    sha256_parts([
        qemu.as_slice(),
        image.as_slice(),
        initramfs_bytes,
        args.as_bytes(),
        accel.as_bytes(),
        version.as_bytes(),
        generation.as_bytes(),
    ])[..16]
        .to_string()
}

/// Remove snapshot `key` from the cache (a `--repeat` round's own
/// template, once the round is over).
pub fn remove(cache: &Path, key: &str) -> std::io::Result<()> {
    if key.is_empty() || key.contains('/') || key.starts_with('.') {
        return Ok(());
    }
    let root = cache.join("snapshots");
    let _lock = FileLock::acquire(&root.join(format!("{key}.lock")), Mode::Exclusive, &format!("snapshot {key}"))?;
    match std::fs::remove_dir_all(root.join(key)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let _ = std::fs::remove_file(root.join(format!("{key}.lock")));
    Ok(())
}

/// The snapshot for `t`, made now if the cache does not have it. Several
/// test processes may ask at once: one makes it, the others wait.
pub fn ensure(cache: &Path, t: &Template) -> Result<Snapshot> {
    let bytes = t.initramfs.to_bytes().map_err(Error::io("assembling the template initramfs"))?;
    let key = key(t, &bytes);
    let root = cache.join("snapshots");
    let snap = Snapshot { key: key.clone(), dir: root.join(&key) };
    if snap.state().is_file() && snap.ram().is_file() {
        snapshot_prune::mark_used(&snap.dir, SystemTime::now());
        return Ok(snap);
    }
    let _lock = FileLock::acquire(&root.join(format!("{key}.lock")), Mode::Exclusive, &format!("snapshot {key}"))
        .map_err(Error::io(format!("locking snapshot {key}")))?;
    if snap.state().is_file() && snap.ram().is_file() {
        snapshot_prune::mark_used(&snap.dir, SystemTime::now());
        return Ok(snap);
    }
    // Made in a temporary directory and renamed: a killed or failed
    // template leaves nothing a later run could mistake for a snapshot.
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{key}-"))
        .tempdir_in(&root)
        .map_err(Error::io(format!("creating a directory in {}", root.display())))?;
    let building = Snapshot { key: key.clone(), dir: tmp.path().to_path_buf() };
    std::fs::write(building.initrd(), &bytes).map_err(Error::io("writing the template initramfs"))?;
    freeze(t, &building).map_err(|e| Error::Other(format!("making snapshot {key}: {e}")))?;
    let tmp = tmp.keep();
    std::fs::rename(&tmp, &snap.dir).map_err(Error::io(format!(
        "renaming {} to {}",
        tmp.display(),
        snap.dir.display()
    )))?;
    let now = SystemTime::now();
    snapshot_prune::mark_used(&snap.dir, now);
    let removed = snapshot_prune::prune(&root, &key, now);
    if !removed.is_empty() {
        crate::base::output::note(format!(
            "removed {} snapshot(s) no run had used for {} days from {}",
            removed.len(),
            snapshot_prune::UNUSED_FOR.as_secs() / 86400,
            root.display()
        ));
    }
    Ok(snap)
}

/// Boot the template, wait for its agent, freeze it into `snap.state()`.
fn freeze(t: &Template, snap: &Snapshot) -> std::result::Result<(), String> {
    let sockets = tempfile::Builder::new().prefix("hidvm-").tempdir_in("/tmp").map_err(|e| e.to_string())?;
    let paths = VmPaths {
        initrd: snap.initrd(),
        ram: snap.ram(),
        ram_shared: true,
        console_socket: sockets.path().join("console"),
        qmp_socket: sockets.path().join("qmp"),
        results: snap.dir.join("results.jsonl"),
        delivery_socket: sockets.path().join("delivery"),
    };
    let args = command_line(&(t.features)(&paths));
    let _ = std::fs::write(snap.dir.join("qemu-command.txt"), args.join("\n"));
    let started = Instant::now();
    let until = started + TEMPLATE_DEADLINE;
    let handle = spawn_qemu(t.qemu, &args).map_err(|e| format!("starting {}: {e}", t.qemu.display()))?;
    let _guard = KillOnDrop(&handle);
    let qemu_said = |h: &duct::Handle| {
        let _ = h.kill();
        h.wait().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
    };
    let Some(console) = connect_console(&paths.console_socket, &handle, until) else {
        return Err(format!("QEMU did not start: {}", qemu_said(&handle)));
    };
    let log = snap.boot_console();
    let pump = std::thread::spawn(move || copy_console(console, &log));
    // Connected through the freeze, so the frozen port is "open".
    let _delivery = connect_until(&paths.delivery_socket, until)?;
    loop {
        let text = std::fs::read_to_string(&paths.results).unwrap_or_default();
        let said: Vec<GuestMsg> = text.lines().filter_map(GuestMsg::from_line).filter_map(Result::ok).collect();
        if said.iter().any(|m| matches!(m, GuestMsg::AwaitingDelivery)) {
            break;
        }
        if let Some(GuestMsg::Done { summary, .. }) = said.iter().find(|m| matches!(m, GuestMsg::Done { .. })) {
            let _ = qemu_said(&handle);
            return Err(format!("the template's agent ended instead of waiting: {summary}"));
        }
        if matches!(handle.try_wait(), Ok(Some(_))) || Instant::now() > until {
            let said = qemu_said(&handle);
            let _ = pump.join();
            let console = std::fs::read_to_string(snap.boot_console()).unwrap_or_default();
            let tail: Vec<&str> = console.lines().rev().take(5).collect();
            return Err(format!(
                "the template guest did not reach its agent within {} s ({said}); console ends: {}",
                TEMPLATE_DEADLINE.as_secs(),
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let state = snap.state();
    let mut qmp = Qmp::connect(&paths.qmp_socket).map_err(|e| format!("QMP: {e}"))?;
    qmp.execute("stop", json!({})).map_err(|e| format!("QMP stop: {e}"))?;
    ignore_shared_ram(&mut qmp)?;
    qmp.execute("migrate", json!({ "uri": format!("exec:cat > {}", shell_quote(&state)?) }))
        .map_err(|e| format!("QMP migrate: {e}"))?;
    loop {
        let v = qmp.execute("query-migrate", json!({})).map_err(|e| format!("QMP query-migrate: {e}"))?;
        match v["return"]["status"].as_str() {
            Some("completed") => break,
            Some("failed" | "cancelled") => return Err(format!("migration to {} failed: {v}", state.display())),
            _ if Instant::now() > until => return Err("writing the snapshot took too long".into()),
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    let _ = qemu_said(&handle);
    let _ = pump.join();
    let _ = std::fs::remove_file(&paths.results);
    Ok(())
}

fn connect_until(socket: &Path, until: Instant) -> std::result::Result<UnixStream, String> {
    loop {
        match UnixStream::connect(socket) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() > until => return Err(format!("connecting to {}: {e}", socket.display())),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Leave the RAM file out of the migration stream (`x-ignore-shared`): the
/// template's RAM is in its file, and a restored guest maps that file.
fn ignore_shared_ram(qmp: &mut Qmp) -> std::result::Result<(), String> {
    let caps = json!({ "capabilities": [{ "capability": "x-ignore-shared", "state": true }] });
    qmp.execute("migrate-set-capabilities", caps).map(|_| ()).map_err(|e| format!("QMP migrate-set-capabilities: {e}"))
}

/// `exec:` migration URIs go through /bin/sh.
fn shell_quote(p: &Path) -> std::result::Result<String, String> {
    let s = p.display().to_string();
    if s.contains('\'') {
        return Err(format!("{s}: a snapshot path cannot contain a single quote (set HIDVM_CACHE_DIR)"));
    }
    Ok(format!("'{s}'"))
}

/// What a restored VM needs on top of its features: the frozen state to
/// load and the delivery to send once it runs.
#[derive(Debug)]
pub struct Restore {
    pub state: PathBuf,
    pub delivery_socket: PathBuf,
    pub delivery: Vec<u8>,
    pub results: PathBuf,
}

impl Restore {
    /// Load the state into the waiting QEMU (`-incoming defer`), run it,
    /// send the delivery and wait for the guest's first answer. The
    /// returned stream must stay open until the VM ends.
    /// `exited`: whether QEMU has ended (and how): a QEMU that exits while
    /// the state loads or the guest starts fails the restore at once, with
    /// its status, instead of after the answer timeout.
    pub fn start(
        &self,
        qmp_socket: &Path,
        exited: &dyn Fn() -> Option<String>,
        timeline: &mut Timeline,
    ) -> std::result::Result<UnixStream, String> {
        let until = Instant::now() + RESTORE_ANSWER;
        let gone = || exited().map(|how| format!("QEMU exited while restoring the snapshot ({how})"));
        // QEMU opens the monitor after the console (which waits for us).
        let mut qmp = loop {
            match Qmp::connect(qmp_socket) {
                Ok(q) => break q,
                Err(e) if Instant::now() > until => return Err(format!("QMP {}: {e}", qmp_socket.display())),
                Err(_) => {
                    if let Some(why) = gone() {
                        return Err(why);
                    }
                    std::thread::sleep(Duration::from_millis(2))
                }
            }
        };
        ignore_shared_ram(&mut qmp)?;
        qmp.execute("migrate-incoming", json!({ "uri": format!("exec:cat {}", shell_quote(&self.state)?) }))
            .map_err(|e| format!("QMP migrate-incoming: {e}"))?;
        loop {
            let v = qmp.execute("query-status", json!({})).map_err(|e| format!("QMP query-status: {e}"))?;
            match v["return"]["status"].as_str() {
                Some("inmigrate") if Instant::now() < until => {
                    if let Some(why) = gone() {
                        return Err(why);
                    }
                    std::thread::sleep(Duration::from_millis(2))
                }
                Some("paused" | "postmigrate") => break,
                Some("running") => break,
                other => return Err(format!("after loading the snapshot QEMU is {other:?}")),
            }
        }
        timeline.mark("snapshot load");
        let mut delivery = connect_until(&self.delivery_socket, until)?;
        qmp.execute("cont", json!({})).map_err(|e| format!("QMP cont: {e}"))?;
        delivery.write_all(&self.delivery).map_err(|e| format!("sending the delivery: {e}"))?;
        timeline.mark("resume and delivery");
        loop {
            if std::fs::metadata(&self.results).map(|m| m.len() > 0).unwrap_or(false) {
                return Ok(delivery);
            }
            if let Some(why) = gone() {
                return Err(why);
            }
            if Instant::now() > until {
                return Err(format!("the restored guest did not answer within {} s", RESTORE_ANSWER.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::feature::{DeliveryPort, Initramfs as InitrdFeature, Kernel, MicroVm, ResultPort};

    #[test]
    fn anything_that_changes_the_guest_changes_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("vmlinux");
        std::fs::write(&image, b"kernel").unwrap();
        let qemu = Path::new("/usr/bin/true");
        let fs = Initramfs::with_agent(b"agent v1");
        let features = |p: &VmPaths| -> Vec<Box<dyn Feature>> {
            vec![
                Box::new(MicroVm { memory_mib: 512, cpus: 2 }),
                Box::new(Kernel { image: "/k".into() }),
                Box::new(InitrdFeature { cpio: p.initrd.clone() }),
                Box::new(ResultPort { file: p.results.clone() }),
                Box::new(DeliveryPort { socket: p.delivery_socket.clone() }),
            ]
        };
        let t = Template { qemu, image: &image, initramfs: &fs, accel: Accel::Tcg, features: &features, generation: 0 };
        let base = key(&t, &fs.to_bytes().unwrap());
        assert_eq!(base, key(&t, &fs.to_bytes().unwrap()), "the key is stable");
        let agent2 = Initramfs::with_agent(b"agent v2");
        assert_ne!(base, key(&t, &agent2.to_bytes().unwrap()), "a rebuilt agent");
        assert_ne!(base, key(&Template { accel: Accel::Kvm, ..t }, &fs.to_bytes().unwrap()), "another accelerator");
        let t = Template { qemu, image: &image, initramfs: &fs, accel: Accel::Tcg, features: &features, generation: 0 };
        std::thread::sleep(Duration::from_millis(10));
        std::fs::write(&image, b"kernel, rebuilt").unwrap();
        assert_ne!(base, key(&t, &fs.to_bytes().unwrap()), "a rebuilt kernel");
        let four_cpus = |p: &VmPaths| -> Vec<Box<dyn Feature>> {
            let mut f = features(p);
            f[0] = Box::new(MicroVm { memory_mib: 512, cpus: 4 });
            f
        };
        let t2 = Template { features: &four_cpus, ..t };
        assert_ne!(key(&t, &fs.to_bytes().unwrap()), key(&t2, &fs.to_bytes().unwrap()), "another argument");
    }
}
