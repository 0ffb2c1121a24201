//! Steps that create and release bpf_links.
use crate::bpf::{self, LinkState, BPF_F_BEFORE};
use crate::holder;
use crate::state::{LinkHandle, Outcome, Runner};
use crate::wait::{poll_fd, poll_until};
use hidvm_proto::steps::{Attach, AttachMany, Cycle, Pin, Release};
use hidvm_proto::{Check, GuestFixture, HexBytes, Holder, LinkAfter, ObjectCounts, ReleaseHow, Stage};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a released link may take to leave the kernel's link list.
/// Closing the last fd frees it synchronously; an unpin frees it from a
/// work item, hence the polling.
const LINK_GONE_DEADLINE: Duration = Duration::from_secs(2);

pub fn attach(r: &mut Runner, s: &Attach) -> Outcome {
    let mut o = Outcome::default();
    let (hid_id, sysfs) = match (s.hid_id, &s.device) {
        (Some(id), _) => (id, crate::uhid::sysfs_by_hid_id(id)),
        (None, Some(d)) => match r.device(d) {
            Ok(dev) => (dev.hid_id, Some(dev.sysfs.clone())),
            Err(o) => return o,
        },
        (None, None) => return Outcome::fail("no device and no hid_id"),
    };
    let flags = if s.before { BPF_F_BEFORE } else { 0 };
    let what = s.fixture.clone().unwrap_or_else(|| format!("map of `{}`", s.reuse.as_deref().unwrap_or("?")));

    let result: Result<LinkHandle, bpf::AttachError> = match (&s.fixture, &s.reuse) {
        (Some(f), _) => {
            let fixture = match r.fixture(f) {
                Ok(x) => x,
                Err(o) => return o,
            };
            // By hid_id too: the device with that hid_id is matched (and
            // probed) like a named one.
            let matched = match_or_skip(&fixture, hid_id, sysfs.as_deref(), s.skip_match.as_deref(), &mut o);
            let probe_on = match (&s.skip_probe, &sysfs) {
                (Some(why), _) => {
                    o.note(format!("probe not run: {why}"));
                    None
                }
                (None, None) => {
                    o.note(format!("no device has hid_id {hid_id}: a probe, if the program has one, did not run"));
                    None
                }
                (None, Some(p)) => Some(p.as_path()),
            };
            matched.and_then(|()| {
                load_probe_attach(r, &fixture.path, hid_id, flags, s.map.as_deref(), probe_on, s.holder, &mut o)
            })
        }
        (None, Some(reuse)) => {
            let Some((idx, name)) = r.links.get(reuse).and_then(|l| l.object.map(|i| (i, l.map_name.clone()))) else {
                return Outcome::fail(format!("link `{reuse}` has no object to reuse (an earlier step failed?)"));
            };
            attach_loaded(r, idx, name)
        }
        (None, None) => return Outcome::fail("nothing to attach"),
    };

    match (result, &s.expect_error) {
        (Ok(h), None) => {
            o.expect_eq(format!("load and attach {what}"), "attached", "attached");
            o.note(format!("hid_id {hid_id}: bpf_link id {}", h.id));
            r.links.insert(s.link.clone(), h);
        }
        (Ok(h), Some(want)) => {
            o.expect_eq(format!("attach {what}"), want, format!("attached (bpf_link {})", h.id));
            // Keep it so teardown releases it.
            r.links.insert(format!("{}#unexpected", s.link), h);
        }
        (Err(e), None) => {
            // The stage leads the check's name so self-tests can match on it.
            o.push(Check::equal(format!("{} {what}", e.stage), "success", e.seen()).with_detail(e.message.clone()));
            o.notes.extend(e.log);
        }
        (Err(e), Some(want)) => {
            o.push(Check::equal(format!("{} {what}", e.stage), want, e.seen()).with_detail(e.message.clone()));
            o.notes.extend(e.log);
        }
    }
    o
}

/// udev-hid-bpf's order for one device, as every attach path uses it:
/// match the program's HID_BPF_CONFIG, load it for `hid_id`, run its
/// probe; a skipped check says why. Returns the object and its map.
pub fn match_load_probe(
    fixture: &GuestFixture,
    hid_id: u32,
    sysfs: Option<&Path>,
    skip_match: Option<&str>,
    skip_probe: Option<&str>,
    o: &mut Outcome,
) -> Result<(libbpf_rs::Object, String), bpf::AttachError> {
    match_or_skip(fixture, hid_id, sysfs, skip_match, o)?;
    let (object, map) = bpf::load(&fixture.path, hid_id, 0, None)?;
    probe_or_skip(&object, hid_id, sysfs, skip_probe, o)?;
    Ok((object, map))
}

