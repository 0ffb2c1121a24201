//! Kernel config fragments: merged onto tinyconfig with the kernel's own
//! scripts/kconfig/merge_config.sh, then resolved by `make olddefconfig`.
//! olddefconfig silently drops any option whose dependencies are missing
//! (HID_BPF without BPF_JIT, BTF or ftrace direct calls, say), so every
//! requested option is checked against the resolved .config.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `Some(value)` for `CONFIG_X=value`, `None` for `# CONFIG_X is not set`.
pub type ConfigMap = BTreeMap<String, Option<String>>;

pub fn parse(text: &str) -> ConfigMap {
    let mut map = ConfigMap::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("# CONFIG_") {
            if let Some(name) = rest.strip_suffix(" is not set") {
                map.insert(format!("CONFIG_{name}"), None);
            }
        } else if line.starts_with("CONFIG_") {
            if let Some((k, v)) = line.split_once('=') {
                map.insert(k.trim().to_string(), Some(v.trim().to_string()));
            }
        }
    }
    map
}

/// A fragment file with its parsed options, in merge order.
pub struct Fragment {
    pub path: PathBuf,
    pub text: String,
}

impl Fragment {
    pub fn read(path: &Path) -> std::io::Result<Fragment> {
        Ok(Fragment { path: path.to_path_buf(), text: std::fs::read_to_string(path)? })
    }
}

