//! Loading fixtures and attaching their hid_bpf_ops through bpf_links;
//! querying the kernel's view of links, programs and maps.
//!
//! Load and attach go through libbpf-sys directly (with libbpf-rs owning
//! the results): the errno an expected-error check compares must be the
//! one the call returned, and libbpf-rs's error type keeps it private.
use hidvm_proto::{ObjectCounts, Stage};
use libbpf_rs::libbpf_sys;
use libbpf_rs::{AsRawLibbpf, Link, MapType, Object, ObjectBuilder, PrintLevel};
use std::ffi::CString;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Mutex;

/// BPF_F_BEFORE (include/uapi/linux/bpf.h): the only flag hid_bpf_ops takes.
pub const BPF_F_BEFORE: u32 = 1 << 3;
const ENOENT: i32 = 2;

/// libbpf's messages for the current load, with their level; its print
/// callback is a plain fn, hence the static.
static LIBBPF_LOG: Mutex<Vec<(PrintLevel, String)>> = Mutex::new(Vec::new());

fn collect_libbpf(level: PrintLevel, msg: String) {
    let mut log = LIBBPF_LOG.lock().unwrap_or_else(|e| e.into_inner());
    log.extend(msg.lines().map(|l| (level, l.trim_end().to_string())));
}

pub fn install_logger() {
    libbpf_rs::set_print(Some((PrintLevel::Debug, collect_libbpf)));
}

/// What to show after a failure: libbpf's warnings (the verifier log among
/// them); if it warned about nothing, the last debug lines, which then
/// hold the only clue.
fn take_log() -> Vec<String> {
    let log = std::mem::take(&mut *LIBBPF_LOG.lock().unwrap_or_else(|e| e.into_inner()));
    let important: Vec<String> = log.iter().filter(|(l, _)| *l != PrintLevel::Debug).map(|(_, m)| m.clone()).collect();
    if !important.is_empty() {
        return important;
    }
    log[log.len().saturating_sub(20)..].iter().map(|(_, m)| m.clone()).collect()
}

/// libbpf's warnings since the last look (its debug lines are dropped).
pub fn take_libbpf_warnings() -> Vec<String> {
    let log = std::mem::take(&mut *LIBBPF_LOG.lock().unwrap_or_else(|e| e.into_inner()));
    log.into_iter().filter(|(l, _)| *l != PrintLevel::Debug).map(|(_, m)| m).collect()
}

/// Load an object that is not a device program (no struct_ops map), e.g.
/// the SEC("syscall") injector of the race step's `inject_bpf` racer.
pub fn load_plain(path: &str) -> Result<Object, AttachError> {
    take_log();
    let open = ObjectBuilder::default().open_file(path).map_err(|e| refused(Stage::Open, format!("{path}: {e:#}")))?;
    load_opened(open)
}

/// Why a load or attach failed. `errno` is what the failing call returned
/// (None when hidvm itself refused, e.g. no struct_ops map); `log` carries
/// libbpf's output (the verifier log when the kernel rejected a program).
#[derive(Debug)]
pub struct AttachError {
    pub stage: Stage,
    pub message: String,
    pub errno: Option<i32>,
    pub log: Vec<String>,
}

impl AttachError {
    /// The failure as expected-error checks render it: "attach: EINVAL".
    pub fn seen(&self) -> String {
        match (self.stage, self.errno) {
            (_, Some(n)) => format!("{}: {}", self.stage, hidvm_proto::Errno(n)),
            (Stage::Match, None) => "match: none".into(),
            (_, None) => format!("{}: no errno ({})", self.stage, self.message),
        }
    }
}

fn os_error(stage: Stage, what: &str, errno: i32) -> AttachError {
    let log = take_log();
    let mut message = format!("{what}: {}", std::io::Error::from_raw_os_error(errno));
    if stage == Stage::Load {
        if let Some(why) = verifier_verdict(&log) {
            message = format!("the verifier rejected it: {why} ({message})");
        }
    }
    AttachError { stage, message, errno: Some(errno), log }
}

fn refused(stage: Stage, message: String) -> AttachError {
    AttachError { stage, message, errno: None, log: take_log() }
}

