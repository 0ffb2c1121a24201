//! Symbolized crash reports: the kernel tree's own
//! `scripts/decode_stacktrace.sh` run over a report, so every frame shows
//! its file:line and, after it, the file:lines of the functions inlined at
//! that address (on LLVM kernels, which inline far more, those are often
//! the story).
//!
//! `decode_stacktrace.sh <vmlinux> <tree> [<modules dir>]` reads the report
//! on stdin. It picks its tools by environment: `LLVM` unset runs
//! `${CROSS_COMPILE}addr2line`, `nm` and `readelf` (binutils); `LLVM=1`
//! runs `llvm-addr2line`, …; `LLVM=-19` runs `llvm-addr2line-19`, …;
//! `LLVM=/path/` runs `/path/llvm-addr2line`. A cell's `make` variables say
//! which ([`Tools::for_make_vars`]).
//!
//! The script is silent about failures: a missing tool, a vmlinux without
//! debug info or the wrong vmlinux all give the report back unchanged.
//! [`Symbolizer::decode`] therefore checks the tools before it runs and
//! counts the frames that came back with a file:line; it never passes the
//! raw text off as symbolized ("could not symbolize: …").
//!
//! It calls `nm` and `addr2line` once per distinct frame (2 processes, each
//! reading vmlinux), so it runs under a timeout, in a process group of its
//! own that is killed as a whole when the time is up. Results are cached in
//! memory per (vmlinux identity, tree, tools, report text).
use std::collections::HashMap;
use std::io::{Read, Write};
use std::ops::Range;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a report may take by default. Measured on 2 busy cores: a
/// 20-frame report takes a few seconds with binutils and LLVM alike
/// (docs in the report of the commit that added this).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Which addr2line/nm/readelf the script runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Tools {
    /// binutils from PATH (`LLVM` and `CROSS_COMPILE` unset).
    Binutils,
    /// LLVM's, as the `LLVM` make variable names them: "1", "-19" or a
    /// directory ending in '/'.
    Llvm(String),
}

impl Tools {
    /// The tools for a kernel built with these make variables (a cell's
    /// `make` table: `LLVM=-19` -> LLVM's; otherwise binutils).
    pub fn for_make_vars<'a>(vars: impl IntoIterator<Item = (&'a String, &'a String)>) -> Tools {
        vars.into_iter()
            .find(|(k, v)| k.as_str() == "LLVM" && !v.is_empty() && v.as_str() != "0")
            .map(|(_, v)| Tools::Llvm(v.clone()))
            .unwrap_or(Tools::Binutils)
    }

    /// The programs decode_stacktrace.sh will run, as it names them:
    /// readelf, addr2line, nm.
    pub fn programs(&self) -> [String; 3] {
        let (prefix, suffix) = match self {
            Tools::Binutils => (String::new(), String::new()),
            Tools::Llvm(v) if v.ends_with('/') => (format!("{v}llvm-"), String::new()),
            Tools::Llvm(v) if v.starts_with('-') => ("llvm-".to_string(), v.clone()),
            Tools::Llvm(_) => ("llvm-".to_string(), String::new()),
        };
        ["readelf", "addr2line", "nm"].map(|t| format!("{prefix}{t}{suffix}"))
    }

    fn apply(&self, cmd: &mut Command) {
        cmd.env_remove("CROSS_COMPILE");
        match self {
            Tools::Binutils => cmd.env_remove("LLVM"),
            Tools::Llvm(v) => cmd.env("LLVM", v),
        };
    }

    /// The Debian package a missing program comes from.
    fn package(&self) -> String {
        match self {
            Tools::Binutils => "binutils".into(),
            Tools::Llvm(v) if v.starts_with('-') => format!("llvm{v}"),
            Tools::Llvm(_) => "llvm".into(),
        }
    }
}

/// Why a report could not be symbolized. Every message starts with "could
/// not symbolize: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SymbolizeError {
    #[error("could not symbolize: {what} {path} does not exist")]
    Missing { what: &'static str, path: PathBuf },
    #[error(
        "could not symbolize: `{tool}` is not on PATH (decode_stacktrace.sh runs it for {tools}; install {package})"
    )]
    MissingTool { tool: String, tools: String, package: String },
    #[error("could not symbolize: decode_stacktrace.sh did not finish within {} s and was killed ({frames} frames)", .timeout.as_secs_f64())]
    Timeout { timeout: Duration, frames: usize },
    #[error("could not symbolize: decode_stacktrace.sh failed ({status}): {stderr}")]
    Failed { status: String, stderr: String },
    #[error("could not symbolize: none of the report's {frames} frames got a file:line from {vmlinux} (no debug info, or not the kernel that printed the report){}", stderr_hint(.stderr))]
    NothingResolved { frames: usize, vmlinux: PathBuf, stderr: String },
    #[error("could not symbolize: {0}")]
    Io(String),
}

