//! Kernel-side evidence for a race's window (`hidvm_proto::window`):
//! fentry/fexit programs (`bpf/race_window.bpf.c`, built into the agent)
//! on kernel functions and on HID-BPF struct_ops programs, each instance
//! tagged, all writing entry/exit records stamped with the kernel's clock
//! into one ring buffer that the agent drains after every round.
//!
//! Kernel functions are traced once per race step; programs once per
//! round (the programs a round's `before` steps attach are new objects
//! every round). A function missing from the kernel's BTF, or a tracer the
//! kernel refuses, is an error the race reports as a failed check: never
//! as "zero hits".
use crate::bpf;
use hidvm_proto::window::{DeviceKnown, Record, Traced};
use hidvm_proto::Hook;
use libbpf_rs::btf::types::{Func, FuncProto, MemberAttr, Ptr, Struct};
use libbpf_rs::libbpf_sys;
use libbpf_rs::{
    AsRawLibbpf, Btf, Link, MapCore, MapFlags, MapHandle, MapType, Object, ObjectBuilder, ProgramType, ReferencesType,
    RingBuffer, RingBufferBuilder,
};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::{Arc, Mutex};

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/race_window.bpf.o"));

/// The shared ring buffer: 16 MiB, ~350 000 records of 48 bytes with
/// their header (a flooding racer leaves two per program call and two per
/// dispatcher call: a hidraw write flood makes up to ~100 000 in a round
/// of race_destroy_vs_output_report; 4 MiB lost records there).
const RING_BYTES: u32 = 1 << 24;
const RECORD_BYTES: usize = 40;
const MAX_DEREFS: usize = 3;

/// `struct config` of race_window.bpf.c (its only .rodata).
#[repr(C)]
struct Config {
    tag: u32,
    derefs: u32,
    off: [u32; MAX_DEREFS],
    pad: u32,
}

/// What the tracer needs from the kernel's BTF: which functions exist,
/// and where a call's device is.
pub struct KernelBtf {
    btf: Btf<'static>,
    /// offsetof(struct hid_bpf_ops, hdev), offsetof(struct hid_bpf_ctx, hid).
    ops_hdev: u32,
    ctx_hid: u32,
    /// struct hid_bpf_ops' members in order: libbpf gives a struct_ops
    /// program the index of the member it implements as its
    /// expected_attach_type.
    ops_members: Vec<String>,
}

impl KernelBtf {
    pub fn load() -> Result<KernelBtf, String> {
        let btf = Btf::from_vmlinux().map_err(|e| format!("loading the kernel's BTF: {e:#}"))?;
        let ops = struct_members(&btf, "hid_bpf_ops")?;
        let ctx = struct_members(&btf, "hid_bpf_ctx")?;
        let offset = |members: &[(String, u32)], s: &str, m: &str| {
            members
                .iter()
                .find(|(n, _)| n == m)
                .map(|(_, o)| *o)
                .ok_or_else(|| format!("struct {s} has no member `{m}` in the kernel's BTF"))
        };
        Ok(KernelBtf {
            ops_hdev: offset(&ops, "hid_bpf_ops", "hdev")?,
            ctx_hid: offset(&ctx, "hid_bpf_ctx", "hid")?,
            ops_members: ops.into_iter().map(|(n, _)| n).collect(),
            btf,
        })
    }

