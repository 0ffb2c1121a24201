//! Steps that create and release bpf_links.
use crate::bpf::{self, LinkState, BPF_F_BEFORE};
use crate::holder;
use crate::run::{LinkHandle, Outcome, Runner};
use crate::wait::{poll_fd, poll_until};
use hidvm_proto::job::FIXTURE_DIR;
use hidvm_proto::{Errno, HexBytes, Holder, LinkAfter, ReleaseHow};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a released link may take to leave the kernel's link list.
/// Closing the last fd frees it synchronously; an unpin frees it from a
/// work item, hence the polling.
const LINK_GONE_DEADLINE: Duration = Duration::from_secs(2);

pub fn fixture_path(name: &str) -> String {
    format!("{FIXTURE_DIR}/{name}.bpf.o")
}

pub struct AttachSpec<'a> {
    pub link: &'a str,
    pub fixture: Option<&'a str>,
    pub reuse: Option<&'a str>,
    pub device: Option<&'a str>,
    pub hid_id: Option<u32>,
    pub map: Option<&'a str>,
    pub before: bool,
    pub holder: Holder,
    pub expect_error: Option<Errno>,
}

pub fn attach(r: &mut Runner, s: AttachSpec<'_>) -> Outcome {
    let mut o = Outcome::default();
    let hid_id = match (s.hid_id, s.device) {
        (Some(id), _) => id,
        (None, Some(d)) => match r.device(d) {
            Ok(dev) => dev.hid_id,
            Err(o) => return o,
        },
        (None, None) => return Outcome::fail("no device and no hid_id"),
    };
    let flags = if s.before { BPF_F_BEFORE } else { 0 };
    let what = s.fixture.map(String::from).unwrap_or_else(|| format!("map of `{}`", s.reuse.unwrap_or("?")));

    let result: Result<LinkHandle, bpf::AttachError> = match (s.fixture, s.reuse, s.holder) {
        (Some(f), _, Holder::Child) => holder::spawn(&fixture_path(f), hid_id, flags, s.map).map(|(held, id)| LinkHandle {
            id,
            object: None,
            map_name: String::new(),
            link: None,
            pin: None,
            holder: Some(held),
        }),
        (Some(f), _, Holder::Agent) => bpf::load(&fixture_path(f), hid_id, flags, s.map).and_then(|(obj, name)| {
            r.objects.push(obj);
            attach_loaded(r, r.objects.len() - 1, name)
        }),
        (None, Some(reuse), _) => {
            let Some((idx, name)) = r.links.get(reuse).and_then(|l| l.object.map(|i| (i, l.map_name.clone()))) else {
                return Outcome::fail(format!("link `{reuse}` has no object to reuse (an earlier step failed?)"));
            };
            attach_loaded(r, idx, name)
        }
        (None, None, _) => return Outcome::fail("nothing to attach"),
    };

    match (result, s.expect_error) {
        (Ok(h), None) => {
            o.check(format!("load and attach {what}"), "attached", "attached", true);
            o.notes.push(format!("hid_id {hid_id}: bpf_link id {}", h.id));
            r.links.insert(s.link.to_string(), h);
        }
        (Ok(h), Some(want)) => {
            o.check(format!("attach {what}"), format!("error {want}"), format!("attached (bpf_link {})", h.id), false);
            // Keep it so teardown releases it.
            r.links.insert(format!("{}#unexpected", s.link), h);
        }
        (Err(e), None) => {
            // The stage ("open", "load": verifier, "attach": hid_bpf_reg)
            // leads the check's name so self-tests can match on it.
            o.check(format!("{} {what}", e.stage), "success", e.message.clone(), false);
            o.notes.extend(e.log);
        }
        (Err(e), Some(want)) => {
            let seen = e.errno.map(|n| Errno(n).to_string()).unwrap_or_else(|| "no errno".into());
            let ok = e.errno == Some(want.0);
            o.check(format!("{} {what}", e.stage), format!("error {want}"), format!("error {seen}: {}", e.message), ok);
            o.notes.extend(e.log);
        }
    }
    o
}