/// The errno of the last failed libc/libbpf call on this thread.
fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Open `path`, set hid_id (and flags) in the chosen struct_ops map, load.
/// Returns the object and the map's name.
pub fn load(path: &str, hid_id: u32, flags: u32, map: Option<&str>) -> Result<(Object, String), AttachError> {
    take_log();
    let mut open =
        ObjectBuilder::default().open_file(path).map_err(|e| refused(Stage::Open, format!("{path}: {e:#}")))?;
    let struct_ops: Vec<String> = open
        .maps()
        .filter(|m| m.map_type() == MapType::StructOps)
        .map(|m| m.name().to_string_lossy().into_owned())
        .collect();
    let chosen = match (map, struct_ops.as_slice()) {
        (Some(want), all) if all.iter().any(|m| m == want) => want.to_string(),
        (Some(want), all) => {
            return Err(refused(
                Stage::Open,
                format!("{path} has no struct_ops map `{want}` (has: {})", all.join(", ")),
            ))
        }
        (None, [only]) => only.clone(),
        (None, []) => return Err(refused(Stage::Open, format!("{path} has no struct_ops map (no HID_BPF_OPS)"))),
        (None, all) => {
            return Err(refused(
                Stage::Open,
                format!("{path} has several struct_ops maps ({}); name one with `map = \"…\"`", all.join(", ")),
            ))
        }
    };
    for mut m in open.maps_mut().filter(|m| m.map_type() == MapType::StructOps) {
        if m.name().to_string_lossy() == chosen {
            // hid_id is the first member of struct hid_bpf_ops "so it can be
            // changed from userspace", flags the second; both are consumed
            // when the map is loaded.
            let value = m
                .initial_value_mut()
                .ok_or_else(|| refused(Stage::Open, format!("struct_ops map {chosen} has no initial value")))?;
            value[0..4].copy_from_slice(&hid_id.to_ne_bytes());
            if flags != 0 {
                let old = u32::from_ne_bytes(value[4..8].try_into().expect("4 bytes"));
                value[4..8].copy_from_slice(&(old | flags).to_ne_bytes());
            }
        } else {
            // Other maps in the object are neither created nor attached.
            m.set_autocreate(false).map_err(|e| refused(Stage::Open, format!("{e:#}")))?;
        }
    }
    Ok((load_opened(open)?, chosen))
}

/// Open `path` and load it for the device `hid_id` as udev-hid-bpf does:
/// hid_id into every struct_ops map, all of them loaded. Returns the
/// object and its struct_ops maps' names.
pub fn load_for_device(path: &str, hid_id: u32) -> Result<(Object, Vec<String>), AttachError> {
    take_log();
    let mut open =
        ObjectBuilder::default().open_file(path).map_err(|e| refused(Stage::Open, format!("{path}: {e:#}")))?;
    let mut names = Vec::new();
    for mut m in open.maps_mut().filter(|m| m.map_type() == MapType::StructOps) {
        let name = m.name().to_string_lossy().into_owned();
        let value = m
            .initial_value_mut()
            .ok_or_else(|| refused(Stage::Open, format!("struct_ops map {name} has no initial value")))?;
        value[0..4].copy_from_slice(&hid_id.to_ne_bytes());
        names.push(name);
    }
    if names.is_empty() {
        return Err(refused(Stage::Open, format!("{path} has no struct_ops map (no HID_BPF_OPS)")));
    }
    Ok((load_opened(open)?, names))
}

/// Load an opened object: bpf_object__load returns the kernel's -errno; on
/// failure the object is closed here (libbpf-rs would have done the same
/// in its Drop).
fn load_opened(open: libbpf_rs::OpenObject) -> Result<Object, AttachError> {
    let ptr = open.take_ptr();
    // SAFETY: `ptr` is the open object libbpf-rs owned until take_ptr().
    let ret = unsafe { libbpf_sys::bpf_object__load(ptr.as_ptr()) };
    if ret < 0 {
        let err = os_error(Stage::Load, "bpf_object__load", -ret);
        // SAFETY: nobody else owns `ptr` any more.
        unsafe { libbpf_sys::bpf_object__close(ptr.as_ptr()) };
        return Err(err);
    }
    // SAFETY: a loaded object; Object takes ownership (closes it on drop).
    let object = unsafe { Object::from_ptr(ptr) };
    take_log();
    Ok(object)
}

