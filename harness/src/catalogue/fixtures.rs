//! HID-BPF programs a scenario loads, compiled per cell against that cell's
//! `vmlinux.h`, so a BTF or CO-RE difference between the gcc and LLVM
//! kernels shows up as that cell's failure.
//!
//! A scenario's `fixture = "…"` is one of:
//! * a name, `boot_mouse_invert_y`: hidvm's own `bpf-fixtures/<name>.bpf.c`
//!   (headers in bpf-fixtures/include);
//! * a path to a `.bpf.c` written the way udev-hid-bpf and the kernel's
//!   drivers/hid/bpf/progs/ write them (`vmlinux.h`, `hid_bpf.h`,
//!   `hid_bpf_helpers.h`, `HID_BPF_CONFIG`, `HID_BPF_OPS`), relative to the
//!   scenario file, compiled unchanged with the headers of the kernel tree
//!   under test unless the scenario's `bpf_include` names others first;
//! * a path to a prebuilt `.bpf.o`, loaded as is on every cell;
//! * `kernel:drivers/hid/bpf/progs/<X>.bpf.c`: a program of the tree under test.
//!
//! Objects are cached by content (source, headers, the cell's BTF, clang
//! version, flags). A program's HID_BPF_CONFIG table is read from the
//! object's BTF with `bpftool btf dump -j`.
use crate::base::error::{error_lines, Error, Result};
use crate::base::layout::{sha256_parts, Repo};
use crate::base::tools;
use crate::kernel::build::BuiltKernel;
use hidvm_proto::{DeviceMatch, Hook};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// hidvm's own fixtures.
const CATALOGUE_FLAGS: &[&str] = &["-g", "-O2", "-target", "bpf", "-mcpu=v3", "-D__TARGET_ARCH_x86", "-Wall"];
/// Programs in the udev-hid-bpf / kernel format, as the kernel's
/// drivers/hid/bpf/progs/Makefile compiles them (without -Werror: a
/// user's warning is theirs to fix, not a harness failure).
const PROGRAM_FLAGS: &[&str] = &["-g", "-O2", "--target=bpf", "-D__TARGET_ARCH_x86", "-Wall"];
/// The same for trees whose progs Makefile uses -fms-extensions (7.x).
const PROGRAM_FLAGS_MS: &[&str] =
    &["-g", "-O2", "--target=bpf", "-D__TARGET_ARCH_x86", "-Wall", "-Wno-microsoft-anon-tag", "-fms-extensions"];
/// `<linux/errno.h>` (included by hid_bpf_helpers.h) needs the host's
/// multiarch `asm/errno.h`, which a `--target=bpf` compile does not search.
const MULTIARCH_INCLUDE: &str = "/usr/include/x86_64-linux-gnu";
/// Where a kernel tree keeps its HID-BPF programs and their headers.
pub const KERNEL_PROGS: &str = "drivers/hid/bpf/progs";
const KERNEL_PREFIX: &str = "kernel:";

/// A `fixture = "…"` value, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FixtureRef {
    Catalogue(String),
    Source(PathBuf),
    Object(PathBuf),
    /// A path inside the kernel tree under test.
    KernelTree(String),
}

