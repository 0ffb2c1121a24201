//! `hidvm titles FILE...`: the kernel reports of console logs, titled as
//! known-failures entries name them (title, stack functions, file:line).
use hidvm::judge::title::crash_reports;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Console logs (a run directory's console.log).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

pub fn run(args: Args) -> hidvm::Result<ExitCode> {
    let mut any = false;
    for f in &args.files {
        let text = std::fs::read(f).map_err(hidvm::Error::io(format!("reading {}", f.display())))?;
        let text = String::from_utf8_lossy(&text);
        for r in crash_reports(&text) {
            any = true;
            println!("{}: line {}: {}", f.display(), r.lines.start + 1, r.title);
            let head: Vec<&str> = r.stack.iter().take(10).map(String::as_str).collect();
            println!("  stack: {}", head.join(" <- "));
            if let Some(fl) = &r.file_line {
                println!("  at: {fl}");
            }
        }
    }
    if !any {
        println!(
            "no kernel report in {}",
            args.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
