//! What one test run found, and how it is shown: the step log (each check
//! expected vs seen), the verdict, health readings, the console tail.
use crate::judge::guest::GuestReport;
use crate::judge::known::Known;
use crate::judge::verdict::Verdict;
use crate::vm::accel::Accel;
use hidvm_proto::{Health, Kmemleak, Reading, StepReport};
use serde::Serialize;
use std::path::PathBuf;

/// Everything a failing test needs to explain itself.
#[derive(Debug, Serialize)]
pub struct RunReport {
    /// Whether a known kernel bug (tests/known-failures.toml) explains it.
    #[serde(skip)]
    pub known: crate::judge::known::Known,
    pub test: String,
    /// The kernel (kernels.toml name) and the tree's exact version.
    pub kernel: String,
    pub kernel_version: String,
    /// The tree's exact source label (`KernelSource::label`): what known
    /// bugs and reports name a kernel by.
    pub kernel_source: String,
    pub cell: String,
    pub scenario: String,
    pub summary: String,
    #[serde(serialize_with = "verdict_text")]
    pub verdict: Verdict,
    /// Splats excused by the allow-list: (entry index, headline).
    pub allowed: Vec<(usize, String)>,
    pub accel: Accel,
    pub accel_reason: String,
    pub vm_seconds: f64,
    /// "snapshot <key>", "cold boot", or why a restore fell back to one.
    #[serde(default)]
    pub started_from: String,
    /// From starting QEMU to the agent's first line.
    #[serde(default)]
    pub first_answer_seconds: Option<f64>,
    /// Where the test's time went, host and VM, in order.
    #[serde(default)]
    pub phases: Vec<crate::base::timeline::Phase>,
    pub run_dir: PathBuf,
    #[serde(skip)]
    pub guest: GuestReport,
    #[serde(skip)]
    pub console_tail: Vec<String>,
    /// The first kernel report (splat) not excused by the allow-list: its
    /// headline and the lines after it.
    #[serde(skip)]
    pub splat: Vec<String>,
    /// Every kernel report that counted, titled as syzbot titles crashes.
    pub crashes: Vec<Crash>,
    /// Step index -> the report descriptor of the device its descriptor
    /// check is relative to ("original with 17=05"), to decode a failure.
    #[serde(skip)]
    pub originals: std::collections::BTreeMap<usize, Vec<u8>>,
}

/// Rounds of a race step, and those whose window the kernel saw open.
#[derive(Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RaceCount {
    pub hits: u32,
    pub rounds: u32,
}

/// A kernel report, as reports and results files carry it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Crash {
    /// "BUG: unable to handle page fault in __srcu_read_unlock".
    pub title: String,
    /// The call trace's functions, innermost first.
    pub stack: Vec<String>,
    /// "kernel/rcu/srcutree.c:690", for WARNING and BUG reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_line: Option<String>,
    /// The report's lines through the tree's decode_stacktrace.sh (file:line
    /// per frame, inlined frames), or why that could not be done.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub symbolized: Vec<String>,
}

impl Crash {
    pub fn of(r: &crate::judge::title::CrashReport) -> Crash {
        Crash { title: r.title.clone(), stack: r.stack.clone(), file_line: r.file_line.clone(), symbolized: Vec::new() }
    }
}

fn verdict_text<S: serde::Serializer>(v: &Verdict, s: S) -> std::result::Result<S::Ok, S::Error> {
    match v {
        Verdict::Pass => s.serialize_str("pass"),
        Verdict::Fail { reason, .. } => s.serialize_str(&format!("fail: {}: {reason}", v.token())),
    }
}

fn reading<T: std::fmt::Display>(r: &Reading<T>) -> String {
    match r {
        Reading::Value(v) => v.to_string(),
        Reading::Error(e) => format!("UNREADABLE ({e})"),
    }
}

fn taint(r: &Reading<u64>) -> String {
    match r {
        Reading::Value(v) => crate::judge::console::taint_letters(*v),
        Reading::Error(e) => format!("UNREADABLE ({e})"),
    }
}

/// One line: taint, BPF objects, kmemleak.
fn health_line(h: &Health) -> String {
    let kmemleak = match &h.kmemleak {
        Kmemleak::NotBuilt => "not in this kernel".to_string(),
        Kmemleak::Failed { reason } => format!("SCAN FAILED ({reason})"),
        Kmemleak::Scanned { leaks, waited_ms } if leaks.is_empty() => {
            format!("no new leaks (final scan >= 5.2 s after teardown; waited {waited_ms} ms for that)")
        }
        Kmemleak::Scanned { leaks, .. } => format!("{} report line(s)", leaks.len()),
    };
    format!(
        "taint {} -> {}; BPF objects {} -> {}; kmemleak {kmemleak}",
        taint(&h.taint_before),
        taint(&h.taint_after),
        reading(&h.bpf_objects_before),
        reading(&h.bpf_objects_after)
    )
}

impl RunReport {
    /// A failed descriptor check, decoded item by item (when both sides
    /// can be rebuilt).
    fn decoded_descriptors(&self, step: usize, c: &hidvm_proto::Check) -> String {
        let original = self.originals.get(&step).map(Vec::as_slice);
        let Some((expected, seen)) = crate::results::rdesc::compared(&c.expected, &c.seen, original) else {
            return String::new();
        };
        let mut out = String::from("             decoded, item by item:\n");
        for l in crate::results::rdesc::explain(&expected, &seen) {
            out.push_str(&format!("               {l}\n"));
        }
        out
    }

