//! Every Debian package hidvm needs on the host: the tools' packages and
//! the kernels' source packages (`hidvm packages`, `make setup`).
use crate::base::layout::repo_root;
use crate::base::tools::{
    AGENT_BUILD, BPFTOOL, CLANG, GIT, KERNEL_BUILD, LIBBPF_HEADERS, MKFS_EROFS, MMDEBSTRAP, PYTHON, QEMU, RSYNC,
};
use crate::kernel::spec;

/// Every package hidvm needs on a Debian/Ubuntu host (used by `make setup`):
/// the tools, and the source packages of the kernels (guest-image/kernels.toml)
/// installed from the host's suites; those of other suites are fetched
/// (`hidvm fetch`), which needs the archive keyring.
pub fn all_packages() -> Vec<String> {
    let mut p: Vec<String> = KERNEL_BUILD
        .iter()
        .chain(AGENT_BUILD)
        .chain([QEMU, CLANG, BPFTOOL, LIBBPF_HEADERS, RSYNC, GIT, PYTHON, MMDEBSTRAP, MKFS_EROFS].iter())
        .map(|t| t.package.to_string())
        .collect();
    p.extend(["lld-19", "llvm-19", "debian-archive-keyring", "busybox-static"].map(String::from));
    let kernels = spec::load(&repo_root().join("guest-image/kernels.toml")).unwrap_or_default();
    p.extend(kernels.into_iter().filter(|k| k.fetch_from.is_none()).filter_map(|k| k.package));
    p.sort();
    p.dedup();
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_script_installs_exactly_the_packages_hidvm_checks_for() {
        let script = std::fs::read_to_string(repo_root().join(".ci/setup")).unwrap();
        let line = script.lines().find(|l| l.starts_with("PACKAGES=")).expect("PACKAGES= line");
        let mut listed: Vec<&str> = line.trim_start_matches("PACKAGES=").trim_matches('"').split_whitespace().collect();
        listed.sort();
        assert_eq!(listed, all_packages());
    }
}
