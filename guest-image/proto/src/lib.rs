//! The contract between the hidvm host harness and the guest agent.
//!
//! * [`scenario`] and [`steps`]: the declarative scenario language (parsed
//!   and validated on the host, interpreted step by step in the guest);
//! * [`validate`]: the checks each step kind makes before any VM boots;
//! * [`expect`]: how expectations are written and compared;
//! * [`devices`]: uhid device definitions and the built-in models;
//! * [`job`]: what the host hands the guest (one scenario, one kernel cell);
//! * [`msg`]: the JSON lines the guest sends back on its result channel.
/// Serde as a string through `Display` and `parse(&str) -> Result<Self, String>`:
/// scenario files write these values the way humans read them.
macro_rules! string_serde {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <$t>::parse(&<String as serde::Deserialize>::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
    };
}

pub mod delivery;
pub mod devices;
pub mod errno;
pub mod event;
pub mod expect;
pub mod hex;
pub mod job;
pub mod msg;
pub mod scenario;
pub mod steps;
pub mod validate;
pub mod window;

pub use devices::{Bus, DeviceDef, DeviceModel};
pub use errno::Errno;
pub use event::{EvdevEvent, KeyName};
pub use expect::{ExpectedError, Stage};
pub use hex::HexBytes;
pub use job::{DeviceMatch, GuestFixture, Job, JobMode, ReplayData, JOB_PATH};
pub use msg::{
    Check, GuestMsg, Health, Kmemleak, ObjectCounts, Observed, RaceRecord, Reading, Rule, StepReport, WindowHits,
};
pub use scenario::{ExpectedFailure, Scenario};
pub use steps::{Frame, Holder, Hook, LinkAfter, Race, Racer, RacerOp, ReleaseHow, Step};
