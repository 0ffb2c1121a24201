//! HID-BPF fixtures: `bpf-fixtures/<name>.bpf.c`, compiled with clang-19
//! `-target bpf -g -O2` against the vmlinux.h of the cell they will be
//! loaded into. Objects are cached by content (source, headers, the cell's
//! BTF, clang version), so editing a fixture recompiles only that fixture.
use crate::error::{error_lines, Error, Result};
use crate::kbuild::BuiltKernel;
use crate::layout::{sha256_parts, Repo};
use crate::tools;
use hidvm_proto::Hook;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const CLANG_FLAGS: &[&str] = &["-g", "-O2", "-target", "bpf", "-mcpu=v3", "-D__TARGET_ARCH_x86", "-Wall"];

pub fn source_path(repo: &Repo, name: &str) -> PathBuf {
    repo.fixtures_dir().join(format!("{name}.bpf.c"))
}

/// The hid_bpf_ops callbacks a fixture implements, read from its source
/// (`.hid_device_event = ...` in the struct_ops initializer), or why the
/// fixture cannot be used.
pub fn hooks(repo: &Repo, name: &str) -> std::result::Result<Option<BTreeSet<Hook>>, String> {
    if name.contains('/') || name.is_empty() {
        return Err(format!("`{name}` is not a fixture name (bpf-fixtures/<name>.bpf.c, without the suffix)"));
    }
    let path = source_path(repo, name);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("no bpf-fixtures/{name}.bpf.c ({e})"))?;
    let hooks = hooks_in_source(&text);
    if hooks.is_empty() {
        return Err(format!("{} assigns none of the hid_bpf_ops callbacks ({})", path.display(), hook_names()));
    }
    Ok(Some(hooks))
}

fn hook_names() -> String {
    Hook::ALL.iter().map(|h| h.member()).collect::<Vec<_>>().join(", ")
}

/// Members of struct hid_bpf_ops assigned in a C initializer.
pub fn hooks_in_source(text: &str) -> BTreeSet<Hook> {
    Hook::ALL
        .into_iter()
        .filter(|h| {
            let member = format!(".{}", h.member());
            text.match_indices(&member).any(|(at, _)| {
                let rest = &text[at + member.len()..];
                rest.trim_start().starts_with('=') && !rest.starts_with(|c: char| c == '_' || c.is_ascii_alphanumeric())
            })
        })
        .collect()
}

/// Compile `names` for `kernel`; returns name -> object path.
pub fn compile(repo: &Repo, cache: &Path, kernel: &BuiltKernel, names: &[&str]) -> Result<BTreeMap<String, PathBuf>> {
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    tools::require(&tools::CLANG)?;
    tools::require(&tools::LIBBPF_HEADERS)?;
    let clang_version = tools::version_line(tools::CLANG.name, &["--version"])?;
    let include = repo.fixtures_dir().join("include");
    let headers = read_headers(&include)?;
    let mut out = BTreeMap::new();
    for name in names {
        let src = source_path(repo, name);
        let text = std::fs::read(&src).map_err(|_| Error::FixtureCompile {
            fixture: name.to_string(),
            message: format!("{} not found; add it to bpf-fixtures/", src.display()),
        })?;
        let mut parts: Vec<&[u8]> = vec![&text, kernel.record.vmlinux_h_sha256.as_bytes(), clang_version.as_bytes()];
        parts.extend(CLANG_FLAGS.iter().map(|f| f.as_bytes()));
        parts.extend(headers.iter().map(|h| h.as_slice()));
        let key = sha256_parts(parts);
        let obj = cache.join("fixtures").join(&key[..20]).join(format!("{name}.bpf.o"));
        if !obj.exists() {
            compile_one(name, &src, &include, &kernel.vmlinux_h, &obj)?;
        }
        out.insert(name.to_string(), obj);
    }
    Ok(out)
}

fn read_headers(include: &Path) -> Result<Vec<Vec<u8>>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(include)
        .map_err(Error::io(format!("reading {}", include.display())))?
        .flatten()
        .map(|e| e.path())
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).map_err(Error::io(format!("reading {}", p.display())))).collect()
}

fn compile_one(name: &str, src: &Path, include: &Path, vmlinux_h: &Path, obj: &Path) -> Result<()> {
    let dir = obj.parent().expect("object has a directory");
    std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    // Compile next to the destination and rename: a killed compile never
    // leaves an object that looks finished.
    let tmp = tempfile::Builder::new()
        .prefix(".compile-")
        .suffix(".o")
        .tempfile_in(dir)
        .map_err(Error::io("temporary object file"))?;
    let mut args: Vec<String> = CLANG_FLAGS.iter().map(|s| s.to_string()).collect();
    args.extend([
        "-I".into(),
        vmlinux_h.parent().expect("vmlinux.h has a directory").display().to_string(),
        "-I".into(),
        include.display().to_string(),
        "-c".into(),
        src.display().to_string(),
        "-o".into(),
        tmp.path().display().to_string(),
    ]);
    let out = duct::cmd(tools::CLANG.name, &args)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(Error::io("running clang-19"))?;
    if !out.status.success() {
        // clang's first error line is the one to fix; keep a little context.
        let message = error_lines(&String::from_utf8_lossy(&out.stderr), |l| l.contains("error"));
        drop(tmp);
        let _ = std::fs::remove_dir(dir); // only succeeds when empty
        return Err(Error::FixtureCompile { fixture: name.to_string(), message });
    }
    tmp.persist(obj).map_err(|e| Error::io(format!("storing {}", obj.display()))(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_are_read_from_the_struct_ops_initializer() {
        let src = "SEC(\".struct_ops.link\")\nstruct hid_bpf_ops x = {\n\t.hid_device_event = (void *)f,\n\t.hid_rdesc_fixup=(void *)g,\n};\n/* .hid_hw_request is mentioned here only */";
        assert_eq!(hooks_in_source(src), [Hook::DeviceEvent, Hook::RdescFixup].into_iter().collect());
        let repo = Repo::locate();
        assert!(hooks(&repo, "nonexistent_fixture").unwrap_err().contains("no bpf-fixtures/nonexistent_fixture.bpf.c"));
        assert_eq!(hooks(&repo, "boot_mouse_invert_y").unwrap(), Some([Hook::DeviceEvent].into_iter().collect()));
    }
}
