//! What one target's hid-tools VMs get besides the userspace image: the
//! tree's `tools/testing/selftests/hid/tests/`, every program of its
//! `drivers/hid/bpf/progs/` compiled for the target (as hidvm compiles
//! `kernel:` programs) where `tests/base.py` looks for them (the tree's
//! root is `tests/../../../../..`), the kernel's installed modules, and the
//! pytest plugin. Laid out under `BUNDLE_DIR` in the initramfs; the guest
//! sees it at /hidvm.
use crate::base::error::{Error, Result};
use crate::catalogue::fixtures::{self, FixtureRef, KERNEL_PROGS};
use crate::kernel::build::BuiltKernel;
use crate::kernel::spec::Target;
use crate::run::suite::Suite;
use hidvm_proto::job::BUNDLE_DIR;
use std::collections::BTreeMap;
use std::path::Path;

/// The suite's directory in a kernel tree.
pub const SUITE_DIR: &str = "tools/testing/selftests/hid";

/// A target, ready to boot its hid-tools VMs.
pub struct Prepared {
    pub target: Target,
    pub kernel: BuiltKernel,
    /// The tree's exact source label (known results name kernels by it).
    pub kernel_label: String,
    pub kernel_version: String,
    /// (guest path, mode, bytes) of every bundle file.
    pub files: Vec<(String, u32, Vec<u8>)>,
    /// Programs of the tree that did not compile for this target (their
    /// tests then fail: udev-hid-bpf finds no object).
    pub notes: Vec<String>,
}

/// Build (or find) the kernel, compile the tree's programs, and gather
/// the bundle.
pub fn prepare(suite: &Suite, target: &Target) -> Result<Prepared> {
    let kernel = suite.kernel(target)?;
    let source = suite.source(&target.kernel)?;
    let tests = source.root.join(SUITE_DIR).join("tests");
    if !tests.join("base.py").is_file() {
        return Err(Error::Other(format!(
            "{target}: the kernel tree {} has no hid-tools suite ({}/tests/base.py)",
            source.root.display(),
            SUITE_DIR
        )));
    }
    let mut files = Vec::new();
    add_dir(&mut files, &tests, &format!("{BUNDLE_DIR}/tree/{SUITE_DIR}/tests"))?;
    let mut notes = add_programs(suite, &kernel, &source.root, &mut files)?;
    match &kernel.modules_tree {
        Some(tree) => {
            let release = tree.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            add_dir(&mut files, tree, &format!("{BUNDLE_DIR}/modules/lib/modules/{release}"))?;
        }
        None => notes.push(format!(
            "{target}: the kernel has no modules tree (a prebuilt kernel?): the suite's driver tests will fail with \"module … could not be loaded\" unless their drivers are built in"
        )),
    }
    let plugin = suite.repo.root.join(crate::vm::userspace::RECIPE_DIR).join(crate::vm::userspace::PLUGIN);
    let text = std::fs::read(&plugin).map_err(Error::io(format!("reading {}", plugin.display())))?;
    files.push((format!("{BUNDLE_DIR}/python/{}", crate::vm::userspace::PLUGIN), 0o644, text));
    Ok(Prepared {
        target: target.clone(),
        kernel,
        kernel_label: source.label.clone(),
        kernel_version: source.version.clone(),
        files,
        notes,
    })
}

/// Every file under `dir` (recursively, no `__pycache__`) at `guest`.
/// Symbolic links are left out: `modules_install` links `build` to the
/// whole build directory.
fn add_dir(files: &mut Vec<(String, u32, Vec<u8>)>, dir: &Path, guest: &str) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(Error::io(format!("reading {}", dir.display())))?;
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let kind = e.file_type().map_err(Error::io(format!("reading {}", path.display())))?;
        if kind.is_dir() {
            if name != "__pycache__" {
                add_dir(files, &path, &format!("{guest}/{name}"))?;
            }
        } else if kind.is_file() {
            let data = std::fs::read(&path).map_err(Error::io(format!("reading {}", path.display())))?;
            files.push((format!("{guest}/{name}"), 0o644, data));
        }
    }
    Ok(())
}

/// Every `drivers/hid/bpf/progs/*.bpf.c` of the tree, compiled for the
/// target, at `tree/drivers/hid/bpf/progs/<name>.bpf.o`; what did not
/// compile, as notes.
fn add_programs(
    suite: &Suite,
    kernel: &BuiltKernel,
    tree: &Path,
    files: &mut Vec<(String, u32, Vec<u8>)>,
) -> Result<Vec<String>> {
    let dir = tree.join(KERNEL_PROGS);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(Error::io(format!("reading {}", dir.display())))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bpf.c"))
        .collect();
    names.sort();
    let ctx = fixtures::CompileContext {
        repo: &suite.repo,
        cache: &suite.cache,
        kernel,
        kernel_tree: tree,
        bpf_include: &[],
    };
    let mut notes = Vec::new();
    for name in names {
        let refs = BTreeMap::from([(name.clone(), FixtureRef::KernelTree(format!("{KERNEL_PROGS}/{name}")))]);
        match fixtures::compile(&ctx, &refs) {
            Ok(compiled) => {
                let object = &compiled[&name].object;
                let data = std::fs::read(object).map_err(Error::io(format!("reading {}", object.display())))?;
                let stem = name.trim_end_matches(".c");
                files.push((format!("{BUNDLE_DIR}/tree/{KERNEL_PROGS}/{stem}.o"), 0o644, data));
            }
            Err(e) => notes.push(format!("{}: {name} did not compile: {e}", kernel.cell.name)),
        }
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_takes_files_not_links_nor_bytecode() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("kernel/drivers/hid")).unwrap();
        std::fs::write(d.path().join("kernel/drivers/hid/wacom.ko"), b"ko").unwrap();
        std::fs::create_dir_all(d.path().join("__pycache__")).unwrap();
        std::fs::write(d.path().join("__pycache__/x.pyc"), b"pyc").unwrap();
        std::os::unix::fs::symlink("/", d.path().join("build")).unwrap();
        let mut files = Vec::new();
        add_dir(&mut files, d.path(), "/m").unwrap();
        let names: Vec<&str> = files.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(names, ["/m/kernel/drivers/hid/wacom.ko"]);
    }
}
