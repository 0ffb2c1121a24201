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
/// (empty if the tree cannot be read).
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
                for line in std::fs::read_to_string(&p).unwrap_or_default().lines() {
                    let l = line.trim();
                    for kw in ["config ", "menuconfig "] {
                        if let Some(sym) = l.strip_prefix(kw) {
                            out.insert(sym.trim().to_string());
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
    fn repository_fragments_ask_for_hid_bpf() {
        let dir = crate::layout::Repo::locate().fragments_dir();
        let frags: Vec<Fragment> =
            ["vm.config", "hid-bpf.config"].iter().map(|f| Fragment::read(&dir.join(f)).unwrap()).collect();
        let req = requested(&frags);
        for opt in ["CONFIG_HID_BPF", "CONFIG_UHID", "CONFIG_DEBUG_INFO_BTF", "CONFIG_BPF_JIT", "CONFIG_PVH"] {
            assert_eq!(req.get(opt), Some(&Some("y".to_string())), "{opt}");
        }
    }
}