fn stderr_hint(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!("; it said: {}", s.lines().take(3).collect::<Vec<_>>().join(" | "))
    }
}

/// A decoded report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbolized {
    /// What the script printed: the report with `func (file:line
    /// inlined-file:line …)` on each frame it resolved.
    pub lines: Vec<String>,
    /// Lines of the input with a `func+0x…/0x…` frame.
    pub frames: usize,
    /// Lines of the output with a file:line.
    pub resolved: usize,
    /// Time the script took (for a cached result: when it ran).
    pub elapsed: Duration,
    /// Served from the in-memory cache.
    pub cached: bool,
}

/// decode_stacktrace.sh of one tree, for one vmlinux.
#[derive(Debug, Clone)]
pub struct Symbolizer {
    /// `<tree>/scripts/decode_stacktrace.sh`.
    pub script: PathBuf,
    pub vmlinux: PathBuf,
    /// The tree the kernel was built from: file names are shown relative
    /// to it.
    pub tree: PathBuf,
    /// Where the script looks for `.ko` files of `[module]` frames.
    pub modules: Option<PathBuf>,
    pub tools: Tools,
    pub timeout: Duration,
    /// Also disassemble `Code:` lines (the script's `decodecode`); off by
    /// default: the lines are kept as they are.
    pub decode_code: bool,
    /// Call trace frames are return addresses: the instruction after the
    /// call, which may already be outside the inlined function that made
    /// it. Newer scripts (7.3's) look up `address - 1` themselves (`-R` to
    /// not); with an older one (6.12's) hidvm takes 1 off each frame's
    /// offset before handing it over. On by default.
    pub fix_return_addresses: bool,
}

impl Symbolizer {
    /// The tree's own script, for `vmlinux` built from `tree` with `tools`.
    pub fn new(vmlinux: &Path, tree: &Path, tools: Tools) -> Symbolizer {
        Symbolizer {
            script: tree.join("scripts/decode_stacktrace.sh"),
            vmlinux: vmlinux.to_path_buf(),
            tree: tree.to_path_buf(),
            modules: None,
            tools,
            timeout: DEFAULT_TIMEOUT,
            decode_code: false,
            fix_return_addresses: true,
        }
    }

    /// Everything the script needs is there: itself, bash, vmlinux and the
    /// three tools.
    pub fn check(&self) -> Result<(), SymbolizeError> {
        for (what, path) in
            [("decode_stacktrace.sh", &self.script), ("vmlinux", &self.vmlinux), ("kernel tree", &self.tree)]
        {
            if !path.exists() {
                return Err(SymbolizeError::Missing { what, path: path.clone() });
            }
        }
        let tools_name = match &self.tools {
            Tools::Binutils => "gcc kernels (LLVM unset)".to_string(),
            Tools::Llvm(v) => format!("LLVM={v} kernels"),
        };
        for tool in std::iter::once("bash".to_string()).chain(self.tools.programs()) {
            if find_on_path(&tool).is_none() {
                let package = if tool == "bash" { "bash".to_string() } else { self.tools.package() };
                return Err(SymbolizeError::MissingTool { tool, tools: tools_name.clone(), package });
            }
        }
        Ok(())
    }

