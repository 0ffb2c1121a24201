//! Patch series (`--patches` / HIDVM_PATCHES) and the private tree copies
//! they are applied to.
//!
//! A series is a directory of `*.patch` files applied in name order (what
//! `git format-patch -o DIR` writes), or one file: an mbox of several
//! patches (`git format-patch --stdout`, split with `git mailsplit`) or a
//! single patch. Each is applied with `git apply`, which changes nothing
//! when a patch does not apply, so the first one that fails is named and
//! nothing half-applied is ever built.
//!
//! Patches never touch the tree they are applied to: they go onto a tree
//! of hard links to it in the cache (one per tree and series, made in
//! seconds; each patched file gets a file of its own first). Builds run in
//! one build tree per origin, synced by content ([`sync_build_tree`]), so
//! switching series rebuilds only what the switch changed.
use crate::base::error::{one_line, Error, Result};
use crate::base::layout::sha256_parts;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Patch {
    /// The file name, or `[2/5] <subject>` for mbox members.
    pub name: String,
    pub text: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct Series {
    pub origin: PathBuf,
    pub patches: Vec<Patch>,
}

fn subject(text: &[u8]) -> Option<String> {
    String::from_utf8_lossy(text).lines().find_map(|l| l.strip_prefix("Subject: ").map(|s| s.trim().to_string()))
}

impl Series {
    pub fn load(path: &Path) -> Result<Series> {
        let bad = |problem: String| Error::Other(format!("patch series {}: {problem}", path.display()));
        let patches = if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| bad(e.to_string()))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "patch"))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(bad("holds no *.patch file; write the series with `git format-patch -o DIR`".into()));
            }
            files
                .iter()
                .map(|f| {
                    let text = std::fs::read(f).map_err(|e| bad(format!("{}: {e}", f.display())))?;
                    Ok(Patch { name: f.file_name().unwrap_or_default().to_string_lossy().into_owned(), text })
                })
                .collect::<Result<Vec<_>>>()?
        } else {
            let text =
                std::fs::read(path).map_err(|e| bad(format!("{e}; give a directory of *.patch files or an mbox")))?;
            if text.starts_with(b"From ") {
                split_mbox(path).map_err(bad)?
            } else {
                vec![Patch { name: path.file_name().unwrap_or_default().to_string_lossy().into_owned(), text }]
            }
        };
        if let Some(p) = patches.iter().find(|p| !String::from_utf8_lossy(&p.text).contains("\n+++ ")) {
            return Err(bad(format!("{} contains no diff; is it a patch?", p.name)));
        }
        Ok(Series { origin: path.to_path_buf(), patches })
    }

    /// What the cache key includes: every patch, in order.
    pub fn hash(&self) -> String {
        let names: Vec<&[u8]> = self.patches.iter().flat_map(|p| [p.name.as_bytes(), p.text.as_slice()]).collect();
        sha256_parts(names)[..16].to_string()
    }

    /// `3 patches from DIR` for progress lines.
    /// The series' name in labels: its directory's or file's name
    /// (`hid-bpf-srcu-until-free`), without `.mbox`/`.patch`.
    pub fn name(&self) -> String {
        let file = self.origin.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        file.trim_end_matches(".mbox").trim_end_matches(".patch").to_string()
    }

    pub fn describe(&self) -> String {
        format!(
            "{} patch{} from {}",
            self.patches.len(),
            if self.patches.len() == 1 { "" } else { "es" },
            self.origin.display()
        )
    }

    /// The files the series names (`--- a/x`, `+++ b/x`), relative to the tree.
    pub fn touched_files(&self) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        for p in &self.patches {
            for line in String::from_utf8_lossy(&p.text).lines() {
                let path = line.strip_prefix("--- a/").or_else(|| line.strip_prefix("+++ b/"));
                if let Some(path) = path {
                    out.insert(path.split('\t').next().unwrap_or(path).trim().to_string());
                }
            }
        }
        out
    }

    /// Apply every patch to `tree`, in order; the first that does not
    /// apply is the error (it changed nothing: git apply is atomic).
    pub fn apply(&self, tree: &Path, what: &str) -> Result<()> {
        let dir = tempfile::tempdir().map_err(Error::io("temporary patch dir"))?;
        for (i, p) in self.patches.iter().enumerate() {
            let file = dir.path().join(format!("{:04}.patch", i + 1));
            std::fs::write(&file, &p.text).map_err(Error::io("writing a patch"))?;
            let out = duct::cmd!("git", "apply", "--whitespace=nowarn", &file)
                .dir(tree)
                // Never let git find a repository above the copy and apply
                // relative to that.
                .env("GIT_CEILING_DIRECTORIES", tree.parent().unwrap_or(tree))
                .stdout_capture()
                .stderr_capture()
                .unchecked()
                .run()
                .map_err(Error::io("running git apply (install git)"))?;
            if !out.status.success() {
                return Err(Error::Other(format!(
                    "patch {} ({} of {}) does not apply to {what}: {}; rebase the series onto that tree (or choose its kernel with --kernels)",
                    p.name,
                    i + 1,
                    self.patches.len(),
                    one_line(&String::from_utf8_lossy(&out.stderr), 2)
                )));
            }
        }
        Ok(())
    }
}

