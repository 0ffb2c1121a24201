//! Guest -> host messages: one JSON object per line on the result channel
//! (a UART separate from the kernel console, so printk never interleaves).
use serde::{Deserialize, Serialize};

/// The line prefix lets the host ignore anything else that may appear on
/// the channel (nothing should, but a tty is not a datagram socket).
pub const LINE_PREFIX: &str = "@hidvm ";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "msg", rename_all = "snake_case")]
pub enum GuestMsg {
    /// First message: which kernel actually booted.
    Hello {
        agent: String,
        kernel_release: String,
        proc_version: String,
        /// The job's nonce.
        #[serde(default)]
        nonce: String,
    },
    /// One scenario step finished (ok or not).
    Step {
        index: usize,
        what: String,
        ok: bool,
        ms: u64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        checks: Vec<Check>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        notes: Vec<String>,
    },
    /// Kernel health around the scenario: taint flags before and after,
    /// and what kmemleak reported (debug flavours), sent before `Done`.
    Health {
        taint_before: u64,
        taint_after: u64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        kmemleak: Vec<String>,
        /// Kernel BPF programs/maps/links before the scenario and after its
        /// teardown (they must match: nothing may outlive the scenario).
        #[serde(default)]
        bpf_objects_before: String,
        #[serde(default)]
        bpf_objects_after: String,
    },
    /// Last message: the agent's verdict. Only `passed: true` is success.
    Done { passed: bool, summary: String },
}

/// One comparison of what was expected with what was seen.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Check {
    pub what: String,
    pub expected: String,
    pub seen: String,
    pub ok: bool,
}

impl GuestMsg {
    pub fn to_line(&self) -> String {
        format!("{LINE_PREFIX}{}\n", serde_json::to_string(self).expect("GuestMsg serializes"))
    }

    /// Parse one channel line; `None` for lines that are not ours.
    pub fn from_line(line: &str) -> Option<Result<GuestMsg, String>> {
        let line = line.trim_end_matches(['\r', '\n']);
        let json = line.strip_prefix(LINE_PREFIX)?;
        Some(serde_json::from_str(json).map_err(|e| format!("{e}: {json}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_round_trip() {
        let m = GuestMsg::Done { passed: true, summary: "ok".into() };
        let line = m.to_line();
        assert_eq!(GuestMsg::from_line(&line.replace('\n', "\r\n")).unwrap().unwrap(), m);
        assert!(GuestMsg::from_line("random noise").is_none());
        assert!(GuestMsg::from_line("@hidvm {").unwrap().is_err());
    }
}