impl FixtureRef {
    /// `scenario_dir` anchors relative paths.
    pub fn parse(repo: &Repo, text: &str, scenario_dir: &Path) -> std::result::Result<FixtureRef, String> {
        if let Some(rel) = text.strip_prefix(KERNEL_PREFIX) {
            if !rel.ends_with(".bpf.c") || rel.starts_with('/') || rel.split('/').any(|c| c == "..") {
                return Err(format!(
                    "`{text}`: write kernel:<path of a .bpf.c inside the kernel tree>, e.g. kernel:{KERNEL_PROGS}/IOGEAR__Kaliber-MMOmentum.bpf.c"
                ));
            }
            return Ok(FixtureRef::KernelTree(rel.to_string()));
        }
        if text.ends_with(".c") || text.ends_with(".o") {
            let path = scenario_dir.join(text);
            if !path.is_file() {
                return Err(format!("{} does not exist (paths are relative to the scenario file)", path.display()));
            }
            let path = path.canonicalize().map_err(|e| format!("{}: {e}", path.display()))?;
            return Ok(if text.ends_with(".o") { FixtureRef::Object(path) } else { FixtureRef::Source(path) });
        }
        if text.is_empty() || text.contains('/') {
            return Err(format!(
                "`{text}` is neither a fixture name (bpf-fixtures/<name>.bpf.c) nor a path ending in .bpf.c or .bpf.o"
            ));
        }
        if !catalogue_path(repo, text).is_file() {
            return Err(format!("no bpf-fixtures/{text}.bpf.c (or give a path ending in .bpf.c or .bpf.o)"));
        }
        Ok(FixtureRef::Catalogue(text.to_string()))
    }

    /// The source file, if the program is compiled by hidvm.
    fn source(&self, repo: &Repo, kernel_tree: Option<&Path>) -> std::result::Result<Option<PathBuf>, String> {
        Ok(match self {
            FixtureRef::Catalogue(n) => Some(catalogue_path(repo, n)),
            FixtureRef::Source(p) => Some(p.clone()),
            FixtureRef::Object(_) => None,
            FixtureRef::KernelTree(rel) => {
                let tree =
                    kernel_tree.ok_or_else(|| format!("{KERNEL_PREFIX}{rel} needs the kernel tree under test"))?;
                let p = tree.join(rel);
                if !p.is_file() {
                    return Err(format!("the kernel tree {} has no {rel}", tree.display()));
                }
                Some(p)
            }
        })
    }

