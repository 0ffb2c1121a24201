//! The hid-tools userspace (Debian: python3, pytest, hid-tools, udev, kmod,
//! bpftool): a read-only erofs image on a virtio-blk disk, made writable
//! with an overlay on tmpfs, with the host's bundle (the tree's tests and
//! compiled programs, the kernel's modules, the pytest plugin) laid over it
//! at /hidvm and the agent bound in as `udev-hid-bpf`. Programs run inside
//! it through `/init chroot-exec`, so PID 1 never chroots itself.
use hidvm_proto::job::{BUNDLE_DIR, UDEV_HID_BPF, USERSPACE_DISK};
use rustix::mount::{mount, mount_bind, mount_bind_recursive, MountFlags};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Where the userspace is assembled (the chroot's root).
pub const ROOT: &str = "/hidvm/root";
const IMAGE: &str = "/hidvm/image";
const RW: &str = "/hidvm/rw";
/// `/init chroot-exec ROOT CWD PROGRAM ARGS…`.
pub const CHROOT_ARG: &str = "chroot-exec";
/// What the processes inside see as PATH.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn mkdir(p: &str) -> Result<(), String> {
    std::fs::create_dir_all(p).map_err(|e| format!("creating {p}: {e}"))
}

fn mnt(src: &str, target: &str, fstype: &str, flags: MountFlags, data: Option<&str>) -> Result<(), String> {
    mkdir(target)?;
    let data = data.map(|d| std::ffi::CString::new(d).expect("no NUL in mount options"));
    mount(src, target, fstype, flags, data.as_deref()).map_err(|e| format!("mount {fstype} {src} on {target}: {e}"))
}

fn bind(src: &str, target: &str, recursive: bool) -> Result<(), String> {
    let r = if recursive { mount_bind_recursive(src, target) } else { mount_bind(src, target) };
    r.map_err(|e| format!("bind {src} on {target}: {e}"))
}

/// The disk's node: devtmpfs creates it when virtio-blk probes, normally
/// before PID 1 runs.
fn wait_for_disk() -> Result<(), String> {
    let started = Instant::now();
    while !Path::new(USERSPACE_DISK).exists() {
        if started.elapsed() > Duration::from_secs(10) {
            return Err(format!(
                "no {USERSPACE_DISK} within 10 s: the userspace disk is not attached, or the kernel lacks CONFIG_VIRTIO_BLK"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Assemble the userspace at [`ROOT`]; with `bundle`, lay the bundle over
/// it and make the modules usable (depmod). Returns notes for the log.
pub fn mount_all(bundle: bool) -> Result<Vec<String>, String> {
    let started = Instant::now();
    wait_for_disk()?;
    mnt(USERSPACE_DISK, IMAGE, "erofs", MountFlags::RDONLY, None)?;
    mnt("tmpfs", RW, "tmpfs", MountFlags::empty(), Some("mode=0755"))?;
    mkdir(&format!("{RW}/upper"))?;
    mkdir(&format!("{RW}/work"))?;
    let opts = format!("lowerdir={IMAGE},upperdir={RW}/upper,workdir={RW}/work");
    mnt("overlay", ROOT, "overlay", MountFlags::empty(), Some(&opts))?;
    // /sys brings bpffs, debugfs and tracefs along.
    for d in ["proc", "sys", "dev"] {
        mkdir(&format!("{ROOT}/{d}"))?;
        bind(&format!("/{d}"), &format!("{ROOT}/{d}"), true)?;
    }
    for d in ["run", "tmp"] {
        mnt("tmpfs", &format!("{ROOT}/{d}"), "tmpfs", MountFlags::empty(), Some("mode=1777"))?;
    }
    let loader = format!("{ROOT}/usr/local/bin/{UDEV_HID_BPF}");
    std::fs::write(&loader, b"").map_err(|e| format!("creating {loader}: {e}"))?;
    bind("/init", &loader, false)?;
    let mut notes = Vec::new();
    if bundle {
        mkdir(&format!("{ROOT}/hidvm"))?;
        bind(BUNDLE_DIR, &format!("{ROOT}/hidvm"), false)?;
        if Path::new(&format!("{BUNDLE_DIR}/modules")).is_dir() {
            bind(&format!("{BUNDLE_DIR}/modules/lib/modules"), &format!("{ROOT}/usr/lib/modules"), false)?;
            notes.push(depmod()?);
        } else {
            notes.push("no modules in the bundle: the kernel has none".into());
        }
    }
    notes.push(format!("userspace ready in {} ms", started.elapsed().as_millis()));
    Ok(notes)
}

/// Make `src` (outside) visible at `inside` (a path in the userspace).
pub fn expose(src: &str, inside: &str) -> Result<(), String> {
    let target = format!("{ROOT}{inside}");
    mkdir(&target)?;
    bind(src, &target, false)
}

/// `make modules_install` on the host wrote no modules.dep (the host may
/// have no depmod): the image's depmod writes it into the bundle's tree.
fn depmod() -> Result<String, String> {
    let out = chrooted("/", "/usr/sbin/depmod", &["-a"]).output().map_err(|e| format!("running depmod: {e}"))?;
    if !out.status.success() {
        return Err(format!("depmod -a failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok("depmod -a: modules.dep written".into())
}

/// `program args` run inside the userspace, in `cwd`, with a clean
/// environment (PATH, HOME, LANG; callers add their own).
pub fn chrooted(cwd: &str, program: &str, args: &[&str]) -> Command {
    let mut c = Command::new("/init");
    c.args([CHROOT_ARG, ROOT, cwd, program])
        .args(args)
        .env_clear()
        .env("PATH", PATH)
        .env("HOME", "/root")
        .env("LANG", "C.UTF-8");
    c
}

/// The child side of `/init chroot-exec ROOT CWD PROGRAM ARGS…`: chroot,
/// chdir, exec. Only returns (exits 127) when one of them failed.
pub fn chroot_exec_main(args: &[String]) -> ! {
    let fail = |m: String| -> ! {
        eprintln!("hidvm {CHROOT_ARG}: {m}");
        std::process::exit(127)
    };
    let [root, cwd, program, rest @ ..] = args else { fail(format!("bad arguments {args:?}")) };
    if let Err(e) = rustix::process::chroot(root.as_str()) {
        fail(format!("chroot {root}: {e}"));
    }
    if let Err(e) = rustix::process::chdir(cwd.as_str()) {
        fail(format!("chdir {cwd}: {e}"));
    }
    let e = Command::new(program).args(rest).exec();
    fail(format!("exec {program}: {e}"))
}
