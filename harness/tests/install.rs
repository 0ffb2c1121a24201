//! An installed hidvm works from anywhere, without the checkout it was
//! built in (issue 19, item 5): the working tree is copied as a fresh
//! clone would have it, `cargo install --path <copy>/harness --root <tmp>
//! --locked --offline` builds it, the copy is deleted, and the installed
//! binary runs from a directory outside any checkout, with HIDVM_REPO
//! unset, on a copy of examples/acme-wheel-mouse.
//!
//! `an_installed_hidvm_checks_scenarios_from_elsewhere` always runs (no
//! VM; nextest runs it alone: it builds hidvm in release, the first time
//! ~3-5 min on 2 cores). `an_installed_hidvm_tests_scenarios_from_elsewhere`
//! boots VMs and is ignored by default:
//! `cargo nextest run -p hidvm --test install --run-ignored all`.
//! The build goes to `target/install-test` (its own target directory, so
//! the checkout's release build is never rebuilt with the bundle on); the
//! agent to `target/guest`, shared with the checkout's own agent build.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The checkout's target directory (CARGO_TARGET_DIR, as hidvm reads it).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| checkout().join("target"))
}

/// The working tree's files as git knows them (tracked, and new ones not
/// ignored), copied to `dest`: a fresh clone with this tree's changes.
fn copy_tree(src: &Path, dest: &Path) {
    let out = Command::new("git")
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .current_dir(src)
        .output()
        .expect("running git ls-files");
    assert!(out.status.success(), "git ls-files: {}", String::from_utf8_lossy(&out.stderr));
    for rel in out.stdout.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let rel = Path::new(std::str::from_utf8(rel).unwrap());
        let from = src.join(rel);
        if !from.is_file() {
            continue; // deleted in the working tree
        }
        let to = dest.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
}

/// `cargo install` of a copy of the tree into `<work>/root`; the copy is
/// gone afterwards. Returns the installed binary.
fn install(work: &Path) -> PathBuf {
    let clone = work.join("clone");
    copy_tree(&checkout(), &clone);
    let started = std::time::Instant::now();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["install", "--locked", "--offline", "--quiet", "--path"])
        .arg(clone.join("harness"))
        .arg("--root")
        .arg(work.join("root"))
        .current_dir(work)
        .env("CARGO_TARGET_DIR", target_dir().join("install-test"))
        // The agent's dependencies are those the checkout's agent build
        // (`make test` builds it first) already compiled.
        .env("HIDVM_AGENT_TARGET_DIR", target_dir().join("guest"))
        .env_remove("HIDVM_REPO")
        .env_remove("HIDVM_BUNDLE")
        .env_remove("HIDVM_BUNDLE_AGENT")
        .output()
        .expect("running cargo install");
    assert!(out.status.success(), "cargo install failed:\n{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("cargo install took {:.0} s", started.elapsed().as_secs_f64());
    std::fs::remove_dir_all(&clone).unwrap();
    work.join("root/bin/hidvm")
}

/// A copy of the example in `<work>/mine`, the directory hidvm runs in.
fn example(work: &Path) -> PathBuf {
    let mine = work.join("mine/acme-wheel-mouse");
    std::fs::create_dir_all(&mine).unwrap();
    for e in std::fs::read_dir(checkout().join("examples/acme-wheel-mouse")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, mine.join(p.file_name().unwrap())).unwrap();
    }
    mine
}

/// The installed hidvm, run in `<work>/mine` with nothing pointing at a
/// checkout.
fn hidvm(bin: &Path, work: &Path, args: &[&str], cache: Option<&Path>) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args).current_dir(work.join("mine"));
    for var in ["HIDVM_REPO", "HIDVM_AGENT", "CARGO_TARGET_DIR", "HIDVM_RUNS_DIR"] {
        cmd.env_remove(var);
    }
    if let Some(c) = cache {
        cmd.env("HIDVM_CACHE_DIR", c);
    }
    cmd.output().expect("running the installed hidvm")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn an_installed_hidvm_checks_scenarios_from_elsewhere() {
    let work = tempfile::Builder::new().prefix("hidvm-install-").tempdir().unwrap();
    let bin = install(work.path());
    example(work.path());
    // A cache of its own: the data must come out of the binary.
    let cache = work.path().join("cache");
    let o = hidvm(&bin, work.path(), &["check", "--without-trees", "acme-wheel-mouse"], Some(&cache));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("2 scenario files of yours"), "{}", text(&o));
    let unpacked: Vec<PathBuf> = std::fs::read_dir(cache.join("install")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(unpacked.len(), 1, "{unpacked:?}");
    for f in ["guest-image/kernels.toml", "bpf-fixtures/include", "tests/known-failures.toml", "libexec/hidvm-agent"] {
        assert!(unpacked[0].join(f).exists(), "the bundle has no {f}");
    }
    // The full check (kernel trees from the shared cache) and the listing.
    let o = hidvm(&bin, work.path(), &["check", "acme-wheel-mouse/acme_wheel.toml"], None);
    assert!(o.status.success(), "{}", text(&o));
    let o = hidvm(&bin, work.path(), &["list", "acme-wheel-mouse"], None);
    assert!(text(&o).contains("::acme_wheel_replay"), "{}", text(&o));
    // The catalogue is there too, and bad input is still one line.
    let o = hidvm(&bin, work.path(), &["list"], None);
    assert!(text(&o).contains("::mouse_invert_y_close_link"), "{}", text(&o));
    let o = hidvm(&bin, work.path(), &["check", "nowhere"], None);
    assert_eq!(text(&o).trim(), "error: nowhere: no such file or directory (give scenario files or directories)");
}

#[test]
#[ignore = "boots VMs: run it with --run-ignored"]
fn an_installed_hidvm_tests_scenarios_from_elsewhere() {
    let work = tempfile::Builder::new().prefix("hidvm-install-").tempdir().unwrap();
    let bin = install(work.path());
    example(work.path());
    let o = hidvm(&bin, work.path(), &["test", "acme-wheel-mouse"], None);
    let out = text(&o);
    eprintln!("{out}");
    assert!(o.status.success(), "{out}");
    assert!(out.contains("8/8 passed"), "{out}");
}
