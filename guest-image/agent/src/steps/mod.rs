//! Step implementations, grouped by what they touch.
pub mod flood;
pub mod io;
pub mod kernel;
pub mod links;
