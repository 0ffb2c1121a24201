//! Loading fixtures and attaching their hid_bpf_ops through bpf_links, with
//! libbpf-rs; querying the kernel's view of links, programs and maps.
use libbpf_rs::{Link, MapCore, MapType, Object, ObjectBuilder, PrintLevel};
use std::sync::Mutex;

/// BPF_F_BEFORE (include/uapi/linux/bpf.h): the only flag hid_bpf_ops takes.
pub const BPF_F_BEFORE: u32 = 1 << 3;

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
    let important: Vec<String> =
        log.iter().filter(|(l, _)| *l != PrintLevel::Debug).map(|(_, m)| m.clone()).collect();
    if !important.is_empty() {
        return important;
    }
    log[log.len().saturating_sub(20)..].iter().map(|(_, m)| m.clone()).collect()
}

/// Why a load or attach failed. `errno` is the kernel's answer when there
/// was one; `log` carries libbpf's output (the verifier log when the kernel
/// rejected a program).
#[derive(Debug)]
pub struct AttachError {
    pub stage: &'static str,
    pub message: String,
    pub errno: Option<i32>,
    pub log: Vec<String>,
}

/// The errno behind a libbpf-rs error. Its chain does not expose the
/// underlying io::Error (the inner type is private), but its rendering
/// ends in std's "(os error N)".
fn errno_of(e: &libbpf_rs::Error) -> Option<i32> {
    let text = format!("{e:#}");
    let at = text.rfind("(os error ")? + "(os error ".len();
    text[at..].split(')').next()?.parse().ok()
}

fn failure(stage: &'static str, e: &libbpf_rs::Error) -> AttachError {
    let log = take_log();
    let message = match (stage, verifier_verdict(&log)) {
        ("load", Some(why)) => format!("the verifier rejected it: {why} ({e})"),
        _ => format!("{e:#}"),
    };
    AttachError { stage, message, errno: errno_of(e), log }
}

fn plain(stage: &'static str, message: String) -> AttachError {
    AttachError { stage, message, errno: None, log: take_log() }
}

/// Open `path`, set hid_id (and flags) in the chosen struct_ops map, load.
/// Returns the object and the map's name.
pub fn load(path: &str, hid_id: u32, flags: u32, map: Option<&str>) -> Result<(Object, String), AttachError> {
    take_log();
    let mut open = ObjectBuilder::default().open_file(path).map_err(|e| failure("open", &e))?;
    let struct_ops: Vec<String> = open
        .maps()
        .filter(|m| m.map_type() == MapType::StructOps)
        .map(|m| m.name().to_string_lossy().into_owned())
        .collect();
    let chosen = match (map, struct_ops.as_slice()) {
        (Some(want), all) if all.iter().any(|m| m == want) => want.to_string(),
        (Some(want), all) => {
            return Err(plain("open", format!("{path} has no struct_ops map `{want}` (has: {})", all.join(", "))))
        }
        (None, [only]) => only.clone(),
        (None, []) => return Err(plain("open", format!("{path} has no struct_ops map"))),
        (None, all) => {
            return Err(plain(
                "open",
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
                .ok_or_else(|| plain("open", format!("struct_ops map {chosen} has no initial value")))?;
            value[0..4].copy_from_slice(&hid_id.to_ne_bytes());
            if flags != 0 {
                let old = u32::from_ne_bytes(value[4..8].try_into().unwrap());
                value[4..8].copy_from_slice(&(old | flags).to_ne_bytes());
            }
        } else {
            // Other maps in the object are neither created nor attached.
            m.set_autocreate(false).map_err(|e| failure("open", &e))?;
        }
    }
    let object = open.load().map_err(|e| failure("load", &e))?;
    take_log();
    Ok((object, chosen))
}

/// Attach the (loaded) struct_ops map `map_name` of `object`: one bpf_link.
pub fn attach(object: &mut Object, map_name: &str) -> Result<(Link, u32), AttachError> {
    take_log();
    let mut link = None;
    for mut m in object.maps_mut() {
        if m.name().to_string_lossy() == map_name {
            link = Some(m.attach_struct_ops().map_err(|e| failure("attach", &e))?);
        }
    }
    let link = link.ok_or_else(|| plain("attach", format!("no map {map_name} in the object")))?;
    let id = link.info().map(|i| i.id).map_err(|e| failure("attach", &e))?;
    Ok((link, id))
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

/// The kernel's view of one link: absent, or present with its struct_ops
/// map id (0 once BPF_LINK_DETACH ran).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Gone,
    Listed { map_id: u32 },
}

pub fn link_state(id: u32) -> LinkState {
    for l in libbpf_rs::query::LinkInfoIter::default() {
        if l.id == id {
            let map_id = match l.info {
                libbpf_rs::query::LinkTypeInfo::StructOps(s) => s.map_id,
                _ => 0,
            };
            return LinkState::Listed { map_id };
        }
    }
    LinkState::Gone
}

/// How many programs, maps and links the kernel knows (by id enumeration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectCounts {
    pub progs: usize,
    pub maps: usize,
    pub links: usize,
}

impl std::fmt::Display for ObjectCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} programs, {} maps, {} links", self.progs, self.maps, self.links)
    }
}

pub fn object_counts() -> ObjectCounts {
    ObjectCounts {
        progs: libbpf_rs::query::ProgInfoIter::default().count(),
        maps: libbpf_rs::query::MapInfoIter::default().count(),
        links: libbpf_rs::query::LinkInfoIter::default().count(),
    }
}
