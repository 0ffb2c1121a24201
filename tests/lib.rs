//! The VM test suite lives in `vm.rs` (a libtest-mimic harness, one test per
//! scenario x kernel cell); scenarios and self-tests are data in
//! `scenarios/` and `selftests/`.
