//! JSON written straight into a byte buffer, byte for byte as `serde_json` writes it (compact, keys
//! of maps in their order), for the encoders that run once per record on the export thread.
//!
//! Text is most of an event and seldom needs escaping: a string is checked eight bytes at a time
//! and copied in one piece, where `serde_json` looks at every byte in turn; the field names of a
//! format are written as they are, unchecked. Numbers go through `serde_json`'s own
//! formatter, so they read exactly as it writes them.

use serde_json::ser::{CompactFormatter, Formatter};
use serde_json::{Number, Value};

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Writes `text` as a JSON string: `"`, `\` and control characters escaped as `serde_json` escapes
/// them (`\n`, `\u001f`, ...), everything else (non-ASCII, U+2028 included) as it is.
pub fn string(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    if nothing_to_escape(bytes) {
        out.extend_from_slice(bytes);
    } else {
        escaped(out, bytes);
    }
    out.push(b'"');
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// Looks at eight bytes at a time (the last eight overlapping the word before), a text of four to
/// seven as its first four and last four, a shorter one byte by byte.
fn nothing_to_escape(bytes: &[u8]) -> bool {
    let length = bytes.len();
    if length >= 8 {
        let mut at = 0;
        while at + 8 < length {
            if escape_flags(word(&bytes[at..at + 8])) != 0 {
                return false;
            }
            at += 8;
        }
        escape_flags(word(&bytes[length - 8..])) == 0
    } else if length >= 4 {
        let half = |bytes: &[u8]| u64::from(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
        escape_flags(half(bytes) | half(&bytes[length - 4..]) << 32) == 0
    } else {
        !bytes.iter().any(|&byte| needs_escape(byte))
    }
}

fn word(bytes: &[u8]) -> u64 {
    u64::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7]])
}

/// The high bit of each byte of `word` JSON escapes (below 0x20, `"` or `\`), and maybe of bytes
/// above one: nonzero exactly when there is one.
fn escape_flags(word: u64) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH_BITS: u64 = u64::from_ne_bytes([0x80; 8]);
    // `(x - ONES * n) & !x & HIGH_BITS` flags the bytes of `x` below `n` (n <= 0x80): below 0x20
    // in the word itself, below 1 (zero) in the word xor'ed with `"` or `\` everywhere. A borrow
    // flags a byte above a flagged one, never a byte by itself.
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    ((word.wrapping_sub(ONES * 0x20) & !word) | (quote.wrapping_sub(ONES) & !quote) | (backslash.wrapping_sub(ONES) & !backslash)) & HIGH_BITS
}

/// The text with its bytes to escape escaped (which most text has not).
#[cold]
fn escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    while let Some(offset) = bytes[start..].iter().position(|&byte| needs_escape(byte)) {
        let at = start + offset;
        out.extend_from_slice(&bytes[start..at]);
        escape(out, bytes[at]);
        start = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

fn escape(out: &mut Vec<u8>, byte: u8) {
    let short = match byte {
        b'"' => b'"',
        b'\\' => b'\\',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        0x08 => b'b',
        0x0c => b'f',
        _ => return out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX_DIGITS[usize::from(byte >> 4)], HEX_DIGITS[usize::from(byte & 0xf)]]),
    };
    out.extend_from_slice(&[b'\\', short]);
}

/// Writes `bytes` as a string of lower-case hex digits (the ids of traces and spans): nothing to
/// escape.
pub fn hex<const N: usize>(out: &mut Vec<u8>, bytes: &[u8; N]) {
    const { assert!(N <= MAX_HEX_BYTES && N % 4 == 0) };
    let mut text = [b'"'; 2 * MAX_HEX_BYTES + 2];
    for (at, four) in bytes.chunks_exact(4).enumerate() {
        text[1 + 8 * at..9 + 8 * at].copy_from_slice(&hex_digits([four[0], four[1], four[2], four[3]]));
    }
    out.extend_from_slice(&text[..2 * N + 2]);
}

