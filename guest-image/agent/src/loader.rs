//! `udev-hid-bpf`: the agent binary run under that name (bound into the
//! hid-tools userspace's PATH), compatible with what the kernel's hid-tools
//! suite calls (`tests/base.py`):
//!
//! ```text
//! udev-hid-bpf [-v|--verbose] [-d|--debug] add [--bpfdir DIR] SYSPATH OBJ
//! udev-hid-bpf [-v|--verbose] [-d|--debug] remove SYSPATH...
//! ```
//!
//! `add` does what udev-hid-bpf does for an explicit object: the device is
//! SYSPATH or its nearest `hid` ancestor, hid_id goes into every struct_ops
//! map, the object is loaded, its `probe` runs (BPF_PROG_TEST_RUN; only
//! retval 0 accepts), every struct_ops map is attached and each link pinned
//! at `/sys/fs/bpf/hid/<sysname>/<object stem>/<map>` (`:` and `.` as `_`).
//! `remove` unpins (`rm -r /sys/fs/bpf/hid/<sysname>/`).
//!
//! Stricter than upstream, on purpose: any failure exits 1 (upstream logs
//! and exits 0), and `remove` is checked like any release in hidvm: every
//! link the adds made must leave the kernel, and the device's report
//! descriptor must be back to what it was before the first add (all the
//! suite's programs fix the descriptor, so the device re-probes). A remove
//! that leaves a program attached fails the test whose teardown ran it.
use crate::bpf::{self, LinkState};
use hidvm_proto::job::BROKEN_REMOVE_ENV;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PIN_ROOT: &str = "/sys/fs/bpf/hid";
/// What each add did, per device, for its remove to check.
const STATE_DIR: &str = "/run/hidvm-udev-hid-bpf";
/// How long a released link may take to leave the kernel and the device
/// to re-probe (an unpin frees the link from a work item).
const SETTLE: Duration = Duration::from_secs(3);

pub fn main(args: &[String]) -> ! {
    let args: Vec<&str> =
        args.iter().map(String::as_str).filter(|a| !matches!(*a, "-v" | "--verbose" | "-d" | "--debug")).collect();
    let result = match args.as_slice() {
        ["add", rest @ ..] => add(rest),
        ["remove", devices @ ..] if !devices.is_empty() => devices.iter().try_for_each(|d| remove(d)),
        _ => Err(format!(
            "usage: udev-hid-bpf [-v] add [--bpfdir DIR] SYSPATH OBJ | udev-hid-bpf [-v] remove SYSPATH... (got {args:?})"
        )),
    };
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("udev-hid-bpf: Error: {e}");
            crate::channel::kmsg(&format!("udev-hid-bpf: {e}"));
            std::process::exit(1)
        }
    }
}

/// `:` and `.` become `_` in bpffs names, as udev-hid-bpf writes them.
fn pin_name(s: &str) -> String {
    s.replace([':', '.'], "_")
}

/// `0003:28BD:093A.0001`: bus, vendor, product and the id after the dot.
fn hid_id_of(sysname: &str) -> Option<u32> {
    let (ids, id) = sysname.split_once('.')?;
    let parts: Vec<&str> = ids.split(':').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    (parts.len() == 3 && parts.iter().all(|p| hex(p, 4)) && hex(id, 4)).then(|| u32::from_str_radix(id, 16).ok())?
}

/// SYSPATH or its nearest ancestor in the `hid` subsystem: (directory, sysname).
fn hid_device(syspath: &str) -> Result<(PathBuf, String), String> {
    let start = Path::new(syspath);
    if !start.exists() {
        return Err(format!("Invalid syspath {syspath}"));
    }
    let mut dir = start.canonicalize().map_err(|e| format!("{syspath}: {e}"))?;
    loop {
        let subsystem = std::fs::read_link(dir.join("subsystem")).ok();
        if subsystem.as_deref().and_then(Path::file_name).is_some_and(|n| n == "hid") {
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            return Ok((dir, name));
        }
        if !dir.pop() || dir == Path::new("/sys") {
            return Err(format!("{syspath} is not a HID device, nor below one"));
        }
    }
}