fn split_mbox(path: &Path) -> std::result::Result<Vec<Patch>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out = duct::cmd!("git", "mailsplit", format!("-o{}", dir.path().display()), path)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(|e| format!("running git mailsplit (install git): {e}"))?;
    if !out.status.success() {
        return Err(format!("not a readable mbox: {}", one_line(&String::from_utf8_lossy(&out.stderr), 2)));
    }
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir.path()).map_err(|e| e.to_string())?.flatten().map(|e| e.path()).collect();
    files.sort();
    let n = files.len();
    files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let text = std::fs::read(f).map_err(|e| e.to_string())?;
            let name = format!("[{}/{n}] {}", i + 1, subject(&text).unwrap_or_else(|| "(no subject)".into()));
            Ok(Patch { name, text })
        })
        .collect()
}

/// Which files of the origin tree a private copy takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyFiles {
    /// Every file (a pristine tree: the unpacked Debian tarball, a clean tree).
    All,
    /// The files git knows (tracked, and untracked but not ignored): a git
    /// checkout that was built in place, without its build outputs.
    GitListed,
    /// Every file, then `make mrproper` in the copy: a tree that was built
    /// in place and is not a git checkout.
    AllThenMrproper,
}

/// Bring `copy` to exactly `origin`'s files (per `files`), leaving files
/// whose size and time already match untouched (rsync's quick check).
/// `link`: files are hard links to the origin's (a tree made in a second
/// for a patch series; a patch breaks the link of each file it changes
/// first, see [`break_links`]); not with `AllThenMrproper`, whose
/// `make mrproper` must not reach the origin.
pub fn sync(origin: &Path, copy: &Path, files: CopyFiles, link: bool) -> Result<()> {
    crate::base::tools::require(&crate::base::tools::RSYNC)?;
    std::fs::create_dir_all(copy).map_err(Error::io(format!("creating {}", copy.display())))?;
    let src = format!("{}/", origin.display());
    let dst = format!("{}/", copy.display());
    let link_dest = format!("--link-dest={}", std::path::absolute(origin).unwrap_or(origin.to_path_buf()).display());
    let mut args: Vec<String> = vec!["-a".into()];
    if link && files != CopyFiles::AllThenMrproper {
        args.push(link_dest);
    }
    match files {
        CopyFiles::All | CopyFiles::AllThenMrproper => {
            args.extend(["--delete".into(), "--exclude=/.git".into(), src, dst]);
            rsync(origin, copy, duct::cmd("rsync", &args))?;
        }
        CopyFiles::GitListed => {
            let existing = git_listed(origin)?;
            // --delete does not reach files outside the list: remove them
            // by comparing the copy with the list.
            let keep: std::collections::BTreeSet<String> = existing
                .split(|b| *b == 0)
                .filter(|n| !n.is_empty())
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect();
            remove_unlisted(copy, copy, &keep)?;
            args.extend(["--from0".into(), "--files-from=-".into(), src, dst]);
            rsync(origin, copy, duct::cmd("rsync", &args).stdin_bytes(existing))?;
        }
    }
    if files == CopyFiles::AllThenMrproper {
        checked(duct::cmd!("make", "-C", copy, "mrproper"), &format!("make mrproper in the copy {}", copy.display()))?;
    }
    Ok(())
}

/// Run `expr`; its stdout, or an error saying `what` failed and its last
/// lines of stderr.
fn checked(expr: duct::Expression, what: &str) -> Result<Vec<u8>> {
    let out = expr.stdout_capture().stderr_capture().unchecked().run().map_err(Error::io(format!("running {what}")))?;
    if !out.status.success() {
        return Err(Error::Other(format!("{what}: {}", one_line(&String::from_utf8_lossy(&out.stderr), 2))));
    }
    Ok(out.stdout)
}

