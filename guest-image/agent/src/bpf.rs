//! Loading fixtures and attaching their hid_bpf_ops through bpf_links, with
//! libbpf-rs.
use libbpf_rs::{Link, MapCore, MapType, Object, ObjectBuilder, PrintLevel};
use std::sync::Mutex;

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

/// A fixture attached to one device: the loaded object (programs, maps) and
/// the link keeping its struct_ops registered.
pub struct Attached {
    /// Owns the programs and the struct_ops map; only held, never read.
    pub _object: Object,
    pub link: Option<Link>,
    pub link_id: u32,
    pub map_name: String,
}

/// Why an attach failed; `log` carries libbpf's output (the verifier log
/// when the kernel rejected a program).
pub struct AttachError {
    pub stage: &'static str,
    pub message: String,
    pub log: Vec<String>,
}

pub fn attach(path: &str, hid_id: u32, map: Option<&str>) -> Result<Attached, AttachError> {
    let fail = |stage: &'static str, message: String| AttachError { stage, message, log: take_log() };
    take_log();
    let mut open = ObjectBuilder::default()
        .open_file(path)
        .map_err(|e| fail("open", format!("{path}: {e:#}")))?;

    let struct_ops: Vec<String> = open
        .maps()
        .filter(|m| m.map_type() == MapType::StructOps)
        .map(|m| m.name().to_string_lossy().into_owned())
        .collect();
    let chosen = match (map, struct_ops.as_slice()) {
        (Some(want), all) if all.iter().any(|m| m == want) => want.to_string(),
        (Some(want), all) => {
            return Err(fail("open", format!("{path} has no struct_ops map `{want}` (has: {})", all.join(", "))))
        }
        (None, [only]) => only.clone(),
        (None, []) => return Err(fail("open", format!("{path} has no struct_ops map"))),
        (None, all) => {
            return Err(fail(
                "open",
                format!("{path} has several struct_ops maps ({}); name one with `map = \"…\"`", all.join(", ")),
            ))
        }
    };

    for mut m in open.maps_mut().filter(|m| m.map_type() == MapType::StructOps) {
        if m.name().to_string_lossy() == chosen {
            // hid_id is the first member of struct hid_bpf_ops "so it can be
            // changed from userspace"; it is consumed when the map is loaded.
            let value = m.initial_value_mut().ok_or_else(|| {
                fail("open", format!("struct_ops map {chosen} has no initial value"))
            })?;
            value[0..4].copy_from_slice(&hid_id.to_ne_bytes());
        } else {
            // Other maps in the object are neither created nor attached.
            m.set_autocreate(false).map_err(|e| fail("open", e.to_string()))?;
        }
    }

    let mut object = open.load().map_err(|e| {
        let log = take_log();
        let message = match verifier_verdict(&log) {
            Some(why) => format!("the verifier rejected it: {why} ({e})"),
            None => format!("{e:#}"),
        };
        AttachError { stage: "load", message, log }
    })?;
    let mut link = None;
    for mut m in object.maps_mut() {
        if m.name().to_string_lossy() == chosen {
            link = Some(m.attach_struct_ops().map_err(|e| fail("attach", format!("{e:#}")))?);
        }
    }
    let link = link.ok_or_else(|| fail("attach", format!("map {chosen} vanished after load")))?;
    let link_id = link.info().map(|i| i.id).map_err(|e| fail("attach", format!("link info: {e}")))?;
    take_log();
    Ok(Attached { _object: object, link: Some(link), link_id, map_name: chosen })
}

/// The verifier's reason, from a libbpf load log: the lines just before
/// its "processed N insns" summary.
fn verifier_verdict(log: &[String]) -> Option<String> {
    let end = log.iter().position(|l| l.starts_with("processed ") && l.contains(" insns"))?;
    let start = log[..end].iter().rposition(|l| l.starts_with(|c: char| c.is_ascii_digit()) || l.starts_with(';')).map(|i| i + 1)?;
    let why: Vec<&str> = log[start..end].iter().map(String::as_str).filter(|l| !l.is_empty()).collect();
    (!why.is_empty()).then(|| why.join("; "))
}

/// Ids of every bpf_link the kernel currently knows (BPF_LINK_GET_NEXT_ID).
pub fn live_link_ids() -> Vec<u32> {
    libbpf_rs::query::LinkInfoIter::default().map(|l| l.id).collect()
}