/// Match HID_BPF_CONFIG against the device (`sysfs`), unless the scenario
/// says why not; without a device (a hid_id nothing has) there is nothing
/// to match, and a note says so.
pub fn match_or_skip(
    fixture: &GuestFixture,
    hid_id: u32,
    sysfs: Option<&Path>,
    skip: Option<&str>,
    o: &mut Outcome,
) -> Result<(), bpf::AttachError> {
    match (skip, sysfs) {
        (Some(why), _) => {
            o.note(format!("HID_BPF_CONFIG not matched: {why}"));
            Ok(())
        }
        (None, None) => {
            if !fixture.config.is_empty() {
                o.note(format!("no device has hid_id {hid_id}: its HID_BPF_CONFIG could not be matched"));
            }
            Ok(())
        }
        (None, Some(p)) => match_device(fixture, Some(p), o),
    }
}

/// Run the probe on the device (`sysfs`), unless the scenario says why not.
pub fn probe_or_skip(
    object: &libbpf_rs::Object,
    hid_id: u32,
    sysfs: Option<&Path>,
    skip: Option<&str>,
    o: &mut Outcome,
) -> Result<(), bpf::AttachError> {
    match (skip, sysfs) {
        (Some(why), _) => {
            o.note(format!("probe not run: {why}"));
            Ok(())
        }
        (None, None) => {
            o.note(format!("no device has hid_id {hid_id}: a probe, if the program has one, did not run"));
            Ok(())
        }
        (None, Some(p)) => {
            if let Some(note) = bpf::probe_device(object, hid_id, Some(p))? {
                o.note(note);
            }
            Ok(())
        }
    }
}

/// A program with a HID_BPF_CONFIG table attaches only to a device one of
/// its entries matches (bus, group, vendor, product as the kernel reports
/// them in the device's modalias), as udev-hid-bpf's hwdb match does.
fn match_device(fixture: &GuestFixture, sysfs: Option<&Path>, o: &mut Outcome) -> Result<(), bpf::AttachError> {
    let (Some(sysfs), false) = (sysfs, fixture.config.is_empty()) else { return Ok(()) };
    let fail = |message: String| bpf::AttachError { stage: Stage::Match, message, errno: None, log: vec![] };
    let (bus, group, vendor, product) = crate::uhid::modalias(sysfs).map_err(fail)?;
    let table = fixture.config.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(", ");
    let device = format!("b{bus:04X}g{group:04X}v{vendor:08X}p{product:08X}");
    match fixture.config.iter().find(|m| m.matches(bus, group, vendor, product)) {
        Some(m) => {
            o.note(format!("HID_BPF_CONFIG entry {m} matches the device ({device})"));
            Ok(())
        }
        None => Err(fail(format!("the device ({device}) matches no HID_BPF_CONFIG entry ({table})"))),
    }
}

/// Open, load, probe and attach, in the agent or in a holder process.
#[allow(clippy::too_many_arguments)]
fn load_probe_attach(
    r: &mut Runner,
    path: &str,
    hid_id: u32,
    flags: u32,
    map: Option<&str>,
    sysfs: Option<&Path>,
    holder: Holder,
    o: &mut Outcome,
) -> Result<LinkHandle, bpf::AttachError> {
    if holder == Holder::Child {
        let (held, id) = holder::spawn(path, hid_id, flags, map, sysfs)?;
        return Ok(LinkHandle { id, object: None, map_name: String::new(), link: None, pin: None, holder: Some(held) });
    }
    let (obj, name) = bpf::load(path, hid_id, flags, map)?;
    if let Some(note) = bpf::probe_device(&obj, hid_id, sysfs)? {
        o.note(note);
    }
    r.objects.push(obj);
    attach_loaded(r, r.objects.len() - 1, name)
}

/// Attach map `name` of the agent-held object `idx`: one more link on it.
fn attach_loaded(r: &mut Runner, idx: usize, name: String) -> Result<LinkHandle, bpf::AttachError> {
    let (link, id) = bpf::attach(&mut r.objects[idx], &name)?;
    Ok(LinkHandle { id, object: Some(idx), map_name: name, link: Some(link), pin: None, holder: None })
}

