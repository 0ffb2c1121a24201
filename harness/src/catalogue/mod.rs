//! The catalogue: what to test. Scenario files (the repository's and the
//! user's), the programs they attach, the hid-recorder files they replay.
//!
//! Bottom to top (a module imports only those above it in this list):
//! * [`recording`]: hid-recorder files (devices and their reports);
//! * [`fixtures`]: HID-BPF programs, compiled against a kernel's BTF;
//! * [`scenarios`]: listing and loading scenarios, everything they name resolved.
pub mod fixtures;
pub mod recording;
pub mod scenarios;