/// Attach the (loaded) struct_ops map `map_name` of `object`: one bpf_link.
pub fn attach(object: &mut Object, map_name: &str) -> Result<(Link, u32), AttachError> {
    take_log();
    let name = CString::new(map_name).map_err(|_| refused(Stage::Attach, format!("bad map name {map_name:?}")))?;
    // SAFETY: the object is alive for the call; the name is NUL-terminated.
    let map = unsafe { libbpf_sys::bpf_object__find_map_by_name(object.as_libbpf_object().as_ptr(), name.as_ptr()) };
    if map.is_null() {
        return Err(refused(Stage::Attach, format!("no map {map_name} in the object")));
    }
    // SAFETY: `map` belongs to the live object. libbpf returns NULL and
    // sets errno on failure.
    let raw = unsafe { libbpf_sys::bpf_map__attach_struct_ops(map) };
    let Some(raw) = NonNull::new(raw) else {
        return Err(os_error(Stage::Attach, "BPF_LINK_CREATE (struct_ops)", last_errno()));
    };
    // SAFETY: a fresh link nobody else owns.
    let link = unsafe { Link::from_ptr(raw) };
    let id = link_id(&link).map_err(|e| refused(Stage::Attach, e))?;
    Ok((link, id))
}

/// `struct hid_bpf_probe_args` (drivers/hid/bpf/progs/hid_bpf.h, and
/// udev-hid-bpf's copy): what a program's `SEC("syscall") probe` gets.
#[repr(C)]
struct HidBpfProbeArgs {
    hid: u32,
    rdesc_size: u32,
    rdesc: [u8; 4096],
    retval: i32,
}

/// Run the object's probe (if it has one) on the device's current report
/// descriptor (its sysfs directory's `report_descriptor`); a note when the
/// probe ran and accepted the device.
pub fn probe_device(obj: &Object, hid_id: u32, sysfs: Option<&Path>) -> Result<Option<String>, AttachError> {
    let Some(sysfs) = sysfs else { return Ok(None) };
    let rdesc_path = sysfs.join("report_descriptor");
    let rdesc = std::fs::read(&rdesc_path).map_err(|e| AttachError {
        stage: Stage::Probe,
        message: format!("reading {}: {e}", rdesc_path.display()),
        errno: None,
        log: vec![],
    })?;
    Ok(probe(obj, hid_id, &rdesc)?
        .then(|| format!("the program's probe accepted the device ({}-byte descriptor)", rdesc.len())))
}

/// Run the object's `probe` program, as udev-hid-bpf does after loading
/// and before attaching: BPF_PROG_TEST_RUN with the device's hid id and
/// report descriptor as context; the device is accepted only when the
/// program leaves `retval` at 0 (it starts at -1). Ok(false): the object
/// has no probe program.
pub fn probe(object: &Object, hid_id: u32, rdesc: &[u8]) -> Result<bool, AttachError> {
    let Some(prog) = object.progs().find(|p| p.name().to_str() == Some("probe")) else {
        return Ok(false);
    };
    if rdesc.len() > 4096 {
        return Err(refused(Stage::Probe, format!("the descriptor has {} bytes; probe args hold 4096", rdesc.len())));
    }
    let mut args =
        Box::new(HidBpfProbeArgs { hid: hid_id, rdesc_size: rdesc.len() as u32, rdesc: [0; 4096], retval: -1 });
    args.rdesc[..rdesc.len()].copy_from_slice(rdesc);
    // SAFETY: zeroed is valid for this plain C struct; sz is set below.
    let mut opts: libbpf_sys::bpf_test_run_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<libbpf_sys::bpf_test_run_opts>() as _;
    opts.ctx_in = (&*args as *const HidBpfProbeArgs).cast();
    opts.ctx_size_in = std::mem::size_of::<HidBpfProbeArgs>() as u32;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&prog));
    // SAFETY: ctx_in points at `args` for the call; the kernel copies the
    // context back into that buffer (syscall programs use ctx_in only).
    let ret = unsafe { libbpf_sys::bpf_prog_test_run_opts(fd, &mut opts) };
    if ret < 0 {
        return Err(os_error(Stage::Probe, "BPF_PROG_TEST_RUN of `probe`", -ret));
    }
    if args.retval != 0 {
        let errno = args.retval.checked_neg().filter(|e| *e > 0);
        return Err(AttachError {
            stage: Stage::Probe,
            message: format!("the program's probe rejected the device (ctx->retval = {})", args.retval),
            errno,
            log: take_log(),
        });
    }
    Ok(true)
}

