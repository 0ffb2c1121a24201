//! `vm-test --repeat N`: how each test ended over N rounds, and which tests
//! are flaky.
//!
//! A round ends in one of three ways: a pass, the failure a known kernel
//! bug describes, or anything else (an unexpected failure, or hidvm could
//! not run the test). A test is *flaky* when it failed unexpectedly in some
//! rounds and not in others: that is what the repeat hunts, and a harness
//! with flaky tests cannot be trusted on one run. A race scenario that hits
//! its known kernel bug in some rounds and passes in the others is not
//! flaky: its window is only sometimes hit, which is the bug's nature, and
//! the repeat reports how often it was.
use crate::judge::known::Known;
use crate::results::report::RunReport;

/// How one test ended in one round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoundEnd {
    Pass,
    /// Failed exactly as a known kernel bug says.
    Known,
    /// An unexpected failure, or the test could not run.
    Fail,
}

impl RoundEnd {
    /// As a results record's `rounds` says it.
    pub fn status(self) -> crate::results::records::Status {
        use crate::results::records::Status;
        match self {
            RoundEnd::Pass => Status::Pass,
            RoundEnd::Known => Status::Known,
            RoundEnd::Fail => Status::Fail,
        }
    }

    pub fn of(r: &crate::Result<RunReport>) -> RoundEnd {
        match r {
            Ok(rep) if rep.verdict.passed() => RoundEnd::Pass,
            Ok(rep) if matches!(rep.known, Known::Failed(..)) => RoundEnd::Known,
            _ => RoundEnd::Fail,
        }
    }
}

/// One test's rounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub pass: usize,
    pub known: usize,
    pub fail: usize,
}

/// What a test's rounds add up to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Summary {
    /// Every round ended the same way: the last round's report stands.
    Steady,
    /// Failed unexpectedly in some rounds, not in all.
    Flaky,
    /// Never failed unexpectedly; hit its known kernel bug in some rounds
    /// and passed in the others.
    KnownSometimes,
}

impl Tally {
    pub fn add(&mut self, end: RoundEnd) {
        match end {
            RoundEnd::Pass => self.pass += 1,
            RoundEnd::Known => self.known += 1,
            RoundEnd::Fail => self.fail += 1,
        }
    }

    pub fn rounds(&self) -> usize {
        self.pass + self.known + self.fail
    }

    pub fn summary(&self) -> Summary {
        let n = self.rounds();
        if self.fail > 0 && self.fail < n {
            Summary::Flaky
        } else if self.fail == 0 && self.known > 0 && self.pass > 0 {
            Summary::KnownSometimes
        } else {
            Summary::Steady
        }
    }

    pub fn failed_every_round(&self) -> bool {
        self.rounds() > 0 && self.fail == self.rounds()
    }

    /// The matrix cell of a test whose rounds did not all end alike.
    pub fn cell(&self) -> Option<String> {
        let n = self.rounds();
        match self.summary() {
            Summary::Steady => None,
            Summary::Flaky => Some(format!("FLAKY {}/{n} failed", self.fail)),
            Summary::KnownSometimes => Some(format!("KNOWN {}/{n}", self.known)),
        }
    }

    /// One line for the results file: what the rounds were.
    pub fn describe(&self) -> String {
        format!(
            "{} runs: {} passed, {} failed as a known kernel bug says, {} failed otherwise",
            self.rounds(),
            self.pass,
            self.known,
            self.fail
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(ends: &[RoundEnd]) -> Tally {
        let mut t = Tally::default();
        ends.iter().for_each(|e| t.add(*e));
        t
    }
    use RoundEnd::*;

    #[test]
    fn rounds_that_all_end_alike_are_steady() {
        for e in [Pass, Known, Fail] {
            let t = tally(&[e; 20]);
            assert_eq!(t.summary(), Summary::Steady, "{e:?}");
            assert_eq!(t.cell(), None);
        }
        assert!(tally(&[Fail; 3]).failed_every_round());
        assert!(!tally(&[Pass, Fail]).failed_every_round());
        assert!(!Tally::default().failed_every_round());
    }

    #[test]
    fn one_unexpected_failure_in_twenty_is_flaky() {
        let mut ends = vec![Pass; 19];
        ends.push(Fail);
        let t = tally(&ends);
        assert_eq!(t.summary(), Summary::Flaky);
        assert_eq!(t.cell().as_deref(), Some("FLAKY 1/20 failed"));
        // Also among rounds that hit a known bug: the odd one out is not known.
        assert_eq!(tally(&[Known, Known, Fail]).summary(), Summary::Flaky);
    }

    #[test]
    fn a_race_that_sometimes_hits_its_known_bug_is_not_flaky() {
        let t = tally(&[Pass, Known, Pass, Pass]);
        assert_eq!(t.summary(), Summary::KnownSometimes);
        assert_eq!(t.cell().as_deref(), Some("KNOWN 1/4"));
        assert_eq!(t.describe(), "4 runs: 3 passed, 1 failed as a known kernel bug says, 0 failed otherwise");
    }
}
