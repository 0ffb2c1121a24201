//! uhid device definitions: what a scenario's `[[device]]` creates.
//!
//! A device is data ([`DeviceDef`]): name, bus, ids, report descriptor and
//! the feature reports it answers. Scenarios name a built-in model
//! (below; descriptors written item by item so a reader can check a
//! fixture's byte offsets against them) or describe a device themselves
//! (inline, or from a hid-recorder file; resolved on the host). Adding a
//! model is adding one entry to [`MODELS`].
use crate::HexBytes;
use serde::{Deserialize, Serialize};

/// BUS_USB from linux/input.h: hid-generic binds to it like a real mouse.
pub const BUS_USB: u16 = 0x03;

/// Bus names scenario files may use, with their linux/input.h values.
pub const BUSES: &[(&str, u16)] = &[
    ("pci", 0x01),
    ("usb", 0x03),
    ("bluetooth", 0x05),
    ("virtual", 0x06),
    ("i2c", 0x18),
    ("host", 0x19),
    ("spi", 0x1c),
    ("intel_ishtp", 0x1f),
];

/// A bus as written in a scenario: a name ("usb", "bluetooth", "i2c", or
/// "BUS_USB") or a number (0x03).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bus(pub u16);

impl Bus {
    pub fn parse(s: &str) -> Result<Bus, String> {
        let name = s.trim().to_ascii_lowercase();
        let name = name.strip_prefix("bus_").unwrap_or(&name);
        BUSES.iter().find(|(n, _)| *n == name).map(|(_, v)| Bus(*v)).ok_or_else(|| {
            format!(
                "`{s}` is not a bus (known: {}, or a number)",
                BUSES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            )
        })
    }

    pub fn name(self) -> Option<&'static str> {
        BUSES.iter().find(|(_, v)| *v == self.0).map(|(n, _)| *n)
    }
}

impl Serialize for Bus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.0)
    }
}

impl<'de> Deserialize<'de> for Bus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u16),
            Name(String),
        }
        match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("a bus is a name (\"usb\", \"bluetooth\", \"i2c\") or a number"))?
        {
            Raw::Number(n) => Ok(Bus(n)),
            Raw::Name(s) => Bus::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// One device as the guest creates it (UHID_CREATE2).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeviceDef {
    /// The device's name (UHID_CREATE2 `name`); a model's name for models.
    pub name: String,
    pub bus: u16,
    pub vendor: u32,
    pub product: u32,
    pub descriptor: HexBytes,
    /// GET_REPORT answers, bytes including the report ID. Requests for
    /// other reports are answered with EIO.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feature_reports: Vec<FeatureReport>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FeatureReport {
    pub id: u8,
    pub bytes: HexBytes,
}

impl DeviceModel {
    pub fn def(&self) -> DeviceDef {
        DeviceDef {
            name: self.name.to_string(),
            bus: self.bus,
            vendor: self.vendor,
            product: self.product,
            descriptor: HexBytes(self.descriptor.to_vec()),
            feature_reports: self
                .feature_reports
                .iter()
                .map(|(id, bytes)| FeatureReport { id: *id, bytes: HexBytes(bytes.to_vec()) })
                .collect(),
        }
    }
}

impl DeviceDef {
    /// The kernel's name for a HID device's bus/vendor/product, as in
    /// sysfs ("0003:1D6B:0101").
    pub fn ids(&self) -> String {
        format!("{:04X}:{:04X}:{:04X}", self.bus, self.vendor, self.product)
    }

    /// The answer to GET_REPORT of `report`, if the device has one.
    pub fn feature_report(&self, report: u8) -> Option<&[u8]> {
        self.feature_reports.iter().find(|f| f.id == report).map(|f| f.bytes.0.as_slice())
    }
}

/// A built-in model: static tables, turned into a [`DeviceDef`] by [`DeviceModel::def`].
#[derive(Debug)]
pub struct DeviceModel {
    pub name: &'static str,
    pub summary: &'static str,
    pub bus: u16,
    pub vendor: u32,
    pub product: u32,
    pub descriptor: &'static [u8],
    /// GET_REPORT answers: (report number, bytes including the report ID).
    /// Requests for other reports are answered with EIO.
    pub feature_reports: &'static [(u8, &'static [u8])],
}

