//! What a step expects to see, written the way humans read it in scenario
//! files ("00 05 fd 00", "none", "error EACCES", "attach: EINVAL",
//! "original with 17=05", "00 .. fd ..").
use crate::{Errno, HexBytes};
use std::fmt;

/// Where in loading a program an expected error must come from. An EINVAL
/// from `load` (an LLVM-only verifier rejection, say) must never satisfy a
/// scenario that expects the kernel to refuse the *attach* with EINVAL.
/// The stages run in this order, as udev-hid-bpf runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// The program's HID_BPF_CONFIG table against the device's bus, group,
    /// vendor and product (the kernel's modalias).
    Match,
    /// Opening the object file (libbpf parses ELF and BTF).
    Open,
    /// BPF_PROG_LOAD / BPF_MAP_CREATE: the verifier and map creation.
    Load,
    /// The program's `SEC("syscall") probe`, run with the device's hid id
    /// and report descriptor; a non-zero `ctx->retval` rejects the device.
    Probe,
    /// BPF_LINK_CREATE of the struct_ops map: hid_bpf_reg().
    Attach,
}

impl Stage {
    pub const ALL: [Stage; 5] = [Stage::Match, Stage::Open, Stage::Load, Stage::Probe, Stage::Attach];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Match => "match",
            Stage::Open => "open",
            Stage::Load => "load",
            Stage::Probe => "probe",
            Stage::Attach => "attach",
        }
    }

    pub fn parse(s: &str) -> Result<Stage, String> {
        Stage::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| format!("`{s}` is not a stage (known: {})", Stage::ALL.map(|s| s.name()).join(", ")))
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `expect_error = "attach: EINVAL"`: the stage that must fail and its
/// errno; `"match: none"` when no HID_BPF_CONFIG entry may match the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpectedError {
    pub stage: Stage,
    /// None only for `match: none`.
    pub errno: Option<Errno>,
}

impl ExpectedError {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (stage, what) = s.split_once(':').ok_or_else(|| {
            format!("`{s}`: name the stage that must fail and its errno, e.g. \"attach: EINVAL\", \"load: EACCES\", \"probe: EINVAL\" or \"match: none\"")
        })?;
        let stage = Stage::parse(stage.trim())?;
        match (stage, what.trim()) {
            (Stage::Match, "none") => Ok(ExpectedError { stage, errno: None }),
            (Stage::Match, other) => Err(format!("`{other}`: a match failure is written \"match: none\"")),
            (_, errno) => Ok(ExpectedError { stage, errno: Some(Errno::parse(errno)?) }),
        }
    }
}

impl fmt::Display for ExpectedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errno {
            Some(e) => write!(f, "{}: {e}", self.stage),
            None => write!(f, "{}: none", self.stage),
        }
    }
}

/// Expected report descriptor: the device's own, optionally with bytes
/// changed ("original with 17=05"), or exactly these bytes (a fixup that
/// replaces the descriptor, possibly with another size).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescriptorExpect {
    pub patches: Vec<(usize, u8)>,
    /// Some: the whole descriptor, instead of the original with patches.
    pub exact: Option<HexBytes>,
}

impl DescriptorExpect {
    pub fn parse(s: &str) -> Result<Self, String> {
        let Some(rest) = s.trim().strip_prefix("original") else {
            let bytes = HexBytes::parse(s).map_err(|e| {
                format!("write \"original\", \"original with <offset>=<hex byte> ...\" or the whole descriptor as hex bytes: {e}")
            })?;
            if bytes.0.is_empty() {
                return Err("an empty descriptor".into());
            }
            return Ok(DescriptorExpect { patches: vec![], exact: Some(bytes) });
        };
        let rest = rest.trim();
        if rest.is_empty() {
            return Ok(DescriptorExpect { patches: vec![], exact: None });
        }
        let list = rest.strip_prefix("with").ok_or_else(|| format!("`{s}`: expected `with` after `original`"))?;
        let patches = list
            .split_whitespace()
            .map(|p| {
                let (off, val) = p.split_once('=').ok_or_else(|| format!("`{p}`: write <offset>=<hex byte>"))?;
                let off: usize = off.parse().map_err(|_| format!("`{p}`: offset must be decimal"))?;
                let val = u8::from_str_radix(val, 16).map_err(|_| format!("`{p}`: value must be a hex byte"))?;
                Ok((off, val))
            })
            .collect::<Result<Vec<_>, String>>()?;
        if patches.is_empty() {
            return Err(format!("`{s}`: `with` needs at least one <offset>=<hex byte>"));
        }
        Ok(DescriptorExpect { patches, exact: None })
    }

