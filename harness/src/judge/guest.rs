//! What the guest said: its result channel's JSON lines, parsed.
use hidvm_proto::{GuestMsg, Health, StepReport};

/// What the guest said, parsed from the result channel.
#[derive(Debug, Default, Clone)]
pub struct GuestReport {
    /// (kernel release, /proc/version).
    pub hello: Option<(String, String)>,
    /// The nonce the guest echoed (must be this run's).
    pub nonce: Option<String>,
    pub steps: Vec<StepReport>,
    pub health: Option<Health>,
    /// What programs printed with bpf_printk.
    pub trace: Option<Vec<String>>,
    /// What a `Command` job's program printed.
    pub output: Vec<String>,
    pub done: Option<(bool, String)>,
    /// How many verdicts arrived (exactly one is valid; the first counts).
    pub done_count: usize,
    /// Lines with our prefix that did not parse (a truncated last line when
    /// the VM died mid-write, typically).
    pub garbled: Vec<String>,
}

impl GuestReport {
    pub fn parse(text: &str) -> GuestReport {
        let mut r = GuestReport::default();
        for line in text.lines() {
            match GuestMsg::from_line(line) {
                None => {}
                Some(Err(e)) => r.garbled.push(e),
                Some(Ok(GuestMsg::Hello { kernel_release, proc_version, nonce, .. })) => {
                    r.hello = Some((kernel_release, proc_version));
                    r.nonce = Some(nonce);
                }
                Some(Ok(GuestMsg::Step(s))) => r.steps.push(s),
                Some(Ok(GuestMsg::Health(h))) => r.health = Some(h),
                Some(Ok(GuestMsg::Trace { lines })) => r.trace = Some(lines),
                Some(Ok(GuestMsg::Output { line })) => r.output.push(line),
                // Sent before a template is frozen; never in a test's own results.
                Some(Ok(GuestMsg::AwaitingDelivery)) => {
                    r.garbled.push("awaiting_delivery: a snapshot template's message among a test's results".into())
                }
                Some(Ok(GuestMsg::Done { passed, summary })) => {
                    r.done_count += 1;
                    if r.done.is_none() {
                        r.done = Some((passed, summary));
                    }
                }
            }
        }
        r
    }

    /// The last step the guest reported, for timeout and no-verdict messages.
    pub fn last_step(&self) -> String {
        self.steps.last().map(step_name).unwrap_or_else(|| "before the first step".into())
    }

    /// (step, check description) of every failed check, as the host
    /// computes them; a failed step without a failed check counts as
    /// (step, "error") or (step, "no check").
    pub fn failed_checks(&self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for s in self.steps.iter().filter(|s| !s.ok()) {
            let failed: Vec<_> = s.checks.iter().filter(|c| !c.ok()).collect();
            if s.error.is_some() {
                out.push((s.index, "error".to_string()));
            } else if s.checks.is_empty() {
                out.push((s.index, "no check".to_string()));
            }
            out.extend(failed.into_iter().map(|c| (s.index, c.what.clone())));
        }
        out
    }

    /// Every failed check as known-bug signatures name it: `step N:
    /// <what>`, what it saw and the check's detail (a verifier's log, for
    /// a load); a step's error is `step N: error` with the error, a failed
    /// step without checks `step N: no check`.
    pub fn failed_check_values(&self) -> Vec<FailedCheck> {
        let mut out = Vec::new();
        for s in self.steps.iter().filter(|s| !s.ok()) {
            if let Some(e) = &s.error {
                out.push(FailedCheck::new(format!("step {}: error", s.index), e.clone(), ""));
            } else if s.checks.is_empty() {
                out.push(FailedCheck::new(format!("step {}: no check", s.index), "", ""));
            }
            for c in s.checks.iter().filter(|c| !c.ok()) {
                let detail = c.detail.clone().unwrap_or_default();
                out.push(FailedCheck::new(format!("step {}: {}", s.index, c.what), c.seen.clone(), detail));
            }
        }
        out
    }
}

/// A failed check as a known bug's signature is matched against it.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedCheck {
    /// `step N: <what>`.
    pub check: String,
    /// What the check saw (compared whole by a signature's `seen`).
    pub seen: String,
    /// The check's context, e.g. the verifier's log of a rejected load;
    /// a signature's `seen_contains` looks in `seen` and here.
    pub detail: String,
}

impl FailedCheck {
    pub fn new(check: impl Into<String>, seen: impl Into<String>, detail: impl Into<String>) -> FailedCheck {
        FailedCheck { check: check.into(), seen: seen.into(), detail: detail.into() }
    }
}

/// "step 3 inject (failed)": a step as timeouts and verdicts name it.
pub fn step_name(s: &StepReport) -> String {
    format!("step {} {} ({})", s.index, s.what, if s.ok() { "ok" } else { "failed" })
}