    /// Decode a report (its lines, as the console printed them).
    pub fn decode(&self, report: &str) -> Result<Symbolized, SymbolizeError> {
        self.check()?;
        let key = self.cache_key(report)?;
        if let Some(hit) = cache().lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(Symbolized { cached: true, ..hit.clone() });
        }
        let frames = report.lines().filter(|l| has_frame(l)).count();
        let fix = self.fix_return_addresses && !self.script_subtracts()?;
        // Only frame lines (and `Code:` lines, if asked) go to the script;
        // the others pass it as placeholders and come back as they were
        // (its `read` eats their leading spaces and backslashes, and with
        // debuginfod-find installed it drops the `CPU: … PID: N Comm:` line).
        let mut kept = Vec::new();
        let input: String = report
            .lines()
            .map(|l| {
                let l = l.trim_end_matches('\r');
                let code = l.contains("Code: ");
                if (has_frame(l) || l.contains("[<")) && !code {
                    format!("{}\n", if fix { before_return_address(l) } else { l.to_string() })
                } else if code && self.decode_code {
                    format!("{l}\n")
                } else {
                    kept.push(l.to_string());
                    format!("hidvm-line-{}\n", kept.len() - 1)
                }
            })
            .collect();
        let started = Instant::now();
        let out = self.run(&input, frames)?;
        let lines: Vec<String> = out
            .stdout
            .lines()
            .map(|l| match l.trim().strip_prefix("hidvm-line-").and_then(|n| n.parse::<usize>().ok()) {
                Some(n) if n < kept.len() => kept[n].clone(),
                _ => l.to_string(),
            })
            .collect();
        let resolved = lines.iter().filter(|l| is_resolved(l)).count();
        if frames > 0 && resolved == 0 {
            return Err(SymbolizeError::NothingResolved { frames, vmlinux: self.vmlinux.clone(), stderr: out.stderr });
        }
        let result = Symbolized { lines, frames, resolved, elapsed: started.elapsed(), cached: false };
        cache().lock().unwrap_or_else(|e| e.into_inner()).insert(key, result.clone());
        Ok(result)
    }

    /// Whether the script looks up `return address - 1` itself (7.3's
    /// does, 6.12's does not).
    fn script_subtracts(&self) -> Result<bool, SymbolizeError> {
        let text = std::fs::read_to_string(&self.script)
            .map_err(|e| SymbolizeError::Io(format!("{}: {e}", self.script.display())))?;
        Ok(text.contains("decode_retaddr"))
    }

    fn cache_key(&self, report: &str) -> Result<String, SymbolizeError> {
        let meta = std::fs::metadata(&self.vmlinux)
            .map_err(|e| SymbolizeError::Io(format!("{}: {e}", self.vmlinux.display())))?;
        let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).unwrap_or_default();
        Ok(format!(
            "{}\0{}\0{}\0{}\0{:?}\0{:?}\0{}\0{}\0{}\0{report}",
            self.vmlinux.display(),
            meta.len(),
            mtime.as_nanos(),
            self.tree.display(),
            self.modules,
            self.tools,
            self.script.display(),
            self.decode_code,
            self.fix_return_addresses,
        ))
    }

    fn run(&self, input: &str, frames: usize) -> Result<Output, SymbolizeError> {
        let mut cmd = Command::new("bash");
        cmd.arg(&self.script).arg(&self.vmlinux).arg(&self.tree);
        if let Some(m) = &self.modules {
            cmd.arg(m);
        }
        self.tools.apply(&mut cmd);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        let io = |e: std::io::Error| SymbolizeError::Io(format!("running {}: {e}", self.script.display()));
        let mut child = cmd.spawn().map_err(io)?;
        let pid = child.id();
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = input.to_string();
        // A writer and two readers: the script reads as it writes, so a
        // big report must not wait on a full pipe.
        std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let reader = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = pipe.read_to_end(&mut buf);
                String::from_utf8_lossy(&buf).into_owned()
            })
        };
        let stdout = reader(Box::new(child.stdout.take().expect("piped stdout")));
        let stderr = reader(Box::new(child.stderr.take().expect("piped stderr")));
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(io)? {
                break status;
            }
            if Instant::now() >= deadline {
                // The whole group: bash and the nm/addr2line it runs.
                if let Some(pgid) = rustix::process::Pid::from_raw(pid as i32) {
                    let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
                }
                let _ = child.wait();
                return Err(SymbolizeError::Timeout { timeout: self.timeout, frames });
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let stdout = stdout.join().unwrap_or_default();
        let stderr = stderr.join().unwrap_or_default();
        if !status.success() {
            return Err(SymbolizeError::Failed {
                status: status.to_string(),
                stderr: stderr.trim().lines().take(5).collect::<Vec<_>>().join(" | "),
            });
        }
        Ok(Output { stdout, stderr })
    }
}

struct Output {
    stdout: String,
    stderr: String,
}

fn cache() -> &'static Mutex<HashMap<String, Symbolized>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Symbolized>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| PathBuf::from(program));
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(program)).find(|p| p.is_file())
}

/// A line the script will try to decode: a `name+0x1/0x2` token.
fn has_frame(line: &str) -> bool {
    line.split_whitespace().any(|w| {
        let w = w.trim_start_matches('(');
        let Some((name, rest)) = w.rsplit_once('+') else { return false };
        !name.is_empty() && rest.starts_with("0x") && rest.contains("/0x")
    })
}

