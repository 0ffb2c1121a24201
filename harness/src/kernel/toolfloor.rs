//! Tool floors: the oldest compiler and pahole a kernel tree accepts,
//! checked before anything is built. The tree says what it needs, so the
//! floors are read from it, never copied into hidvm: the compiler floor
//! from `scripts/min-tool-version.sh`, the measured version from
//! `scripts/cc-version.sh` (what kbuild itself uses), and the pahole floor
//! from the `depends on PAHOLE_VERSION >= N` lines of `config
//! DEBUG_INFO_BTF` (without BTF there is no HID-BPF). Without this check a
//! too-old tool shows up minutes later as a dropped CONFIG_DEBUG_INFO_BTF
//! or a compiler error deep in the build log.
use crate::base::error::{Error, Result};
use crate::kernel::cell::KernelCell;
use std::path::Path;

/// A version as kbuild compares them: 17.0.1 -> 170001, pahole 1.24 -> 124.
fn packed(v: &str) -> Option<u64> {
    let parts: Vec<u64> = v.trim().split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    match parts.as_slice() {
        [a, b, c] => Some(a * 10000 + b * 100 + c),
        [a, b] => Some(a * 10000 + b * 100),
        _ => None,
    }
}

fn show_packed(v: u64) -> String {
    format!("{}.{}.{}", v / 10000, v / 100 % 100, v % 100)
}

/// pahole's packed version: 124 -> "1.24".
fn show_pahole(v: u64) -> String {
    format!("{}.{}", v / 100, v % 100)
}

fn script(tree: &Path, script: &str, arg: &str) -> std::result::Result<String, String> {
    let out = duct::cmd("sh", [tree.join(script).display().to_string(), arg.to_string()])
        .env("ARCH", "x86_64")
        .env("SRCARCH", "x86")
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(|e| format!("running {script}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{script} {arg}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The pahole floor of `config DEBUG_INFO_BTF` in lib/Kconfig.debug
/// (116 on 6.12, 122 on 7.3), or None when the tree states none.
pub fn pahole_floor(kconfig_debug: &str) -> Option<u64> {
    let mut in_btf = false;
    let mut floor = None;
    for line in kconfig_debug.lines() {
        let l = line.trim();
        if l.starts_with("config ") || l.starts_with("menuconfig ") {
            in_btf = l == "config DEBUG_INFO_BTF";
            continue;
        }
        if !in_btf {
            continue;
        }
        // `depends on PAHOLE_VERSION >= 122`, not `X || PAHOLE_VERSION >= 121`.
        if let Some(rest) = l.strip_prefix("depends on PAHOLE_VERSION >=") {
            floor = rest.trim().parse::<u64>().ok().max(floor);
        }
    }
    floor
}

/// One line per problem: every tool below the tree's floor, with the fix.
pub fn check(tree: &Path, kernel: &str, cell: &KernelCell) -> Result<()> {
    let mut problems = Vec::new();
    // "GCC 120200" / "Clang 190107".
    let cc = script(tree, "scripts/cc-version.sh", &cell.compiler).map_err(Error::Other)?;
    let (family, have) = cc.split_once(' ').unwrap_or((cc.as_str(), "0"));
    let tool = match family {
        "GCC" => "gcc",
        "Clang" => "llvm",
        other => {
            return Err(Error::Other(format!(
                "kernel {kernel}: cell {}: scripts/cc-version.sh does not recognise `{}` ({other}); fix `compiler` in guest-image/cells.toml",
                cell.name, cell.compiler
            )))
        }
    };
    let need = script(tree, "scripts/min-tool-version.sh", tool).map_err(Error::Other)?;
    if let (Ok(have), Some(need_v)) = (have.trim().parse::<u64>(), packed(&need)) {
        if have < need_v {
            problems.push(format!(
                "{} is {}, kernel {kernel} needs {tool} >= {need} (scripts/min-tool-version.sh): install a newer one and point cell {} at it in guest-image/cells.toml",
                cell.compiler,
                show_packed(have),
                cell.name
            ));
        }
    }
    let kconfig = std::fs::read_to_string(tree.join("lib/Kconfig.debug")).unwrap_or_default();
    if let Some(floor) = pahole_floor(&kconfig) {
        let have = script(tree, "scripts/pahole-version.sh", "pahole").map_err(Error::Other)?;
        match have.parse::<u64>() {
            Ok(0) | Err(_) => problems.push(format!(
                "pahole is missing, kernel {kernel} needs pahole >= {} for BTF: install it with `sudo apt-get install pahole`",
                show_pahole(floor)
            )),
            Ok(v) if v < floor => problems.push(format!(
                "pahole is {}, kernel {kernel} needs pahole >= {} for CONFIG_DEBUG_INFO_BTF (lib/Kconfig.debug): install a newer pahole (dwarves)",
                show_pahole(v),
                show_pahole(floor)
            )),
            Ok(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Other(format!("tool below the kernel's floor: {}", problems.join("; "))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_pack_like_kbuild() {
        assert_eq!(packed("17.0.1"), Some(170001));
        assert_eq!(packed("8.1.0"), Some(80100));
        assert_eq!(show_packed(190107), "19.1.7");
        assert_eq!(packed("x"), None);
    }

    #[test]
    fn the_pahole_floor_is_the_btf_options_own() {
        let text = "config DEBUG_INFO_BTF\n\tbool \"x\"\n\tdepends on BPF_SYSCALL\n\tdepends on PAHOLE_VERSION >= 122\n\tdepends on DEBUG_INFO_DWARF4 || PAHOLE_VERSION >= 121\n\nconfig PAHOLE_HAS_LANG_EXCLUDE\n\tdef_bool PAHOLE_VERSION >= 124\n";
        assert_eq!(pahole_floor(text), Some(122));
        assert_eq!(pahole_floor("config OTHER\n\tdepends on PAHOLE_VERSION >= 130\n"), None);
    }

    /// A fake tree whose scripts report an old compiler and pahole: both
    /// are named in the one error, before anything is built.
    #[test]
    fn tools_below_the_floor_are_one_error_naming_each() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("scripts");
        std::fs::create_dir_all(&s).unwrap();
        std::fs::create_dir_all(d.path().join("lib")).unwrap();
        std::fs::write(s.join("cc-version.sh"), "echo Clang 160006\n").unwrap();
        std::fs::write(s.join("min-tool-version.sh"), "case $1 in llvm) echo 17.0.1;; gcc) echo 8.1.0;; esac\n")
            .unwrap();
        std::fs::write(s.join("pahole-version.sh"), "echo 124\n").unwrap();
        std::fs::write(
            d.path().join("lib/Kconfig.debug"),
            "config DEBUG_INFO_BTF\n\tdepends on PAHOLE_VERSION >= 127\n",
        )
        .unwrap();
        let cells = crate::kernel::cell::load(&crate::base::layout::Repo::locate().cells_file()).unwrap();
        let llvm = crate::kernel::cell::find(&cells, "llvm").unwrap();
        let e = check(d.path(), "7.9", llvm).unwrap_err().to_string();
        assert!(e.contains("clang-19 is 16.0.6, kernel 7.9 needs llvm >= 17.0.1"), "{e}");
        assert!(e.contains("pahole is 1.24, kernel 7.9 needs pahole >= 1.27 for CONFIG_DEBUG_INFO_BTF"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
