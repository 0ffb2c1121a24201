//! The guest agent binary: built from guest-image/agent for the guest, as a
//! static-pie glibc executable (no musl target on these machines). An
//! installed hidvm uses the one it carries (built by harness/build.rs).
//!
//! Built with its own target dir so host builds and the agent's static
//! RUSTFLAGS never invalidate each other; cargo's own lock serialises
//! concurrent test processes. A binary newer than every source it is built
//! from is used without asking cargo: its no-op build cost ~0.15 s, a fifth
//! of a test restored from a snapshot. (Only a toolchain change alone goes
//! unnoticed that way: `cargo clean --target-dir target/guest` then.)
use crate::base::error::{error_lines, Error, Result};
use crate::base::layout::Repo;
use crate::base::tools;
use std::path::PathBuf;

const TARGET: &str = "x86_64-unknown-linux-gnu";

pub fn ensure(repo: &Repo) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("HIDVM_AGENT") {
        // Prebuilt agent (e.g. from CI artifacts); trusted as given.
        return Ok(PathBuf::from(p));
    }
    if repo.installed {
        // An installed hidvm has no sources: it carries the agent it was built with.
        let bin = repo.root.join(crate::base::bundle::AGENT_PATH);
        return match bin.is_file() {
            true => Ok(bin),
            false => Err(Error::AgentBuild(format!("the installed agent {} is missing", bin.display()))),
        };
    }
    let target_dir = repo.target_dir().join("guest");
    let bin = target_dir.join(TARGET).join("release/hidvm-agent");
    if newer_than_sources(&bin, repo) {
        return Ok(bin);
    }
    tools::require_all(tools::AGENT_BUILD)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = duct::cmd!(
        cargo,
        "build",
        "--release",
        "--locked",
        "-p",
        "hidvm-agent",
        "--target",
        TARGET,
        "--target-dir",
        &target_dir
    )
    .dir(&repo.root)
    // The explicit --target keeps +crt-static away from build scripts and
    // proc macros, which must stay dynamic host binaries.
    .env("RUSTFLAGS", "-C target-feature=+crt-static")
    .env("LIBBPF_SYS_LIBRARY_PATH", "/usr/lib/x86_64-linux-gnu")
    .env("LIBCLANG_PATH", "/usr/lib/llvm-19/lib")
    .env_remove("CARGO_TARGET_DIR")
    .stdout_capture()
    .stderr_capture()
    .unchecked()
    .run()
    .map_err(|e| Error::AgentBuild(format!("cannot run cargo: {e}")))?;
    if !out.status.success() {
        // The compiler's own error lines, not cargo's boilerplate after them.
        let what = error_lines(&String::from_utf8_lossy(&out.stderr), |l| l.starts_with("error"));
        return Err(Error::AgentBuild(format!(
            "{what}; rerun it to see everything: RUSTFLAGS='-C target-feature=+crt-static' cargo build --release -p hidvm-agent --target {TARGET} --target-dir {}",
            target_dir.display()
        )));
    }
    if !bin.exists() {
        return Err(Error::AgentBuild(format!("cargo succeeded but {} is missing", bin.display())));
    }
    Ok(bin)
}

/// Whether `bin` exists and is newer than the agent's and the protocol's
/// sources and the workspace manifests and lock file.
fn newer_than_sources(bin: &std::path::Path, repo: &Repo) -> bool {
    let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else { return false };
    let root = &repo.root;
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    let mut stack = vec![root.join("guest-image/agent"), root.join("guest-image/proto")];
    for f in ["Cargo.toml", "Cargo.lock"] {
        stack.push(root.join(f));
    }
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&p) else { return false };
        if meta.is_dir() {
            let Ok(entries) = std::fs::read_dir(&p) else { return false };
            stack.extend(entries.flatten().map(|e| e.path()));
        } else if let Ok(m) = meta.modified() {
            newest = newest.max(m);
        }
    }
    built > newest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_newer_than_the_binary_means_a_build() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for dir in ["guest-image/agent/src", "guest-image/proto/src"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        for f in ["Cargo.toml", "Cargo.lock", "guest-image/agent/src/main.rs", "guest-image/proto/src/lib.rs"] {
            std::fs::write(root.join(f), "x").unwrap();
        }
        let repo = Repo::checkout(root);
        let bin = root.join("agent-bin");
        assert!(!newer_than_sources(&bin, &repo), "no binary yet");
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&bin, "elf").unwrap();
        assert!(newer_than_sources(&bin, &repo));
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(root.join("guest-image/proto/src/lib.rs"), "y").unwrap();
        assert!(!newer_than_sources(&bin, &repo), "an edited protocol source");
    }
}
