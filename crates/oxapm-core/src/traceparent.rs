//! W3C trace context (`traceparent`, `tracestate`) and Elastic's `es` tracestate entry.
//!
//! Parsing never fails loudly: a header that breaks the rules yields `None` (or is skipped member by
//! member for `tracestate`) and the caller starts a new trace.

use crate::ids::{push_hex, SpanId, TraceId};

pub const FLAG_SAMPLED: u8 = 0x01;
/// Trace Context Level 2: the trace id's right 7 bytes are random (ours always are).
pub const FLAG_RANDOM: u8 = 0x02;
const MAX_TRACESTATE_MEMBERS: usize = 32;
const MAX_TRACESTATE_VALUE_LEN: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub version: u8,
    pub trace_id: TraceId,
    pub parent_id: SpanId,
    pub flags: u8,
}

impl TraceParent {
    pub fn sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }

    /// Parses a `traceparent` value following the W3C processing model: version `ff` is invalid,
    /// version 00 must be exactly 55 characters, higher versions may carry more fields after a dash.
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim_matches(|c| c == ' ' || c == '\t');
        // Every valid header is ASCII; checking first makes the byte-offset slicing below safe.
        let bytes = header.as_bytes();
        if bytes.len() < 55 || !header.is_ascii() {
            return None;
        }
        let version = parse_hex_byte(&header[0..2])?;
        if version == 0xff || (version == 0 && bytes.len() != 55) || (bytes.len() > 55 && bytes[55] != b'-') {
            return None;
        }
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let trace_id = TraceId::from_hex(&header[3..35]).filter(TraceId::is_valid)?;
        let parent_id = SpanId::from_hex(&header[36..52]).filter(SpanId::is_valid)?;
        let flags = parse_hex_byte(&header[53..55])?;
        Some(TraceParent { version, trace_id, parent_id, flags })
    }

    /// We only ever emit version 00.
    pub fn to_header(&self) -> String {
        let mut header = String::with_capacity(55);
        header.push_str("00-");
        push_hex(&mut header, &self.trace_id.0);
        header.push('-');
        push_hex(&mut header, &self.parent_id.0);
        header.push('-');
        push_hex(&mut header, &[self.flags]);
        header
    }
}

fn parse_hex_byte(s: &str) -> Option<u8> {
    if s.len() != 2 || !s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u8::from_str_radix(s, 16).ok()
}

/// The members of a `tracestate` header, in order, each `key=value`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceState {
    members: Vec<(String, String)>,
}

impl TraceState {
    /// Accepts the header's values joined with commas (several `tracestate` headers are one list).
    /// A list that does not parse is discarded whole, as the W3C test suite expects: a member that
    /// is not a valid `key=value`, a key given twice, or more than 32 members. Empty members are
    /// allowed.
    pub fn parse(header: &str) -> Self {
        let mut members: Vec<(String, String)> = Vec::new();
        for member in header.split(',') {
            let member = member.trim_matches(|c| c == ' ' || c == '\t');
            if member.is_empty() {
                continue;
            }
            let Some((key, value)) = member.split_once('=') else { return Self::default() };
            if !valid_key(key) || !valid_value(value) || members.iter().any(|(k, _)| k == key) || members.len() == MAX_TRACESTATE_MEMBERS {
                return Self::default();
            }
            members.push((key.to_owned(), value.to_owned()));
        }
        TraceState { members }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.members.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Puts `key=value` first, replacing an earlier entry, as a vendor updating its own entry must.
    pub fn set_first(&mut self, key: &str, value: String) {
        self.members.retain(|(k, _)| k != key);
        self.members.insert(0, (key.to_owned(), value));
        self.members.truncate(MAX_TRACESTATE_MEMBERS);
    }

    pub fn to_header(&self) -> String {
        let mut out = String::new();
        for (i, (k, v)) in self.members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        out
    }

    /// The sample rate Elastic agents put in their `es` entry (`es=s:0.5`), when valid.
    pub fn elastic_sample_rate(&self) -> Option<f64> {
        let es = self.get("es")?;
        let rate = es.split(';').find_map(|part| part.strip_prefix("s:"))?;
        rate.parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r))
    }

    pub fn set_elastic_sample_rate(&mut self, rate: f64) {
        let mut value = String::from("s:");
        value.push_str(&format_sample_rate(rate));
        if let Some(es) = self.get("es") {
            for part in es.split(';').filter(|p| !p.starts_with("s:") && !p.is_empty()) {
                value.push(';');
                value.push_str(part);
            }
        }
        self.set_first("es", value);
    }
}

