//! CBOR written by hand: the heads and texts of the envelopes that the targets put a fuzzer's
//! bytes inside, and the huge lists the tests build (without a `ciborium::Value` tree).

/// Major type of an unsigned integer.
pub const UNSIGNED: u8 = 0;
/// Major type of a byte string.
pub const BYTES: u8 = 2;
/// Major type of a text string.
pub const TEXT: u8 = 3;
/// Major type of an array.
pub const ARRAY: u8 = 4;
/// Major type of a map.
pub const MAP: u8 = 5;

/// Appends the head of an item of major type `major` and argument `n` (a length, or the
/// integer itself), in its shortest form.
pub fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let major = major << 5;
    match n {
        0..=23 => out.push(major | n as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, n as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// Appends a text string.
pub fn text(out: &mut Vec<u8>, s: &str) {
    head(out, TEXT, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// The start of a version-1 envelope `{"v": 1, "body": ...}`, whose body is to follow.
pub fn envelope_head(out: &mut Vec<u8>) {
    head(out, MAP, 2);
    text(out, "v");
    head(out, UNSIGNED, 1);
    text(out, "body");
}

/// An envelope whose body is `{variant: {field: <rest>}}` with `other` fields first (each a
/// text key and the CBOR of its value), the last field's value to follow.
pub fn message_head(variant: &str, other: &[(&str, &[u8])], field: &str) -> Vec<u8> {
    let mut out = Vec::new();
    envelope_head(&mut out);
    head(&mut out, MAP, 1);
    text(&mut out, variant);
    head(&mut out, MAP, other.len() as u64 + 1);
    for (key, value) in other {
        text(&mut out, key);
        out.extend_from_slice(value);
    }
    text(&mut out, field);
    out
}