/// The longest id: a trace id.
const MAX_HEX_BYTES: usize = 16;

/// The eight hex digits of four bytes, computed on all of them at once: each nibble spread to a
/// byte of its own, then turned into `0`-`9` or `a`-`f`.
fn hex_digits(four: [u8; 4]) -> [u8; 8] {
    let mut nibbles = u64::from(u32::from_be_bytes(four));
    nibbles = (nibbles | nibbles << 16) & 0x0000_ffff_0000_ffff;
    nibbles = (nibbles | nibbles << 8) & 0x00ff_00ff_00ff_00ff;
    nibbles = (nibbles | nibbles << 4) & 0x0f0f_0f0f_0f0f_0f0f;
    // 1 in each byte whose nibble is 10 or more (adding 6 carries it into bit 4).
    let letters = ((nibbles + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    (nibbles + 0x3030_3030_3030_3030 + letters * (u64::from(b'a') - u64::from(b'0') - 10)).to_be_bytes()
}

// Writing into a Vec cannot fail: the formatter's results are ignored.

pub fn u64(out: &mut Vec<u8>, value: u64) {
    let _ = CompactFormatter.write_u64(out, value);
}

pub fn i64(out: &mut Vec<u8>, value: i64) {
    let _ = CompactFormatter.write_i64(out, value);
}

/// A float, `null` if it is not finite (JSON has no NaN or infinity), as `serde_json` writes it.
pub fn f64(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        let _ = CompactFormatter.write_f64(out, value);
    } else {
        out.extend_from_slice(b"null");
    }
}

pub fn bool(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(if value { b"true" } else { b"false" });
}

fn number(out: &mut Vec<u8>, number: &Number) {
    match (number.as_u64(), number.as_i64()) {
        (Some(value), _) => u64(out, value),
        (None, Some(value)) => i64(out, value),
        // A float: finite, as `Number` holds no other.
        (None, None) => f64(out, number.as_f64().unwrap_or_default()),
    }
}

pub fn value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => bool(out, *b),
        Value::Number(n) => number(out, n),
        Value::String(s) => string(out, s),
        Value::Array(items) => {
            let mut array = Array::new(out);
            for item in items {
                self::value(array.item(), item);
            }
            array.end();
        }
        Value::Object(map) => {
            let mut object = Object::new(out);
            for (key, item) in map {
                self::value(object.entry(key), item);
            }
            object.end();
        }
    }
}

/// An object being written: `{`, its members (each started by `key` or `entry`, its value written
/// into the buffer these return), `end` for `}`.
pub struct Object<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> Object<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Object { out, empty: true }
    }

    fn separate(&mut self) {
        separate(self.out, &mut self.empty);
    }

    /// A member named by the format: a field name with nothing to escape, written as it is.
    #[inline]
    pub fn key(&mut self, name: &'static str) -> &mut Vec<u8> {
        debug_assert!(!name.bytes().any(needs_escape), "{name:?} needs escaping");
        self.separate();
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    /// A member of any name.
    pub fn entry(&mut self, name: &str) -> &mut Vec<u8> {
        self.separate();
        string(self.out, name);
        self.out.push(b':');
        self.out
    }

    pub fn end(self) {
        self.out.push(b'}');
    }
}

/// The comma before every member of an object or item of an array but the first.
fn separate(out: &mut Vec<u8>, empty: &mut bool) {
    if !*empty {
        out.push(b',');
    }
    *empty = false;
}