    /// The descriptor this expects, given the device's own. A patch past the
    /// end is an error (validation rejects it before any VM boots).
    pub fn apply(&self, original: &[u8]) -> Result<Vec<u8>, String> {
        if let Some(exact) = &self.exact {
            return Ok(exact.0.clone());
        }
        let mut d = original.to_vec();
        for (off, val) in &self.patches {
            let slot = d
                .get_mut(*off)
                .ok_or_else(|| format!("offset {off} is past the end of the {}-byte descriptor", original.len()))?;
            *slot = *val;
        }
        Ok(d)
    }

    /// What `seen` is, in the notation of this expectation: exact bytes
    /// for an exact expectation, else relative to `original`.
    pub fn render_seen(&self, original: &[u8], seen: &[u8]) -> String {
        match &self.exact {
            Some(_) => HexBytes(seen.to_vec()).to_string(),
            None => Self::describe(original, seen),
        }
    }

    /// How `seen` differs from `original`, in this type's own notation.
    pub fn describe(original: &[u8], seen: &[u8]) -> String {
        let diff: Vec<String> = seen
            .iter()
            .enumerate()
            .filter(|(i, b)| original.get(*i) != Some(*b))
            .map(|(i, b)| format!("{i}={b:02x}"))
            .collect();
        match (diff.is_empty(), seen.len() == original.len()) {
            (true, true) => "original".into(),
            (true, false) => format!("original truncated to {} of {} bytes", seen.len(), original.len()),
            (false, true) => format!("original with {}", diff.join(" ")),
            (false, false) => {
                format!("original with {} ({} bytes instead of {})", diff.join(" "), seen.len(), original.len())
            }
        }
    }
}

impl fmt::Display for DescriptorExpect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(exact) = &self.exact {
            return write!(f, "{exact}");
        }
        f.write_str("original")?;
        if !self.patches.is_empty() {
            f.write_str(" with")?;
            for (o, v) in &self.patches {
                write!(f, " {o}={v:02x}")?;
            }
        }
        Ok(())
    }
}

/// What HIDIOCGFEATURE must return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeatureExpect {
    Bytes(HexBytes),
    Error(Errno),
}

impl fmt::Display for FeatureExpect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeatureExpect::Bytes(b) => write!(f, "{b}"),
            FeatureExpect::Error(e) => write!(f, "error {e}"),
        }
    }
}

impl FeatureExpect {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().strip_prefix("error ") {
            Some(name) => Errno::parse(name.trim()).map(FeatureExpect::Error),
            None => HexBytes::parse(s).map(FeatureExpect::Bytes),
        }
    }
}

/// Hex bytes where ".." matches any byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HexPattern(pub Vec<Option<u8>>);

impl HexPattern {
    pub fn parse(s: &str) -> Result<Self, String> {
        s.split_whitespace()
            .map(|b| if b == ".." { Ok(None) } else { HexBytes::parse(b).map(|h| Some(h.0[0])) })
            .collect::<Result<Vec<_>, _>>()
            .map(HexPattern)
    }

    pub fn matches(&self, bytes: &[u8]) -> bool {
        bytes.len() == self.0.len() && self.0.iter().zip(bytes).all(|(p, b)| p.is_none_or(|p| p == *b))
    }

    /// Whether some byte string matches both patterns: then a check with
    /// one of them cannot tell the two states apart.
    pub fn overlaps(&self, other: &HexPattern) -> bool {
        self.0.len() == other.0.len()
            && self.0.iter().zip(&other.0).all(|(a, b)| matches!((a, b), (None, _) | (_, None)) || a == b)
    }
}