    /// The race steps' rounds and the rounds whose window the kernel saw
    /// open, summed over the scenario's race steps (None: no race step).
    pub fn race(&self) -> Option<RaceCount> {
        let races: Vec<_> = self.guest.steps.iter().filter_map(|s| s.race.as_ref()).collect();
        (!races.is_empty()).then(|| RaceCount {
            hits: races.iter().map(|r| r.hits).sum(),
            rounds: races.iter().map(|r| r.rounds).sum(),
        })
    }

    /// The guest never answered and its agent never said hello: the kernel
    /// did not boot to the agent, which says nothing about the test.
    pub fn never_answered(&self) -> bool {
        matches!(&self.verdict, Verdict::Fail { kind, .. } if *kind == crate::judge::verdict::FailureKind::NoAnswer)
            && self.guest.hello.is_none()
    }

    /// Passed, or failed exactly as a known kernel bug says it does.
    pub fn acceptable(&self) -> bool {
        self.verdict.passed() || matches!(self.known, Known::Failed(..))
    }

    /// The step log: what each step expected and saw; on failure the
    /// console tail and where the artifacts are.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_heading(&mut out);
        for s in &self.guest.steps {
            self.render_step(&mut out, s);
        }
        self.render_after_steps(&mut out);
        self.render_failure_evidence(&mut out);
        out
    }

    /// The test, its verdict, whether a known kernel bug explains it, the
    /// scenario and the kernel.
    fn render_heading(&self, out: &mut String) {
        let status = match &self.verdict {
            Verdict::Pass => "PASS".to_string(),
            Verdict::Fail { kind, class, reason } => match class {
                Some(c) => format!("FAIL ({}, {c}): {reason}", kind.label()),
                None => format!("FAIL ({}): {reason}", kind.label()),
            },
        };
        out.push_str(&format!("{} [{}, {:.1} s]: {status}\n", self.test, self.accel.name(), self.vm_seconds));
        match &self.known {
            Known::Failed(i, reason) => {
                out.push_str(&format!("  KNOWN kernel bug (tests/known-failures.toml entry {}): {reason}\n", i + 1))
            }
            Known::Mismatch(i, expected, seen) => out.push_str(&format!(
                "  NOT the known kernel bug of tests/known-failures.toml entry {} on {}: it expects {expected}; this run showed {seen}\n",
                i + 1,
                self.kernel_source
            )),
            Known::None | Known::Passed(_) => {}
        }
        out.push_str(&format!("  scenario: {}\n", self.summary));
        out.push_str(&format!("  kernel source: {}\n", self.kernel_source));
        if let Some((release, version)) = &self.guest.hello {
            out.push_str(&format!("  kernel: {release}: {version}\n"));
        }
    }

    /// One step: what it did, each check, its error, its notes.
    fn render_step(&self, out: &mut String, s: &StepReport) {
        out.push_str(&format!(
            "  {} step {}: {} ({} ms)\n",
            if s.ok() { "ok  " } else { "FAIL" },
            s.index,
            s.what,
            s.ms
        ));
        for c in &s.checks {
            out.push_str(&format!("        {} {}: {}\n", if c.ok() { "ok  " } else { "FAIL" }, c.what, c.comparison()));
            if !c.ok() && c.what.starts_with("report descriptor") {
                out.push_str(&self.decoded_descriptors(s.index, c));
            }
        }
        if s.checks.is_empty() && s.error.is_none() {
            out.push_str("        FAIL the step checked nothing\n");
        }
        if let Some(e) = &s.error {
            out.push_str(&format!("        FAIL error: {e}\n"));
        }
        for n in &s.notes {
            out.push_str(&format!("        note: {n}\n"));
        }
    }

    /// The kernel's health, the splats the allow-list excused, the guest's
    /// own verdict.
    fn render_after_steps(&self, out: &mut String) {
        if let Some(h) = &self.guest.health {
            out.push_str(&format!("  kernel health: {}\n", health_line(h)));
        }
        for (i, line) in &self.allowed {
            out.push_str(&format!("  allowed splat (allow-list entry {}): {line}\n", i + 1));
        }
        if let Some((_, summary)) = &self.guest.done {
            out.push_str(&format!("  guest verdict: {summary}\n"));
        }
    }

    /// Only on failure: the kernel reports, bpf_printk output, the console
    /// tail and where the artifacts are.
    fn render_failure_evidence(&self, out: &mut String) {
        for c in self.crashes.iter().filter(|_| !self.verdict.passed()) {
            out.push_str(&format!("  kernel report: {}\n", c.title));
            for l in &c.symbolized {
                out.push_str(&format!("    | {l}\n"));
            }
        }
        if !self.splat.is_empty() && !self.verdict.passed() && self.crashes.iter().all(|c| c.symbolized.is_empty()) {
            out.push_str("  kernel report (raw):\n");
            for l in &self.splat {
                out.push_str(&format!("    | {l}\n"));
            }
        }
        if let Some(trace) = self.guest.trace.as_ref().filter(|t| !t.is_empty() && !self.verdict.passed()) {
            out.push_str(&format!("  bpf_printk output ({}):\n", self.run_dir.join("trace.txt").display()));
            for l in &trace[trace.len().saturating_sub(20)..] {
                out.push_str(&format!("    | {l}\n"));
            }
        }
        if !self.verdict.passed() {
            out.push_str(&format!("  console tail ({}):\n", self.run_dir.join("console.log").display()));
            for l in &self.console_tail {
                out.push_str(&format!("    | {l}\n"));
            }
            out.push_str(&format!("  artifacts: {}\n", self.run_dir.display()));
        }
    }
}
