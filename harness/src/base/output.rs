//! What hidvm tells its user while it works, kept apart from the work (as
//! vmtest's output.rs does): the runner emits events, an [`Output`] shows
//! them. On a terminal that is live progress (indicatif: a spinner with
//! the elapsed time and the build log's last line for each kernel build, a
//! bar for the tests); anywhere else (a pipe, a CI log, nextest) it is one
//! plain line per event, so logs stay greppable.
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Something long-running that has begun (see [`start`]).
pub enum Phase<'a> {
    /// A kernel build, with its log (its last line is the progress).
    KernelBuild { target: &'a str, log: &'a Path },
    /// Anything else: unpacking a tree, fetching a package, a selftest build.
    Work { what: &'a str },
}

pub trait Output: Send + Sync {
    /// A line for the user (`hidvm: …`).
    fn note(&self, line: &str);
    /// A long step begins; the returned value ends it when dropped.
    fn start(&self, phase: Phase<'_>) -> Box<dyn Running>;
    /// `total` tests are about to run.
    fn tests_started(&self, total: usize);
    /// One finished: `line` is its one-line result, `details` its failure
    /// report (step log, console tail), if it failed or asked to be verbose.
    fn test_finished(&self, passed: bool, line: &str, details: Option<&str>);
    /// All tests are done.
    fn tests_done(&self);
}

pub trait Running: Send {
    /// The step ended: say how (printed with the elapsed time).
    fn finish(self: Box<Self>, outcome: &str);
}

static OUTPUT: OnceLock<Box<dyn Output>> = OnceLock::new();

/// Choose the output once, at start: live progress if stderr is a
/// terminal (and HIDVM_PROGRESS is not `lines`), else plain lines.
pub fn init() {
    use std::io::IsTerminal;
    let lines = std::env::var("HIDVM_PROGRESS").is_ok_and(|v| v == "lines");
    if std::io::stderr().is_terminal() && !lines {
        let _ = OUTPUT.set(Box::new(Terminal::new()));
    }
}

fn get() -> &'static dyn Output {
    OUTPUT.get_or_init(|| Box::new(Lines)).as_ref()
}

pub fn note(line: impl AsRef<str>) {
    get().note(line.as_ref());
}

pub fn start(phase: Phase<'_>) -> Box<dyn Running> {
    get().start(phase)
}

pub fn tests_started(total: usize) {
    get().tests_started(total);
}

pub fn test_finished(passed: bool, line: &str, details: Option<&str>) {
    get().test_finished(passed, line, details);
}

pub fn tests_done() {
    get().tests_done();
}

/// One line per event on stderr.
struct Lines;

struct LinesRunning {
    what: String,
    t0: Instant,
}

impl Running for LinesRunning {
    fn finish(self: Box<Self>, outcome: &str) {
        eprintln!("hidvm: {}: {outcome} ({:.0} s)", self.what, self.t0.elapsed().as_secs_f64());
    }
}

fn describe(phase: &Phase<'_>) -> String {
    match phase {
        Phase::KernelBuild { target, log } => format!("building kernel {target} (log: {})", log.display()),
        Phase::Work { what } => what.to_string(),
    }
}

impl Output for Lines {
    fn note(&self, line: &str) {
        eprintln!("{line}");
    }
    fn start(&self, phase: Phase<'_>) -> Box<dyn Running> {
        let what = describe(&phase);
        eprintln!("hidvm: {what} ...");
        Box::new(LinesRunning { what, t0: Instant::now() })
    }
    fn tests_started(&self, _total: usize) {}
    fn test_finished(&self, _passed: bool, line: &str, details: Option<&str>) {
        match details {
            Some(d) => eprint!("{d}"),
            None => eprintln!("{line}"),
        }
    }
    fn tests_done(&self) {}
}

/// Live progress on a terminal.
struct Terminal {
    multi: MultiProgress,
    tests: Mutex<Option<(ProgressBar, usize)>>,
}

impl Terminal {
    fn new() -> Terminal {
        Terminal { multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()), tests: Mutex::new(None) }
    }
}

struct TerminalRunning {
    bar: ProgressBar,
    what: String,
    t0: Instant,
    stop: Arc<std::sync::atomic::AtomicBool>,
    multi: MultiProgress,
}

impl Running for TerminalRunning {
    fn finish(self: Box<Self>, outcome: &str) {
        let _ =
            self.multi.println(format!("hidvm: {}: {outcome} ({:.0} s)", self.what, self.t0.elapsed().as_secs_f64()));
        // Drop stops the ticker and clears the spinner.
    }
}

/// Also on an error path that never calls `finish`.
impl Drop for TerminalRunning {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.bar.finish_and_clear();
    }
}

/// The last non-empty line of a growing log (read from its tail).
fn last_line(log: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(log).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut buf = String::new();
    f.read_to_string(&mut buf).ok()?;
    buf.lines().rev().find(|l| !l.trim().is_empty()).map(|l| l.trim().chars().take(80).collect())
}

impl Output for Terminal {
    fn note(&self, line: &str) {
        let _ = self.multi.println(line);
    }
    fn start(&self, phase: Phase<'_>) -> Box<dyn Running> {
        let what = describe(&phase);
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {prefix} {wide_msg}").expect("template"),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        match phase {
            Phase::KernelBuild { target, log } => {
                bar.set_prefix(format!("building kernel {target}:"));
                let (bar2, stop2, log): (ProgressBar, _, PathBuf) = (bar.clone(), stop.clone(), log.to_path_buf());
                std::thread::spawn(move || {
                    while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                        if let Some(l) = last_line(&log) {
                            bar2.set_message(l);
                        }
                        std::thread::sleep(Duration::from_millis(500));
                    }
                });
            }
            Phase::Work { what } => bar.set_prefix(what.to_string()),
        }
        Box::new(TerminalRunning { bar, what, t0: Instant::now(), stop, multi: self.multi.clone() })
    }
    fn tests_started(&self, total: usize) {
        let bar = self.multi.add(ProgressBar::new(total as u64));
        bar.set_style(
            ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} tests {msg}").expect("template"),
        );
        bar.enable_steady_tick(Duration::from_millis(250));
        *self.tests.lock().unwrap_or_else(|e| e.into_inner()) = Some((bar, 0));
    }
    fn test_finished(&self, passed: bool, line: &str, details: Option<&str>) {
        let _ = self.multi.println(details.map(|d| d.trim_end().to_string()).unwrap_or_else(|| line.to_string()));
        if let Some((bar, failed)) = self.tests.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            if !passed {
                *failed += 1;
                bar.set_message(format!("({failed} failed)"));
            }
            bar.inc(1);
        }
    }
    fn tests_done(&self) {
        if let Some((bar, _)) = self.tests.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish_and_clear();
        }
    }
}
