//! Packs what an installed hidvm needs without its checkout: the data
//! (kernel fragments, cells and kernels, bpf-fixtures, the scenario
//! catalogue, known lists, patches, examples) and the guest agent, built
//! here for the guest. `src/main.rs` embeds the archive; `base::bundle`
//! documents its format and unpacks it.
//!
//! Only when HIDVM_BUNDLE=1, which harness/.cargo/config.toml sets for
//! `cargo install --path harness` (cargo reads configuration from the
//! installed package's directory up; builds run from the checkout's root
//! never see it). A checkout build writes an empty archive, never builds
//! the agent here and never reruns when data changes: it uses its
//! checkout's files, so edits show up at once. HIDVM_BUNDLE_AGENT names a
//! prebuilt agent to pack instead of building one.
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The data an installed hidvm reads, relative to the repository root.
const DATA: &[&str] = &[
    "guest-image/cells.toml",
    "guest-image/kernels.toml",
    "guest-image/kernels.lock",
    "guest-image/config",
    "guest-image/userspace",
    "bpf-fixtures",
    "tests/scenarios",
    "tests/kernel-progs",
    "tests/selftests",
    "tests/known-failures.toml",
    "tests/kselftest-known.toml",
    "tests/hidtools-known.toml",
    "tests/allowlist.toml",
    "patches",
    "examples",
];
/// What the agent is built from.
const AGENT_SOURCES: &[&str] = &["guest-image/agent", "guest-image/proto", "Cargo.toml", "Cargo.lock"];
const AGENT_TARGET: &str = "x86_64-unknown-linux-gnu";
const MAGIC: &[u8; 8] = b"HIDVMB1\n";
const AGENT_PATH: &str = "libexec/hidvm-agent";

fn main() {
    for var in ["HIDVM_BUNDLE", "HIDVM_BUNDLE_AGENT", "HIDVM_AGENT_TARGET_DIR"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=build.rs");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let archive = out_dir.join("bundle.bin");
    if std::env::var("HIDVM_BUNDLE").as_deref() != Ok("1") {
        std::fs::write(&archive, b"").expect("writing an empty bundle");
        println!("cargo:rustc-env=HIDVM_BUNDLE_SHA256=");
        return;
    }
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("harness/ has a parent").to_path_buf();
    for p in DATA.iter().chain(AGENT_SOURCES) {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    let mut files = Vec::new();
    for p in DATA {
        collect(&root.join(p), &mut files);
    }
    files.sort();
    let mut bytes = MAGIC.to_vec();
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("reading {}: {e}", f.display()));
        let rel = f.strip_prefix(&root).expect("inside the root").to_string_lossy().into_owned();
        push(&mut bytes, &rel, mode(f), &data);
    }
    push(&mut bytes, AGENT_PATH, 0o755, &agent(&root, &out_dir));
    let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&archive, &bytes).expect("writing the bundle");
    println!("cargo:rustc-env=HIDVM_BUNDLE_SHA256={sha}");
}

/// Every regular file under `path` (or `path` itself), hidden ones left out.
fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if meta.is_file() {
        out.push(path.to_path_buf());
        return;
    }
    let rd = std::fs::read_dir(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    for e in rd.flatten() {
        if !e.file_name().to_string_lossy().starts_with('.') {
            collect(&e.path(), out);
        }
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0o644)
}

fn push(out: &mut Vec<u8>, path: &str, mode: u32, data: &[u8]) {
    out.extend((path.len() as u32).to_le_bytes());
    out.extend(path.as_bytes());
    out.extend(mode.to_le_bytes());
    out.extend((data.len() as u64).to_le_bytes());
    out.extend(data);
}

/// The guest agent: HIDVM_BUNDLE_AGENT, or built from the workspace as
/// `vm::agent` builds it in a checkout (static glibc, an explicit --target
/// so build scripts stay dynamic), with a target directory of its own.
fn agent(root: &Path, out_dir: &Path) -> Vec<u8> {
    if let Some(p) = std::env::var_os("HIDVM_BUNDLE_AGENT") {
        return std::fs::read(&p).unwrap_or_else(|e| panic!("HIDVM_BUNDLE_AGENT={}: {e}", Path::new(&p).display()));
    }
    // HIDVM_AGENT_TARGET_DIR (the install test shares the checkout's), else
    // the target directory's `guest/`, where a checkout's hidvm builds the
    // agent at run time (`vm::agent`): either finds the other's build.
    let target_dir = match std::env::var_os("HIDVM_AGENT_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => out_dir
            .ancestors()
            .find(|d| d.join("CACHEDIR.TAG").is_file())
            .map(|t| t.join("guest"))
            .unwrap_or_else(|| out_dir.join("agent-target")),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let env_or = |var: &str, default: &str| std::env::var_os(var).unwrap_or_else(|| default.into());
    let out = Command::new(cargo)
        .args(["build", "--release", "--locked", "-p", "hidvm-agent", "--target", AGENT_TARGET, "--target-dir"])
        .arg(&target_dir)
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .current_dir(root)
        // Cargo gives build scripts its own (empty) encoded flags, which
        // would win over RUSTFLAGS in the nested build.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        // What .cargo/config.toml sets in a checkout (cargo install reads none).
        .env("LIBBPF_SYS_LIBRARY_PATH", env_or("LIBBPF_SYS_LIBRARY_PATH", "/usr/lib/x86_64-linux-gnu"))
        .env("LIBCLANG_PATH", env_or("LIBCLANG_PATH", "/usr/lib/llvm-19/lib"))
        .output()
        .unwrap_or_else(|e| panic!("running cargo to build the guest agent: {e}"));
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
        panic!(
            "building the guest agent (hidvm-agent) failed; it needs the packages `make setup` installs (libclang-19-dev, libelf-dev, zlib1g-dev, …):\n{}",
            tail.join("\n")
        );
    }
    let bin = target_dir.join(AGENT_TARGET).join("release/hidvm-agent");
    std::fs::read(&bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()))
}
