//! Where the time of one piece of work went: phases, each ended by a mark
//! and measured from the previous one (`report.json` of every test, and
//! `hidvm bench`'s breakdown of the reference test).
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant, SystemTime};

/// One phase: what it was and how long it took.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Phase {
    pub what: String,
    pub seconds: f64,
}

/// Marks since a start; each names the phase that ended there.
#[derive(Clone, Debug)]
pub struct Timeline {
    started: Instant,
    last: Duration,
    phases: Vec<Phase>,
}

impl Timeline {
    pub fn start() -> Timeline {
        Timeline::since(Instant::now())
    }

    pub fn since(started: Instant) -> Timeline {
        Timeline { started, last: Duration::ZERO, phases: Vec::new() }
    }

    /// The phase `what` ended now.
    pub fn mark(&mut self, what: &str) {
        self.mark_at(what, self.started.elapsed());
    }

    /// The phase `what` ended `at` after the start (a moment learnt
    /// afterwards, e.g. a file's modification time); never before the
    /// previous mark.
    pub fn mark_at(&mut self, what: &str, at: Duration) {
        let at = at.max(self.last);
        self.phases.push(Phase { what: what.to_string(), seconds: (at - self.last).as_secs_f64() });
        self.last = at;
    }

    /// The phase `what` ended at wall-clock time `when` (a file's mtime).
    pub fn mark_wall(&mut self, what: &str, when: SystemTime) {
        let ago = SystemTime::now().duration_since(when).unwrap_or_default();
        self.mark_at(what, self.started.elapsed().saturating_sub(ago));
    }

    /// Another timeline's phases, as one stretch of this one ending now.
    pub fn extend(&mut self, inner: &[Phase]) {
        let at = self.started.elapsed();
        let inner_total: f64 = inner.iter().map(|p| p.seconds).sum();
        let mut room = (at - self.last).as_secs_f64();
        let before = room - inner_total;
        if before > 0.0005 {
            self.phases.push(Phase { what: "before the VM".into(), seconds: before });
            room -= before;
        }
        for p in inner {
            let s = p.seconds.min(room.max(0.0));
            room -= s;
            self.phases.push(Phase { what: p.what.clone(), seconds: s });
        }
        self.last = at;
    }

    pub fn phases(&self) -> &[Phase] {
        &self.phases
    }

    pub fn into_phases(self) -> Vec<Phase> {
        self.phases
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_the_gaps_between_marks_and_never_negative() {
        let mut t = Timeline::since(Instant::now() - Duration::from_millis(50));
        t.mark_at("a", Duration::from_millis(10));
        t.mark_at("b", Duration::from_millis(30));
        t.mark_at("c", Duration::from_millis(20));
        let s: Vec<(String, u64)> =
            t.phases().iter().map(|p| (p.what.clone(), (p.seconds * 1000.0).round() as u64)).collect();
        assert_eq!(s, vec![("a".into(), 10), ("b".into(), 20), ("c".into(), 0)]);
        t.extend(&[Phase { what: "vm".into(), seconds: 0.005 }]);
        let names: Vec<&str> = t.phases().iter().map(|p| p.what.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "before the VM", "vm"]);
        let total: f64 = t.phases().iter().map(|p| p.seconds).sum();
        assert!(total >= 0.049, "{total}");
    }
}