/// Keys: `lcalpha 0*255(lcalpha / DIGIT / "_" / "-" / "*" / "/")`, or the multi-tenant
/// `tenant@system` form.
fn valid_key(key: &str) -> bool {
    let simple = |s: &str, max: usize, first_digit_ok: bool| {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= max
            && (b[0].is_ascii_lowercase() || (first_digit_ok && b[0].is_ascii_digit()))
            && b.iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'*' | b'/'))
    };
    match key.split_once('@') {
        None => simple(key, 256, false),
        Some((tenant, system)) => simple(tenant, 241, true) && simple(system, 14, false),
    }
}

/// Values: up to 256 printable ASCII characters except `,` and `=`, not ending in a space.
fn valid_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_TRACESTATE_VALUE_LEN
        && !value.ends_with(' ')
        && value.bytes().all(|c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
}

/// Elastic sends sample rates with at most 4 decimal places, without trailing zeros.
pub fn round_sample_rate(rate: f64) -> f64 {
    (rate * 10_000.0).round() / 10_000.0
}

pub fn format_sample_rate(rate: f64) -> String {
    let rounded = round_sample_rate(rate);
    if rounded == 1.0 {
        "1".to_owned() // the usual rate, on every transaction started
    } else if rounded == rounded.trunc() {
        format!("{}", rounded as i64)
    } else {
        let s = format!("{rounded:.4}");
        s.trim_end_matches('0').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn parses_and_formats_a_valid_header() {
        let tp = TraceParent::parse(VALID).unwrap();
        assert!(tp.sampled());
        assert_eq!(tp.to_header(), VALID);
        assert!(!TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00").unwrap().sampled());
    }

    #[test]
    fn rejects_what_w3c_rejects() {
        for bad in [
            "",
            "garbage",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01extra",
            "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
            "00-0af7651916cd43dd8448eb211c8031é-b7ad6b7169203331-01",
            "0é-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0é",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn accepts_future_versions_with_extra_fields() {
        let tp = TraceParent::parse("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-the-future-will-be-like").unwrap();
        assert_eq!(tp.version, 0xcc);
        assert!(tp.to_header().starts_with("00-"));
    }

    #[test]
    fn tracestate_keeps_valid_lists_and_reads_es() {
        let ts = TraceState::parse("es=s:0.5, rojo=00f067aa0ba902b7,,\tcongo=t61rcWkgMzE ");
        assert_eq!(ts.to_header(), "es=s:0.5,rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
        assert_eq!(ts.elastic_sample_rate(), Some(0.5));
        assert_eq!(TraceState::parse("es=s:1.5").elastic_sample_rate(), None);
        assert_eq!(TraceState::parse("es=s:abc").elastic_sample_rate(), None);
        assert_eq!(TraceState::parse("tenant@vendor=x").to_header(), "tenant@vendor=x");
    }

    #[test]
    fn a_list_with_a_bad_member_or_a_repeated_key_is_discarded_whole() {
        for header in ["rojo=1,bad key=1", "rojo=1,Upper=2", "rojo=1,noequals", "foo=,bar=3", "foo=bar=baz", "rojo=1,rojo=1", "rojo=1,congo=2,rojo=3"] {
            assert_eq!(TraceState::parse(header), TraceState::default(), "{header}");
        }
    }

    #[test]
    fn elastic_rate_goes_first_and_keeps_other_es_parts() {
        let mut ts = TraceState::parse("rojo=1,es=s:0.1;x:y");
        ts.set_elastic_sample_rate(0.123456);
        assert_eq!(ts.to_header(), "es=s:0.1235;x:y,rojo=1");
        let mut empty = TraceState::default();
        empty.set_elastic_sample_rate(1.0);
        assert_eq!(empty.to_header(), "es=s:1");
        empty.set_elastic_sample_rate(0.0);
        assert_eq!(empty.to_header(), "es=s:0");
    }

    #[test]
    fn more_than_32_members_are_discarded_whole() {
        let header = |n: usize| (0..n).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join(",");
        assert_eq!(TraceState::parse(&header(32)).members.len(), 32);
        assert_eq!(TraceState::parse(&header(33)), TraceState::default());
    }
}