/// Boot-protocol style wheel mouse, no report IDs. Input report (4 bytes):
/// `[buttons(bit0 left, bit1 right, bit2 middle), X i8, Y i8, wheel i8]`.
pub const BOOT_MOUSE: DeviceModel = DeviceModel {
    name: "boot_mouse",
    summary: "3-button wheel mouse, 4-byte reports without report ID",
    bus: BUS_USB,
    vendor: 0x1d6b, // Linux Foundation: never matches a vendor-specific HID driver
    product: 0x0101,
    descriptor: &[
        0x05, 0x01, //   Usage Page (Generic Desktop)
        0x09, 0x02, //   Usage (Mouse)
        0xa1, 0x01, //   Collection (Application)
        0x09, 0x01, //     Usage (Pointer)
        0xa1, 0x00, //     Collection (Physical)
        0x05, 0x09, //       Usage Page (Button)
        0x19, 0x01, //       Usage Minimum (1)
        0x29, 0x03, //       Usage Maximum (3)
        0x15, 0x00, //       Logical Minimum (0)
        0x25, 0x01, //       Logical Maximum (1)
        0x95, 0x03, //       Report Count (3)
        0x75, 0x01, //       Report Size (1)
        0x81, 0x02, //       Input (Data,Var,Abs)          byte 0 bits 0-2
        0x95, 0x01, //       Report Count (1)
        0x75, 0x05, //       Report Size (5)
        0x81, 0x03, //       Input (Cnst,Var,Abs)          byte 0 padding
        0x05, 0x01, //       Usage Page (Generic Desktop)
        0x09, 0x30, //       Usage (X)
        0x09, 0x31, //       Usage (Y)
        0x09, 0x38, //       Usage (Wheel)
        0x15, 0x81, //       Logical Minimum (-127)
        0x25, 0x7f, //       Logical Maximum (127)
        0x75, 0x08, //       Report Size (8)
        0x95, 0x03, //       Report Count (3)
        0x81, 0x06, //       Input (Data,Var,Rel)          bytes 1-3
        0xc0, //           End Collection
        0xc0, //         End Collection
    ],
    feature_reports: &[],
};

/// Mouse with numbered reports, shaped like mice whose descriptor needs a
/// fix-up (the Rapoo M50 case): the button field has 5 bits but Usage
/// Maximum says 3, so the two side buttons are not exposed until a
/// `hid_rdesc_fixup` patches byte 17 (Usage Maximum) from 3 to 5.
/// * input report 1 (5 bytes): `[01, buttons(bits 0-4), X i8, Y i8, wheel i8]`
/// * input report 2 (2 bytes): `[02, AC Pan i8]` (horizontal wheel)
/// * feature report 3 (3 bytes): `[03, a, b]`, vendor-defined, answered
///   by the device as `03 11 22`
pub const REPORT_ID_MOUSE: DeviceModel = DeviceModel {
    name: "report_id_mouse",
    summary: "mouse with report IDs: buttons/X/Y/wheel (1), horizontal wheel (2), vendor feature (3)",
    bus: BUS_USB,
    vendor: 0x1d6b,
    product: 0x0102,
    descriptor: &[
        0x05, 0x01, //       0 Usage Page (Generic Desktop)
        0x09, 0x02, //       2 Usage (Mouse)
        0xa1, 0x01, //       4 Collection (Application)
        0x85, 0x01, //       6   Report ID (1)
        0x09, 0x01, //       8   Usage (Pointer)
        0xa1, 0x00, //      10   Collection (Physical)
        0x05, 0x09, //      12     Usage Page (Button)
        0x19, 0x01, //      14     Usage Minimum (1)
        0x29, 0x03, //      16     Usage Maximum (3)   <- byte 17: 3 hides buttons 4 and 5
        0x15, 0x00, //      18     Logical Minimum (0)
        0x25, 0x01, //      20     Logical Maximum (1)
        0x95, 0x05, //      22     Report Count (5)
        0x75, 0x01, //      24     Report Size (1)
        0x81, 0x02, //      26     Input (Data,Var,Abs)      byte 1 bits 0-4
        0x95, 0x01, //      28     Report Count (1)
        0x75, 0x03, //      30     Report Size (3)
        0x81, 0x03, //      32     Input (Cnst,Var,Abs)      byte 1 bits 5-7
        0x05, 0x01, //      34     Usage Page (Generic Desktop)
        0x09, 0x30, //      36     Usage (X)
        0x09, 0x31, //      38     Usage (Y)
        0x09, 0x38, //      40     Usage (Wheel)
        0x15, 0x81, //      42     Logical Minimum (-127)
        0x25, 0x7f, //      44     Logical Maximum (127)
        0x75, 0x08, //      46     Report Size (8)
        0x95, 0x03, //      48     Report Count (3)
        0x81, 0x06, //      50     Input (Data,Var,Rel)      bytes 2-4
        0xc0, //            52   End Collection
        0x85, 0x02, //      53   Report ID (2)
        0x05, 0x0c, //      55   Usage Page (Consumer)
        0x0a, 0x38, 0x02, //57   Usage (AC Pan)
        0x15, 0x81, //      60   Logical Minimum (-127)
        0x25, 0x7f, //      62   Logical Maximum (127)
        0x75, 0x08, //      64   Report Size (8)
        0x95, 0x01, //      66   Report Count (1)
        0x81, 0x06, //      68   Input (Data,Var,Rel)        byte 1
        0x85, 0x03, //      70   Report ID (3)
        0x06, 0x00, 0xff, //72   Usage Page (Vendor 0xff00)
        0x09, 0x01, //      75   Usage (1)
        0x15, 0x00, //      77   Logical Minimum (0)
        0x26, 0xff, 0x00, //79   Logical Maximum (255)
        0x75, 0x08, //      82   Report Size (8)
        0x95, 0x02, //      84   Report Count (2)
        0xb1, 0x02, //      86   Feature (Data,Var,Abs)      bytes 1-2
        0xc0, //            88 End Collection
    ],
    feature_reports: &[(3, &[0x03, 0x11, 0x22])],
};