    /// How to find the device of a call to `func` (64-bit loads at these
    /// offsets from its first argument), None when it has no device; Err
    /// when the kernel has no such function in its BTF.
    pub fn device_rule(&self, func: &str) -> Result<Option<Vec<u32>>, String> {
        let id = find(&self.btf, func, libbpf_sys::BTF_KIND_FUNC)
            .ok_or_else(|| format!("{func}: no such function in the kernel's BTF (/sys/kernel/btf/vmlinux)"))?;
        if matches!(func, "hid_bpf_reg" | "hid_bpf_unreg") {
            // (void *kdata, ...): kdata is the struct hid_bpf_ops.
            return Ok(Some(vec![self.ops_hdev]));
        }
        let first_param = self
            .btf
            .type_by_id::<Func<'_>>(id)
            .and_then(|f| FuncProto::try_from(f.referenced_type()).ok())
            .and_then(|p| p.iter().next().map(|a| a.ty));
        let pointee = first_param
            .and_then(|ty| self.btf.type_by_id::<libbpf_rs::btf::BtfType<'_>>(ty))
            .and_then(|t| Ptr::try_from(t.skip_mods_and_typedefs()).ok())
            .map(|p| p.referenced_type().skip_mods_and_typedefs())
            .and_then(|t| t.name().map(|n| n.to_string_lossy().into_owned()));
        Ok(match pointee.as_deref() {
            Some("hid_device") => Some(vec![]),
            Some("hid_bpf_ctx") => Some(vec![self.ctx_hid]),
            _ => None,
        })
    }

    /// The hid_bpf_ops callback a loaded struct_ops program implements.
    pub fn hook_of(&self, prog: &libbpf_rs::Program<'_>) -> Option<Hook> {
        if prog.prog_type() != ProgramType::StructOps {
            return None;
        }
        // SAFETY: a live program of a loaded object.
        let idx = unsafe { libbpf_sys::bpf_program__expected_attach_type(prog.as_libbpf_object().as_ptr()) };
        let member = self.ops_members.get(idx as usize)?;
        Hook::ALL.iter().copied().find(|h| h.member() == member)
    }
}

fn find(btf: &Btf<'_>, name: &str, kind: u32) -> Option<libbpf_rs::btf::TypeId> {
    let c = CString::new(name).ok()?;
    // SAFETY: a live BTF object and a NUL-terminated name.
    let id = unsafe { libbpf_sys::btf__find_by_name_kind(btf.as_libbpf_object().as_ptr(), c.as_ptr(), kind) };
    (id > 0).then(|| libbpf_rs::btf::TypeId::from(id as u32))
}

/// A struct's members with their byte offsets.
fn struct_members(btf: &Btf<'_>, name: &str) -> Result<Vec<(String, u32)>, String> {
    let s = find(btf, name, libbpf_sys::BTF_KIND_STRUCT)
        .and_then(|id| btf.type_by_id::<Struct<'_>>(id))
        .ok_or_else(|| format!("struct {name} is not in the kernel's BTF"))?;
    Ok(s.iter()
        .map(|m| {
            let bits = match m.attr {
                MemberAttr::Normal { offset } | MemberAttr::BitField { offset, .. } => offset,
            };
            (m.name.map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), bits / 8)
        })
        .collect())
}

/// One traced function or program: its fentry and fexit links.
struct Instance {
    _links: Vec<Link>,
    _object: Object,
}

/// The records and counters of one race step's tracing.
pub struct Tracer {
    records: MapHandle,
    lost: MapHandle,
    ring: RingBuffer<'static>,
    seen: Arc<Mutex<Vec<Record>>>,
    instances: Vec<Instance>,
    /// Instances from this index on are the current round's (programs).
    round_from: usize,
    /// tag -> what it traces; tag -> whether its calls name a device.
    pub what: BTreeMap<u32, Traced>,
    pub device_known: DeviceKnown,
}

impl Tracer {
    pub fn new() -> Result<Tracer, String> {
        // SAFETY: zeroed is valid for these plain C options; sz is set.
        let mut opts: libbpf_sys::bpf_map_create_opts = unsafe { std::mem::zeroed() };
        opts.sz = std::mem::size_of::<libbpf_sys::bpf_map_create_opts>() as _;
        let records = MapHandle::create(MapType::RingBuf, Some("hidvm_race_rec"), 0, 0, RING_BYTES, &opts)
            .map_err(|e| format!("creating the tracer's ring buffer: {e:#}"))?;
        let lost = MapHandle::create(MapType::Array, Some("hidvm_race_ctr"), 4, 8, 2, &opts)
            .map_err(|e| format!("creating the tracer's counters: {e:#}"))?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let mut builder = RingBufferBuilder::new();
        builder
            .add(&records, move |data: &[u8]| {
                if let Some(r) = parse(data) {
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push(r);
                }
                0
            })
            .map_err(|e| format!("reading the tracer's ring buffer: {e:#}"))?;
        let ring = builder.build().map_err(|e| format!("reading the tracer's ring buffer: {e:#}"))?;
        Ok(Tracer {
            records,
            lost,
            ring,
            seen,
            instances: Vec::new(),
            round_from: 0,
            what: BTreeMap::new(),
            device_known: DeviceKnown::new(),
        })
    }

