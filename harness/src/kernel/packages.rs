//! Every Debian package hidvm needs on the host: the tools' packages and
//! the kernels' source packages (`hidvm packages`, `make setup`).
use crate::base::layout::Repo;
use crate::base::tools::{
    AGENT_BUILD, BPFTOOL, CCACHE, CLANG, GIT, KERNEL_BUILD, LIBBPF_HEADERS, LLVM_STRIP, MKFS_EROFS, MMDEBSTRAP, PYTHON,
    QEMU, RSYNC,
};
use crate::kernel::spec;

/// Every package hidvm needs on a Debian/Ubuntu host (used by `make setup`):
/// the tools, and the source packages of the kernels (guest-image/kernels.toml)
/// marked `installed`; the others are fetched (`hidvm fetch`), which needs
/// the archive keyring.
pub fn all_packages() -> Vec<String> {
    let mut p: Vec<String> = KERNEL_BUILD
        .iter()
        .chain(AGENT_BUILD)
        .chain(
            [QEMU, CLANG, LLVM_STRIP, BPFTOOL, LIBBPF_HEADERS, RSYNC, GIT, PYTHON, CCACHE, MMDEBSTRAP, MKFS_EROFS]
                .iter(),
        )
        .map(|t| t.package.to_string())
        .collect();
    p.extend(["lld-19", "llvm-19", "debian-archive-keyring", "busybox-static"].map(String::from));
    let kernels = spec::load(&Repo::locate().kernels_file()).unwrap_or_default();
    p.extend(kernels.into_iter().filter(|k| k.installed).filter_map(|k| k.package));
    p.sort();
    p.dedup();
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_script_installs_exactly_the_packages_hidvm_checks_for() {
        let script = std::fs::read_to_string(Repo::locate().root.join(".ci/setup")).unwrap();
        let line = script.lines().find(|l| l.starts_with("PACKAGES=")).expect("PACKAGES= line");
        let mut listed: Vec<&str> = line.trim_start_matches("PACKAGES=").trim_matches('"').split_whitespace().collect();
        listed.sort();
        assert_eq!(listed, all_packages());
    }
}