/// The object: a path, else a name in `--bpfdir`.
fn object_path(obj: &str, bpfdir: Option<&str>) -> Result<PathBuf, String> {
    let direct = PathBuf::from(obj);
    if direct.is_file() {
        return Ok(direct);
    }
    match bpfdir.map(|d| Path::new(d).join(obj)).filter(|p| p.is_file()) {
        Some(p) => Ok(p),
        None => Err(format!("object {obj} not found{}", bpfdir.map(|d| format!(" (nor in {d})")).unwrap_or_default())),
    }
}

/// What the adds did to one device, for its remove to check.
#[derive(Default)]
struct DeviceState {
    /// The device's report descriptor before its first add, hex.
    rdesc_before: String,
    /// (link id, object, map) of every link the adds attached.
    links: Vec<(u32, String, String)>,
}

fn state_path(sysname: &str) -> PathBuf {
    Path::new(STATE_DIR).join(format!("{sysname}.json"))
}

fn read_state(sysname: &str) -> Option<DeviceState> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(state_path(sysname)).ok()?).ok()?;
    let links = v["links"]
        .as_array()?
        .iter()
        .filter_map(|l| Some((l[0].as_u64()? as u32, l[1].as_str()?.to_string(), l[2].as_str()?.to_string())))
        .collect();
    Some(DeviceState { rdesc_before: v["rdesc_before"].as_str()?.to_string(), links })
}