/// Options Kconfig renamed, declared in a fragment as
/// `# hidvm-renamed: CONFIG_OLD CONFIG_NEW`: in a tree that has no OLD but
/// has NEW, the fragment's OLD lines ask for NEW. One set of fragments then
/// serves every kernel (6.12's PROC_SYSCTL is 7.x's SYSCTL), and an unknown
/// symbol without such a line is still reported as a typo.
pub fn renames(fragments: &[Fragment]) -> Vec<(String, String)> {
    fragments
        .iter()
        .flat_map(|f| f.text.lines())
        .filter_map(|l| l.trim().strip_prefix("# hidvm-renamed:"))
        .filter_map(|rest| {
            let mut w = rest.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect()
}

/// The fragments as this tree spells them (see [`renames`]); `known` is
/// [`known_symbols`] of the tree. Fragments that need no change come back
/// as they are.
pub fn adapt(fragments: &[Fragment], known: &std::collections::BTreeSet<String>) -> Vec<Fragment> {
    let renames: Vec<(String, String)> = renames(fragments)
        .into_iter()
        .filter(|(old, new)| {
            let bare = |s: &str| s.trim_start_matches("CONFIG_").to_string();
            !known.contains(&bare(old)) && known.contains(&bare(new))
        })
        .collect();
    fragments
        .iter()
        .map(|f| {
            let text = f
                .text
                .lines()
                .map(|line| {
                    for (old, new) in &renames {
                        let set = line.strip_prefix(old.as_str()).filter(|r| r.starts_with('='));
                        let unset = line.strip_prefix("# ").and_then(|l| l.strip_prefix(old.as_str()));
                        if let Some(rest) = set {
                            return format!("{new}{rest}");
                        }
                        if let Some(rest) = unset.filter(|r| *r == " is not set") {
                            return format!("# {new}{rest}");
                        }
                    }
                    line.to_string()
                })
                .collect::<Vec<_>>()
                .join("\n")
                + "\n";
            Fragment { path: f.path.clone(), text }
        })
        .collect()
}

/// What the fragments ask for, later fragments overriding earlier ones.
pub fn requested(fragments: &[Fragment]) -> ConfigMap {
    let mut all = ConfigMap::new();
    for f in fragments {
        all.extend(parse(&f.text));
    }
    all
}

/// Requested options the resolved config does not honour, rendered as
/// `CONFIG_X (wanted y, resolved: not set)`.
pub fn dropped(requested: &ConfigMap, resolved: &ConfigMap) -> Vec<String> {
    let show = |v: Option<&Option<String>>| match v {
        Some(Some(v)) => v.clone(),
        _ => "not set".to_string(),
    };
    requested
        .iter()
        .filter(|(k, want)| {
            let got = resolved.get(*k).cloned().flatten();
            match want {
                Some(w) => got.as_deref() != Some(w.as_str()),
                None => got.is_some_and(|g| g != "n"),
            }
        })
        .map(|(k, want)| format!("{k} (wanted {}, resolved: {})", show(Some(want)), show(resolved.get(k))))
        .collect()
}

/// Every `config`/`menuconfig` symbol defined in the tree's Kconfig files
/// (empty if the tree cannot be read). A `transitional` symbol (7.x keeps
/// CFI_CLANG so old configs still read, but never writes it) is an old
/// name, not a known one.
pub fn known_symbols(src: &Path) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            if p.is_dir() {
                if !name.starts_with('.') {
                    stack.push(p);
                }
            } else if name.starts_with("Kconfig") {
                let mut current: Option<String> = None;
                for line in std::fs::read_to_string(&p).unwrap_or_default().lines() {
                    let l = line.trim();
                    if l == "transitional" {
                        if let Some(sym) = current.take() {
                            out.remove(&sym);
                        }
                    }
                    for kw in ["config ", "menuconfig "] {
                        if let Some(sym) = l.strip_prefix(kw) {
                            out.insert(sym.trim().to_string());
                            current = Some(sym.trim().to_string());
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_line_forms() {
        let m = parse("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"str\"\nCONFIG_D=12\n# comment\n");
        assert_eq!(m["CONFIG_A"], Some("y".into()));
        assert_eq!(m["CONFIG_B"], None);
        assert_eq!(m["CONFIG_C"], Some("\"str\"".into()));
        assert_eq!(m.len(), 4);
    }

    #[test]
    fn reports_dropped_and_changed_options_only() {
        let req = parse("CONFIG_HID_BPF=y\nCONFIG_UHID=y\n# CONFIG_ACPI is not set\nCONFIG_NR=4\n");
        let res = parse("CONFIG_UHID=y\n# CONFIG_HID_BPF is not set\nCONFIG_NR=8\n");
        assert_eq!(
            dropped(&req, &res),
            vec!["CONFIG_HID_BPF (wanted y, resolved: not set)", "CONFIG_NR (wanted 4, resolved: 8)"]
        );
        let res_ok = parse("CONFIG_UHID=y\nCONFIG_HID_BPF=y\nCONFIG_NR=4\n");
        assert!(dropped(&req, &res_ok).is_empty());
        let req_off = parse("# CONFIG_ACPI is not set\n");
        assert_eq!(dropped(&req_off, &parse("CONFIG_ACPI=y\n")).len(), 1);
    }

    #[test]
    fn a_renamed_option_is_asked_for_by_its_new_name_only_where_the_old_is_gone() {
        let f = Fragment {
            path: "vm.config".into(),
            text: "# hidvm-renamed: CONFIG_PROC_SYSCTL CONFIG_SYSCTL\nCONFIG_PROC_SYSCTL=y\nCONFIG_UHID=y\n".into(),
        };
        let new_tree: std::collections::BTreeSet<String> = ["SYSCTL", "UHID"].map(String::from).into();
        let adapted = adapt(std::slice::from_ref(&f), &new_tree);
        let req = requested(&adapted);
        assert_eq!(req.get("CONFIG_SYSCTL"), Some(&Some("y".into())));
        assert!(!req.contains_key("CONFIG_PROC_SYSCTL"));
        let old_tree: std::collections::BTreeSet<String> = ["PROC_SYSCTL", "SYSCTL", "UHID"].map(String::from).into();
        assert_eq!(
            requested(&adapt(std::slice::from_ref(&f), &old_tree)).get("CONFIG_PROC_SYSCTL"),
            Some(&Some("y".into()))
        );
    }

    #[test]
    fn repository_fragments_ask_for_hid_bpf() {
        let dir = crate::base::layout::Repo::locate().fragments_dir();
        let frags: Vec<Fragment> =
            ["vm.config", "hid-bpf.config"].iter().map(|f| Fragment::read(&dir.join(f)).unwrap()).collect();
        let req = requested(&frags);
        for opt in ["CONFIG_HID_BPF", "CONFIG_UHID", "CONFIG_DEBUG_INFO_BTF", "CONFIG_BPF_JIT", "CONFIG_PVH"] {
            assert_eq!(req.get(opt), Some(&Some("y".to_string())), "{opt}");
        }
    }
}