/// Attach map `name` of the agent-held object `idx`: one more link on it.
fn attach_loaded(r: &mut Runner, idx: usize, name: String) -> Result<LinkHandle, bpf::AttachError> {
    let (link, id) = bpf::attach(&mut r.objects[idx], &name)?;
    Ok(LinkHandle { id, object: Some(idx), map_name: name, link: Some(link), pin: None, holder: None })
}

pub fn attach_many(r: &mut Runner, fixture: &str, device: &str, count: u32, prefix: &str) -> Outcome {
    let mut o = Outcome::default();
    let t0 = Instant::now();
    for i in 1..=count {
        let out = attach(
            r,
            AttachSpec {
                link: &format!("{prefix}{i}"),
                fixture: Some(fixture),
                reuse: None,
                device: Some(device),
                hid_id: None,
                map: None,
                before: false,
                holder: Holder::Agent,
                expect_error: None,
            },
        );
        if !out.ok() {
            o.check(format!("attach copy {i} of {fixture}"), "attached", out.checks.iter().find(|c| !c.ok).map(|c| c.seen.clone()).unwrap_or_default(), false);
            o.notes.extend(out.notes);
            return o;
        }
    }
    o.check(format!("attach {count} copies of {fixture}"), "all attached", "all attached", true);
    o.notes.push(format!("{count} attaches took {} ms", t0.elapsed().as_millis()));
    o
}

pub fn pin(r: &mut Runner, name: &str) -> Outcome {
    let mut o = Outcome::default();
    let Some(h) = r.links.get_mut(name) else { return Outcome::fail(format!("no link `{name}`")) };
    let path = PathBuf::from(format!("/sys/fs/bpf/hidvm-{name}"));
    match h.link.as_mut().map(|l| l.pin(&path)) {
        Some(Ok(())) => {
            o.check(format!("pin bpf_link {} at {}", h.id, path.display()), "pinned", "pinned", true);
            h.pin = Some(path);
        }
        Some(Err(e)) => o.check(format!("pin bpf_link {}", h.id), "pinned", format!("{e:#}"), false),
        None => return Outcome::fail(format!("link `{name}` has no open fd to pin")),
    }
    o
}

