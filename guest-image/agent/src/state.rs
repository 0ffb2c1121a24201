//! What a scenario run holds while its steps execute (devices, links,
//! loaded objects) and what each step reports ([`Outcome`]). The
//! interpreter (`run.rs`) and the steps (`steps/`) both depend on this
//! module; neither depends on the other.
use crate::device::Device;
use crate::holder::HeldLink;
use hidvm_proto::msg::step_ok;
use hidvm_proto::{Check, DeviceDef, GuestFixture, Observed, RaceRecord, ReplayData};
use libbpf_rs::{Link, Object};
use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::PathBuf;

/// What one step saw. Its verdict is computed ([`Outcome::ok`]): no error,
/// at least one check, all checks passed. Actions that only did something
/// are notes.
#[derive(Default, Debug)]
pub struct Outcome {
    pub checks: Vec<Check>,
    pub notes: Vec<String>,
    pub error: Option<String>,
    /// What a replay step saw (for `--bless`).
    pub observed: Option<Box<Observed>>,
    /// What a race step measured (boxed: outcomes travel in Results).
    pub race: Option<Box<RaceRecord>>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        step_ok(&self.checks, self.error.as_deref())
    }

    /// A step that could not do its work.
    pub fn fail(msg: impl Into<String>) -> Outcome {
        Outcome { error: Some(msg.into()), ..Outcome::default() }
    }

    /// Add a check; returns whether it passed.
    pub fn push(&mut self, check: Check) -> bool {
        let ok = check.ok();
        self.checks.push(check);
        ok
    }

    pub fn expect_eq(&mut self, what: impl Into<String>, expected: impl Display, seen: impl Display) -> bool {
        self.push(Check::equal(what, expected, seen))
    }

    pub fn expect_at_least(&mut self, what: impl Into<String>, min: u64, seen: u64) -> bool {
        self.push(Check::at_least(what, min, seen))
    }

    /// Take over another outcome's checks, notes and error (a race reports
    /// the sub-step that failed).
    pub fn absorb(&mut self, other: Outcome) {
        self.checks.extend(other.checks);
        self.notes.extend(other.notes);
        if self.error.is_none() {
            self.error = other.error;
        }
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// The first reason this step failed, for the run's summary.
    pub fn first_problem(&self) -> String {
        if let Some(e) = &self.error {
            return e.clone();
        }
        if self.checks.is_empty() {
            return "the step checked nothing".into();
        }
        self.checks.iter().find(|c| !c.ok()).map(|c| format!("{}: {}", c.what, c.comparison())).unwrap_or_default()
    }
}

/// A link and every way it is held: the agent's fd, a bpffs pin, a child
/// process. The object stays loaded (in `Runner::objects`) until the end,
/// so a release check is about the link, not about the object going away.
pub struct LinkHandle {
    pub id: u32,
    pub object: Option<usize>,
    pub map_name: String,
    pub link: Option<Link>,
    pub pin: Option<PathBuf>,
    pub holder: Option<HeldLink>,
}

pub struct Runner {
    pub devices: BTreeMap<String, Device>,
    /// The scenario's device definitions (id -> definition).
    pub defs: BTreeMap<String, DeviceDef>,
    /// Fixture name -> object file in the guest and its device table.
    pub fixtures: BTreeMap<String, GuestFixture>,
    /// Replay steps' data, by step index.
    pub replays: BTreeMap<usize, ReplayData>,
    /// Replay steps record instead of comparing (`hidvm test --bless`).
    pub bless: bool,
    /// The 1-based index of the step running now.
    pub step: usize,
    pub links: BTreeMap<String, LinkHandle>,
    pub objects: Vec<Object>,
    /// Fds deliberately leaked by self-test release variants.
    pub leaked: Vec<std::os::fd::OwnedFd>,
}

impl Runner {
    pub fn new(
        defs: BTreeMap<String, DeviceDef>,
        fixtures: BTreeMap<String, GuestFixture>,
        replays: BTreeMap<usize, ReplayData>,
        bless: bool,
    ) -> Runner {
        Runner {
            devices: BTreeMap::new(),
            defs,
            fixtures,
            replays,
            bless,
            step: 0,
            links: BTreeMap::new(),
            objects: Vec::new(),
            leaked: Vec::new(),
        }
    }

    pub fn device(&mut self, id: &str) -> Result<&mut Device, Outcome> {
        self.devices
            .get_mut(id)
            .ok_or_else(|| Outcome::fail(format!("device `{id}` does not exist (an earlier step failed?)")))
    }

    /// After every step: devices whose nodes died (re-probe) get new ones.
    pub fn refresh_devices(&mut self, o: &mut Outcome) {
        for d in self.devices.values_mut() {
            match d.refresh() {
                Ok(Some(note)) => o.note(note),
                Ok(None) => {}
                Err(e) => o.error = Some(format!("re-discovering {}: {e}", d.vdev.id)),
            }
        }
    }

    /// A fixture's object file and device table.
    pub fn fixture(&self, name: &str) -> Result<GuestFixture, Outcome> {
        self.fixtures
            .get(name)
            .cloned()
            .ok_or_else(|| Outcome::fail(format!("fixture `{name}` is not in the job (host bug)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_without_checks_did_not_pass() {
        let mut o = Outcome::default();
        o.note("did something");
        assert!(!o.ok());
        assert_eq!(o.first_problem(), "the step checked nothing");
        assert!(o.expect_eq("x", 1, 1));
        assert!(o.ok());
        assert!(!o.expect_eq("y", "gone", "listed"));
        assert!(!o.ok());
        assert_eq!(o.first_problem(), "y: expected gone, saw listed");
    }
}
