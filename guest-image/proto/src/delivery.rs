//! A job for a guest restored from a snapshot. A cold-booted guest finds
//! its job and fixtures in its initramfs; a restored one was frozen before
//! it had a job, so the host delivers the same files over a virtio port
//! (`hidvm.delivery`), with the host's clock and fresh randomness: every
//! restore starts from the same memory image, and the agent must not
//! reuse the template's clock or random state.
//!
//! Wire format: one JSON line ([`DeliveryHeader`]), then each file's bytes
//! back to back, in header order.
use serde::{Deserialize, Serialize};
use std::io::Read;

/// Kernel argument that makes the agent a snapshot template: it boots,
/// sends [`crate::GuestMsg::AwaitingDelivery`] and waits for a delivery.
pub const SNAPSHOT_ARG: &str = "hidvm.snapshot=1";
/// The virtio-serial port's name (`/sys/class/virtio-ports/*/name`).
pub const DELIVERY_PORT: &str = "hidvm.delivery";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeliveryHeader {
    /// The host's CLOCK_REALTIME, in ns since the epoch.
    pub unix_time_ns: u64,
    /// Mixed into the guest's /dev/urandom.
    pub entropy: Vec<u8>,
    pub files: Vec<DeliveredFile>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeliveredFile {
    /// Absolute path in the guest.
    pub path: String,
    pub mode: u32,
    pub len: u64,
}

/// Header line and contents, as sent.
pub fn encode(unix_time_ns: u64, entropy: Vec<u8>, files: &[(String, u32, Vec<u8>)]) -> Vec<u8> {
    let header = DeliveryHeader {
        unix_time_ns,
        entropy,
        files: files
            .iter()
            .map(|(path, mode, data)| DeliveredFile { path: path.clone(), mode: *mode, len: data.len() as u64 })
            .collect(),
    };
    let mut out = serde_json::to_vec(&header).expect("header serializes");
    out.push(b'\n');
    for (_, _, data) in files {
        out.extend_from_slice(data);
    }
    out
}

/// Read one delivery. `read` may return 0 bytes while the host is not yet
/// connected (a virtio port reads as end-of-file then): `wait` is called
/// and the read retried, until it returns an error.
pub fn decode(
    mut read: impl Read,
    mut wait: impl FnMut() -> Result<(), String>,
) -> Result<(DeliveryHeader, Vec<Vec<u8>>), String> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut fill = |buf: &mut Vec<u8>| -> Result<(), String> {
        match read.read(&mut chunk) {
            Ok(0) => wait(),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(format!("reading the delivery: {e}")),
        }
    };
    let newline = loop {
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            break i;
        }
        fill(&mut buf)?;
    };
    let header: DeliveryHeader =
        serde_json::from_slice(&buf[..newline]).map_err(|e| format!("the delivery header is not valid: {e}"))?;
    let total: u64 = header.files.iter().map(|f| f.len).sum();
    let mut body = buf.split_off(newline + 1);
    while (body.len() as u64) < total {
        fill(&mut body)?;
    }
    if body.len() as u64 != total {
        return Err(format!("the delivery has {} bytes after its header, the header announces {total}", body.len()));
    }
    let mut files = Vec::new();
    let mut at = 0usize;
    for f in &header.files {
        files.push(body[at..at + f.len as usize].to_vec());
        at += f.len as usize;
    }
    Ok((header, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_round_trips_through_short_reads_and_waits() {
        let files =
            vec![("/hidvm/job.json".to_string(), 0o644, b"{}".to_vec()), ("/a/b".into(), 0o755, vec![7; 70000])];
        let bytes = encode(42, vec![1, 2, 3], &files);
        // A reader that hands out 1000 bytes at a time, with an
        // end-of-file (host not connected yet) before every chunk.
        struct Stutter(Vec<u8>, usize, bool);
        impl Read for Stutter {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                self.2 = !self.2;
                if self.2 {
                    return Ok(0);
                }
                let n = out.len().min(1000).min(self.0.len() - self.1);
                out[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
                self.1 += n;
                Ok(n)
            }
        }
        let mut waits = 0;
        let (header, got) = decode(Stutter(bytes, 0, false), || {
            waits += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(header.unix_time_ns, 42);
        assert_eq!(header.files[1].len, 70000);
        assert_eq!(got, files.iter().map(|f| f.2.clone()).collect::<Vec<_>>());
        assert!(waits > 0);
    }

    #[test]
    fn a_short_delivery_is_an_error_not_a_truncated_file() {
        let mut bytes = encode(1, vec![], &[("/f".into(), 0o644, vec![1; 100])]);
        bytes.truncate(bytes.len() - 1);
        let mut ends = 0;
        let err = decode(&bytes[..], || {
            ends += 1;
            if ends > 3 {
                Err("the host went away".into())
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!(err, "the host went away");
    }
}