    /// Trace a kernel function for the rest of the race.
    pub fn trace_function(&mut self, btf: &KernelBtf, name: &str) -> Result<u32, String> {
        let rule = btf.device_rule(name)?;
        let tag = self.load(None, name, rule.as_deref())?;
        self.what.insert(tag, Traced::Function(name.to_string()));
        self.device_known.insert(tag, rule.is_some());
        self.round_from = self.instances.len();
        Ok(tag)
    }

    /// Trace a struct_ops program (`func`: its function name) until
    /// [`Tracer::end_round`]. Its first argument points at the callback's
    /// arguments, whose first is the struct hid_bpf_ctx.
    pub fn trace_program(
        &mut self,
        btf: &KernelBtf,
        prog: BorrowedFd<'_>,
        func: &str,
        hook: Hook,
    ) -> Result<u32, String> {
        let tag = self.load(Some(prog), func, Some(&[0, btf.ctx_hid]))?;
        self.what.insert(tag, Traced::Program(hook));
        self.device_known.insert(tag, true);
        Ok(tag)
    }

    /// Stop tracing the round's programs.
    pub fn end_round(&mut self) {
        self.instances.truncate(self.round_from);
    }

    fn load(&mut self, prog: Option<BorrowedFd<'_>>, func: &str, derefs: Option<&[u32]>) -> Result<u32, String> {
        let tag = self.what.len() as u32 + 1;
        let what = match prog {
            Some(_) => format!("program {func}"),
            None => func.to_string(),
        };
        let fail = |stage: &str, e: String| {
            let log = bpf::take_libbpf_warnings();
            format!(
                "tracing {what}: {stage}: {e}{}",
                if log.is_empty() { String::new() } else { format!(" ({})", log.join("; ")) }
            )
        };
        bpf::take_libbpf_warnings();
        let mut open = ObjectBuilder::default().open_memory(OBJECT).map_err(|e| fail("open", format!("{e:#}")))?;
        let derefs = derefs.unwrap_or(&[]);
        let mut cfg = Config { tag, derefs: derefs.len() as u32, off: [0; MAX_DEREFS], pad: 0 };
        cfg.off[..derefs.len()].copy_from_slice(derefs);
        for mut m in open.maps_mut() {
            let name = m.name().to_string_lossy().into_owned();
            if name == "records" {
                m.reuse_fd(self.records.as_fd()).map_err(|e| fail("reuse ring buffer", format!("{e:#}")))?;
            } else if name == "counters" {
                m.reuse_fd(self.lost.as_fd()).map_err(|e| fail("reuse counters", format!("{e:#}")))?;
            } else if name.ends_with(".rodata") {
                let v = m.initial_value_mut().ok_or_else(|| fail("config", "no .rodata".into()))?;
                if v.len() != std::mem::size_of::<Config>() {
                    return Err(fail("config", format!(".rodata is {} bytes", v.len())));
                }
                // SAFETY: Config is plain old data of exactly v.len() bytes.
                let bytes = unsafe {
                    std::slice::from_raw_parts((&cfg as *const Config).cast::<u8>(), std::mem::size_of::<Config>())
                };
                v.copy_from_slice(bytes);
            }
        }
        let target_fd = prog.map(|p| p.as_raw_fd()).unwrap_or(0);
        for mut p in open.progs_mut() {
            p.set_attach_target(target_fd, Some(func.to_string()))
                .map_err(|e| fail("attach target", format!("{e:#}")))?;
        }
        let object = open.load().map_err(|e| fail("load", format!("{e:#}")))?;
        let mut links = Vec::new();
        for p in object.progs_mut() {
            links.push(p.attach_trace().map_err(|e| fail("attach", format!("{e:#}")))?);
        }
        self.instances.push(Instance { _links: links, _object: object });
        Ok(tag)
    }