/// Run an rsync from `origin` to `copy`; its stdout.
fn rsync(origin: &Path, copy: &Path, expr: duct::Expression) -> Result<String> {
    let out = checked(expr, &format!("copying {} to {}", origin.display(), copy.display()))?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The files git lists in `origin` (tracked, and untracked but not
/// ignored) that exist, NUL-separated.
fn git_listed(origin: &Path) -> Result<Vec<u8>> {
    let list = checked(
        duct::cmd!("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard").dir(origin),
        &format!("listing the files of {}", origin.display()),
    )?;
    // Only files that exist (a deleted, still tracked file is not copied).
    Ok(list
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .filter(|n| origin.join(String::from_utf8_lossy(n).as_ref()).is_file())
        .flat_map(|n| n.iter().copied().chain([0]))
        .collect())
}

/// Give each of `files` in `tree` a file of its own (same content), so a
/// change to it does not reach the tree it is hard-linked from.
pub fn break_links(tree: &Path, files: &std::collections::BTreeSet<String>) -> Result<()> {
    for f in files {
        let path = tree.join(f);
        if !path.is_file() {
            continue;
        }
        let tmp =
            path.with_file_name(format!(".{}.hidvm-unlink", path.file_name().unwrap_or_default().to_string_lossy()));
        std::fs::copy(&path, &tmp)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(Error::io(format!("copying {} before patching it", path.display())))?;
    }
    Ok(())
}

/// Bring the build tree `dest` to exactly `origin`'s content, comparing
/// files by content: a file that changed gets a new modification time (so
/// `make` rebuilds what depends on it, also when it went back to an older
/// version), every other file keeps its own. `dest`'s `/.hidvm-*` entries
/// (its build directories and state) are left alone. Returns how many
/// files changed.
pub fn sync_build_tree(origin: &Path, dest: &Path) -> Result<usize> {
    crate::base::tools::require(&crate::base::tools::RSYNC)?;
    std::fs::create_dir_all(dest).map_err(Error::io(format!("creating {}", dest.display())))?;
    let out = rsync(
        origin,
        dest,
        duct::cmd!(
            "rsync",
            "-rlpD",
            "--checksum",
            "--delete",
            "--exclude=/.git",
            "--exclude=/.hidvm-*",
            "--out-format=%n",
            format!("{}/", origin.display()),
            format!("{}/", dest.display())
        ),
    )?;
    Ok(out.lines().filter(|l| !l.ends_with('/')).count())
}

fn remove_unlisted(root: &Path, dir: &Path, keep: &std::collections::BTreeSet<String>) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Ok(()) };
    for e in rd.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap_or(&p).to_string_lossy().into_owned();
        if rel == ".hidvm-state" {
            continue;
        }
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_unlisted(root, &p, keep)?;
        } else if !keep.contains(&rel) {
            std::fs::remove_file(&p).map_err(Error::io(format!("removing {}", p.display())))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "--- a/f.c\n+++ b/f.c\n@@ -1 +1 @@\n-old\n+new\n";
    const TWO: &str = "--- a/f.c\n+++ b/f.c\n@@ -1 +1 @@\n-new\n+newer\n";

    #[test]
    fn a_directory_is_applied_in_name_order_and_a_failing_patch_is_named() {
        let tree = tempfile::tempdir().unwrap();
        std::fs::write(tree.path().join("f.c"), "old\n").unwrap();
        let s = tempfile::tempdir().unwrap();
        std::fs::write(s.path().join("0002-second.patch"), TWO).unwrap();
        std::fs::write(s.path().join("0001-first.patch"), ONE).unwrap();
        let series = Series::load(s.path()).unwrap();
        assert_eq!(series.patches[0].name, "0001-first.patch");
        series.apply(tree.path(), "Linux 7.3.4").unwrap();
        assert_eq!(std::fs::read_to_string(tree.path().join("f.c")).unwrap(), "newer\n");
        // Applied again, the first patch no longer applies: named, one line.
        let e = series.apply(tree.path(), "Linux 7.3.4").unwrap_err().to_string();
        assert!(e.contains("patch 0001-first.patch (1 of 2) does not apply to Linux 7.3.4"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn an_mbox_is_split_and_its_members_named_by_subject() {
        let d = tempfile::tempdir().unwrap();
        let mbox = d.path().join("series.mbox");
        let msg = |n: u32, subj: &str, diff: &str| {
            format!("From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\nFrom: A <a@b>\nSubject: [PATCH {n}/2] {subj}\n\n---\n{diff}--\n2.39.5\n\n")
        };
        std::fs::write(&mbox, msg(1, "HID: first", ONE) + &msg(2, "HID: second", TWO)).unwrap();
        let s = Series::load(&mbox).unwrap();
        assert_eq!(s.patches.len(), 2);
        assert!(s.patches[1].name.starts_with("[2/2] [PATCH 2/2] HID: second"), "{}", s.patches[1].name);
        let tree = tempfile::tempdir().unwrap();
        std::fs::write(tree.path().join("f.c"), "old\n").unwrap();
        s.apply(tree.path(), "x").unwrap();
        assert_eq!(std::fs::read_to_string(tree.path().join("f.c")).unwrap(), "newer\n");
    }

    #[test]
    fn bad_series_are_refused_before_anything_is_copied() {
        let empty = tempfile::tempdir().unwrap();
        assert!(Series::load(empty.path()).unwrap_err().to_string().contains("holds no *.patch"));
        let f = empty.path().join("notes.patch");
        std::fs::write(&f, "just words\n").unwrap();
        assert!(Series::load(&f).unwrap_err().to_string().contains("contains no diff"));
        assert!(Series::load(Path::new("/nonexistent/series")).is_err());
    }

    /// Switching the build tree to another tree's content: each changed
    /// file is newer than before (also when it went back to an older
    /// version: make must rebuild it), the others keep their time, and the
    /// build directories inside are left alone.
    #[test]
    fn the_build_tree_follows_content_and_a_changed_file_is_always_newer() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        for t in [&a, &b] {
            std::fs::write(t.path().join("same.c"), "same\n").unwrap();
        }
        std::fs::write(a.path().join("f.c"), "version a\n").unwrap();
        std::fs::write(b.path().join("f.c"), "version b\n").unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::options().write(true).open(a.path().join("f.c")).unwrap().set_modified(old).unwrap();
        let tree = tempfile::tempdir().unwrap();
        assert_eq!(sync_build_tree(a.path(), tree.path()).unwrap(), 2);
        std::fs::create_dir_all(tree.path().join(".hidvm-gcc")).unwrap();
        std::fs::write(tree.path().join(".hidvm-gcc/f.o"), "object").unwrap();
        let mtime = |p: &str| std::fs::metadata(tree.path().join(p)).unwrap().modified().unwrap();
        let (same0, f0) = (mtime("same.c"), mtime("f.c"));
        assert!(f0 > old, "a copied file is as new as the copy");
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(sync_build_tree(b.path(), tree.path()).unwrap(), 1);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(sync_build_tree(a.path(), tree.path()).unwrap(), 1, "back to a: one file changed");
        assert_eq!(std::fs::read_to_string(tree.path().join("f.c")).unwrap(), "version a\n");
        assert!(mtime("f.c") > f0, "back to the old version, and still newer than its object");
        assert_eq!(mtime("same.c"), same0);
        assert!(tree.path().join(".hidvm-gcc/f.o").exists());
        assert_eq!(sync_build_tree(a.path(), tree.path()).unwrap(), 0);
    }

    #[test]
    fn a_linked_copy_is_patched_without_touching_its_origin() {
        let origin = tempfile::tempdir().unwrap();
        std::fs::write(origin.path().join("f.c"), "old\n").unwrap();
        let copy = tempfile::tempdir().unwrap();
        sync(origin.path(), copy.path(), CopyFiles::All, true).unwrap();
        let s = tempfile::tempdir().unwrap();
        std::fs::write(s.path().join("0001.patch"), ONE).unwrap();
        let series = Series::load(s.path()).unwrap();
        assert_eq!(series.touched_files().into_iter().collect::<Vec<_>>(), ["f.c"]);
        break_links(copy.path(), &series.touched_files()).unwrap();
        series.apply(copy.path(), "x").unwrap();
        assert_eq!(std::fs::read_to_string(copy.path().join("f.c")).unwrap(), "new\n");
        assert_eq!(std::fs::read_to_string(origin.path().join("f.c")).unwrap(), "old\n");
    }

    #[test]
    fn sync_keeps_unchanged_files_untouched_and_removes_extra_ones() {
        let origin = tempfile::tempdir().unwrap();
        std::fs::write(origin.path().join("a.c"), "a\n").unwrap();
        std::fs::create_dir_all(origin.path().join("d")).unwrap();
        std::fs::write(origin.path().join("d/b.c"), "b\n").unwrap();
        let copy = tempfile::tempdir().unwrap();
        sync(origin.path(), copy.path(), CopyFiles::All, false).unwrap();
        let t0 = std::fs::metadata(copy.path().join("d/b.c")).unwrap().modified().unwrap();
        std::fs::write(copy.path().join("a.c"), "patched\n").unwrap();
        std::fs::write(copy.path().join("new.c"), "added by a patch\n").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        sync(origin.path(), copy.path(), CopyFiles::All, false).unwrap();
        assert_eq!(std::fs::read_to_string(copy.path().join("a.c")).unwrap(), "a\n");
        assert!(!copy.path().join("new.c").exists());
        assert_eq!(std::fs::metadata(copy.path().join("d/b.c")).unwrap().modified().unwrap(), t0);
    }
}
