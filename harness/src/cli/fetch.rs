//! `hidvm fetch`: the kernel sources of other Debian suites fetched into
//! the cache, the installed ones checked.
use hidvm::kernel::debian::fetch_source;
use hidvm::run::suite::Suite;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(suite: &Suite) -> hidvm::Result<ExitCode> {
    for k in &suite.kernels {
        let Some(package) = k.package.as_deref() else {
            println!("kernel {}: {} (nothing to fetch)", k.name, k.summary);
            continue;
        };
        match &k.fetch_from {
            Some(from) => {
                let (tarball, version) = fetch_source(&suite.cache, package, from)?;
                println!("kernel {}: {package} {version} from Debian {from}: {}", k.name, tarball.display());
            }
            None => {
                let tarball = PathBuf::from(format!("/usr/src/{package}.tar.xz"));
                if !tarball.exists() {
                    return Err(hidvm::Error::Other(format!(
                        "kernel {}: {} is missing: install it with `sudo apt-get install {package}` (or `make setup`)",
                        k.name,
                        tarball.display()
                    )));
                }
                println!("kernel {}: {package} (installed): {}", k.name, tarball.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
