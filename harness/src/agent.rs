//! The guest agent binary: built from guest-image/agent for the guest, as a
//! static-pie glibc executable (no musl target on these machines).
//!
//! Built with its own target dir so host builds and the agent's static
//! RUSTFLAGS never invalidate each other; cargo's own lock serialises
//! concurrent test processes, and an unchanged agent costs a no-op build.
use crate::error::{error_lines, Error, Result};
use crate::layout::Repo;
use crate::tools;
use std::path::PathBuf;

const TARGET: &str = "x86_64-unknown-linux-gnu";

pub fn ensure(repo: &Repo) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("HIDVM_AGENT") {
        // Prebuilt agent (e.g. from CI artifacts); trusted as given.
        return Ok(PathBuf::from(p));
    }
    tools::require_all(tools::AGENT_BUILD)?;
    let target_dir = repo.target_dir().join("guest");
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
    let bin = target_dir.join(TARGET).join("release/hidvm-agent");
    if !bin.exists() {
        return Err(Error::AgentBuild(format!("cargo succeeded but {} is missing", bin.display())));
    }
    Ok(bin)
}