fn write_state(sysname: &str, state: &DeviceState) -> Result<(), String> {
    let v = serde_json::json!({ "rdesc_before": state.rdesc_before, "links": state.links });
    std::fs::create_dir_all(STATE_DIR).map_err(|e| format!("creating {STATE_DIR}: {e}"))?;
    std::fs::write(state_path(sysname), v.to_string())
        .map_err(|e| format!("writing {}: {e}", state_path(sysname).display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

fn add(args: &[&str]) -> Result<(), String> {
    let (bpfdir, rest) = match args {
        ["--bpfdir", d, rest @ ..] => (Some(*d), rest),
        rest => (None, rest),
    };
    let [syspath, obj] = rest else { return Err(format!("add needs SYSPATH OBJ (got {rest:?})")) };
    let (dir, sysname) = hid_device(syspath)?;
    let hid_id = hid_id_of(&sysname).ok_or_else(|| format!("{sysname} is not named BBBB:VVVV:PPPP.IIII"))?;
    let object = object_path(obj, bpfdir)?;
    let rdesc =
        std::fs::read(dir.join("report_descriptor")).map_err(|e| format!("reading the report descriptor: {e}"))?;
    let mut state = read_state(&sysname).unwrap_or_else(|| DeviceState { rdesc_before: hex(&rdesc), links: vec![] });
    let path = object.display().to_string();
    bpf::install_logger();
    let fail = |e: bpf::AttachError| format!("{path} on {sysname}: {}: {}", e.seen(), e.message);
    let (mut obj_loaded, maps) = bpf::load_for_device(&path, hid_id).map_err(fail)?;
    bpf::probe(&obj_loaded, hid_id, &rdesc).map_err(fail)?;
    let stem = object.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let pin_dir = Path::new(PIN_ROOT).join(pin_name(&sysname)).join(pin_name(&stem));
    std::fs::create_dir_all(&pin_dir).map_err(|e| format!("creating {}: {e}", pin_dir.display()))?;
    let mut links = Vec::new();
    for map in &maps {
        let (mut link, id) = bpf::attach(&mut obj_loaded, map).map_err(fail)?;
        link.pin(pin_dir.join(map)).map_err(|e| format!("pinning bpf_link {id} at {}: {e:#}", pin_dir.display()))?;
        state.links.push((id, path.clone(), map.clone()));
        links.push(id);
    }
    write_state(&sysname, &state)?;
    let said = format!("udev-hid-bpf add {sysname} {path}: bpf_link {links:?} pinned in {}", pin_dir.display());
    crate::channel::kmsg(&said);
    eprintln!("{said}");
    // The pins hold the links; exit without closing anything by hand.
    std::process::exit(0)
}

/// The sysname of a device path, present or already gone.
fn sysname_of(syspath: &str) -> Result<String, String> {
    match hid_device(syspath) {
        Ok((_, name)) => Ok(name),
        Err(_) => {
            let last = Path::new(syspath).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            hid_id_of(&last).map(|_| last).ok_or_else(|| format!("{syspath} names no HID device"))
        }
    }
}

fn remove(syspath: &str) -> Result<(), String> {
    let sysname = sysname_of(syspath)?;
    let pins = Path::new(PIN_ROOT).join(pin_name(&sysname));
    if std::env::var(BROKEN_REMOVE_ENV).is_ok_and(|v| v == "1") {
        eprintln!("udev-hid-bpf remove {sysname}: {BROKEN_REMOVE_ENV}=1, the pins are left (self-test)");
    } else {
        match std::fs::remove_dir_all(&pins) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("removing {}: {e}", pins.display())),
        }
    }
    let Some(state) = read_state(&sysname) else { return Ok(()) };
    let _ = std::fs::remove_file(state_path(&sysname));
    check_removed(syspath, &sysname, &state)
}

/// What hidvm checks after any release: every link gone from the kernel,
/// and the device behaving as before (its descriptor, after the re-probe).
fn check_removed(syspath: &str, sysname: &str, state: &DeviceState) -> Result<(), String> {
    let started = Instant::now();
    for (id, object, map) in &state.links {
        let gone = crate::wait::poll_until(SETTLE.saturating_sub(started.elapsed()), Duration::from_millis(10), || {
            matches!(bpf::link_state(*id), Ok(LinkState::Gone)).then_some(())
        });
        if gone.is_none() {
            let now = bpf::link_state(*id).map(|s| s.name().to_string()).unwrap_or_else(|e| e);
            return Err(format!(
                "remove {sysname}: bpf_link {id} ({object}, map {map}) is still in the kernel {} ms after the unpin ({now}): the program was not released",
                started.elapsed().as_millis()
            ));
        }
    }
    let Ok((dir, _)) = hid_device(syspath) else {
        crate::channel::kmsg(&format!("udev-hid-bpf remove {sysname}: links gone; the device is gone too"));
        return Ok(());
    };
    let rdesc = || std::fs::read(dir.join("report_descriptor")).map(|b| hex(&b)).unwrap_or_default();
    let back = crate::wait::poll_until(SETTLE.saturating_sub(started.elapsed()), Duration::from_millis(10), || {
        (rdesc() == state.rdesc_before).then_some(())
    });
    if back.is_none() {
        return Err(format!(
            "remove {sysname}: the links are gone, but the report descriptor is not the one from before the add: expected {}, saw {}",
            state.rdesc_before,
            rdesc()
        ));
    }
    crate::channel::kmsg(&format!(
        "udev-hid-bpf remove {sysname}: {} link(s) gone, descriptor restored, in {} ms",
        state.links.len(),
        started.elapsed().as_millis()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysnames_give_the_hid_id_and_pin_names() {
        assert_eq!(hid_id_of("0003:28BD:093A.0001"), Some(1));
        assert_eq!(hid_id_of("0003:28BD:093A.00FF"), Some(255));
        assert_eq!(hid_id_of("0003:28BD:093A"), None);
        assert_eq!(hid_id_of("input3"), None);
        assert_eq!(pin_name("0003:28BD:093A.0001"), "0003_28BD_093A_0001");
        assert_eq!(pin_name("XPPen__Artist24.bpf"), "XPPen__Artist24_bpf");
    }

    #[test]
    fn a_missing_device_or_object_is_an_error() {
        assert!(hid_device("/nonexistent/0003:28BD:093A.0001").unwrap_err().contains("Invalid syspath"));
        assert!(object_path("/nonexistent/x.bpf.o", Some("/nonexistent")).unwrap_err().contains("not found"));
        assert_eq!(sysname_of("/sys/devices/virtual/misc/uhid/0003:28BD:093A.0001").unwrap(), "0003:28BD:093A.0001");
    }
}
