//! Report descriptors decoded item by item, and what differs between two
//! of them: a failed descriptor check says which items changed (`Logical
//! Minimum (0) [15 00]` became `Logical Maximum (0) [25 00]`), where (the
//! collection path and usage page), not only which byte offsets.
//!
//! Items are split by `hidreport` and named with `hut`'s usage tables
//! (both of hidutils, the hid-tools maintainers' Rust crates); the diff
//! aligns the two item lists by their bytes (longest common subsequence),
//! so an inserted or dropped item shows as one, not as every item after it.
use hidreport::hid::{
    CollectionItem, GlobalItem, Item, ItemType, LocalItem, MainDataItem, MainItem, ReportDescriptorItems,
};
use hidvm_proto::expect::DescriptorExpect;
use hidvm_proto::HexBytes;

/// One item of a descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub offset: usize,
    pub bytes: Vec<u8>,
    /// `Logical Minimum (0)`, `Usage Page (Generic Desktop)`, `Input (Data,Var,Abs)`.
    pub name: String,
    /// Where it is: `Application (Mouse) > Physical (Pointer), usage page Button`.
    pub context: String,
}

/// What the walk carries from item to item.
#[derive(Default)]
struct State {
    page: u16,
    pushed: Vec<u16>,
    /// The last Usage before a main item (names a collection).
    usage: Option<String>,
    collections: Vec<String>,
}

impl State {
    fn context(&self) -> String {
        let path = if self.collections.is_empty() { "top level".to_string() } else { self.collections.join(" > ") };
        format!("{path}, usage page {}", page_name(self.page))
    }
}

/// Every item of `d`, named, with its context; an error when the
/// descriptor cannot be split into items.
pub fn decode(d: &[u8]) -> Result<Vec<Decoded>, String> {
    let items = ReportDescriptorItems::try_from(d).map_err(|e| format!("cannot split it into items: {e:?}"))?;
    let mut st = State::default();
    let mut out = Vec::new();
    for rdi in items.iter() {
        let item = rdi.item();
        let context = st.context();
        let name = name_and_step(&mut st, item.item_type());
        out.push(Decoded { offset: rdi.offset(), bytes: item.bytes().to_vec(), name, context });
    }
    Ok(out)
}

/// The item's name, and the walk's state after it.
fn name_and_step(st: &mut State, t: ItemType) -> String {
    match t {
        ItemType::Main(m) => {
            let name = main_name(st, &m);
            st.usage = None;
            name
        }
        ItemType::Global(g) => global_name(st, &g),
        ItemType::Local(l) => {
            let (name, usage) = local_name(st.page, &l);
            if usage.is_some() {
                st.usage = usage;
            }
            name
        }
        ItemType::Long => "Long Item".into(),
        ItemType::Reserved => "Reserved Item".into(),
    }
}

fn main_name(st: &mut State, m: &MainItem) -> String {
    let flags = |i: &dyn MainDataItem| {
        format!(
            "{},{},{}",
            if i.is_constant() { "Cnst" } else { "Data" },
            if i.is_variable() { "Var" } else { "Arr" },
            if i.is_relative() { "Rel" } else { "Abs" }
        )
    };
    match m {
        MainItem::Input(i) => format!("Input ({})", flags(i)),
        MainItem::Output(i) => format!("Output ({})", flags(i)),
        MainItem::Feature(i) => format!("Feature ({})", flags(i)),
        MainItem::Collection(c) => {
            let kind = collection_kind(c);
            let named = match &st.usage {
                Some(u) => format!("{kind} ({u})"),
                None => kind.clone(),
            };
            st.collections.push(named);
            format!("Collection ({kind})")
        }
        MainItem::EndCollection => {
            st.collections.pop();
            "End Collection".into()
        }
    }
}

fn collection_kind(c: &CollectionItem) -> String {
    match c {
        CollectionItem::Physical => "Physical".into(),
        CollectionItem::Application => "Application".into(),
        CollectionItem::Logical => "Logical".into(),
        CollectionItem::Report => "Report".into(),
        CollectionItem::NamedArray => "Named Array".into(),
        CollectionItem::UsageSwitch => "Usage Switch".into(),
        CollectionItem::UsageModifier => "Usage Modifier".into(),
        CollectionItem::Reserved { value } => format!("Reserved {value:#04x}"),
        CollectionItem::VendorDefined { value } => format!("Vendor Defined {value:#04x}"),
    }
}

