//! The bottom layer: what every other layer may use and which knows
//! nothing of kernels, VMs or tests.
//!
//! * [`bundle`]: the data and agent an installed hidvm carries, unpacked;
//! * [`error`]: the error type and its one-line messages, exit statuses;
//! * [`layout`]: where the repository, the cache and run directories live;
//! * [`lock`]: file locks shared by concurrent test processes;
//! * [`output`]: progress and notes on the terminal (the event stream);
//! * [`tools`]: host tools and the apt packages that provide them;
//! * [`host`]: this machine's cores;
//! * [`timeline`]: where the time of one piece of work went.
pub mod bundle;
pub mod error;
pub mod host;
pub mod layout;
pub mod lock;
pub mod output;
pub mod timeline;
pub mod tools;