pub fn attach_many(r: &mut Runner, s: &AttachMany) -> Outcome {
    let mut o = Outcome::default();
    let t0 = Instant::now();
    let mut attached = 0u64;
    for i in 1..=s.count {
        let one = Attach {
            link: format!("{}{i}", s.link_prefix),
            fixture: Some(s.fixture.clone()),
            reuse: None,
            device: Some(s.device.clone()),
            hid_id: None,
            map: None,
            before: false,
            holder: Holder::Agent,
            expect_error: None,
            skip_match: None,
            skip_probe: None,
        };
        let out = attach(r, &one);
        if !out.ok() {
            o.note(format!("copy {i}: {}", out.first_problem()));
            o.notes.extend(out.notes);
            break;
        }
        attached += 1;
    }
    o.expect_eq(format!("copies of {} attached", s.fixture), s.count, attached);
    o.note(format!("{attached} attaches took {} ms", t0.elapsed().as_millis()));
    o
}

pub fn pin(r: &mut Runner, s: &Pin) -> Outcome {
    let mut o = Outcome::default();
    let Some(h) = r.links.get_mut(&s.link) else { return Outcome::fail(format!("no link `{}`", s.link)) };
    let path = PathBuf::from(format!("/sys/fs/bpf/hidvm-{}", s.link));
    let Some(link) = h.link.as_mut() else { return Outcome::fail(format!("link `{}` has no open fd to pin", s.link)) };
    match link.pin(&path) {
        Ok(()) => {
            // The pin is a file in bpffs that opens as this very link.
            let reopened = libbpf_rs::Link::open(&path).map_err(|e| format!("{e:#}")).and_then(|l| {
                let fd = std::os::fd::AsFd::as_fd(&l);
                bpf_link_id(fd)
            });
            let seen = match reopened {
                Ok(id) => format!("bpf_link {id}"),
                Err(e) => format!("unopenable: {e}"),
            };
            o.expect_eq(format!("{} opens as", path.display()), format!("bpf_link {}", h.id), seen);
            h.pin = Some(path);
        }
        Err(e) => {
            o.expect_eq(format!("pin bpf_link {}", h.id), "pinned", format!("{e:#}"));
        }
    }
    o
}

fn bpf_link_id(fd: std::os::fd::BorrowedFd<'_>) -> Result<u32, String> {
    let mut info: libbpf_rs::libbpf_sys::bpf_link_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of_val(&info) as u32;
    // SAFETY: info and len outlive the call; len is info's size.
    let ret = unsafe {
        libbpf_rs::libbpf_sys::bpf_link_get_info_by_fd(std::os::fd::AsRawFd::as_raw_fd(&fd), &mut info, &mut len)
    };
    if ret < 0 {
        return Err(std::io::Error::from_raw_os_error(-ret).to_string());
    }
    Ok(info.id)
}

pub fn release(r: &mut Runner, s: &Release) -> Outcome {
    let mut o = Outcome::default();
    let Some(h) = r.links.get_mut(&s.link) else {
        return Outcome::fail(format!("link `{}` is not attached (an earlier step failed?)", s.link));
    };
    let id = h.id;
    let done: Result<String, String> = match s.how {
        // Dropping the libbpf-rs Link closes the agent's fd: if it was the
        // last reference, the kernel unregisters the program before close()
        // returns.
        ReleaseHow::Close => h
            .link
            .take()
            .map(drop)
            .map(|_| format!("closed the agent's fd of bpf_link {id}"))
            .ok_or_else(|| "no fd to close".to_string()),
        ReleaseHow::Unpin => match h.pin.take() {
            Some(p) => std::fs::remove_file(&p)
                .map(|_| format!("unlinked {}", p.display()))
                .map_err(|e| format!("unlink {}: {e}", p.display())),
            None => Err("not pinned".into()),
        },
        ReleaseHow::Detach => {
            let reopened;
            let link = match (&h.link, &h.pin) {
                (Some(l), _) => l,
                (None, Some(p)) => match libbpf_rs::Link::open(p) {
                    Ok(l) => {
                        reopened = l;
                        &reopened
                    }
                    Err(e) => return Outcome::fail(format!("reopen {}: {e:#}", p.display())),
                },
                (None, None) => return Outcome::fail("no fd and no pin to detach through"),
            };
            let r = link
                .detach()
                .map(|_| format!("BPF_LINK_DETACH on bpf_link {id}"))
                .map_err(|e| format!("BPF_LINK_DETACH: {e:#}"));
            if r.is_ok() {
                // A detached struct_ops link wakes pollers with EPOLLHUP.
                let seen = match poll_fd(std::os::fd::AsFd::as_fd(link), Duration::ZERO) {
                    Some(ev) if ev.contains(rustix::event::PollFlags::HUP) => "POLLHUP",
                    Some(_) => "no POLLHUP",
                    None => "poll() failed",
                };
                o.expect_eq("poll() on the link fd after BPF_LINK_DETACH", "POLLHUP", seen);
            }
            r
        }
        ReleaseHow::HolderExit => h.holder.take().ok_or_else(|| "no holder process".to_string()).and_then(|c| c.exit()),
        ReleaseHow::HolderKill => h.holder.take().ok_or_else(|| "no holder process".to_string()).and_then(|c| c.kill()),
        ReleaseHow::CloseButLeakDup => match h.link.take() {
            Some(link) => match std::os::fd::AsFd::as_fd(&link).try_clone_to_owned() {
                Ok(dup) => {
                    r.leaked.push(dup);
                    drop(link);
                    Ok(format!("closed bpf_link {id} but leaked a dup() of its fd"))
                }
                Err(e) => Err(format!("dup of link fd: {e}")),
            },
            None => Err("no fd".into()),
        },
    };
    match done {
        Ok(note) => o.note(note),
        Err(e) => return Outcome::fail(format!("release ({:?}): {e}", s.how)),
    }
    check_link_state(&mut o, id, s.link_after);
    o
}

