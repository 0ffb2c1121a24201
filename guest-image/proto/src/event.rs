//! Expected evdev events, written `CODE=value` ("REL_Y=-3", "BTN_LEFT=1").
//!
//! Names resolve through the evdev crate's tables, so a typo fails on the
//! host when the scenario is loaded, not as a confusing mismatch in a VM.
//! Only EV_KEY, EV_REL and EV_ABS events are compared: EV_SYN frames the
//! report and EV_MSC (MSC_SCAN) is bookkeeping hid-input adds to key changes.
//! Key autorepeat events (EV_KEY value 2) are timing-dependent and ignored.
use std::fmt;
use std::str::FromStr;

pub const EV_KEY: u16 = 0x01;
pub const EV_REL: u16 = 0x02;
pub const EV_ABS: u16 = 0x03;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EvdevEvent {
    pub kind: u16,
    pub code: u16,
    pub value: i32,
}

impl EvdevEvent {
    /// Whether events of this type take part in comparisons.
    pub fn is_compared_type(kind: u16) -> bool {
        matches!(kind, EV_KEY | EV_REL | EV_ABS)
    }

    /// Whether this event takes part in comparisons.
    pub fn is_compared(&self) -> bool {
        Self::is_compared_type(self.kind) && !(self.kind == EV_KEY && self.value == 2)
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let (name, value) =
            s.split_once('=').ok_or_else(|| format!("`{s}` is not an event; write CODE=value, e.g. \"REL_Y=-3\""))?;
        let value: i32 = value.trim().parse().map_err(|_| format!("`{s}`: `{value}` is not an integer value"))?;
        let name = name.trim();
        let (kind, code) = code_from_name(name).ok_or_else(|| {
            format!(
                "`{name}` is not a known evdev code (use linux/input-event-codes.h names: KEY_*, BTN_*, REL_*, ABS_*, or numbers: KEY_0x149)"
            )
        })?;
        Ok(EvdevEvent { kind, code, value })
    }

    pub fn name(&self) -> String {
        let (prefix, name) = match self.kind {
            EV_KEY => ("KEY", format!("{:?}", evdev::KeyCode(self.code))),
            EV_REL => ("REL", format!("{:?}", evdev::RelativeAxisCode(self.code))),
            EV_ABS => ("ABS", format!("{:?}", evdev::AbsoluteAxisCode(self.code))),
            k => return format!("type{k}:{}", self.code),
        };
        // The evdev crate has no name for some codes (BTN_STYLUS3, the
        // buttons past BTN_TASK...): write them as the number.
        if name.starts_with("unknown") {
            format!("{prefix}_{:#x}", self.code)
        } else {
            name
        }
    }
}

/// A code written as a number, `KEY_0x149`: any code has a name then.
fn numeric(name: &str, prefixes: &[&str]) -> Option<u16> {
    let hex = prefixes.iter().find_map(|p| name.strip_prefix(p))?.strip_prefix("0x")?;
    u16::from_str_radix(hex, 16).ok()
}

fn code_from_name(name: &str) -> Option<(u16, u16)> {
    if name.starts_with("REL_") {
        let n = numeric(name, &["REL_"]).or_else(|| evdev::RelativeAxisCode::from_str(name).ok().map(|c| c.0));
        return n.map(|c| (EV_REL, c));
    }
    if name.starts_with("ABS_") {
        let n = numeric(name, &["ABS_"]).or_else(|| evdev::AbsoluteAxisCode::from_str(name).ok().map(|c| c.0));
        return n.map(|c| (EV_ABS, c));
    }
    if name.starts_with("KEY_") || name.starts_with("BTN_") {
        let n = numeric(name, &["KEY_", "BTN_"]).or_else(|| evdev::KeyCode::from_str(name).ok().map(|c| c.0));
        return n.map(|c| (EV_KEY, c));
    }
    None
}

impl fmt::Display for EvdevEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name(), self.value)
    }
}

impl fmt::Debug for EvdevEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

string_serde!(EvdevEvent);

/// Render a list of events the way scenarios write them.
pub fn show(events: &[EvdevEvent]) -> String {
    if events.is_empty() {
        return "[] (no events)".into();
    }
    let parts: Vec<String> = events.iter().map(|e| e.to_string()).collect();
    format!("[{}]", parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_through_evdev_tables() {
        let e = EvdevEvent::parse("REL_Y=-3").unwrap();
        assert_eq!((e.kind, e.code, e.value), (EV_REL, 1, -3));
        assert_eq!(e.to_string(), "REL_Y=-3");
        let b = EvdevEvent::parse("BTN_LEFT=1").unwrap();
        assert_eq!((b.kind, b.code), (EV_KEY, 0x110));
        assert_eq!(EvdevEvent::parse("KEY_LEFTCTRL=1").unwrap().code, 29);
        assert!(EvdevEvent::parse("REL_Q=1").unwrap_err().contains("not a known evdev code"));
        assert!(EvdevEvent::parse("REL_Y").unwrap_err().contains("CODE=value"));
        assert!(EvdevEvent::parse("REL_Y=x").unwrap_err().contains("not an integer"));
        // Codes the evdev crate cannot name are written as numbers.
        let stylus3 = EvdevEvent::parse("KEY_0x149=1").unwrap();
        assert_eq!((stylus3.kind, stylus3.code), (EV_KEY, 0x149));
        assert_eq!(stylus3.to_string(), "KEY_0x149=1");
        assert_eq!(EvdevEvent::parse("BTN_LEFT=1").unwrap().to_string(), "BTN_LEFT=1");
        assert_eq!(KeyName::parse("BTN_0x11a").unwrap().to_string(), "KEY_0x11a");
    }
}

/// A key or button name ("BTN_SIDE", "KEY_CAPSLOCK") for capability checks.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyName(pub u16);

impl KeyName {
    pub fn parse(s: &str) -> Result<Self, String> {
        if !(s.starts_with("KEY_") || s.starts_with("BTN_")) {
            return Err(format!("`{s}` is not a key or button name (KEY_*/BTN_*)"));
        }
        numeric(s, &["KEY_", "BTN_"])
            .or_else(|| evdev::KeyCode::from_str(s).ok().map(|k| k.0))
            .map(KeyName)
            .ok_or_else(|| format!("`{s}` is not a known key code (or write it as a number: KEY_0x149)"))
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&EvdevEvent { kind: EV_KEY, code: self.0, value: 0 }.name())
    }
}

impl fmt::Debug for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

string_serde!(KeyName);

/// An LED name ("LED_CAPSL").
pub fn led_code(name: &str) -> Result<u16, String> {
    evdev::LedCode::from_str(name)
        .map(|l| l.0)
        .map_err(|_| format!("`{name}` is not a known LED code (LED_NUML, LED_CAPSL, ...)"))
}
