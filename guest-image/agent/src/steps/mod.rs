//! Step implementations, grouped by what they touch, and the one place
//! that maps a step to its implementation (a race runs steps too).
pub mod flood;
pub mod io;
pub mod kernel;
pub mod links;
pub mod race;

use crate::state::{Outcome, Runner};
use hidvm_proto::Step;

/// Run one step.
pub fn exec(r: &mut Runner, step: &Step) -> Outcome {
    match step {
        Step::Attach(s) => links::attach(r, s),
        Step::AttachMany(s) => links::attach_many(r, s),
        Step::Pin(s) => links::pin(r, s),
        Step::Release(s) => links::release(r, s),
        Step::Cycle(s) => links::cycle(r, s),
        Step::FloodRelease(s) => flood::flood_release(r, s),
        Step::Inject(s) => io::inject(r, s),
        Step::Destroy(s) => io::destroy(r, s),
        Step::CheckDevice(s) => io::check_device(r, s),
        Step::GetFeature(s) => io::get_feature(r, s),
        Step::WriteOutput(s) => io::write_output(r, s),
        Step::SetLed(s) => io::set_led(r, s),
        Step::Race(s) => race::race(r, s, exec),
        Step::Replay(s) => io::replay(r, s),
        Step::Sysctl(s) => kernel::sysctl(s),
        Step::Sleep(s) => kernel::sleep(s),
        Step::Lkdtm(s) => kernel::lkdtm(s),
        Step::Capability(s) => kernel::capability(s),
        Step::KernelSymbols(s) => kernel::kernel_symbols(s),
        Step::LoadModule(s) => kernel::load_module(s),
    }
}
