//! Judging a run: what the console and the guest said, turned into one
//! verdict, then held against the known kernel bugs.
//!
//! Bottom to top (a module imports only those above it in this list):
//! * [`console`]: splat patterns and step attribution in the kernel log;
//! * [`verdict`]: failure kinds and verdict tokens;
//! * [`guest`]: the guest's result channel, parsed;
//! * [`allowlist`]: known, accepted splats;
//! * [`decide`]: turning a VM's output into pass/fail;
//! * [`title`]: syzbot-style crash titles and stacks (a bug's signature);
//! * [`symbolize`]: a report's frames through the tree's decode_stacktrace.sh;
//! * [`known`]: known kernel bugs a scenario shows on purpose;
//! * [`tap`]: KTAP/TAP output of a test program, parsed and judged;
//! * [`pytest`]: a session of the hid-tools pytest suite (TAP and the
//!   plugin's node ids, teardown failures, environment skips).
pub mod allowlist;
pub mod console;
pub mod decide;
pub mod guest;
pub mod known;
pub mod pytest;
pub mod symbolize;
pub mod tap;
pub mod title;
pub mod verdict;