    /// Every record written since the last drain.
    pub fn drain(&self) -> Result<Vec<Record>, String> {
        self.ring.consume().map_err(|e| format!("reading the tracer's ring buffer: {e:#}"))?;
        Ok(std::mem::take(&mut *self.seen.lock().unwrap_or_else(|e| e.into_inner())))
    }

    /// Records the ring buffer had no room for, since the race began.
    pub fn lost(&self) -> Result<u64, String> {
        let v = self
            .lost
            .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| format!("reading the tracer's counter: {e:#}"))?
            .unwrap_or_default();
        Ok(v.get(..8).map(|b| u64::from_ne_bytes(b.try_into().expect("8 bytes"))).unwrap_or(0))
    }
}

/// `struct record` of race_window.bpf.c.
fn parse(data: &[u8]) -> Option<Record> {
    if data.len() < RECORD_BYTES {
        return None;
    }
    let u64_at = |o: usize| u64::from_ne_bytes(data[o..o + 8].try_into().expect("8 bytes"));
    let u32_at = |o: usize| u32::from_ne_bytes(data[o..o + 4].try_into().expect("4 bytes"));
    Some(Record {
        seq: u64_at(0),
        ts: u64_at(8),
        dev: u64_at(16),
        tag: u32_at(24),
        exit: u32_at(28) != 0,
        cpu: u32_at(32),
        tid: u32_at(36),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_as_the_program_writes_them() {
        let mut b = Vec::new();
        b.extend(99u64.to_ne_bytes());
        b.extend(1234u64.to_ne_bytes());
        b.extend(0xffff_8880_dead_beefu64.to_ne_bytes());
        for v in [7u32, 1, 1, 4321] {
            b.extend(v.to_ne_bytes());
        }
        let r = parse(&b).unwrap();
        assert_eq!(r, Record { seq: 99, ts: 1234, dev: 0xffff_8880_dead_beef, tag: 7, exit: true, cpu: 1, tid: 4321 });
        assert!(parse(&b[..39]).is_none());
        assert_eq!(std::mem::size_of::<Config>(), 24);
    }
}

#[cfg(test)]
mod host_tests {
    use super::*;

    /// Exercises load, attach, ring buffer and pairing on the machine that
    /// runs the tests (needs BPF privileges and fentry support):
    /// `cargo test -p hidvm-agent -- --ignored tracer_sees_a_kernel_function`.
    #[test]
    #[ignore = "needs BPF privileges on the test machine"]
    fn tracer_sees_a_kernel_function() {
        let mut t = Tracer::new().unwrap();
        let tag = t.load(None, "do_sys_openat2", None).unwrap();
        t.drain().unwrap();
        for _ in 0..5 {
            std::fs::File::open("/proc/self/stat").unwrap();
        }
        let recs = t.drain().unwrap();
        // SAFETY: gettid has no preconditions.
        let me = unsafe { libc::gettid() } as u32;
        let mine: Vec<_> = recs.iter().filter(|r| r.tag == tag && r.tid == me).collect();
        assert!(mine.len() >= 10, "{recs:?}");
        let calls = hidvm_proto::window::calls(&recs);
        assert!(calls.intervals.iter().filter(|i| i.tid == me).count() >= 5);
        assert_eq!(t.lost().unwrap(), 0);
    }
}
