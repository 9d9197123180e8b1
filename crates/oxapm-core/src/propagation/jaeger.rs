//! Jaeger: `uber-trace-id: {trace-id}:{span-id}:{parent-span-id}:{flags}`, and baggage in one
//! `uberctx-{key}` header per entry, its value percent-encoded.
//!
//! Ids may be shorter than 128/64 bits and are left-padded; a URL-encoded header (as some clients
//! send it) is decoded first. The parent span id is deprecated and ignored; we write `0`. Flags are
//! a hex byte whose bit 0x01 is "sampled" and 0x02 "debug", which implies sampled; only the sampled
//! bit is written (0x02 means "random trace id" in W3C flags, and debug to Jaeger).

use std::borrow::Cow;

use super::encoding::{is_token, percent_decode, percent_encode, span_id, trace_id};
use super::{set_entry, Headers, SpanContext};

pub(super) const HEADER: &str = "uber-trace-id";
pub(super) const BAGGAGE_PREFIX: &str = "uberctx-";
const SAMPLED: u8 = 0x01;
const DEBUG: u8 = 0x02;

pub(super) fn extract(headers: &Headers) -> Option<SpanContext> {
    let raw = headers.first(HEADER)?;
    let value = if raw.contains('%') { Cow::Owned(percent_decode(raw)) } else { Cow::Borrowed(raw) };
    let fields: Vec<&str> = value.split(':').collect();
    let [trace, span, _parent, flags] = fields[..] else { return None };
    if flags.is_empty() || flags.len() > 2 || !flags.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(SpanContext::with_sampled(trace_id(trace)?, span_id(span)?, flags & (SAMPLED | DEBUG) != 0))
}

pub(super) fn extract_baggage(headers: &Headers) -> Vec<(String, String)> {
    let mut baggage = Vec::new();
    for (key, value) in headers.prefixed(BAGGAGE_PREFIX) {
        set_entry(&mut baggage, key, percent_decode(value));
    }
    baggage
}

pub(super) fn inject(span: &SpanContext, out: &mut Vec<(String, String)>) {
    out.push((HEADER.to_owned(), format!("{}:{}:0:{}", span.trace_id, span.span_id, span.flags & SAMPLED)));
}

/// Entries whose key cannot be part of a header name are left out.
pub(super) fn inject_baggage(baggage: &[(String, String)], out: &mut Vec<(String, String)>) {
    for (key, value) in baggage.iter().filter(|(key, _)| is_token(key)) {
        out.push((format!("{BAGGAGE_PREFIX}{key}"), percent_encode(value)));
    }
}

#[cfg(test)]
mod tests {
    use super::super::{extract, inject, Format, Propagated, SpanContext};

    fn span_of(value: &str) -> Option<SpanContext> {
        extract(Format::Jaeger, &[("uber-trace-id", value)]).span
    }

    fn ids_and_sampled(span: &SpanContext) -> (String, String, bool) {
        (span.trace_id.to_string(), span.span_id.to_string(), span.sampled())
    }

    #[test]
    fn reads_full_and_short_ids() {
        let span = span_of("000000000000000000000000deadbeef:00000000deadbeef:0:1").unwrap();
        assert_eq!(ids_and_sampled(&span), ("000000000000000000000000deadbeef".into(), "00000000deadbeef".into(), true));
        assert_eq!(span_of("deadbeef:deadbeef:0:1"), Some(span));
        let span = span_of("6e0c63257de34c926f9efcd03927272e:1234567890ABCDEF:0:0").unwrap();
        assert_eq!(ids_and_sampled(&span), ("6e0c63257de34c926f9efcd03927272e".into(), "1234567890abcdef".into(), false));
        assert_eq!(span.flags, 0);
    }

    #[test]
    fn flags_sampled_and_debug() {
        for (flags, sampled) in [("0", false), ("1", true), ("01", true), ("2", true), ("3", true), ("8", false), ("9", true), ("ff", true)] {
            assert_eq!(span_of(&format!("deadbeef:deadbeef:0:{flags}")).unwrap().sampled(), sampled, "{flags}");
        }
    }

    #[test]
    fn reads_a_url_encoded_header() {
        let span = span_of("6e0c63257de34c92%3Abff2c0f2de8ec7b8%3A0%3A1").unwrap();
        assert_eq!(ids_and_sampled(&span), ("00000000000000006e0c63257de34c92".into(), "bff2c0f2de8ec7b8".into(), true));
    }

    #[test]
    fn bad_headers_start_a_new_trace_but_keep_baggage() {
        for bad in [
            "",
            "deadbeef:deadbeef:0",
            "deadbeef:deadbeef:0:1:extra",
            "0:deadbeef:0:1",
            "deadbeef:0:0:1",
            "deadbeef:deadbeef:0:",
            "deadbeef:deadbeef:0:100",
            "deadbeef:deadbeef:0:+1",
            "deadbeef:deadbeef:0:x",
            ":deadbeef:0:1",
            "1234567890abcdef1234567890abcdef0:deadbeef:0:1",
            "deadbeef:1234567890abcdef0:0:1",
            "not-hex!:deadbeef:0:1",
        ] {
            let extracted = extract(Format::Jaeger, &[("uber-trace-id", bad), ("uberctx-key", "value")]);
            assert_eq!(extracted.span, None, "{bad}");
            assert_eq!(extracted.baggage, [("key".to_owned(), "value".to_owned())]);
        }
    }

    #[test]
    fn baggage_comes_from_prefixed_headers_url_decoded() {
        let extracted = extract(Format::Jaeger, &[("uberctx-user", "alice%20smith"), ("UberCtx-Tier", "gold"), ("uberctx-", "no key"), ("other", "x")]);
        assert_eq!(extracted.baggage, [("user".to_owned(), "alice smith".to_owned()), ("Tier".to_owned(), "gold".to_owned())]);
    }

    #[test]
    fn writes_padded_ids_a_zero_parent_and_only_the_sampled_flag() {
        let mut span = span_of("deadbeef:deadbeef:1234:3").unwrap();
        span.flags = 0x03;
        let propagated = Propagated { span: Some(span), baggage: vec![("user".into(), "alice smith".into()), ("bad key".into(), "x".into())] };
        assert_eq!(
            inject(Format::Jaeger, &propagated),
            [
                ("uber-trace-id".to_owned(), "000000000000000000000000deadbeef:00000000deadbeef:0:1".to_owned()),
                ("uberctx-user".to_owned(), "alice%20smith".to_owned()),
            ]
        );
    }

    #[test]
    fn round_trips() {
        let extracted = extract(Format::Jaeger, &[("uber-trace-id", "6e0c63257de34c926f9efcd03927272e:bff2c0f2de8ec7b8:0:1"), ("uberctx-k", "v,;=%")]);
        assert_eq!(extract(Format::Jaeger, &inject(Format::Jaeger, &extracted)), extracted);
    }
}
