//! `hidvm accel`: the accelerator this host uses, and why.
use hidvm::base::tools;
use hidvm::run::suite::Suite;
use hidvm::vm::accel::ProbeStore;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Forget the remembered probe result; the next run probes KVM again.
    #[arg(long)]
    reprobe: bool,
}

pub fn run(suite: &Suite, args: Args) -> hidvm::Result<ExitCode> {
    let store = ProbeStore::new(&suite.cache);
    if args.reprobe {
        let n = store.forget().map_err(hidvm::Error::io(format!("clearing {}", store.dir.display())))?;
        println!("forgot {n} remembered KVM probe result(s); the next test run probes again");
        return Ok(ExitCode::SUCCESS);
    }
    let qemu = tools::require(&tools::QEMU)?;
    let version = tools::version_line(&qemu.display().to_string(), &["--version"])?;
    match (std::env::var("HIDVM_ACCEL").ok().filter(|v| !v.is_empty()), store.remembered(&version)) {
        (Some(forced), _) => println!("{forced} (forced by HIDVM_ACCEL)"),
        (None, Some(r)) => println!("{}: {}", r.accel.name(), r.reason),
        (None, None) => println!("not probed yet in this host boot: the next test run probes KVM"),
    }
    Ok(ExitCode::SUCCESS)
}