fn global_name(st: &mut State, g: &GlobalItem) -> String {
    match g {
        GlobalItem::UsagePage(p) => {
            st.page = u16::from(p);
            format!("Usage Page ({})", page_name(st.page))
        }
        GlobalItem::LogicalMinimum(v) => format!("Logical Minimum ({})", i32::from(v)),
        GlobalItem::LogicalMaximum(v) => format!("Logical Maximum ({})", i32::from(v)),
        GlobalItem::PhysicalMinimum(v) => format!("Physical Minimum ({})", i32::from(v)),
        GlobalItem::PhysicalMaximum(v) => format!("Physical Maximum ({})", i32::from(v)),
        GlobalItem::UnitExponent(v) => format!("Unit Exponent ({})", i32::from(v)),
        GlobalItem::Unit(v) => format!("Unit ({:#x})", u32::from(v)),
        GlobalItem::ReportSize(v) => format!("Report Size ({})", usize::from(v)),
        GlobalItem::ReportId(v) => format!("Report ID ({})", u8::from(v)),
        GlobalItem::ReportCount(v) => format!("Report Count ({})", usize::from(v)),
        GlobalItem::Push => {
            st.pushed.push(st.page);
            "Push".into()
        }
        GlobalItem::Pop => {
            st.page = st.pushed.pop().unwrap_or(st.page);
            "Pop".into()
        }
        GlobalItem::Reserved => "Reserved Global Item".into(),
    }
}

/// A local item's name, and the usage it names (if it is a Usage).
fn local_name(page: u16, l: &LocalItem) -> (String, Option<String>) {
    match l {
        LocalItem::Usage(p, id) => {
            let u = usage_name(u16::from(p), u16::from(id));
            (format!("Usage ({u})"), Some(u))
        }
        LocalItem::UsageId(id) => {
            let u = usage_name(page, u16::from(id));
            (format!("Usage ({u})"), Some(u))
        }
        LocalItem::UsageMinimum(v) => (format!("Usage Minimum ({})", u32::from(v)), None),
        LocalItem::UsageMaximum(v) => (format!("Usage Maximum ({})", u32::from(v)), None),
        LocalItem::DesignatorIndex(v) => (format!("Designator Index ({})", u32::from(v)), None),
        LocalItem::DesignatorMinimum(v) => (format!("Designator Minimum ({})", u32::from(v)), None),
        LocalItem::DesignatorMaximum(v) => (format!("Designator Maximum ({})", u32::from(v)), None),
        LocalItem::StringIndex(v) => (format!("String Index ({})", u32::from(v)), None),
        LocalItem::StringMinimum(v) => (format!("String Minimum ({})", u32::from(v)), None),
        LocalItem::StringMaximum(v) => (format!("String Maximum ({})", u32::from(v)), None),
        LocalItem::Delimiter(v) => (format!("Delimiter ({})", u32::from(v)), None),
        LocalItem::Reserved { value } => (format!("Reserved Local Item {value:#04x}"), None),
    }
}

fn page_name(page: u16) -> String {
    match hut::UsagePage::try_from(page) {
        Ok(p) => p.name(),
        Err(_) => format!("{page:#06x}"),
    }
}

fn usage_name(page: u16, id: u16) -> String {
    match hut::Usage::new_from_page_and_id(page, id) {
        Ok(u) => u.name(),
        Err(_) => format!("{id:#06x}"),
    }
}

/// One difference between an expected and a seen descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change<'a> {
    /// The item at expected position `index` was replaced.
    Changed {
        index: usize,
        expected: &'a Decoded,
        seen: &'a Decoded,
    },
    Missing {
        index: usize,
        expected: &'a Decoded,
    },
    Extra {
        index: usize,
        seen: &'a Decoded,
    },
}

/// The items of `seen` that differ from `expected`, aligned by the longest
/// common subsequence of items; a replaced item is one change, not a
/// removal and an addition.
pub fn diff<'a>(expected: &'a [Decoded], seen: &'a [Decoded]) -> Vec<Change<'a>> {
    let (n, m) = (expected.len(), seen.len());
    // lcs[i][j]: the common items of expected[i..] and seen[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if expected[i].bytes == seen[j].bytes {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    let (mut gone, mut new): (Vec<usize>, Vec<usize>) = (vec![], vec![]);
    while i < n || j < m {
        if i < n && j < m && expected[i].bytes == seen[j].bytes {
            pair_up(expected, seen, &mut gone, &mut new, &mut out);
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            new.push(j);
            j += 1;
        } else {
            gone.push(i);
            i += 1;
        }
    }
    pair_up(expected, seen, &mut gone, &mut new, &mut out);
    out
}

