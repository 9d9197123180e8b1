//! What the formats share: ids in hex, percent-encoding, and HTTP header tokens.

use crate::ids::{SpanId, TraceId};

/// 1 to 2N hex digits of either case, left-padded with zeros: the formats other than W3C allow
/// upper case, and B3, Jaeger and OT send 64-bit (or shorter) trace ids. All-zero ids are invalid.
fn padded_id<const N: usize>(hex: &str) -> Option<[u8; N]> {
    if hex.is_empty() || hex.len() > 2 * N {
        return None;
    }
    let mut id = [0u8; N];
    for (i, digit) in hex.bytes().rev().enumerate() {
        let nibble = (digit as char).to_digit(16)? as u8;
        id[N - 1 - i / 2] |= nibble << (4 * (i % 2));
    }
    (id != [0; N]).then_some(id)
}

pub(super) fn trace_id(hex: &str) -> Option<TraceId> {
    padded_id(hex).map(TraceId)
}

pub(super) fn span_id(hex: &str) -> Option<SpanId> {
    padded_id(hex).map(SpanId)
}

/// Decodes `%XX` escapes; a `%` that starts no valid escape stays as it is, and bytes that do not
/// form UTF-8 become U+FFFD, as W3C baggage asks.
pub(super) fn percent_decode(text: &str) -> String {
    if !text.contains('%') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', hi, lo]) => (*hi as char).to_digit(16).zip((*lo as char).to_digit(16)).map(|(h, l)| (h * 16 + l) as u8),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Escapes every byte but RFC 3986's unreserved characters: what any decoder reads back the same,
/// `+` included (Python's `unquote_plus` would take a bare one for a space).
pub(super) fn percent_encode(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.extend(['%', HEX[usize::from(byte >> 4)] as char, HEX[usize::from(byte & 0xf)] as char]);
        }
    }
    out
}

/// An HTTP token (RFC 9110 `tchar`s): what a baggage key and a header name must be.
pub(super) fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_left_padded_and_either_case() {
        assert_eq!(trace_id("a3ce929d0e0e4736").unwrap().to_string(), "0000000000000000a3ce929d0e0e4736");
        assert_eq!(trace_id("ABC").unwrap().to_string(), "00000000000000000000000000000abc");
        assert_eq!(span_id("1").unwrap().to_string(), "0000000000000001");
        assert_eq!(span_id("E457B5A2E4D86BD1").unwrap().to_string(), "e457b5a2e4d86bd1");
    }

    #[test]
    fn ids_reject_zero_empty_long_and_non_hex() {
        for bad in ["", "0", "0000000000000000", "1".repeat(33).as_str(), "xyz", "+1", "-1", "é", " 1"] {
            assert_eq!(trace_id(bad), None, "{bad:?}");
        }
        assert_eq!(span_id(&"1".repeat(17)), None);
    }

    #[test]
    fn percent_decoding_is_lenient_and_utf8_safe() {
        assert_eq!(percent_decode("a%20b%2C%3Bc"), "a b,;c");
        assert_eq!(percent_decode("%E2%82%AC+"), "€+");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%FF"), "\u{FFFD}");
        assert_eq!(percent_decode("%%41"), "%A");
    }

    #[test]
    fn percent_encoding_round_trips() {
        for text in ["plain-._~", "a b+c,d;e=f%g", "€ 😀", ""] {
            let encoded = percent_encode(text);
            assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)), "{encoded}");
            assert_eq!(percent_decode(&encoded), text);
        }
        assert_eq!(percent_encode("a b+c"), "a%20b%2Bc");
    }

    #[test]
    fn tokens() {
        assert!(is_token("userId"));
        assert!(is_token("a!#$%&'*+-.^_`|~9"));
        for bad in ["", "a b", "a=b", "a,b", "a;b", "é", "a\"b", "a/b"] {
            assert!(!is_token(bad), "{bad:?}");
        }
    }
}
