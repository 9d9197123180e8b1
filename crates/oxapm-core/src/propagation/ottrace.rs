//! OpenTracing's OT format (Lightstep): `ot-tracer-traceid`, `ot-tracer-spanid`,
//! `ot-tracer-sampled`, and baggage in one `ot-baggage-{key}` header per entry, its value as is.
//!
//! Trace ids are 16 or 32 lower-case hex digits; we write the low 64 bits, as every upstream OT
//! propagator does, unless they are zero. `true`/`1` mean sampled, anything else not.

use super::encoding::{is_token, span_id, trace_id};
use super::{is_blank, set_entry, Headers, SpanContext};

const TRACE_ID: &str = "ot-tracer-traceid";
const SPAN_ID: &str = "ot-tracer-spanid";
const SAMPLED: &str = "ot-tracer-sampled";
pub(super) const HEADERS: &[&str] = &[TRACE_ID, SPAN_ID, SAMPLED];
pub(super) const BAGGAGE_PREFIX: &str = "ot-baggage-";

pub(super) fn extract(headers: &Headers) -> Option<SpanContext> {
    let (trace, span) = (headers.first(TRACE_ID)?, headers.first(SPAN_ID)?);
    if !matches!(trace.len(), 16 | 32) || span.len() != 16 || [trace, span].iter().any(|id| id.bytes().any(|c| c.is_ascii_uppercase())) {
        return None;
    }
    let sampled = headers.first(SAMPLED).is_some_and(|s| s == "1" || s.eq_ignore_ascii_case("true"));
    Some(SpanContext::with_sampled(trace_id(trace)?, span_id(span)?, sampled))
}

pub(super) fn extract_baggage(headers: &Headers) -> Vec<(String, String)> {
    let mut baggage = Vec::new();
    for (key, value) in headers.prefixed(BAGGAGE_PREFIX) {
        set_entry(&mut baggage, key, value.to_owned());
    }
    baggage
}

pub(super) fn inject(span: &SpanContext, out: &mut Vec<(String, String)>) {
    let trace = span.trace_id.to_string();
    let low = &trace[16..];
    let trace = if low.bytes().all(|c| c == b'0') { &trace } else { low };
    out.push((TRACE_ID.to_owned(), trace.to_owned()));
    out.push((SPAN_ID.to_owned(), span.span_id.to_string()));
    out.push((SAMPLED.to_owned(), span.sampled().to_string()));
}

/// Values are not encoded in this format: entries that would not survive as a header are left out.
pub(super) fn inject_baggage(baggage: &[(String, String)], out: &mut Vec<(String, String)>) {
    for (key, value) in baggage.iter().filter(|(key, value)| is_token(key) && is_plain_header_value(value)) {
        out.push((format!("{BAGGAGE_PREFIX}{key}"), value.clone()));
    }
}

/// Visible ASCII and inner blanks: what a header carries without change.
fn is_plain_header_value(value: &str) -> bool {
    !value.is_empty() && value.trim_matches(is_blank).len() == value.len() && value.bytes().all(|c| c == b'\t' || (0x20..=0x7e).contains(&c))
}

#[cfg(test)]
mod tests {
    use super::super::{extract, inject, Format, Propagated, SpanContext};

    const TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    const SPAN: &str = "e457b5a2e4d86bd1";

    fn span_of(trace: &str, span: &str, sampled: &str) -> Option<SpanContext> {
        extract(Format::OtTrace, &[("ot-tracer-traceid", trace), ("ot-tracer-spanid", span), ("ot-tracer-sampled", sampled)]).span
    }

    #[test]
    fn reads_64_and_128_bit_trace_ids() {
        let span = span_of(TRACE, SPAN, "true").unwrap();
        assert_eq!((span.trace_id.to_string(), span.span_id.to_string(), span.sampled()), (TRACE.into(), SPAN.into(), true));
        assert_eq!(span_of("64fe8b2a57d3eff7", SPAN, "true").unwrap().trace_id.to_string(), "000000000000000064fe8b2a57d3eff7");
    }

    #[test]
    fn sampled_values() {
        for (value, sampled) in [("true", true), ("True", true), ("1", true), ("false", false), ("0", false), ("", false), ("yes", false)] {
            assert_eq!(span_of(TRACE, SPAN, value).unwrap().sampled(), sampled, "{value}");
        }
        let headers = [("ot-tracer-traceid", TRACE), ("ot-tracer-spanid", SPAN)];
        assert!(!extract(Format::OtTrace, &headers).span.unwrap().sampled());
    }

    #[test]
    fn bad_ids_start_a_new_trace_but_keep_baggage() {
        for (trace, span) in [
            ("", SPAN),
            (TRACE, ""),
            ("abc", SPAN),
            ("80f198ee56343ba864fe8b2a57d3ef", SPAN),
            ("80F198EE56343BA864FE8B2A57D3EFF7", SPAN),
            (TRACE, "E457B5A2E4D86BD1"),
            (TRACE, "e457b5a2e4d86bd"),
            ("0000000000000000", SPAN),
            (TRACE, "0000000000000000"),
            ("x0f198ee56343ba8", SPAN),
        ] {
            let headers = [("ot-tracer-traceid", trace), ("ot-tracer-spanid", span), ("ot-baggage-k", "v")];
            let extracted = extract(Format::OtTrace, &headers);
            assert_eq!(extracted.span, None, "{trace} {span}");
            assert_eq!(extracted.baggage, [("k".to_owned(), "v".to_owned())]);
        }
    }

    #[test]
    fn writes_the_low_64_bits_of_the_trace_id_and_plain_baggage() {
        let mut span = span_of(TRACE, SPAN, "1").unwrap();
        span.flags = 0x03;
        let baggage = vec![("user".to_owned(), "alice smith".to_owned()), ("bad key".to_owned(), "x".to_owned()), ("k".to_owned(), "€".to_owned())];
        let propagated = Propagated { span: Some(span), baggage };
        let expected =
            [("ot-tracer-traceid", "64fe8b2a57d3eff7"), ("ot-tracer-spanid", SPAN), ("ot-tracer-sampled", "true"), ("ot-baggage-user", "alice smith")];
        assert_eq!(inject(Format::OtTrace, &propagated), expected.map(|(n, v)| (n.to_owned(), v.to_owned())));
    }

    #[test]
    fn a_trace_id_with_zero_low_bits_is_written_whole() {
        let span = span_of("80f198ee56343ba80000000000000000", SPAN, "0").unwrap();
        let propagated = Propagated { span: Some(span), baggage: Vec::new() };
        let headers = inject(Format::OtTrace, &propagated);
        assert_eq!(headers[0].1, "80f198ee56343ba80000000000000000");
        assert_eq!(headers[2].1, "false");
        assert_eq!(extract(Format::OtTrace, &headers), propagated);
    }

    #[test]
    fn round_trips_a_64_bit_trace() {
        let extracted = extract(
            Format::OtTrace,
            &[("ot-tracer-traceid", "64fe8b2a57d3eff7"), ("ot-tracer-spanid", SPAN), ("ot-tracer-sampled", "true"), ("OT-Baggage-Tier", "gold")],
        );
        assert_eq!(extracted.baggage, [("Tier".to_owned(), "gold".to_owned())]);
        assert_eq!(extract(Format::OtTrace, &inject(Format::OtTrace, &extracted)), extracted);
    }
}