/// Boot keyboard: 8-byte input report `[modifiers, reserved, key1..key6]`
/// (modifier bit 0 = Left Ctrl; keys are HID usages: 0x04 'a', 0x39 Caps
/// Lock, 0x3a F1) and a 1-byte LED output report (bit 0 Num Lock, bit 1
/// Caps Lock, bit 2 Scroll Lock, bit 3 Compose, bit 4 Kana). No report IDs.
pub const KEYBOARD: DeviceModel = DeviceModel {
    name: "keyboard",
    summary: "boot keyboard, 8-byte reports, LED output report",
    bus: BUS_USB,
    vendor: 0x1d6b,
    product: 0x0103,
    descriptor: &[
        0x05, 0x01, //   Usage Page (Generic Desktop)
        0x09, 0x06, //   Usage (Keyboard)
        0xa1, 0x01, //   Collection (Application)
        0x05, 0x07, //     Usage Page (Keyboard/Keypad)
        0x19, 0xe0, //     Usage Minimum (Left Control)
        0x29, 0xe7, //     Usage Maximum (Right GUI)
        0x15, 0x00, //     Logical Minimum (0)
        0x25, 0x01, //     Logical Maximum (1)
        0x75, 0x01, //     Report Size (1)
        0x95, 0x08, //     Report Count (8)
        0x81, 0x02, //     Input (Data,Var,Abs)          byte 0: modifiers
        0x95, 0x01, //     Report Count (1)
        0x75, 0x08, //     Report Size (8)
        0x81, 0x03, //     Input (Cnst,Var,Abs)          byte 1: reserved
        0x95, 0x05, //     Report Count (5)
        0x75, 0x01, //     Report Size (1)
        0x05, 0x08, //     Usage Page (LEDs)
        0x19, 0x01, //     Usage Minimum (Num Lock)
        0x29, 0x05, //     Usage Maximum (Kana)
        0x91, 0x02, //     Output (Data,Var,Abs)         LED bits 0-4
        0x95, 0x01, //     Report Count (1)
        0x75, 0x03, //     Report Size (3)
        0x91, 0x03, //     Output (Cnst,Var,Abs)         LED padding
        0x95, 0x06, //     Report Count (6)
        0x75, 0x08, //     Report Size (8)
        0x15, 0x00, //     Logical Minimum (0)
        0x25, 0x65, //     Logical Maximum (101)
        0x05, 0x07, //     Usage Page (Keyboard/Keypad)
        0x19, 0x00, //     Usage Minimum (0)
        0x29, 0x65, //     Usage Maximum (101)
        0x81, 0x00, //     Input (Data,Arr,Abs)          bytes 2-7: keys
        0xc0, //         End Collection
    ],
    feature_reports: &[],
};

pub const MODELS: &[DeviceModel] = &[BOOT_MOUSE, REPORT_ID_MOUSE, KEYBOARD];

pub fn model(name: &str) -> Option<&'static DeviceModel> {
    MODELS.iter().find(|m| m.name == name)
}

pub fn model_names() -> String {
    MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
}

