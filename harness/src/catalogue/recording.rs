//! hid-recorder files (hid-tools): the devices they describe and the
//! reports they recorded.
//!
//! ```text
//! # comment
//! D: 0                                    device index (multi-device files)
//! R: 52 05 01 09 02 a1 01 ...             descriptor: decimal length, hex bytes
//! N: Logitech USB Receiver                name
//! P: usb-0000:00:14.0-1/input0            phys (optional)
//! I: 3 046d c52b                          bus vendor product, all hex
//! E: 000000.183949 4 00 05 fd 00          sec.usec (decimal), length, hex bytes
//! ```
//! Lines before any `D:` belong to device 0; a `D:` line in the event
//! stream switches the device later `E:` lines belong to.
use hidvm_proto::devices::check_descriptor;
use hidvm_proto::{DeviceDef, HexBytes};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordedDevice {
    pub index: usize,
    pub name: Option<String>,
    pub phys: Option<String>,
    /// (bus, vendor, product).
    pub ids: Option<(u16, u32, u32)>,
    pub descriptor: Option<Vec<u8>>,
    /// The reports, in order, with their time in microseconds.
    pub events: Vec<(u64, Vec<u8>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recording {
    pub devices: Vec<RecordedDevice>,
}

impl Recording {
    /// Parse a recording; errors name the line.
    pub fn parse(text: &str) -> Result<Recording, String> {
        let mut r = Recording::default();
        let mut current = 0usize;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |msg: String| format!("line {}: {msg}", n + 1);
            let (tag, rest) = line.split_once(':').ok_or_else(|| at(format!("`{line}` is not a `X: ...` line")))?;
            let rest = rest.trim();
            if tag == "D" {
                current = rest.parse().map_err(|_| at(format!("`D: {rest}`: a device index is a decimal number")))?;
            }
            let dev = r.device_mut(current);
            match tag {
                "D" => {}
                "N" => dev.name = Some(rest.to_string()),
                "P" => dev.phys = Some(rest.to_string()),
                "I" => {
                    let f: Vec<&str> = rest.split_whitespace().collect();
                    let hex32 =
                        |s: &str| u32::from_str_radix(s, 16).map_err(|_| at(format!("`{s}` in `I:` is not hex")));
                    let [bus, vendor, product] = f.as_slice() else {
                        return Err(at(format!("`I: {rest}`: write three hex fields, bus vendor product")));
                    };
                    let bus = u16::try_from(hex32(bus)?).map_err(|_| at(format!("bus `{bus}` is too large")))?;
                    dev.ids = Some((bus, hex32(vendor)?, hex32(product)?));
                }
                "R" => {
                    let (len, bytes) = counted_bytes(rest).map_err(|e| at(format!("`R:`: {e}")))?;
                    if bytes.len() != len {
                        return Err(at(format!("`R:` says {len} bytes but has {}", bytes.len())));
                    }
                    dev.descriptor = Some(bytes);
                }
                "E" => {
                    let (time, rest) = rest
                        .split_once(char::is_whitespace)
                        .ok_or_else(|| at("`E:` needs a time, a length and bytes".into()))?;
                    let (sec, usec) = time.split_once('.').ok_or_else(|| at(format!("`{time}` is not sec.usec")))?;
                    let usecs = sec
                        .parse::<u64>()
                        .ok()
                        .zip(usec.parse::<u64>().ok())
                        .map(|(s, u)| s * 1_000_000 + u)
                        .ok_or_else(|| at(format!("`{time}` is not sec.usec")))?;
                    let (len, bytes) = counted_bytes(rest.trim()).map_err(|e| at(format!("`E:`: {e}")))?;
                    if bytes.len() != len || len == 0 {
                        return Err(at(format!("`E:` says {len} bytes but has {}", bytes.len())));
                    }
                    dev.events.push((usecs, bytes));
                }
                other => {
                    return Err(at(format!("unknown line type `{other}:` (hid-recorder writes D, R, N, P, I, E)")))
                }
            }
        }
        if r.devices.is_empty() {
            return Err("no device in the recording (no N:, I:, R: lines)".into());
        }
        Ok(r)
    }

    fn device_mut(&mut self, index: usize) -> &mut RecordedDevice {
        if let Some(i) = self.devices.iter().position(|d| d.index == index) {
            return &mut self.devices[i];
        }
        self.devices.push(RecordedDevice { index, ..Default::default() });
        self.devices.last_mut().expect("just pushed")
    }

    /// The device with `D:` index `index`, or the only one when `None`.
    pub fn device(&self, index: Option<usize>) -> Result<&RecordedDevice, String> {
        match index {
            Some(i) => self.devices.iter().find(|d| d.index == i).ok_or_else(|| {
                format!(
                    "the recording has no device {i} (it has {})",
                    self.devices.iter().map(|d| d.index.to_string()).collect::<Vec<_>>().join(", ")
                )
            }),
            None if self.devices.len() == 1 => Ok(&self.devices[0]),
            None => Err(format!(
                "the recording holds {} devices; choose one with `recording_device = <D: index>`",
                self.devices.len()
            )),
        }
    }
}

impl RecordedDevice {
    /// The device definition its N:, I: and R: lines give.
    pub fn def(&self) -> Result<DeviceDef, String> {
        let (bus, vendor, product) = self.ids.ok_or("the recording has no `I:` line (bus vendor product)")?;
        let descriptor = self.descriptor.clone().ok_or("the recording has no `R:` line (report descriptor)")?;
        check_descriptor(&descriptor)?;
        Ok(DeviceDef {
            name: self.name.clone().unwrap_or_else(|| "recorded device".into()),
            bus,
            vendor,
            product,
            descriptor: HexBytes(descriptor),
            feature_reports: vec![],
        })
    }
}

/// "<decimal length> <hex bytes...>".
fn counted_bytes(s: &str) -> Result<(usize, Vec<u8>), String> {
    let mut parts = s.split_whitespace();
    let len = parts.next().ok_or("no length")?;
    let len: usize = len.parse().map_err(|_| format!("`{len}` is not a decimal length"))?;
    let bytes = parts
        .map(|b| u8::from_str_radix(b, 16).map_err(|_| format!("`{b}` is not a hex byte")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((len, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mouse in Documentation/hid/hidintro.rst (Linux 6.12).
    const MOUSE: &str = "# a mouse\n\
        R: 52 05 01 09 02 a1 01 09 01 a1 00 05 09 19 01 29 03 15 00 25 01 75 01 95 03 81 02 75 05 95 01 81 01 05 01 09 30 09 31 09 38 15 81 25 7f 75 08 95 03 81 06 c0 c0\n\
        N: device 0:0\n\
        I: 3 0001 0001\n\
        E: 000000.000000 4 01 00 00 00\n\
        E: 000000.183949 4 00 00 00 00\n";

    #[test]
    fn parses_a_real_recording() {
        let r = Recording::parse(MOUSE).unwrap();
        let d = r.device(None).unwrap();
        assert_eq!(d.ids, Some((3, 1, 1)));
        assert_eq!(d.events, vec![(0, vec![1, 0, 0, 0]), (183_949, vec![0, 0, 0, 0])]);
        let def = d.def().unwrap();
        assert_eq!((def.name.as_str(), def.descriptor.0.len()), ("device 0:0", 52));
    }

    #[test]
    fn malformed_recordings_name_the_line() {
        let e = Recording::parse(&MOUSE.replace("R: 52", "R: 53")).unwrap_err();
        assert_eq!(e, "line 2: `R:` says 53 bytes but has 52");
        let e = Recording::parse(&MOUSE.replace("I: 3 0001 0001", "I: 3 0001")).unwrap_err();
        assert!(e.starts_with("line 4: `I: 3 0001`: write three hex fields"), "{e}");
        let e = Recording::parse(&MOUSE.replace("E: 000000.183949 4", "E: 000000.183949 5")).unwrap_err();
        assert!(e.starts_with("line 6: `E:` says 5 bytes"), "{e}");
        assert!(Recording::parse("X: 1\n").unwrap_err().contains("unknown line type `X:`"));
        let no_rdesc = Recording::parse("N: x\nI: 3 1 1\n").unwrap();
        assert!(no_rdesc.device(None).unwrap().def().unwrap_err().contains("no `R:` line"));
    }

    #[test]
    fn multi_device_recordings_need_a_choice() {
        let two = format!(
            "D: 0\n{MOUSE}D: 1\nN: other\nI: 5 2 3\nR: 52 {}\nD: 0\nE: 000001.000000 4 02 00 00 00\n",
            &MOUSE.lines().nth(1).unwrap()[6..]
        );
        let r = Recording::parse(&two).unwrap();
        assert!(r.device(None).unwrap_err().contains("recording_device"));
        assert_eq!(r.device(Some(0)).unwrap().events.len(), 3);
        assert_eq!(r.device(Some(1)).unwrap().ids, Some((5, 2, 3)));
        assert!(r.device(Some(7)).unwrap_err().contains("no device 7"));
    }
}