    /// The hid_bpf_ops callbacks the program implements (read from the
    /// source's struct_ops initializer, or the object's section names), or
    /// why the program cannot be used.
    pub fn hooks(
        &self,
        repo: &Repo,
        kernel_tree: Option<&Path>,
    ) -> std::result::Result<Option<BTreeSet<Hook>>, String> {
        // `hidvm check --without-trees`: a kernel program's hooks are unknown
        // until its tree is here (None: the validator cannot check them).
        if matches!(self, FixtureRef::KernelTree(_)) && kernel_tree.is_none() {
            return Ok(None);
        }
        let (path, found) = match self.source(repo, kernel_tree)? {
            Some(src) => {
                let text = std::fs::read_to_string(&src).map_err(|e| format!("{}: {e}", src.display()))?;
                (src, hooks_in_source(&text))
            }
            None => {
                let FixtureRef::Object(obj) = self else { unreachable!("only objects have no source") };
                let bytes = std::fs::read(obj).map_err(|e| format!("{}: {e}", obj.display()))?;
                (obj.clone(), hooks_in_object(&bytes))
            }
        };
        if found.is_empty() {
            return Err(format!(
                "{} implements none of the hid_bpf_ops callbacks ({}): no HID_BPF_OPS?",
                path.display(),
                Hook::ALL.iter().map(|h| h.member()).collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(Some(found))
    }

    /// A file name for the object in the guest.
    fn stem(&self) -> String {
        let name = match self {
            FixtureRef::Catalogue(n) => n.clone(),
            FixtureRef::Source(p) | FixtureRef::Object(p) => {
                p.file_name().unwrap_or_default().to_string_lossy().into_owned()
            }
            FixtureRef::KernelTree(rel) => rel.rsplit('/').next().unwrap_or(rel).to_string(),
        };
        let name = name.trim_end_matches(".c").trim_end_matches(".o").trim_end_matches(".bpf");
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
    }
}

pub fn catalogue_path(repo: &Repo, name: &str) -> PathBuf {
    repo.fixtures_dir().join(format!("{name}.bpf.c"))
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

/// Callbacks of a compiled object: its `struct_ops/<member>` (or
/// `struct_ops.s/<member>`) section names.
pub fn hooks_in_object(bytes: &[u8]) -> BTreeSet<Hook> {
    Hook::ALL
        .into_iter()
        .filter(|h| {
            ["struct_ops/", "struct_ops.s/"].iter().any(|prefix| {
                let needle = format!("{prefix}{}\0", h.member());
                bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            })
        })
        .collect()
}

/// A compiled program: its object and HID_BPF_CONFIG table.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub object: PathBuf,
    pub config: Vec<DeviceMatch>,
    /// The object's name in the guest (`<index>-<stem>.bpf.o`).
    pub guest_name: String,
}

/// What compiling a scenario's programs for one cell needs.
pub struct CompileContext<'a> {
    pub repo: &'a Repo,
    pub cache: &'a Path,
    pub kernel: &'a BuiltKernel,
    /// The kernel tree under test (for `kernel:` programs and its headers).
    pub kernel_tree: &'a Path,
    /// The scenario's `bpf_include` directories, resolved.
    pub bpf_include: &'a [PathBuf],
}

/// Compile (or find cached) every program; returns fixture text -> compiled.
pub fn compile(ctx: &CompileContext<'_>, refs: &BTreeMap<String, FixtureRef>) -> Result<BTreeMap<String, Compiled>> {
    let mut out = BTreeMap::new();
    if refs.is_empty() {
        return Ok(out);
    }
    let bpftool = tools::require(&tools::BPFTOOL)?;
    let clang_version = if refs.values().any(|r| !matches!(r, FixtureRef::Object(_))) {
        tools::require(&tools::CLANG)?;
        tools::require(&tools::LLVM_STRIP)?;
        tools::require(&tools::LIBBPF_HEADERS)?;
        tools::require(&tools::PYTHON)?;
        tools::version_line(tools::CLANG.name, &["--version"])?
    } else {
        String::new()
    };
    for (i, (text, r)) in refs.iter().enumerate() {
        let bad = |message: String| Error::FixtureCompile { fixture: text.clone(), message };
        let object = match r {
            FixtureRef::Object(p) => p.clone(),
            _ => {
                let src = r.source(ctx.repo, Some(ctx.kernel_tree)).map_err(bad)?.expect("compiled refs have a source");
                compile_source(ctx, r, &src, &clang_version).map_err(|e| match e {
                    Error::FixtureCompile { message, .. } => bad(message),
                    other => other,
                })?
            }
        };
        let config = device_table(&bpftool, &object).map_err(bad)?;
        out.insert(text.clone(), Compiled { object, config, guest_name: format!("{i:02}-{}.bpf.o", r.stem()) });
    }
    Ok(out)
}

fn compile_source(ctx: &CompileContext<'_>, r: &FixtureRef, src: &Path, clang_version: &str) -> Result<PathBuf> {
    let display = src.display().to_string();
    let bad = |message: String| Error::FixtureCompile { fixture: display.clone(), message };
    let vmlinux_dir = ctx.kernel.vmlinux_h.parent().expect("vmlinux.h has a directory").to_path_buf();
    let (flags, includes): (&[&str], Vec<PathBuf>) = match r {
        FixtureRef::Catalogue(_) => (CATALOGUE_FLAGS, vec![vmlinux_dir, ctx.repo.fixtures_dir().join("include")]),
        _ => {
            // clang looks next to the including file first: a vmlinux.h there
            // would silently replace the cell's BTF.
            let own = src.parent().map(|d| d.join("vmlinux.h")).filter(|p| p.exists());
            if let (Some(own), false) = (own, matches!(r, FixtureRef::KernelTree(_))) {
                return Err(bad(format!(
                    "{} would be used instead of the cell's vmlinux.h (clang looks next to the program first); move it away",
                    own.display()
                )));
            }
            let mut inc = vec![vmlinux_dir];
            inc.extend(ctx.bpf_include.iter().cloned());
            inc.push(ctx.kernel_tree.join(KERNEL_PROGS));
            // As drivers/hid/bpf/progs/Makefile does: the tree's own libbpf
            // headers (7.x programs use bpf_for, which bookworm's libbpf
            // 1.1 lacks) and UAPI headers, before the system's.
            inc.push(tree_libbpf_headers(ctx.cache, ctx.kernel_tree)?);
            inc.push(ctx.kernel_tree.join("tools/include/uapi"));
            inc.push(PathBuf::from(MULTIARCH_INCLUDE));
            // 7.x's Makefile adds -fms-extensions (its vmlinux.h embeds
            // anonymous tagged structs); follow the tree, not a version.
            let makefile =
                std::fs::read_to_string(ctx.kernel_tree.join(KERNEL_PROGS).join("Makefile")).unwrap_or_default();
            if makefile.contains("-fms-extensions") {
                (PROGRAM_FLAGS_MS, inc)
            } else {
                (PROGRAM_FLAGS, inc)
            }
        }
    };
    let text = std::fs::read(src).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let mut header_dirs: Vec<PathBuf> =
        includes[1..].iter().filter(|d| d.as_path() != Path::new(MULTIARCH_INCLUDE)).cloned().collect();
    header_dirs.extend(src.parent().map(Path::to_path_buf));
    let headers = read_headers(&header_dirs)?;
    let include_list: Vec<String> = includes.iter().map(|p| p.display().to_string()).collect();
    let mut parts: Vec<&[u8]> =
        vec![&text, ctx.kernel.record.vmlinux_h_sha256.as_bytes(), clang_version.as_bytes(), b"llvm-strip -g"];
    parts.extend(flags.iter().map(|f| f.as_bytes()));
    parts.extend(include_list.iter().map(|i| i.as_bytes()));
    parts.extend(headers.iter().map(|h| h.as_slice()));
    let key = sha256_parts(parts);
    let stem = r.stem();
    let obj = ctx.cache.join("fixtures").join(&key[..20]).join(format!("{stem}.bpf.o"));
    if !obj.exists() {
        compile_one(&display, src, flags, &includes, &obj)?;
    }
    Ok(obj)
}

/// The tree's libbpf headers, installed once per tree content into the
/// cache (`make -C tools/lib/bpf install_headers`, which also generates
/// bpf_helper_defs.h from the tree's UAPI); returns the include directory.
fn tree_libbpf_headers(cache: &Path, tree: &Path) -> Result<PathBuf> {
    let bad = |message: String| Error::Other(format!("installing the libbpf headers of {}: {message}", tree.display()));
    let lib = tree.join("tools/lib/bpf");
    let inputs: Vec<Vec<u8>> = ["bpf_helpers.h", "bpf_tracing.h", "bpf_core_read.h", "Makefile"]
        .iter()
        .map(|f| lib.join(f))
        .chain([tree.join("include/uapi/linux/bpf.h")])
        .map(|p| std::fs::read(&p).map_err(|e| bad(format!("{}: {e}", p.display()))))
        .collect::<Result<_>>()?;
    let key = sha256_parts(inputs.iter().map(|v| v.as_slice()));
    let dest = cache.join("libbpf-headers").join(&key[..16]);
    let include = dest.join("include");
    if include.join("bpf/bpf_helper_defs.h").exists() {
        return Ok(include);
    }
    let parent = dest.parent().expect("has a parent");
    std::fs::create_dir_all(parent).map_err(Error::io(format!("creating {}", parent.display())))?;
    let tmp = tempfile::Builder::new().prefix(".headers-").tempdir_in(parent).map_err(Error::io("temporary dir"))?;
    let out_dir = tmp.path().join("out");
    std::fs::create_dir_all(&out_dir).map_err(Error::io("temporary dir"))?;
    let out = duct::cmd(
        "make",
        [
            "-s".to_string(),
            "-C".into(),
            lib.display().to_string(),
            format!("OUTPUT={}/", out_dir.display()),
            format!("DESTDIR={}", tmp.path().display()),
            "prefix=".into(),
            "install_headers".into(),
        ],
    )
    .stdout_capture()
    .stderr_capture()
    .unchecked()
    .run()
    .map_err(Error::io("running make install_headers"))?;
    if !out.status.success() {
        return Err(bad(format!(
            "{} (it needs python3)",
            crate::base::error::one_line(&String::from_utf8_lossy(&out.stderr), 2)
        )));
    }
    let _ = std::fs::remove_dir_all(&out_dir);
    // Another process may have installed them meanwhile: either copy is right.
    let done = tmp.keep();
    if let Err(e) = std::fs::rename(&done, &dest) {
        let _ = std::fs::remove_dir_all(&done);
        if !include.join("bpf/bpf_helper_defs.h").exists() {
            return Err(bad(e.to_string()));
        }
    }
    Ok(include)
}

/// Every `*.h` directly in these directories (sorted by path), for cache keys.
fn read_headers(dirs: &[PathBuf]) -> Result<Vec<Vec<u8>>> {
    let mut paths = Vec::new();
    for dir in dirs {
        let rd =
            std::fs::read_dir(dir).map_err(Error::io(format!("reading the header directory {}", dir.display())))?;
        paths.extend(rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "h")));
    }
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).map_err(Error::io(format!("reading {}", p.display())))).collect()
}