pub fn release(r: &mut Runner, name: &str, how: ReleaseHow, after: LinkAfter) -> Outcome {
    let mut o = Outcome::default();
    let Some(h) = r.links.get_mut(name) else {
        return Outcome::fail(format!("link `{name}` is not attached (an earlier step failed?)"));
    };
    let id = h.id;
    let done: Result<String, String> = match how {
        // Dropping the libbpf-rs Link closes the agent's fd: if it was the
        // last reference, the kernel unregisters the program before close()
        // returns.
        ReleaseHow::Close => h.link.take().map(drop).map(|_| format!("closed the agent's fd of bpf_link {id}")).ok_or_else(|| "no fd to close".to_string()),
        ReleaseHow::Unpin => match h.pin.take() {
            Some(p) => std::fs::remove_file(&p).map(|_| format!("unlinked {}", p.display())).map_err(|e| format!("unlink {}: {e}", p.display())),
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
            let r = link.detach().map(|_| format!("BPF_LINK_DETACH on bpf_link {id}")).map_err(|e| format!("BPF_LINK_DETACH: {e:#}"));
            if r.is_ok() {
                // A detached struct_ops link wakes pollers with EPOLLHUP.
                let hup = poll_fd(std::os::fd::AsFd::as_fd(link), Duration::ZERO)
                    .is_some_and(|r| r.contains(rustix::event::PollFlags::HUP));
                o.check("poll() on the link fd after BPF_LINK_DETACH", "POLLHUP", if hup { "POLLHUP" } else { "no POLLHUP" }, hup);
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
        Ok(note) => o.notes.push(note),
        Err(e) => {
            o.check(format!("release ({how:?})"), "succeeds", e, false);
            return o;
        }
    }
    check_link_state(&mut o, id, after);
    o
}

/// Compare the kernel's view of link `id` with `after`; polls for `Gone`.
pub fn check_link_state(o: &mut Outcome, id: u32, after: LinkAfter) {
    let what = format!("bpf_link {id} in the kernel's link list");
    let t0 = Instant::now();
    match after {
        LinkAfter::Gone => {
            let gone = poll_until(LINK_GONE_DEADLINE, Duration::from_millis(2), || {
                (bpf::link_state(id) == LinkState::Gone).then_some(())
            })
            .is_some();
            let ms = t0.elapsed().as_millis();
            let seen = if gone { format!("gone after {ms} ms") } else { format!("still listed after {ms} ms") };
            o.check(what, "gone", seen, gone);
        }
        LinkAfter::Attached | LinkAfter::Detached => {
            let seen = match bpf::link_state(id) {
                LinkState::Gone => "gone".to_string(),
                LinkState::Listed { map_id: 0 } => "listed, detached (struct_ops map id 0)".to_string(),
                LinkState::Listed { map_id } => format!("listed, attached (struct_ops map {map_id})"),
            };
            let expected = if after == LinkAfter::Attached { "listed, attached" } else { "listed, detached" };
            let ok = seen.starts_with(expected);
            o.check(what, expected, seen, ok);
        }
    }
}

/// Attach/release `count` times, checking rewritten/original each time;
/// kernel object counts must return to the baseline.
#[allow(clippy::too_many_arguments)]
pub fn cycle(
    r: &mut Runner,
    fixture: &str,
    device: &str,
    count: u32,
    fresh: bool,
    report: &HexBytes,
    rewritten: &HexBytes,
    original: &HexBytes,
) -> Outcome {
    let mut o = Outcome::default();
    let hid_id = match r.device(device) {
        Ok(d) => d.hid_id,
        Err(o) => return o,
    };
    let baseline = bpf::object_counts();
    let t0 = Instant::now();
    let path = fixture_path(fixture);
    let mut reused: Option<(libbpf_rs::Object, String)> = None;
    for i in 1..=count {
        if reused.is_none() || fresh {
            match bpf::load(&path, hid_id, 0, None) {
                Ok(x) => reused = Some(x),
                Err(e) => {
                    o.check(format!("iteration {i}: load {fixture}"), "loaded", e.message, false);
                    o.notes.extend(e.log);
                    return o;
                }
            }
        }
        let (obj, name) = reused.as_mut().expect("loaded above");
        let link = match bpf::attach(obj, name) {
            Ok((l, _)) => l,
            Err(e) => {
                o.check(format!("iteration {i}: attach"), "attached", e.message, false);
                return o;
            }
        };
        let d = r.devices.get_mut(device).expect("checked above");
        if let Err(msg) = expect_report(d, report, rewritten) {
            o.check(format!("iteration {i}: hidraw while attached"), rewritten.to_string(), msg, false);
            return o;
        }
        drop(link);
        if let Err(msg) = expect_report(d, report, original) {
            o.check(format!("iteration {i}: hidraw after the link was closed"), original.to_string(), msg, false);
            return o;
        }
        if fresh {
            reused = None;
        }
    }
    let elapsed = t0.elapsed();
    o.check(
        format!("{count} attach/release cycles"),
        "rewritten while attached, original after every release",
        "as expected every time",
        true,
    );
    o.notes.push(format!("{count} cycles in {} ms ({:.2} ms each)", elapsed.as_millis(), elapsed.as_secs_f64() * 1000.0 / count as f64));
    drop(reused);
    // Program and map ids are released when their last reference goes;
    // poll briefly in case a put was deferred to a work item.
    let mut after = baseline;
    poll_until(Duration::from_secs(2), Duration::from_millis(5), || {
        after = bpf::object_counts();
        (after == baseline).then_some(())
    });
    o.check("kernel programs/maps/links after the cycles", baseline.to_string(), after.to_string(), after == baseline);
    o
}

/// Inject `report` and require exactly `want` on hidraw; evdev is drained
/// (the cycle checks hidraw; the single-report steps check evdev too).
fn expect_report(d: &mut crate::device::Device, report: &HexBytes, want: &HexBytes) -> Result<(), String> {
    d.vdev.inject(&report.0)?;
    let seen = d.hidraw.reports(Some(Duration::from_millis(500)))?;
    let _ = d.evdev.frames(None);
    if seen.len() == 1 && seen[0] == want.0 {
        Ok(())
    } else {
        Err(super::io::show_reports(&seen))
    }
}