/// An array being written: `[`, its items (each written into the buffer `item` returns), `end`
/// for `]`.
pub struct Array<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> Array<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'[');
        Array { out, empty: true }
    }

    pub fn item(&mut self) -> &mut Vec<u8> {
        separate(self.out, &mut self.empty);
        self.out
    }

    pub fn end(self) {
        self.out.push(b']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn written(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let every_ascii: String = (0u8..0x80).map(char::from).collect();
        let tricky = [
            "",
            "plain text, longer than one word of eight bytes",
            "\"",
            "\\",
            "say \"hi\"\\ to C:\\dir",
            "\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1b}\u{1f} \u{7f}",
            "line\nbreaks\r\nand\ttabs at every offset: \n1\n12\n123\n1234\n12345\n123456\n1234567\n",
            "é 日本語 😀 \u{2028}\u{2029} \u{feff}",
            "ends with a quote after eight\"",
            "𝄞\"𝄞\\𝄞\u{1}",
            &every_ascii,
        ];
        for text in tricky {
            assert_eq!(written(|out| string(out, text)), serde_json::to_string(text).unwrap(), "{text:?}");
        }
    }

    #[test]
    fn a_byte_to_escape_is_found_at_any_offset() {
        // Bytes next to those escaped, to catch a comparison off by one, and bytes with the high bit.
        let neighbours = ['!', '#', ' ', '[', ']', '\u{7f}', '\u{80}', 'é', '日', '\u{2028}'];
        for length in 0..40 {
            let harmless: String = (0..length).map(|i| neighbours[i % neighbours.len()]).collect();
            assert_eq!(written(|out| string(out, &harmless)), serde_json::to_string(&harmless).unwrap());
            for position in 0..=harmless.len() {
                for special in ['"', '\\', '\u{0}', '\u{1f}'] {
                    let Some(head) = harmless.get(..position) else { continue };
                    let text = format!("{head}{special}{}", &harmless[position..]);
                    assert_eq!(written(|out| string(out, &text)), serde_json::to_string(&text).unwrap(), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn numbers_and_values_as_serde_json_writes_them() {
        let value = json!({
            "z": null, "a": [true, false, [], {}], "u": u64::MAX, "i": i64::MIN, "f": 0.1, "e": 1e300, "t": 1.5e-7, "w": 2.0, "n": -0.0,
            "nested": {"\"key\"\n": "v", "list": [1, -1, 1.5]},
        });
        assert_eq!(written(|out| self::value(out, &value)), serde_json::to_string(&value).unwrap());
        for float in [0.0, 10.16, 1e21, 1e-7, f64::MAX, f64::MIN_POSITIVE, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(written(|out| f64(out, float)), serde_json::to_string(&float).unwrap());
        }
    }

    #[test]
    fn ids_in_hex() {
        assert_eq!(written(|out| hex(out, &[0x00, 0x1f, 0xab, 0xff])), r#""001fabff""#);
        for byte in 0..=255u8 {
            let bytes = [byte, byte.wrapping_mul(7), !byte, byte.rotate_left(4)];
            assert_eq!(hex_digits(bytes).to_vec(), bytes.iter().map(|b| format!("{b:02x}")).collect::<String>().into_bytes());
        }
        let trace_id = crate::ids::TraceId::random();
        assert_eq!(written(|out| hex(out, &trace_id.0)), format!("\"{trace_id}\""));
    }

    #[test]
    fn objects_and_arrays() {
        let text = written(|out| {
            let mut object = Object::new(out);
            u64(object.key("count"), 3);
            let mut items = Array::new(object.entry("it\"ems"));
            string(items.item(), "a");
            Object::new(items.item()).end();
            items.end();
            Object::new(object.key("empty")).end();
            object.end();
        });
        assert_eq!(text, r#"{"count":3,"it\"ems":["a",{}],"empty":{}}"#);
    }

    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
                prop::collection::btree_map(any::<String>(), inner, 0..8).prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_string_as_serde_json_writes_it(text in any::<String>(), ascii in "[ -~\\x00-\\x1f]{0,40}") {
            prop_assert_eq!(written(|out| string(out, &text)), serde_json::to_string(&text).unwrap());
            prop_assert_eq!(written(|out| string(out, &ascii)), serde_json::to_string(&ascii).unwrap());
        }

        #[test]
        fn any_value_as_serde_json_writes_it(value in any_value()) {
            prop_assert_eq!(written(|out| self::value(out, &value)), serde_json::to_string(&value).unwrap());
        }
    }
}