/// A run of removed and added items between two common ones: pairs are
/// changes, the rest missing or extra.
fn pair_up<'a>(
    expected: &'a [Decoded],
    seen: &'a [Decoded],
    gone: &mut Vec<usize>,
    new: &mut Vec<usize>,
    out: &mut Vec<Change<'a>>,
) {
    let pairs = gone.len().min(new.len());
    for k in 0..pairs {
        out.push(Change::Changed { index: gone[k], expected: &expected[gone[k]], seen: &seen[new[k]] });
    }
    out.extend(gone[pairs..].iter().map(|&i| Change::Missing { index: i, expected: &expected[i] }));
    out.extend(new[pairs..].iter().map(|&j| Change::Extra { index: j, seen: &seen[j] }));
    gone.clear();
    new.clear();
}

/// The two descriptors a descriptor check compared, from its rendering:
/// hex bytes, or relative to the device's `original` ("original with
/// 17=05", "original truncated to 40 of 52 bytes"). None when they cannot
/// be rebuilt (relative without the original, or a longer descriptor).
pub fn compared(expected: &str, seen: &str, original: Option<&[u8]>) -> Option<(Vec<u8>, Vec<u8>)> {
    let want = DescriptorExpect::parse(expected).ok()?;
    let expected = match (&want.exact, original) {
        (Some(exact), _) => exact.0.clone(),
        (None, Some(o)) => want.apply(o).ok()?,
        (None, None) => return None,
    };
    let seen = match HexBytes::parse(seen) {
        Ok(h) if !seen.trim_start().starts_with("original") => h.0,
        _ => relative(seen, original?)?,
    };
    Some((expected, seen))
}

/// `DescriptorExpect::describe`'s notation, applied back to `original`.
fn relative(seen: &str, original: &[u8]) -> Option<Vec<u8>> {
    let rest = seen.strip_prefix("original")?.trim();
    if let Some(t) = rest.strip_prefix("truncated to ") {
        let n: usize = t.split_whitespace().next()?.parse().ok()?;
        return original.get(..n).map(<[u8]>::to_vec);
    }
    let (patches, len) = match rest.split_once(" (") {
        Some((p, tail)) => (p, Some(tail.split_whitespace().next()?.parse::<usize>().ok()?)),
        None => (rest, None),
    };
    let mut d = DescriptorExpect::parse(&format!("original {patches}")).ok()?.apply(original).ok()?;
    match len {
        Some(n) if n <= d.len() => d.truncate(n),
        Some(_) => return None,
        None => {}
    }
    Some(d)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
}

/// Changes shown at most; the rest are counted.
const SHOWN: usize = 8;

/// The decoded difference, one line per changed item (at most [`SHOWN`]),
/// or why the descriptors cannot be decoded.
pub fn explain(expected: &[u8], seen: &[u8]) -> Vec<String> {
    let (e, s) = match (decode(expected), decode(seen)) {
        (Ok(e), Ok(s)) => (e, s),
        (Err(why), _) => return vec![format!("the expected descriptor is not decodable: {why}")],
        (_, Err(why)) => return vec![format!("the seen descriptor is not decodable: {why}")],
    };
    let changes = diff(&e, &s);
    let mut out: Vec<String> = changes.iter().take(SHOWN).map(line).collect();
    if changes.len() > SHOWN {
        out.push(format!("… and {} more changed item(s)", changes.len() - SHOWN));
    }
    if changes.is_empty() && expected != seen {
        out.push("the items are the same; only their encoding differs".into());
    }
    out
}

