//! The contract between the hidvm host harness and the guest agent.
//!
//! * [`scenario`]: the declarative scenario language (parsed and validated on
//!   the host, interpreted step by step in the guest);
//! * [`devices`]: the uhid device models scenarios can instantiate;
//! * [`job`]: what the host hands the guest (one scenario, one kernel cell);
//! * [`msg`]: the JSON lines the guest sends back on its result channel.
pub mod devices;
pub mod errno;
pub mod event;
pub mod hex;
pub mod job;
pub mod msg;
pub mod scenario;

pub use devices::DeviceModel;
pub use errno::Errno;
pub use event::{EvdevEvent, KeyName};
pub use hex::HexBytes;
pub use job::{Job, JobMode, JOB_PATH};
pub use msg::{Check, GuestMsg};
pub use scenario::{ExpectedFailure, Holder, LinkAfter, ReleaseHow, Scenario, Step};
