//! Report bytes written as space-separated hex ("00 05 fd 00"), the way
//! hid-recorder and the kernel's descriptor dumps show them.
use std::fmt;

#[derive(Clone, PartialEq, Eq, Default)]
pub struct HexBytes(pub Vec<u8>);

impl HexBytes {
    pub fn parse(s: &str) -> Result<Self, String> {
        s.split_whitespace()
            .map(|b| {
                let b = b.trim_start_matches("0x");
                if b.len() > 2 || b.is_empty() {
                    return Err(format!(
                        "`{b}` is not a byte; write bytes as two hex digits separated by spaces, e.g. \"00 05 fd 00\""
                    ));
                }
                u8::from_str_radix(b, 16).map_err(|_| {
                    format!("`{b}` is not hex; write bytes as two hex digits separated by spaces, e.g. \"00 05 fd 00\"")
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(HexBytes)
    }
}

impl fmt::Display for HexBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for HexBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

string_serde!(HexBytes);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let h = HexBytes::parse("00 05 fd 0x7f").unwrap();
        assert_eq!(h.0, vec![0, 5, 0xfd, 0x7f]);
        assert_eq!(h.to_string(), "00 05 fd 7f");
        assert!(HexBytes::parse("00 5g").unwrap_err().contains("`5g` is not hex"));
        assert!(HexBytes::parse("0005").unwrap_err().contains("not a byte"));
    }
}
