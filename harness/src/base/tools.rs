//! Host tools hidvm runs, and the Debian packages that provide them. Checked
//! before the step that needs them, so a fresh machine gets one line naming
//! the package instead of a failure deep inside a kernel build.
use crate::base::error::{Error, Result};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug)]
pub struct Tool<'a> {
    /// Executable name looked up on PATH, or an absolute path of a file
    /// (headers, static libraries).
    pub name: &'a str,
    pub what: &'a str,
    pub package: &'a str,
}

pub const QEMU: Tool<'static> = Tool { name: "qemu-system-x86_64", what: "emulator", package: "qemu-system-x86" };
pub const CLANG: Tool<'static> = Tool { name: "clang-19", what: "BPF compiler", package: "clang-19" };
pub const LLVM_STRIP: Tool<'static> = Tool { name: "llvm-strip-19", what: "BPF object stripper", package: "llvm-19" };
pub const BPFTOOL: Tool<'static> = Tool { name: "bpftool", what: "BTF dumper", package: "bpftool" };
pub const XZ: Tool<'static> =
    Tool { name: "xz", what: "decompressor for the Debian kernel tarball", package: "xz-utils" };
pub const RSYNC: Tool<'static> =
    Tool { name: "rsync", what: "tree copier (patched and clean private trees)", package: "rsync" };
/// Runs the tree's scripts/bpf_doc.py (libbpf's bpf_helper_defs.h).
pub const PYTHON: Tool<'static> =
    Tool { name: "python3", what: "script interpreter (libbpf headers)", package: "python3" };
pub const GIT: Tool<'static> = Tool { name: "git", what: "patch applier", package: "git" };
/// Wraps the kernel compilers (optional: builds run without it, slower).
pub const CCACHE: Tool<'static> = Tool { name: "ccache", what: "compiler cache for kernel builds", package: "ccache" };
/// The hid-tools userspace image (`hidvm userspace`).
pub const MMDEBSTRAP: Tool<'static> =
    Tool { name: "mmdebstrap", what: "Debian root filesystem builder (hid-tools userspace)", package: "mmdebstrap" };
pub const MKFS_EROFS: Tool<'static> =
    Tool { name: "mkfs.erofs", what: "erofs image builder (hid-tools userspace)", package: "erofs-utils" };
pub const LIBBPF_HEADERS: Tool<'static> =
    Tool { name: "/usr/include/bpf/bpf_helpers.h", what: "libbpf BPF-side header", package: "libbpf-dev" };

/// What any kernel build needs (the tinyconfig-based cells).
pub const KERNEL_BUILD: &[Tool<'static>] = &[
    Tool { name: "make", what: "build tool", package: "make" },
    Tool { name: "gcc", what: "C compiler (host tools, gcc cell)", package: "gcc" },
    Tool { name: "flex", what: "kconfig lexer generator", package: "flex" },
    Tool { name: "bison", what: "kconfig parser generator", package: "bison" },
    Tool { name: "bc", what: "calculator used by kbuild", package: "bc" },
    Tool { name: "pahole", what: "BTF generator (CONFIG_DEBUG_INFO_BTF)", package: "pahole" },
    Tool { name: "/usr/include/libelf.h", what: "libelf header (objtool, resolve_btfids)", package: "libelf-dev" },
    Tool { name: "/usr/include/openssl/ssl.h", what: "OpenSSL header (kernel host tools)", package: "libssl-dev" },
    XZ,
];

/// Guest agent build: libbpf-sys links libelf.a and libz.a statically, and
/// uhid-virt's bindgen needs libclang.
pub const AGENT_BUILD: &[Tool<'static>] = &[
    Tool { name: "/usr/lib/x86_64-linux-gnu/libelf.a", what: "static libelf", package: "libelf-dev" },
    Tool { name: "/usr/lib/x86_64-linux-gnu/libz.a", what: "static zlib", package: "zlib1g-dev" },
    Tool { name: "/usr/lib/llvm-19/lib/libclang.so", what: "libclang for bindgen", package: "libclang-19-dev" },
    Tool { name: "pkg-config", what: "library locator", package: "pkgconf" },
];

pub fn find(tool: &Tool<'_>) -> Option<PathBuf> {
    if tool.name.starts_with('/') {
        let p = Path::new(tool.name);
        return p.exists().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(tool.name)).find(|p| p.is_file())
}

pub fn require(tool: &Tool<'_>) -> Result<PathBuf> {
    find(tool).ok_or_else(|| missing(tool))
}

pub fn require_all(tools: &[Tool<'_>]) -> Result<()> {
    let absent: Vec<&Tool<'_>> = tools.iter().filter(|t| find(t).is_none()).collect();
    match absent.as_slice() {
        [] => Ok(()),
        [one] => Err(missing(one)),
        many => {
            let mut pkgs: Vec<&str> = many.iter().map(|t| t.package).collect();
            pkgs.dedup();
            Err(Error::Other(format!(
                "missing {}: install them with `sudo apt-get install {}` (or run `make setup`)",
                many.iter().map(|t| format!("`{}`", t.name)).collect::<Vec<_>>().join(", "),
                pkgs.join(" ")
            )))
        }
    }
}

fn missing(t: &Tool<'_>) -> Error {
    Error::MissingTool { tool: t.name.into(), what: t.what.into(), package: t.package.into() }
}

/// First line of `<cmd> --version`, which goes into cache keys. Asked
/// once per process for each program file (path, size, modification
/// time): every test looks its kernel and programs up in the cache, and a
/// compiler's `--version` costs a process start each time.
pub fn version_line(cmd: &str, args: &[&str]) -> Result<String> {
    type Memo = std::sync::Mutex<std::collections::HashMap<String, String>>;
    static MEMO: std::sync::OnceLock<Memo> = std::sync::OnceLock::new();
    let program =
        if cmd.contains('/') { Some(PathBuf::from(cmd)) } else { find(&Tool { name: cmd, what: "", package: "" }) };
    let stamp = program.as_deref().and_then(|p| std::fs::metadata(p).ok()).map(|m| (m.len(), m.modified().ok()));
    let key = format!("{cmd} {args:?} {program:?} {stamp:?}");
    let memo = MEMO.get_or_init(Default::default);
    if let Some(line) = memo.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(line.clone());
    }
    let line = run_version(cmd, args)?;
    memo.lock().unwrap_or_else(|e| e.into_inner()).insert(key, line.clone());
    Ok(line)
}

fn run_version(cmd: &str, args: &[&str]) -> Result<String> {
    let out = duct::cmd(cmd, args)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(|e| Error::Other(format!("cannot run `{cmd}`: {e}; is it installed?")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tool_error_names_the_package() {
        let t = Tool { name: "definitely-not-installed-hidvm", what: "test tool", package: "hidvm-pkg" };
        let e = require(&t).unwrap_err().to_string();
        assert_eq!(e, "missing test tool `definitely-not-installed-hidvm`: install it with `sudo apt-get install hidvm-pkg` (or run `make setup`)");
        let e = require_all(&[t, Tool { name: "/nonexistent/x.h", what: "h", package: "other-dev" }])
            .unwrap_err()
            .to_string();
        assert!(e.contains("sudo apt-get install hidvm-pkg other-dev"), "{e}");
    }
}
