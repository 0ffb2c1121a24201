//! `git bisect run` over a kernel tree, as docs/kernels.md shows it: a git
//! branch of the pinned 6.12 tree with six commits made here, one that
//! does not build (and one more on top of it), one that fixes the build,
//! one that breaks HID-BPF (`hid_bpf_get_data()` returns NULL for offset
//! 0), and harmless ones. hidvm exits 125 for the commits that do not
//! build (git skips them) and 100 for the broken one, which git must name
//! as the first bad commit. Opt-in (every step is a kernel build, the first
//! a cold one): `cargo nextest run --run-ignored only -E 'test(/^bisect::/)'`.
use hidvm::run::suite::Suite;
use libtest_mimic::{Failed, Trial};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

/// The test every step runs: its program reads the report with
/// `hid_bpf_get_data(ctx, 0, 4)`.
pub const TEST: &str = "tree-gcc::mouse_invert_y_close_link";

const DISPATCH: &str = "drivers/hid/bpf/hid_bpf_dispatch.c";

pub fn trial(suite: &Arc<Suite>) -> Trial {
    let suite = suite.clone();
    Trial::test("bisect::finds_the_commit_that_breaks_hid_bpf_and_skips_those_that_do_not_build", move || {
        bisect(&suite)
    })
    .with_ignored_flag(true)
}

fn failed(what: &str, e: impl std::fmt::Display) -> Failed {
    Failed::from(format!("{what}: {e}"))
}

/// `git <args>` in `dir`; its stdout.
fn git(dir: &Path, args: &[&str]) -> Result<String, Failed> {
    let out = Command::new("git")
        .args(["-c", "user.name=hidvm", "-c", "user.email=hidvm@localhost"])
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| failed("running git", e))?;
    if !out.status.success() {
        return Err(failed(&format!("git {}", args.join(" ")), String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Replace `from` by `to` in `file` of `dir` and commit it as `subject`;
/// the commit's id.
fn commit(dir: &Path, file: &str, from: &str, to: &str, subject: &str) -> Result<String, Failed> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| failed(file, e))?;
    if !text.contains(from) {
        return Err(failed(file, format!("does not contain `{from}`")));
    }
    std::fs::write(&path, text.replacen(from, to, 1)).map_err(|e| failed(file, e))?;
    git(dir, &["commit", "-q", "-am", subject])?;
    git(dir, &["rev-parse", "HEAD"])
}

/// The tree and its history: (base, [(commit, subject)]).
fn make_history(origin: &Path, dir: &Path) -> Result<(String, Vec<(String, String)>), Failed> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| failed("creating the tree", e))?;
    let out = Command::new("rsync")
        .args(["-a", &format!("{}/", origin.display()), &format!("{}/", dir.display())])
        .output()
        .map_err(|e| failed("rsync", e))?;
    if !out.status.success() {
        return Err(failed("rsync", String::from_utf8_lossy(&out.stderr)));
    }
    git(dir, &["init", "-q", "-b", "demo"])?;
    // Debian's tarball ignores everything at its top level (.gitignore).
    git(dir, &["add", "-A", "--force"])?;
    git(dir, &["commit", "-q", "-m", "base: the pinned 6.12 tree"])?;
    let base = git(dir, &["rev-parse", "HEAD"])?;
    let edits: [(&str, &str, &str); 6] = [
        (
            "harmless: a comment",
            "__bpf_kfunc __u8 *\nhid_bpf_get_data",
            "/* demo */\n__bpf_kfunc __u8 *\nhid_bpf_get_data",
        ),
        ("breaks the build", "/* demo */\n", "/* demo */\n#error \"this commit does not build\"\n"),
        ("still does not build", "@returns %NULL on error", "@returns %NULL on error (demo)"),
        ("fixes the build", "#error \"this commit does not build\"\n", ""),
        (
            "breaks hid_bpf_get_data() for offset 0",
            "\tif (!ctx)\n\t\treturn NULL;\n\n\tctx_kern",
            "\tif (!ctx || !offset)\n\t\treturn NULL;\n\n\tctx_kern",
        ),
        ("harmless: another comment", "/* demo */\n", "/* demo, again */\n"),
    ];
    let mut commits = Vec::new();
    for (subject, from, to) in edits {
        commits.push((commit(dir, DISPATCH, from, to, subject)?, subject.to_string()));
    }
    Ok((base, commits))
}

/// The hidvm binary the steps run: HIDVM_BIN, else the release build.
fn hidvm_bin(suite: &Suite) -> std::path::PathBuf {
    std::env::var_os("HIDVM_BIN").map(Into::into).unwrap_or_else(|| suite.repo.root.join("target/release/hidvm"))
}

fn bisect(suite: &Suite) -> Result<(), Failed> {
    let started = std::time::Instant::now();
    let origin = suite.source("6.12").map_err(|e| failed("the 6.12 tree", e))?;
    let dir = suite.cache.join("bisect-demo/linux");
    let (base, commits) = make_history(&origin.root, &dir)?;
    let bin = hidvm_bin(suite);
    if !bin.exists() {
        return Err(failed(
            &bin.display().to_string(),
            "no such binary: `cargo build --release -p hidvm`, or set HIDVM_BIN",
        ));
    }
    let head = &commits.last().expect("commits").0;
    git(&dir, &["bisect", "start", head, &base])?;
    let run = Command::new("git")
        .args(["bisect", "run"])
        .arg(&bin)
        .args(["--kernel-src", ".", "run", TEST])
        .current_dir(&dir)
        .output()
        .map_err(|e| failed("git bisect run", e))?;
    let out = String::from_utf8_lossy(&run.stdout).into_owned();
    let log = git(&dir, &["bisect", "log"])?;
    // (No `-q`: git 2.39, Debian bookworm's, takes it for a commit.)
    git(&dir, &["bisect", "reset"])?;
    println!(
        "{log}\n--- git bisect run said:\n{}",
        out.lines()
            .filter(|l| l.contains("first bad commit") || l.starts_with("running") || l.contains("bisect found"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!("{:.0} s", started.elapsed().as_secs_f64());
    let bad = &commits[4];
    if !out.contains(&format!("{} is the first bad commit", bad.0)) {
        return Err(Failed::from(format!("git bisect did not name `{}` ({}):\n{out}\n{log}", bad.1, bad.0)));
    }
    if !log.lines().any(|l| l.starts_with("git bisect skip")) {
        return Err(Failed::from(format!(
            "no commit was skipped (hidvm must exit 125 when the kernel does not build):\n{log}"
        )));
    }
    Ok(())
}
