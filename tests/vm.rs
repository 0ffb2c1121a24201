//! One nextest test per scenario x kernel cell (`gcc::…`, `llvm::…`,
//! `selftest::gcc::…`), each booting its own VM.
//!
//! Listing is cheap and never boots or builds anything: names come from
//! guest-image/cells.toml and the scenario file names. Each test builds
//! what it needs (kernel cells are cached and locked, so concurrent tests
//! share one build) and fails with the scenario's step log and the kernel
//! console tail. Nothing vanishes from the list: a catalogue that cannot
//! be read becomes one failing test, `catalogue::readable`, and a file
//! naming an unknown cell lists tests that fail with that message.
use hidvm::suite::{Options, Suite};
use libtest_mimic::{Arguments, Failed, Trial};
use std::sync::Arc;

fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    let suite = match Suite::new(Options::default()) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let cells: Vec<String> = suite.cells.iter().map(|c| c.name.clone()).collect();
    let trials = match suite.tests(&cells, None) {
        Ok(work) if !work.is_empty() => work
            .into_iter()
            .map(|(entry, cell)| {
                let suite = suite.clone();
                Trial::test(entry.test_name(&cell), move || {
                    let report = suite.run(&cell, &entry).map_err(|e| Failed::from(format!("error: {e}")))?;
                    if report.verdict.passed() {
                        // nextest shows this with --success-output / --no-capture.
                        print!("{}", report.render());
                        Ok(())
                    } else {
                        Err(report.render().into())
                    }
                })
            })
            .collect(),
        Ok(_) => vec![Trial::test("catalogue::readable", move || {
            Err(format!("no test on cell(s) {}: the catalogue is empty", cells.join(", ")).into())
        })],
        Err(e) => vec![Trial::test("catalogue::readable", move || Err(format!("error: {e}").into()))],
    };
    libtest_mimic::run(&args, trials).exit_code()
}