impl fmt::Display for HexPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> =
            self.0.iter().map(|b| b.map(|b| format!("{b:02x}")).unwrap_or_else(|| "..".into())).collect();
        f.write_str(&parts.join(" "))
    }
}

/// What hidraw (or the device, for output reports) must see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReportExpect {
    Bytes(HexBytes),
    /// Nothing must arrive (a program dropped or filtered it).
    Nothing,
}

impl ReportExpect {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.trim() == "none" {
            return Ok(ReportExpect::Nothing);
        }
        let b = HexBytes::parse(s)?;
        if b.0.is_empty() {
            return Err("an empty report; write the bytes, or \"none\" when nothing must arrive".into());
        }
        Ok(ReportExpect::Bytes(b))
    }

    /// The reports seen, rendered in the same notation ("none" or
    /// "00 01 | 00 02" for several), so expected and seen compare as text.
    pub fn show(seen: &[Vec<u8>]) -> String {
        if seen.is_empty() {
            return "none".into();
        }
        seen.iter().map(|r| HexBytes(r.clone()).to_string()).collect::<Vec<_>>().join(" | ")
    }
}

impl fmt::Display for ReportExpect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportExpect::Bytes(b) => write!(f, "{b}"),
            ReportExpect::Nothing => f.write_str("none"),
        }
    }
}

string_serde!(Stage);
string_serde!(ExpectedError);
string_serde!(DescriptorExpect);
string_serde!(FeatureExpect);
string_serde!(HexPattern);
string_serde!(ReportExpect);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_errors_name_their_stage() {
        let e = ExpectedError::parse("attach: EINVAL").unwrap();
        assert_eq!((e.stage, e.errno), (Stage::Attach, Some(Errno(22))));
        assert_eq!(ExpectedError::parse("match: none").unwrap().to_string(), "match: none");
        assert!(ExpectedError::parse("match: EINVAL").unwrap_err().contains("\"match: none\""));
        assert_eq!(ExpectedError::parse("probe: EINVAL").unwrap().stage, Stage::Probe);
        assert_eq!(e.to_string(), "attach: EINVAL");
        // A bare errno no longer says enough: which call must fail?
        assert!(ExpectedError::parse("EINVAL").unwrap_err().contains("name the stage"));
        assert!(ExpectedError::parse("link: EINVAL").unwrap_err().contains("not a stage"));
        assert!(ExpectedError::parse("load: EWHAT").unwrap_err().contains("not a known errno"));
    }

    #[test]
    fn descriptor_patches_past_the_end_are_errors_not_ignored() {
        let d = DescriptorExpect::parse("original with 1=05").unwrap();
        assert_eq!(d.apply(&[0, 0]).unwrap(), vec![0, 5]);
        let past = DescriptorExpect::parse("original with 9=05").unwrap();
        assert!(past.apply(&[0, 0]).unwrap_err().contains("past the end"));
        assert!(DescriptorExpect::parse("original with").unwrap_err().contains("at least one"));
        assert_eq!(DescriptorExpect::describe(&[1, 2, 3], &[1, 5, 3]), "original with 1=05");
        assert_eq!(DescriptorExpect::describe(&[1, 2, 3], &[1, 2, 3]), "original");
        let exact = DescriptorExpect::parse("05 01 c0").unwrap();
        assert_eq!(exact.apply(&[9, 9, 9, 9]).unwrap(), vec![5, 1, 0xc0]);
        assert_eq!(exact.render_seen(&[9], &[5, 1, 0xc0]), exact.to_string());
    }

    #[test]
    fn patterns_that_cannot_be_told_apart_overlap() {
        let p = |s: &str| HexPattern::parse(s).unwrap();
        assert!(!p("00 .. fd ..").overlaps(&p("00 .. 03 ..")));
        assert!(p("00 .. .. ..").overlaps(&p("00 .. 03 ..")));
        assert!(p("00 .. 03 ..").overlaps(&p("00 .. 03 ..")));
        assert!(!p("00 ..").overlaps(&p("00 .. 03")));
        assert!(p("00 .. fd ..").matches(&[0, 7, 0xfd, 9]));
    }
}