/// Compare the kernel's view of link `id` with `after`; polls for `Gone`.
/// A failed query fails the check: it never reads as "gone".
pub fn check_link_state(o: &mut Outcome, id: u32, after: LinkAfter) {
    let what = format!("bpf_link {id} in the kernel's link list");
    let t0 = Instant::now();
    let seen = match after {
        LinkAfter::Gone => {
            let mut last = bpf::link_state(id);
            poll_until(LINK_GONE_DEADLINE, Duration::from_millis(2), || {
                last = bpf::link_state(id);
                // Stop polling on an answer of "gone" and on any error.
                (!matches!(last, Ok(LinkState::Listed { .. }))).then_some(())
            });
            last
        }
        LinkAfter::Attached | LinkAfter::Detached => bpf::link_state(id),
    };
    let ms = t0.elapsed().as_millis();
    match seen {
        Ok(state) => {
            o.push(Check::equal(what, after.name(), state.name()).with_detail(format!("after {ms} ms")));
        }
        Err(e) => {
            o.push(Check::equal(what, after.name(), "unknown: the link list could not be read").with_detail(e));
        }
    }
}

/// Attach/release `count` times, checking rewritten/original each time;
/// kernel object counts must return to the baseline.
pub fn cycle(r: &mut Runner, s: &Cycle) -> Outcome {
    let mut o = Outcome::default();
    let (hid_id, sysfs) = match r.device(&s.device) {
        Ok(d) => (d.hid_id, d.sysfs.clone()),
        Err(o) => return o,
    };
    let fixture = match r.fixture(&s.fixture) {
        Ok(f) => f,
        Err(o) => return o,
    };
    let path = fixture.path.clone();
    // Every load is matched and probed as udev-hid-bpf would: the device
    // stays the same, so the match is made once; the probe runs after
    // every load.
    if let Err(e) = match_or_skip(&fixture, hid_id, Some(&sysfs), s.skip_match.as_deref(), &mut o) {
        o.push(Check::equal(format!("{} {}", e.stage, s.fixture), "success", e.seen()).with_detail(e.message));
        return o;
    }
    let baseline = match bpf::object_counts() {
        Ok(b) => b,
        Err(e) => return Outcome::fail(format!("kernel object counts before the cycles: {e}")),
    };
    let t0 = Instant::now();
    let mut reused: Option<(libbpf_rs::Object, String)> = None;
    let mut completed = 0u64;
    for i in 1..=s.count {
        if reused.is_none() || s.fresh_objects {
            let loaded = bpf::load(&path, hid_id, 0, None).and_then(|(obj, name)| {
                let mut notes = Outcome::default();
                probe_or_skip(&obj, hid_id, Some(&sysfs), s.skip_probe.as_deref(), &mut notes)?;
                if i == 1 {
                    o.notes.extend(notes.notes);
                }
                Ok((obj, name))
            });
            match loaded {
                Ok(x) => reused = Some(x),
                Err(e) if e.stage == Stage::Probe => {
                    o.push(
                        Check::equal(format!("iteration {i}: probe {}", s.fixture), "success", e.seen())
                            .with_detail(e.message),
                    );
                    return o;
                }
                Err(e) => {
                    o.note(format!("iteration {i}: {}", e.message));
                    o.notes.extend(e.log);
                    break;
                }
            }
        }
        let (obj, name) = reused.as_mut().expect("loaded above");
        let link = match bpf::attach(obj, name) {
            Ok((l, _)) => l,
            Err(e) => {
                o.note(format!("iteration {i}: attach: {}", e.message));
                break;
            }
        };
        let d = r.devices.get_mut(&s.device).expect("checked above");
        if let Err(seen) = expect_report(d, &s.report, &s.rewritten) {
            o.expect_eq(format!("iteration {i}: hidraw while attached"), &s.rewritten, seen);
            return o;
        }
        drop(link);
        if let Err(seen) = expect_report(d, &s.report, &s.original) {
            o.expect_eq(format!("iteration {i}: hidraw after the link was closed"), &s.original, seen);
            return o;
        }
        completed += 1;
        if s.fresh_objects {
            reused = None;
        }
    }
    let elapsed = t0.elapsed();
    o.expect_eq("cycles rewritten while attached and original after release", s.count, completed);
    o.note(format!(
        "{completed} cycles in {} ms ({:.2} ms each)",
        elapsed.as_millis(),
        elapsed.as_secs_f64() * 1000.0 / s.count as f64
    ));
    drop(reused);
    expect_counts_back_to(&mut o, baseline);
    o
}