fn link_id(link: &Link) -> Result<u32, String> {
    let fd = std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(link));
    link_info(fd).map(|i| i.id)
}

/// The verifier's reason, from a libbpf load log: the lines just before
/// its "processed N insns" summary.
fn verifier_verdict(log: &[String]) -> Option<String> {
    let end = log.iter().position(|l| l.starts_with("processed ") && l.contains(" insns"))?;
    let start = log[..end]
        .iter()
        .rposition(|l| l.starts_with(|c: char| c.is_ascii_digit()) || l.starts_with(';'))
        .map(|i| i + 1)?;
    let why: Vec<&str> = log[start..end].iter().map(String::as_str).filter(|l| !l.is_empty()).collect();
    (!why.is_empty()).then(|| why.join("; "))
}

/// Every id of one kernel object kind, from a BPF_*_GET_NEXT_ID walk.
/// `next(start)` is the syscall: Ok(next id) or Err(errno). Only ENOENT
/// ends the walk; any other error means the list could not be read, and
/// saying "absent" or counting what was seen so far would be a lie.
pub fn enumerate_ids(kind: &str, mut next: impl FnMut(u32) -> Result<u32, i32>) -> Result<Vec<u32>, String> {
    let mut ids = Vec::new();
    let mut start = 0;
    loop {
        match next(start) {
            Ok(id) if id <= start => return Err(format!("BPF_{kind}_GET_NEXT_ID went backwards ({start} -> {id})")),
            Ok(id) => {
                ids.push(id);
                start = id;
            }
            Err(ENOENT) => return Ok(ids),
            Err(e) => {
                return Err(format!(
                    "BPF_{kind}_GET_NEXT_ID after id {start} failed: {} (errno {e})",
                    std::io::Error::from_raw_os_error(e)
                ))
            }
        }
    }
}

type NextId = unsafe extern "C" fn(u32, *mut u32) -> std::os::raw::c_int;

fn kernel_ids(kind: &str, f: NextId) -> Result<Vec<u32>, String> {
    enumerate_ids(kind, |start| {
        let mut id = 0;
        // SAFETY: `id` outlives the call. libbpf returns -errno on failure.
        let ret = unsafe { f(start, &mut id) };
        if ret < 0 {
            Err(-ret)
        } else {
            Ok(id)
        }
    })
}

pub fn link_ids() -> Result<Vec<u32>, String> {
    kernel_ids("LINK", libbpf_sys::bpf_link_get_next_id)
}

/// The kernel's view of one link: absent, or present with its struct_ops
/// map id (0 once BPF_LINK_DETACH ran).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Gone,
    Listed { map_id: u32 },
}

impl LinkState {
    pub fn name(self) -> &'static str {
        match self {
            LinkState::Gone => "gone",
            LinkState::Listed { map_id: 0 } => "listed, detached",
            LinkState::Listed { .. } => "listed, attached",
        }
    }
}

struct LinkInfo {
    id: u32,
    struct_ops_map: Option<u32>,
}

