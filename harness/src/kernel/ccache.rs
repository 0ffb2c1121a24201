//! Compiler caching for kernel builds: ccache wraps the cell's compiler
//! (`CC="ccache gcc"`, `CC="ccache clang-19"` for `LLVM=-19`), so a
//! rebuild after a Debian point release, a patch series switched back and
//! forth, a bisect step or a fresh build directory compiles only what it
//! has not compiled before.
//!
//! The cache is `<cache>/ccache` (`HIDVM_CCACHE_DIR` moves it; CI can keep
//! it between jobs), limited to [`MAX_SIZE`]. Builds from a workspace's
//! build tree run with their `O=` directory inside the tree, so kbuild
//! names every source file relative to it (`../drivers/…`) and, with
//! `hash_dir = false`, a file compiled in one workspace is a hit in every
//! other: the compiler's output does not depend on where the tree is
//! (only the debug info's compilation directory names the first one).
//! The compiler is still the cell's, which the kernel cache key names:
//! ccache is a wrapper and changes no key. `HIDVM_CCACHE=0` turns it off.
use crate::kernel::cell::KernelCell;
use std::path::{Path, PathBuf};

/// The size ccache keeps the cache under.
pub const MAX_SIZE: &str = "8G";

/// ccache for kernel builds, if it is installed and not turned off.
#[derive(Clone, Debug)]
pub struct Ccache {
    pub dir: PathBuf,
}

/// Hits and misses, from `ccache --print-stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
}

impl Stats {
    /// What a build added.
    pub fn since(self, before: Stats) -> Stats {
        Stats { hits: self.hits.saturating_sub(before.hits), misses: self.misses.saturating_sub(before.misses) }
    }

    /// `ccache: 2915 hits, 12 misses (99.6 %)`.
    pub fn describe(self) -> String {
        let all = self.hits + self.misses;
        let rate = if all == 0 { 0.0 } else { 100.0 * self.hits as f64 / all as f64 };
        format!("ccache: {} hits, {} misses ({rate:.1} %)", self.hits, self.misses)
    }

    /// Parse `ccache --print-stats` (tab-separated key and value per line).
    pub fn parse(text: &str) -> Stats {
        let value = |key: &str| {
            text.lines()
                .filter_map(|l| l.split_once('\t'))
                .find(|(k, _)| k.trim() == key)
                .and_then(|(_, v)| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        Stats { hits: value("direct_cache_hit") + value("preprocessed_cache_hit"), misses: value("cache_miss") }
    }
}

impl Ccache {
    /// ccache under `cache`, unless `HIDVM_CCACHE=0` or it is not installed.
    pub fn for_cache(cache: &Path) -> Option<Ccache> {
        if std::env::var("HIDVM_CCACHE").is_ok_and(|v| v == "0" || v == "off") {
            return None;
        }
        crate::base::tools::find(&crate::base::tools::CCACHE)?;
        let dir = std::env::var_os("HIDVM_CCACHE_DIR").map(PathBuf::from).unwrap_or_else(|| cache.join("ccache"));
        Some(Ccache { dir })
    }

    /// The make variable that wraps the cell's compiler.
    pub fn make_arg(&self, cell: &KernelCell) -> String {
        format!("CC=ccache {}", compiler_of(cell))
    }

    /// The environment every compiler call gets.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("CCACHE_DIR".into(), self.dir.display().to_string()),
            ("CCACHE_NOHASHDIR".into(), "1".into()),
            ("CCACHE_MAXSIZE".into(), MAX_SIZE.into()),
        ]
    }

    pub fn stats(&self) -> Stats {
        let out = duct::cmd!("ccache", "--print-stats")
            .env("CCACHE_DIR", &self.dir)
            .stdout_capture()
            .stderr_null()
            .unchecked()
            .run();
        out.map(|o| Stats::parse(&String::from_utf8_lossy(&o.stdout))).unwrap_or_default()
    }
}

/// The C compiler kbuild would use for the cell: its `CC`, else the one
/// `LLVM=` names (`LLVM=-19`: clang-19; `LLVM=1`: clang; `LLVM=/p/`:
/// /p/clang), else gcc.
pub fn compiler_of(cell: &KernelCell) -> String {
    if let Some(cc) = cell.make.get("CC") {
        return cc.clone();
    }
    match cell.make.get("LLVM").map(String::as_str) {
        Some("1") => "clang".into(),
        Some(v) if v.starts_with('-') => format!("clang{v}"),
        Some(v) if v.ends_with('/') => format!("{v}clang"),
        Some(_) => "clang".into(),
        None => "gcc".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cells_compiler_is_wrapped_and_stats_are_read() {
        let mut cell = crate::kernel::cell::load(&crate::base::layout::Repo::locate().cells_file()).unwrap();
        let gcc = cell.iter().find(|c| c.name == "gcc").unwrap().clone();
        assert_eq!(compiler_of(&gcc), "gcc");
        let llvm = cell.iter_mut().find(|c| c.name == "llvm").unwrap();
        assert_eq!(compiler_of(llvm), "clang-19");
        llvm.make.insert("LLVM".into(), "/opt/llvm/bin/".into());
        assert_eq!(compiler_of(llvm), "/opt/llvm/bin/clang");
        let c = Ccache { dir: "/c".into() };
        assert_eq!(c.make_arg(&gcc), "CC=ccache gcc");
        let text = "stats_updated_timestamp\t0\ndirect_cache_hit\t40\npreprocessed_cache_hit\t2\ncache_miss\t8\n";
        let s = Stats::parse(text);
        assert_eq!(s, Stats { hits: 42, misses: 8 });
        assert_eq!(s.since(Stats { hits: 2, misses: 8 }).describe(), "ccache: 40 hits, 0 misses (100.0 %)");
    }
}
