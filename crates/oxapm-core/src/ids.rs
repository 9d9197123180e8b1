//! Trace and span identifiers, and the fast random source that makes them.
//!
//! Ids are generated on the application thread for every span, so the generator is a
//! per-thread wyrand seeded once from the OS-provided hasher keys, the clock and the pid:
//! no syscall and no lock per id.

use std::cell::Cell;
use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TraceId(pub [u8; 16]);

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SpanId(pub [u8; 8]);

thread_local! {
    static RNG_STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// Re-seeds this thread's generator: a forked child must not repeat its parent's ids.
pub fn reseed() {
    RNG_STATE.with(|s| s.set(seed()));
}

/// wyrand: 64 random bits per call.
pub fn random_u64() -> u64 {
    RNG_STATE.with(|state| {
        let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
        state.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    })
}

/// A uniform float in [0, 1), used for retry jitter.
pub fn random_unit() -> f64 {
    (random_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

impl TraceId {
    pub fn random() -> Self {
        loop {
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&random_u64().to_be_bytes());
            bytes[8..].copy_from_slice(&random_u64().to_be_bytes());
            let id = TraceId(bytes);
            if id.is_valid() {
                return id;
            }
        }
    }
    pub fn is_valid(&self) -> bool {
        self.0 != [0; 16]
    }
    pub fn from_hex(hex: &str) -> Option<Self> {
        decode_hex::<16>(hex).map(TraceId)
    }
}

impl SpanId {
    pub fn random() -> Self {
        loop {
            let id = SpanId(random_u64().to_be_bytes());
            if id.is_valid() {
                return id;
            }
        }
    }
    pub fn is_valid(&self) -> bool {
        self.0 != [0; 8]
    }
    pub fn from_hex(hex: &str) -> Option<Self> {
        decode_hex::<8>(hex).map(SpanId)
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex of `bytes` in `buf`, which must be twice as long.
fn hex<'a>(bytes: &[u8], buf: &'a mut [u8]) -> &'a str {
    for (i, b) in bytes.iter().enumerate() {
        buf[2 * i] = HEX_DIGITS[usize::from(b >> 4)];
        buf[2 * i + 1] = HEX_DIGITS[usize::from(b & 0xf)];
    }
    // The buffer holds only ASCII hex digits.
    std::str::from_utf8(&buf[..bytes.len() * 2]).unwrap_or_default()
}

fn write_hex(bytes: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut buf = [0u8; 32];
    f.write_str(hex(bytes, &mut buf))
}

/// Appends the lower-case hex of up to 16 `bytes` to `out` (without the formatting machinery:
/// headers are made on every traced call).
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    let mut buf = [0u8; 32];
    out.push_str(hex(bytes, &mut buf));
}

/// Lower-case hex only: W3C trace context forbids upper case.
fn decode_hex<const N: usize>(hex: &str) -> Option<[u8; N]> {
    let digits = hex.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(&self.0, f)
    }
}
impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(&self.0, f)
    }
}
impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}
impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

/// A 128-bit random id in hex, as Elastic uses for error ids.
pub fn random_error_id() -> String {
    TraceId::random().to_string()
}

/// A random (version 4) UUID, for `service.instance.id`.
pub fn random_uuid() -> String {
    let mut bytes = TraceId::random().0;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = TraceId::random();
        assert_eq!(TraceId::from_hex(&id.to_string()), Some(id));
        let span = SpanId::random();
        assert_eq!(SpanId::from_hex(&span.to_string()), Some(span));
        assert_eq!(span.to_string().len(), 16);
    }

    #[test]
    fn rejects_upper_case_and_wrong_length() {
        assert_eq!(SpanId::from_hex("00F067AA0BA902B7"), None);
        assert_eq!(SpanId::from_hex("00f067aa0ba902b"), None);
        assert_eq!(SpanId::from_hex("00f067aa0ba902b7"), Some(SpanId([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])));
    }

    #[test]
    fn reseeding_changes_the_sequence() {
        let state = RNG_STATE.with(Cell::get);
        reseed();
        assert_ne!(RNG_STATE.with(Cell::get), state);
    }

    #[test]
    fn ids_differ_and_unit_is_in_range() {
        assert_ne!(SpanId::random(), SpanId::random());
        for _ in 0..1000 {
            let u = random_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
