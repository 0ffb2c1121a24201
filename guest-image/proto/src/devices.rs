//! uhid device models: what a scenario's `[[device]] model = "…"` creates.
//!
//! Descriptors are written item by item so a reader can check a fixture's
//! byte offsets against them. Adding a model is adding one entry to
//! [`MODELS`].

/// BUS_USB from linux/input.h: hid-generic binds to it like a real mouse.
pub const BUS_USB: u16 = 0x03;

#[derive(Debug)]
pub struct DeviceModel {
    pub name: &'static str,
    pub summary: &'static str,
    pub bus: u16,
    pub vendor: u32,
    pub product: u32,
    pub descriptor: &'static [u8],
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
};

pub const MODELS: &[DeviceModel] = &[BOOT_MOUSE];

pub fn model(name: &str) -> Option<&'static DeviceModel> {
    MODELS.iter().find(|m| m.name == name)
}

pub fn model_names() -> String {
    MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
}