/// A call trace frame with its offset one less: `? foo+0x1d/0x20` ->
/// `? foo+0x1c/0x20`, so an old script looks up the call, not the
/// instruction after it. Other lines (`RIP:`, `WARNING: … at`, `CFI
/// failure at`: exact addresses) and offsets of 0 stay.
fn before_return_address(line: &str) -> String {
    let Some(frame) = crate::judge::title::parse_frame(line) else { return line.to_string() };
    let (Some(offset), Some(size)) = (frame.offset, frame.size) else { return line.to_string() };
    let printed = format!("{}+0x{offset:x}/0x{size:x}", frame.symbol);
    match line.find(&printed) {
        Some(at) if offset > 0 => {
            format!("{}{}+0x{:x}/0x{size:x}{}", &line[..at], frame.symbol, offset - 1, &line[at + printed.len()..])
        }
        _ => line.to_string(),
    }
}

/// A decoded frame: "func (path/file.c:123 …)".
fn is_resolved(line: &str) -> bool {
    let Some(open) = line.find(" (") else { return false };
    line[open + 2..].split_whitespace().any(|w| {
        let w = w.trim_end_matches(')');
        match w.rsplit_once(':') {
            Some((file, n)) => file.contains('.') && !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()),
            None => false,
        }
    })
}

/// Symbolize lines `lines` (0-based, end exclusive: a
/// [`crate::judge::title::CrashReport::lines`]) of a test's console, with the
/// vmlinux in `build_dir` (`BuiltKernel::dir`/build) and the tree it was
/// built from; modules are looked for in `build_dir` too.
pub fn symbolize_console(
    console: &str,
    lines: Range<usize>,
    build_dir: &Path,
    tree: &Path,
    tools: Tools,
) -> Result<Symbolized, SymbolizeError> {
    let report: Vec<&str> = console.lines().skip(lines.start).take(lines.len()).collect();
    let mut s = Symbolizer::new(&build_dir.join("vmlinux"), tree, tools);
    s.modules = Some(build_dir.to_path_buf());
    s.decode(&report.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_follow_the_script() {
        assert_eq!(Tools::Binutils.programs(), ["readelf", "addr2line", "nm"]);
        assert_eq!(Tools::Llvm("-19".into()).programs(), ["llvm-readelf-19", "llvm-addr2line-19", "llvm-nm-19"]);
        assert_eq!(Tools::Llvm("1".into()).programs(), ["llvm-readelf", "llvm-addr2line", "llvm-nm"]);
        assert_eq!(Tools::Llvm("/opt/llvm/bin/".into()).programs()[1], "/opt/llvm/bin/llvm-addr2line");
        let vars: std::collections::BTreeMap<String, String> = [("LLVM".to_string(), "-19".to_string())].into();
        assert_eq!(Tools::for_make_vars(&vars), Tools::Llvm("-19".into()));
        let vars: std::collections::BTreeMap<String, String> = [("CC".to_string(), "gcc".to_string())].into();
        assert_eq!(Tools::for_make_vars(&vars), Tools::Binutils);
    }

    #[test]
    fn return_addresses_step_back_into_the_call() {
        assert_eq!(before_return_address("[ 1.2]  ? lkdtm_do_action+0x1d/0x20"), "[ 1.2]  ? lkdtm_do_action+0x1c/0x20");
        assert_eq!(
            before_return_address(" hidraw_write.llvm.12+0x100/0x1c8 [hid]"),
            " hidraw_write.llvm.12+0xff/0x1c8 [hid]"
        );
        assert_eq!(before_return_address("RIP: 0010:lkdtm_BUG+0x9/0xb"), "RIP: 0010:lkdtm_BUG+0x9/0xb");
        assert_eq!(before_return_address(" ? lkdtm_PANIC+0x0/0x15"), " ? lkdtm_PANIC+0x0/0x15");
        let warning = "WARNING: CPU: 1 PID: 34 at drivers/misc/lkdtm/bugs.c:112 lkdtm_WARNING+0x11/0x14";
        assert_eq!(before_return_address(warning), warning);
    }

    #[test]
    fn frames_and_resolved_lines_are_recognised() {
        assert!(has_frame("[    1.3] ? lkdtm_do_action+0x1d/0x20"));
        assert!(has_frame("RIP: 0010:lkdtm_BUG+0x9/0xb"));
        assert!(!has_frame("Call Trace:"));
        assert!(is_resolved("[    1.3] ? lkdtm_do_action (drivers/misc/lkdtm/core.c:166) "));
        assert!(is_resolved("? do_syscall_64 (arch/x86/entry/common.c:47 arch/x86/entry/common.c:78)"));
        assert!(is_resolved("? full_proxy_write (fs/debugfs/file.c:328 (discriminator 2))"));
        assert!(!is_resolved("? lkdtm_do_action+0x1d/0x20"));
        assert!(!is_resolved("CPU: 0 UID: 0 PID: 34 Comm: init Not tainted 6.12.117 (#3)"));
    }
}