fn compile_one(name: &str, src: &Path, flags: &[&str], includes: &[PathBuf], obj: &Path) -> Result<()> {
    let dir = obj.parent().expect("object has a directory");
    std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    // Compile next to the destination and rename: a killed compile never
    // leaves an object that looks finished.
    let tmp = tempfile::Builder::new()
        .prefix(".compile-")
        .suffix(".o")
        .tempfile_in(dir)
        .map_err(Error::io("temporary object file"))?;
    let mut args: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
    for inc in includes {
        args.push("-I".into());
        args.push(inc.display().to_string());
    }
    args.extend(["-c".into(), src.display().to_string(), "-o".into(), tmp.path().display().to_string()]);
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
    strip_dwarf(name, tmp.path())?;
    tmp.persist(obj).map_err(|e| Error::io(format!("storing {}", obj.display()))(e.error))?;
    Ok(())
}

/// Drop the object's DWARF (`llvm-strip -g`, as the kernel's BPF
/// selftests do): libbpf and the kernel read only its BTF and BTF.ext
/// (types, CO-RE relocations, line info), which stay. A catalogue program
/// goes from ~440 KB to ~4 KB, and every test delivers its programs to the
/// guest over a serial port and has libbpf parse them.
fn strip_dwarf(name: &str, object: &Path) -> Result<()> {
    let out = duct::cmd!(tools::LLVM_STRIP.name, "-g", object)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(Error::io("running llvm-strip-19"))?;
    if !out.status.success() {
        return Err(Error::FixtureCompile {
            fixture: name.to_string(),
            message: format!("llvm-strip -g: {}", String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    Ok(())
}

/// The HID_BPF_CONFIG table of an object: the union `_device_ids` in
/// section `.hid_bpf_config`, one struct per HID_DEVICE(bus, group, vid,
/// pid) whose members are pointers to arrays whose element counts are the
/// values (`__uint(name, val)` is `int (*name)[val]`). Empty when the
/// program has no table. Read once per process for each object file
/// (path, size, modification time): every test of a program asks.
pub fn device_table(bpftool: &Path, object: &Path) -> std::result::Result<Vec<DeviceMatch>, String> {
    type Memo = std::sync::Mutex<BTreeMap<String, Vec<DeviceMatch>>>;
    static MEMO: std::sync::OnceLock<Memo> = std::sync::OnceLock::new();
    let stamp = std::fs::metadata(object).ok().map(|m| (m.len(), m.modified().ok()));
    let key = format!("{} {} {stamp:?}", bpftool.display(), object.display());
    let memo = MEMO.get_or_init(Default::default);
    if let Some(table) = memo.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(table.clone());
    }
    let table = read_device_table(bpftool, object)?;
    memo.lock().unwrap_or_else(|e| e.into_inner()).insert(key, table.clone());
    Ok(table)
}

fn read_device_table(bpftool: &Path, object: &Path) -> std::result::Result<Vec<DeviceMatch>, String> {
    let out = duct::cmd!(bpftool, "btf", "dump", "file", object, "-j")
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(|e| format!("running bpftool: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "bpftool cannot read the BTF of {}: {}",
            object.display(),
            crate::base::error::one_line(&String::from_utf8_lossy(&out.stderr), 2)
        ));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("bpftool's BTF JSON for {}: {e}", object.display()))?;
    parse_device_table(&json).map_err(|e| format!("HID_BPF_CONFIG of {}: {e}", object.display()))
}

fn parse_device_table(btf: &serde_json::Value) -> std::result::Result<Vec<DeviceMatch>, String> {
    let types = btf["types"].as_array().ok_or("no `types` in the BTF dump")?;
    let by_id: BTreeMap<u64, &serde_json::Value> = types.iter().filter_map(|t| Some((t["id"].as_u64()?, t))).collect();
    let get = |id: &serde_json::Value| id.as_u64().and_then(|i| by_id.get(&i).copied()).ok_or("a dangling BTF type id");
    let Some(var) = types.iter().find(|t| t["kind"] == "VAR" && t["name"] == "_device_ids") else {
        return Ok(vec![]);
    };
    let union = get(&var["type_id"])?;
    if union["kind"] != "UNION" {
        return Err(format!("_device_ids is a {}, not the union HID_BPF_CONFIG makes", union["kind"]));
    }
    let mut out = Vec::new();
    for entry in union["members"].as_array().ok_or("the union has no members")? {
        let st = get(&entry["type_id"])?;
        let value = |field: &str| -> std::result::Result<u64, String> {
            let m = st["members"]
                .as_array()
                .and_then(|ms| ms.iter().find(|m| m["name"] == field))
                .ok_or(format!("an entry has no `{field}`"))?;
            let ptr = get(&m["type_id"])?;
            let arr = get(&ptr["type_id"])?;
            arr["nr_elems"].as_u64().ok_or(format!("`{field}` is not an __uint() array"))
        };
        let small = |v: u64, what: &str| u16::try_from(v).map_err(|_| format!("{what} {v:#x} is too large"));
        out.push(DeviceMatch {
            bus: small(value("bus")?, "bus")?,
            group: small(value("group")?, "group")?,
            vendor: value("vid")? as u32,
            product: value("pid")? as u32,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_are_read_from_the_struct_ops_initializer_or_the_sections() {
        let src = "SEC(\".struct_ops.link\")\nstruct hid_bpf_ops x = {\n\t.hid_device_event = (void *)f,\n\t.hid_rdesc_fixup=(void *)g,\n};\n/* .hid_hw_request is mentioned here only */";
        assert_eq!(hooks_in_source(src), [Hook::DeviceEvent, Hook::RdescFixup].into_iter().collect());
        let obj = b"\0.text\0struct_ops/hid_device_event\0struct_ops.s/hid_hw_request\0license\0";
        assert_eq!(hooks_in_object(obj), [Hook::DeviceEvent, Hook::HwRequest].into_iter().collect());
    }

    #[test]
    fn fixture_references_resolve_or_say_what_is_wrong() {
        let repo = Repo::locate();
        let here = repo.root.join("tests/scenarios");
        assert_eq!(
            FixtureRef::parse(&repo, "boot_mouse_invert_y", &here).unwrap(),
            FixtureRef::Catalogue("boot_mouse_invert_y".into())
        );
        assert!(FixtureRef::parse(&repo, "nonexistent_fixture", &here)
            .unwrap_err()
            .contains("no bpf-fixtures/nonexistent_fixture.bpf.c"));
        assert!(FixtureRef::parse(&repo, "missing.bpf.c", &here)
            .unwrap_err()
            .contains("does not exist (paths are relative to the scenario file)"));
        let src = FixtureRef::parse(&repo, "../../bpf-fixtures/boot_mouse_noop.bpf.c", &here).unwrap();
        assert!(matches!(&src, FixtureRef::Source(p) if p.ends_with("bpf-fixtures/boot_mouse_noop.bpf.c")));
        assert_eq!(src.hooks(&repo, None).unwrap(), Some([Hook::DeviceEvent].into_iter().collect()));
        let k = FixtureRef::parse(&repo, "kernel:drivers/hid/bpf/progs/X.bpf.c", &here).unwrap();
        // Without a tree (`hidvm check --without-trees`) its hooks are
        // unknown, not an error; compiling it still needs the tree.
        assert_eq!(k.hooks(&repo, None), Ok(None));
        assert!(k.source(&repo, None).unwrap_err().contains("needs the kernel tree"));
        assert!(k.hooks(&repo, Some(&here)).unwrap_err().contains("has no drivers/hid/bpf/progs/X.bpf.c"));
        assert!(FixtureRef::parse(&repo, "kernel:../etc/passwd.bpf.c", &here).is_err());
        assert!(FixtureRef::parse(&repo, "dir/name", &here).unwrap_err().contains("neither a fixture name"));
    }

    #[test]
    fn the_device_table_is_read_from_btf() {
        // Trimmed `bpftool btf dump -j` of IOGEAR__Kaliber-MMOmentum.bpf.o.
        let json: serde_json::Value = serde_json::from_str(r#"{"types":[
            {"id":4,"kind":"INT","name":"int"},
            {"id":49,"kind":"UNION","name":"(anon)","members":[{"name":"_entry14","type_id":50}]},
            {"id":50,"kind":"STRUCT","name":"(anon)","members":[{"name":"name","type_id":51},{"name":"bus","type_id":53},{"name":"group","type_id":55},{"name":"vid","type_id":57},{"name":"pid","type_id":59}]},
            {"id":51,"kind":"PTR","type_id":52},{"id":52,"kind":"ARRAY","type_id":4,"nr_elems":0},
            {"id":53,"kind":"PTR","type_id":54},{"id":54,"kind":"ARRAY","type_id":4,"nr_elems":3},
            {"id":55,"kind":"PTR","type_id":56},{"id":56,"kind":"ARRAY","type_id":4,"nr_elems":1},
            {"id":57,"kind":"PTR","type_id":58},{"id":58,"kind":"ARRAY","type_id":4,"nr_elems":9610},
            {"id":59,"kind":"PTR","type_id":60},{"id":60,"kind":"ARRAY","type_id":4,"nr_elems":39},
            {"id":61,"kind":"VAR","name":"_device_ids","type_id":49}]}"#).unwrap();
        let table = parse_device_table(&json).unwrap();
        assert_eq!(table, vec![DeviceMatch { bus: 3, group: 1, vendor: 0x258a, product: 0x27 }]);
        assert_eq!(table[0].to_string(), "b0003g0001v0000258Ap00000027");
        assert!(table[0].matches_ids(3, 0x258a, 0x27) && !table[0].matches_ids(5, 0x258a, 0x27));
        let none: serde_json::Value =
            serde_json::from_str(r#"{"types":[{"id":1,"kind":"INT","name":"int"}]}"#).unwrap();
        assert!(parse_device_table(&none).unwrap().is_empty());
    }
}
