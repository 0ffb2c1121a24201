//! Errors a user can act on. Every message says what is wrong and what to
//! do about it, on one line.
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit codes, nextest's convention: 0 everything passed; 100 tests ran and
/// some failed; 1 hidvm could not run (bad input, missing tool, failed
/// build); 2 bad command line (clap).
/// Exit statuses others script against (README: "Exit status").
pub mod exit {
    /// A test failed (not as a known kernel bug says), or a known bug
    /// changed: `git bisect run` counts it as bad.
    pub const TESTS_FAILED: u8 = 100;
    /// hidvm could not run: bad input, a missing tool; the message says
    /// what to fix.
    pub const COULD_NOT_RUN: u8 = 1;
    /// Nothing ran: no test matched, or every test was skipped (as
    /// nextest's NO_TESTS_RUN).
    pub const NO_TESTS: u8 = 4;
    /// The kernel could not be built, or built but never booted to the
    /// agent, for reasons outside the test: `git bisect run` skips it.
    pub const KERNEL_UNUSABLE: u8 = 125;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("missing {what} `{tool}`: install it with `sudo apt-get install {package}` (or run `make setup`)")]
    MissingTool { tool: String, what: String, package: String },

    #[error("kernel source {path}: {problem}")]
    KernelSource { path: PathBuf, problem: String },

    #[error("cell {cell}: {dropped} requested option(s) did not survive olddefconfig (a dependency is missing or the option is unknown): {list}; resolved config: {config}", dropped = .options.len(), list = .options.join(", "), config = .config.display())]
    ConfigDropped { cell: String, options: Vec<String>, config: PathBuf },

    #[error("cell {cell}: `{step}` failed (exit {status}); last lines: {tail}; full log: {log}")]
    KernelBuild { cell: String, step: String, status: String, tail: String, log: PathBuf },

    #[error("fixture {fixture} does not compile: {message}")]
    FixtureCompile { fixture: String, message: String },

    #[error("scenario {file}: {message}")]
    Scenario { file: PathBuf, message: String },

    #[error("cell definitions {file}: {message}")]
    Cells { file: PathBuf, message: String },

    #[error("guest agent build failed: {0}")]
    AgentBuild(String),

    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },

    /// Nothing to run: no test matched, or every one was skipped.
    #[error("{0}")]
    NoTests(String),

    /// The kernel built but did not boot to the guest agent.
    #[error("{0}")]
    KernelDidNotBoot(String),

    #[error("{0}")]
    Other(String),
}

impl Error {
    /// The exit status this error ends hidvm with ([`exit`]).
    pub fn exit_status(&self) -> u8 {
        match self {
            Error::KernelBuild { .. } | Error::ConfigDropped { .. } | Error::KernelDidNotBoot(_) => {
                exit::KERNEL_UNUSABLE
            }
            Error::NoTests(_) => exit::NO_TESTS,
            _ => exit::COULD_NOT_RUN,
        }
    }

    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

/// `line N: message`, on one line (toml's own Display draws a snippet).
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => format!("line {}: {msg}", text[..span.start.min(text.len())].matches('\n').count() + 1),
        None => msg,
    }
}

/// Collapse multi-line tool output into one line for error messages.
pub fn one_line(text: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let start = lines.len().saturating_sub(max_lines);
    lines[start..].join(" | ")
}

/// A failed tool's own error lines (at most 3, those `is_error` picks),
/// else the last lines of its output.
pub fn error_lines(text: &str, is_error: impl Fn(&str) -> bool) -> String {
    let errors: Vec<&str> = text.lines().filter(|l| is_error(l)).take(3).collect();
    if errors.is_empty() {
        one_line(text, 4)
    } else {
        errors.join(" | ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `git bisect run` and CI script against: a kernel that cannot
    /// be built or booted is 125 (skip the commit), nothing to run is 4,
    /// hidvm itself failing is 1; a failed test is 100 (`cli::tests_exit`).
    #[test]
    fn each_error_ends_hidvm_with_its_exit_status() {
        let build = Error::KernelBuild {
            cell: "gcc".into(),
            step: "make vmlinux".into(),
            status: "2".into(),
            tail: "error: expected ';'".into(),
            log: "/c/build.log".into(),
        };
        assert_eq!(build.exit_status(), exit::KERNEL_UNUSABLE);
        let dropped =
            Error::ConfigDropped { cell: "gcc".into(), options: vec!["CONFIG_X".into()], config: "/c".into() };
        assert_eq!(dropped.exit_status(), 125);
        assert_eq!(Error::KernelDidNotBoot("no hello".into()).exit_status(), 125);
        assert_eq!(Error::NoTests("nothing matched".into()).exit_status(), exit::NO_TESTS);
        let source = Error::KernelSource { path: "/x".into(), problem: "no Makefile".into() };
        assert_eq!(source.exit_status(), exit::COULD_NOT_RUN, "a bad tree is the user's input, not a commit to skip");
        assert_eq!(Error::Other("bad flag".into()).exit_status(), 1);
        assert_eq!(exit::TESTS_FAILED, 100);
    }
}