fn link_info(fd: i32) -> Result<LinkInfo, String> {
    // SAFETY: zeroed is a valid bpf_link_info; the kernel fills `len` bytes.
    let mut info: libbpf_sys::bpf_link_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libbpf_sys::bpf_link_info>() as u32;
    // SAFETY: info and len outlive the call; len is info's size.
    let ret = unsafe { libbpf_sys::bpf_link_get_info_by_fd(fd, &mut info, &mut len) };
    if ret < 0 {
        return Err(format!("BPF_OBJ_GET_INFO_BY_FD on a link: {}", std::io::Error::from_raw_os_error(-ret)));
    }
    // SAFETY: a plain u32 in the union; only used for struct_ops links,
    // whose member the kernel filled.
    let map_id = unsafe { info.__bindgen_anon_1.struct_ops.map_id };
    let struct_ops_map = (info.type_ == libbpf_sys::BPF_LINK_TYPE_STRUCT_OPS).then_some(map_id);
    Ok(LinkInfo { id: info.id, struct_ops_map })
}

/// Where link `id` stands: Err when the kernel could not be asked.
pub fn link_state(id: u32) -> Result<LinkState, String> {
    if !link_ids()?.contains(&id) {
        return Ok(LinkState::Gone);
    }
    // SAFETY: plain syscall wrapper; returns an fd or -errno.
    let fd = unsafe { libbpf_sys::bpf_link_get_fd_by_id(id) };
    if fd == -ENOENT {
        // Freed between the walk and this call.
        return Ok(LinkState::Gone);
    }
    if fd < 0 {
        return Err(format!("BPF_LINK_GET_FD_BY_ID {id}: {}", std::io::Error::from_raw_os_error(-fd)));
    }
    // SAFETY: a fresh fd we own.
    let owned = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let info = link_info(std::os::fd::AsRawFd::as_raw_fd(&owned))?;
    match info.struct_ops_map {
        Some(map_id) => Ok(LinkState::Listed { map_id }),
        None => Err(format!("bpf_link {id} is not a struct_ops link")),
    }
}

/// How many programs, maps and links the kernel knows.
pub fn object_counts() -> Result<ObjectCounts, String> {
    Ok(ObjectCounts {
        progs: kernel_ids("PROG", libbpf_sys::bpf_prog_get_next_id)?.len(),
        maps: kernel_ids("MAP", libbpf_sys::bpf_map_get_next_id)?.len(),
        links: link_ids()?.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake GET_NEXT_ID over `ids` that fails with `fail` after `after`.
    fn walk(ids: &[u32], fail: Option<(u32, i32)>) -> Result<Vec<u32>, String> {
        enumerate_ids("LINK", |start| {
            if let Some((after, errno)) = fail {
                if start == after {
                    return Err(errno);
                }
            }
            ids.iter().copied().find(|i| *i > start).ok_or(ENOENT)
        })
    }

    #[test]
    fn only_enoent_ends_the_walk() {
        assert_eq!(walk(&[3, 7, 9], None).unwrap(), vec![3, 7, 9]);
        assert_eq!(walk(&[], None).unwrap(), Vec::<u32>::new());
        // EPERM, EMFILE, ENOMEM half-way: "could not look", never a short list.
        for errno in [1, 24, 12] {
            let e = walk(&[3, 7, 9], Some((3, errno))).unwrap_err();
            assert!(e.contains("after id 3 failed"), "{e}");
        }
        let e = walk(&[3], Some((0, 1))).unwrap_err();
        assert!(e.contains("Operation not permitted"), "{e}");
    }

    #[test]
    fn a_walk_that_does_not_advance_is_an_error() {
        let e = enumerate_ids("MAP", |_| Ok(5)).unwrap_err();
        assert!(e.contains("went backwards"), "{e}");
    }

    #[test]
    fn expected_errors_compare_stage_and_errno() {
        let e = AttachError { stage: Stage::Load, message: "m".into(), errno: Some(22), log: vec![] };
        assert_eq!(e.seen(), "load: EINVAL");
        let want = hidvm_proto::ExpectedError::parse("attach: EINVAL").unwrap();
        assert_ne!(e.seen(), want.to_string(), "a load-stage EINVAL must not satisfy attach: EINVAL");
        let none = AttachError { stage: Stage::Open, message: "no struct_ops map".into(), errno: None, log: vec![] };
        assert_eq!(none.seen(), "open: no errno (no struct_ops map)");
    }
}