/// Problems with a report descriptor that the kernel would reject, found
/// by walking its items: an item that runs past the end, unbalanced
/// collections, or no Input/Output/Feature item at all.
pub fn check_descriptor(d: &[u8]) -> Result<(), String> {
    if d.is_empty() {
        return Err("the report descriptor is empty".into());
    }
    if d.len() > 4096 {
        return Err(format!("the report descriptor has {} bytes; the kernel takes at most 4096", d.len()));
    }
    let (mut at, mut depth, mut mains) = (0usize, 0i32, 0usize);
    while at < d.len() {
        let prefix = d[at];
        if prefix == 0xfe {
            // Long item: bDataSize, bLongItemTag, data.
            let size = *d.get(at + 1).ok_or(format!("long item at byte {at} is cut off"))? as usize;
            at += 3 + size;
            continue;
        }
        let size = [0, 1, 2, 4][(prefix & 0x03) as usize];
        if at + 1 + size > d.len() {
            return Err(format!(
                "the item at byte {at} (prefix {prefix:#04x}) needs {size} data byte(s) past the end ({} bytes)",
                d.len()
            ));
        }
        match prefix & 0xfc {
            0xa0 => depth += 1,
            0xc0 => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("End Collection at byte {at} closes no collection"));
                }
            }
            0x80 | 0x90 | 0xb0 => mains += 1,
            _ => {}
        }
        at += 1 + size;
    }
    if at != d.len() {
        return Err(format!("the last item runs {} byte(s) past the end", at - d.len()));
    }
    if depth != 0 {
        return Err(format!("{depth} collection(s) are never closed (End Collection, 0xc0)"));
    }
    if mains == 0 {
        return Err("the descriptor has no Input, Output or Feature item: no report to test".into());
    }
    Ok(())
}

/// Whether a report descriptor declares Output items (LEDs, rumble): the
/// kernel may send such a device output reports on its own when it
/// connects (7.x syncs keyboard LEDs), which a scenario did not ask for.
pub fn has_output_items(descriptor: &[u8]) -> bool {
    let mut i = 0;
    while i < descriptor.len() {
        let prefix = descriptor[i];
        if prefix == 0xfe {
            // Long item: size in the next byte, then a tag byte.
            let size = descriptor.get(i + 1).copied().unwrap_or(0) as usize;
            i += 3 + size;
            continue;
        }
        let size = [0, 1, 2, 4][(prefix & 0x03) as usize];
        if prefix & 0xfc == 0x90 {
            return true;
        }
        i += 1 + size;
    }
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn output_items_are_found_in_the_keyboard_not_the_mouse() {
        assert!(has_output_items(KEYBOARD.descriptor));
        assert!(!has_output_items(BOOT_MOUSE.descriptor));
        // A long item is skipped whole, even if its data looks like 0x91.
        assert!(!has_output_items(&[0xfe, 0x02, 0x10, 0x91, 0x02]));
    }

    use super::*;

    #[test]
    fn report_id_mouse_usage_maximum_is_at_byte_17() {
        // The rdesc fixture patches this byte; keep them in step.
        assert_eq!(&REPORT_ID_MOUSE.descriptor[16..18], &[0x29, 0x03]);
        assert_eq!(REPORT_ID_MOUSE.descriptor.len(), 89);
        assert_eq!(*REPORT_ID_MOUSE.descriptor.last().unwrap(), 0xc0);
    }

    #[test]
    fn models_are_well_formed_and_malformed_descriptors_are_named() {
        for m in MODELS {
            check_descriptor(m.descriptor).unwrap_or_else(|e| panic!("{}: {e}", m.name));
        }
        assert!(check_descriptor(&[0x05, 0x01, 0xa1, 0x01, 0x81]).unwrap_err().contains("past the end"));
        assert!(check_descriptor(&[0xa1, 0x01, 0x81, 0x02]).unwrap_err().contains("never closed"));
        assert!(check_descriptor(&[0x05, 0x01, 0xc0]).unwrap_err().contains("closes no collection"));
        assert!(check_descriptor(&[0x05, 0x01]).unwrap_err().contains("no Input"));
        assert_eq!(Bus::parse("BUS_BLUETOOTH").unwrap(), Bus(5));
        assert!(Bus::parse("firewire").unwrap_err().contains("not a bus"));
    }

    #[test]
    fn model_names_are_unique() {
        let mut names: Vec<_> = MODELS.iter().map(|m| m.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), MODELS.len());
    }
}