fn line(c: &Change<'_>) -> String {
    match c {
        Change::Changed { index, expected, seen } => {
            let moved = if seen.offset != expected.offset {
                format!(", seen at offset {}", seen.offset)
            } else {
                String::new()
            };
            format!(
                "item {} (offset {}{moved}) in {}: expected {} [{}], saw {} [{}]",
                index + 1,
                expected.offset,
                expected.context,
                expected.name,
                hex(&expected.bytes),
                seen.name,
                hex(&seen.bytes)
            )
        }
        Change::Missing { index, expected } => format!(
            "item {} (offset {}) in {}: expected {} [{}], missing",
            index + 1,
            expected.offset,
            expected.context,
            expected.name,
            hex(&expected.bytes)
        ),
        Change::Extra { index, seen } => format!(
            "seen item {} (offset {}) in {}: extra {} [{}]",
            index + 1,
            seen.offset,
            seen.context,
            seen.name,
            hex(&seen.bytes)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(h: &str) -> Vec<u8> {
        h.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
    }

    /// 7.3's Huion__Dial-2 fixup (tests/known-failures.toml): 25 00 where
    /// 15 00 belongs.
    const DIAL2_SEEN: &str = "05 01 09 07 a1 01 85 03 25 00 25 01 05 0d 09 39 a1 00 09 44 95 01 75 01 81 02 95 07 81 01 05 01 09 30 09 31 95 02 75 08 81 02 09 38 15 ff 25 01 95 01 75 08 81 06 05 09 19 01 29 08 15 00 25 01 95 07 75 01 81 02 95 01 81 01 c0 06 ff ff 09 01 a1 00 85 ac 75 08 95 08 81 01 c0 c0";

    #[test]
    fn the_dial2_typo_is_one_changed_item_with_its_context() {
        let seen = bytes(DIAL2_SEEN);
        let expected = bytes(&DIAL2_SEEN.replacen("85 03 25 00 25 01", "85 03 15 00 25 01", 1));
        let lines = explain(&expected, &seen);
        assert_eq!(
            lines,
            vec![
                "item 5 (offset 8) in Application (Keypad), usage page Generic Desktop: expected Logical Minimum (0) [15 00], saw Logical Maximum (0) [25 00]"
                    .to_string()
            ]
        );
    }

    #[test]
    fn items_are_named_with_their_usages_and_collections() {
        let mouse = bytes("05 01 09 02 a1 01 09 01 a1 00 05 09 19 01 29 03 15 00 25 01 95 03 75 01 81 02 c0 c0");
        let d = decode(&mouse).unwrap();
        let names: Vec<&str> = d.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            &names[..5],
            [
                "Usage Page (Generic Desktop)",
                "Usage (Mouse)",
                "Collection (Application)",
                "Usage (Pointer)",
                "Collection (Physical)"
            ]
        );
        assert_eq!(d[12].name, "Input (Data,Var,Abs)");
        assert_eq!(d[12].context, "Application (Mouse) > Physical (Pointer), usage page Button");
        assert_eq!(
            (d[13].name.as_str(), d[14].context.as_str()),
            ("End Collection", "Application (Mouse), usage page Button")
        );
        assert_eq!((d[9].offset, d[9].bytes.clone()), (18, vec![0x25, 0x01]));
    }

    #[test]
    fn an_inserted_or_dropped_item_is_one_change_not_a_cascade() {
        let base = bytes("05 01 09 02 a1 01 15 00 25 01 75 01 95 03 81 02 c0");
        let inserted = bytes("05 01 09 02 a1 01 15 00 25 01 35 00 75 01 95 03 81 02 c0");
        let lines = explain(&base, &inserted);
        assert_eq!(lines, vec!["seen item 6 (offset 10) in Application (Mouse), usage page Generic Desktop: extra Physical Minimum (0) [35 00]".to_string()]);
        let lines = explain(&inserted, &base);
        assert_eq!(lines, vec!["item 6 (offset 10) in Application (Mouse), usage page Generic Desktop: expected Physical Minimum (0) [35 00], missing".to_string()]);
        // The same items, encoded differently (a 2-byte Logical Maximum).
        let wide = bytes("05 01 09 02 a1 01 15 00 26 01 00 75 01 95 03 81 02 c0");
        assert!(explain(&base, &wide)[0]
            .contains("expected Logical Maximum (1) [25 01], saw Logical Maximum (1) [26 01 00]"));
    }

    #[test]
    fn both_descriptors_are_rebuilt_from_a_check() {
        let original = [0x05, 0x01, 0x09, 0x02, 0xa1, 0x01, 0x81, 0x02, 0xc0];
        let (e, s) = compared("05 01 c0", "05 02 c0", None).unwrap();
        assert_eq!((e, s), (vec![0x05, 0x01, 0xc0], vec![0x05, 0x02, 0xc0]));
        let (e, s) = compared("original with 3=06", "original with 3=07", Some(&original)).unwrap();
        assert_eq!((e[3], s[3], s.len()), (0x06, 0x07, 9));
        let (_, s) = compared("original", "original truncated to 4 of 9 bytes", Some(&original)).unwrap();
        assert_eq!(s, original[..4]);
        let (_, s) = compared("original", "original with 1=03 (6 bytes instead of 9)", Some(&original)).unwrap();
        assert_eq!(s, [0x05, 0x03, 0x09, 0x02, 0xa1, 0x01]);
        assert_eq!(compared("original", "original with 1=03 (12 bytes instead of 9)", Some(&original)), None);
        assert_eq!(compared("original with 3=06", "original", None), None);
    }

    #[test]
    fn many_changes_are_counted_and_garbage_is_said_to_be() {
        let a = bytes("75 01 75 02 75 03 75 04 75 05 75 06 75 07 75 08 75 09 75 0a");
        let b = bytes("95 01 95 02 95 03 95 04 95 05 95 06 95 07 95 08 95 09 95 0a");
        let lines = explain(&a, &b);
        assert_eq!(lines.len(), SHOWN + 1);
        assert_eq!(lines[SHOWN], "… and 2 more changed item(s)");
        assert!(explain(&a, &[0x26, 0x01])[0].starts_with("the seen descriptor is not decodable"));
    }
}