/// The kernel's program, map and link counts must be back at `baseline`
/// once the cycles' objects are gone. Program and map ids are released
/// when their last reference goes; poll briefly in case a put was deferred
/// to a work item.
fn expect_counts_back_to(o: &mut Outcome, baseline: ObjectCounts) {
    let mut after = bpf::object_counts();
    poll_until(Duration::from_secs(2), Duration::from_millis(5), || {
        after = bpf::object_counts();
        // Stop once back at the baseline, or when the counts cannot be read.
        (!matches!(&after, Ok(a) if *a != baseline)).then_some(())
    });
    let seen = match &after {
        Ok(a) => a.to_string(),
        Err(e) => format!("unknown: {e}"),
    };
    o.expect_eq("kernel programs/maps/links after the cycles", baseline, seen);
}

/// Inject `report` and require exactly `want` on hidraw; evdev is drained
/// (the cycle checks hidraw; the single-report steps check evdev too).
fn expect_report(d: &mut crate::device::Device, report: &HexBytes, want: &HexBytes) -> Result<(), String> {
    d.vdev.inject(&report.0)?;
    let seen = d.hidraw.reports(Some(Duration::from_millis(500)))?;
    d.evdev.frames(None)?;
    if seen.len() == 1 && seen[0] == want.0 {
        Ok(())
    } else {
        Err(hidvm_proto::expect::ReportExpect::show(&seen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hidvm_proto::DeviceMatch;

    /// A sysfs device directory holding only a modalias.
    fn device(modalias: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hidvm-links-test-{}-{modalias}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("modalias"), format!("{modalias}\n")).unwrap();
        dir
    }

    fn fixture(group: u16) -> GuestFixture {
        GuestFixture {
            path: "x.bpf.o".into(),
            config: vec![DeviceMatch { bus: 3, group, vendor: 0x1d6b, product: 0x0101 }],
        }
    }

    #[test]
    fn every_path_matches_the_device_or_says_why_not() {
        let generic = device("hid:b0003g0001v00001D6Bp00000101");
        let mut o = Outcome::default();
        assert!(match_or_skip(&fixture(1), 4, Some(&generic), None, &mut o).is_ok());
        assert!(o.notes[0].contains("matches the device"), "{:?}", o.notes);
        // The group only the kernel knows excludes it.
        let e = match_or_skip(&fixture(2), 4, Some(&generic), None, &mut o).unwrap_err();
        assert_eq!(e.seen(), "match: none");
        // Skipped: with the scenario's reason, never silently.
        let mut o = Outcome::default();
        assert!(match_or_skip(&fixture(2), 4, Some(&generic), Some("the table is wrong"), &mut o).is_ok());
        assert_eq!(o.notes, ["HID_BPF_CONFIG not matched: the table is wrong"]);
        // A hid_id no device has: nothing to match, and a note says so.
        let mut o = Outcome::default();
        assert!(match_or_skip(&fixture(2), 4242, None, None, &mut o).is_ok());
        assert!(o.notes[0].contains("no device has hid_id 4242"), "{:?}", o.notes);
        let _ = std::fs::remove_dir_all(generic);
    }
}
