//! Compiles the race window tracer (bpf/race_window.bpf.c) into an object
//! the agent embeds: clang (`HIDVM_BPF_CLANG`, default clang-19, as the
//! harness compiles fixtures) for the BPF target, against the system's
//! <linux/bpf.h> and libbpf's <bpf/bpf_helpers.h> (libbpf-dev). The
//! program needs no kernel types, so one object serves every kernel.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "bpf/race_window.bpf.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=HIDVM_BPF_CLANG");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("race_window.bpf.o");
    let clang = std::env::var("HIDVM_BPF_CLANG").unwrap_or_else(|_| "clang-19".into());
    let status = Command::new(&clang)
        .args(["-g", "-O2", "-target", "bpf", "-mcpu=v3", "-Wall", "-Werror"])
        // <linux/types.h> -> <asm/types.h>: the multiarch directory, which a
        // -target bpf compile does not search.
        .args(["-I/usr/include/x86_64-linux-gnu", "-c", src, "-o"])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {clang} (install clang-19, or set HIDVM_BPF_CLANG): {e}"));
    assert!(status.success(), "{clang} failed to compile {src}");
}
