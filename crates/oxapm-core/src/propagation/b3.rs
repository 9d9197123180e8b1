//! Zipkin's B3, in its single-header form (`b3: {trace}-{span}-{sampled}-{parent}`) and its
//! multi-header one (`X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled`, `X-B3-Flags`).
//!
//! Extraction reads either form, the single header first, as opentelemetry-propagator-b3 does:
//! 64-bit trace ids are left-padded, hex of either case is accepted, `d` (debug) and
//! `X-B3-Flags: 1` mean sampled, and a sampling state alone (`b3: 0`) carries no span to continue.

use super::encoding::{span_id, trace_id};
use super::{Headers, SpanContext};

pub(super) const SINGLE: &str = "b3";
const TRACE_ID: &str = "x-b3-traceid";
const SPAN_ID: &str = "x-b3-spanid";
const SAMPLED: &str = "x-b3-sampled";
const FLAGS: &str = "x-b3-flags";
pub(super) const MULTI: &[&str] = &[TRACE_ID, SPAN_ID, SAMPLED];
pub(super) const EXTRACTED: &[&str] = &[SINGLE, TRACE_ID, SPAN_ID, SAMPLED, FLAGS];

pub(super) fn extract(headers: &Headers) -> Option<SpanContext> {
    match headers.first(SINGLE).filter(|value| !value.is_empty()) {
        Some(single) => extract_single(single),
        None => {
            let sampled = headers.first(SAMPLED).is_some_and(means_sampled) || headers.first(FLAGS) == Some("1");
            span_context(headers.first(TRACE_ID)?, headers.first(SPAN_ID)?, sampled)
        }
    }
}

fn extract_single(value: &str) -> Option<SpanContext> {
    let fields: Vec<&str> = value.split('-').collect();
    match fields[..] {
        // A deferred decision cannot be expressed in a span context; upstream takes it as sampled.
        [trace, span] => span_context(trace, span, true),
        // The parent span id is informational.
        [trace, span, sampled] | [trace, span, sampled, _] => span_context(trace, span, means_sampled(sampled)),
        _ => None,
    }
}

fn means_sampled(value: &str) -> bool {
    value == "1" || value == "d" || value.eq_ignore_ascii_case("true")
}

fn span_context(trace: &str, span: &str, sampled: bool) -> Option<SpanContext> {
    if !matches!(trace.len(), 16 | 32) || span.len() != 16 {
        return None;
    }
    Some(SpanContext::with_sampled(trace_id(trace)?, span_id(span)?, sampled))
}

fn sampled_field(span: &SpanContext) -> &'static str {
    if span.sampled() {
        "1"
    } else {
        "0"
    }
}

pub(super) fn inject_single(span: &SpanContext, out: &mut Vec<(String, String)>) {
    out.push((SINGLE.to_owned(), format!("{}-{}-{}", span.trace_id, span.span_id, sampled_field(span))));
}

pub(super) fn inject_multi(span: &SpanContext, out: &mut Vec<(String, String)>) {
    out.push((TRACE_ID.to_owned(), span.trace_id.to_string()));
    out.push((SPAN_ID.to_owned(), span.span_id.to_string()));
    out.push((SAMPLED.to_owned(), sampled_field(span).to_owned()));
}

#[cfg(test)]
mod tests {
    use super::super::{extract, inject, Format, Propagated, SpanContext};

    // The examples of openzipkin/b3-propagation.
    const TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    const SPAN: &str = "e457b5a2e4d86bd1";

    fn span_of(headers: &[(&str, &str)]) -> Option<SpanContext> {
        let single = extract(Format::B3Single, headers).span;
        assert_eq!(extract(Format::B3Multi, headers).span, single, "both forms extract alike");
        single
    }

    fn ids_and_sampled(span: &SpanContext) -> (String, String, bool) {
        (span.trace_id.to_string(), span.span_id.to_string(), span.sampled())
    }

    #[test]
    fn reads_the_single_header_examples() {
        let span = span_of(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")]).unwrap();
        assert_eq!(ids_and_sampled(&span), (TRACE.into(), SPAN.into(), true));
        assert_eq!(span.flags, 0x01);
        let span = span_of(&[("B3", "a3ce929d0e0e4736-e457b5a2e4d86bd1-0")]).unwrap();
        assert_eq!(ids_and_sampled(&span), ("0000000000000000a3ce929d0e0e4736".into(), SPAN.into(), false));
        assert!(span_of(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d")]).unwrap().sampled());
        assert!(span_of(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1")]).unwrap().sampled(), "deferred");
        assert!(span_of(&[("b3", "80F198EE56343BA864FE8B2A57D3EFF7-E457B5A2E4D86BD1-1")]).is_some());
    }

    #[test]
    fn reads_the_multi_header_examples() {
        let headers = [("X-B3-TraceId", TRACE), ("X-B3-ParentSpanId", "05e3ac9a4f6e3b90"), ("X-B3-SpanId", SPAN), ("X-B3-Sampled", "1")];
        assert_eq!(ids_and_sampled(&span_of(&headers).unwrap()), (TRACE.into(), SPAN.into(), true));
        for (sampled, flags, expected) in [("0", "", false), ("true", "", true), ("True", "", true), ("", "1", true), ("0", "1", true), ("", "", false)] {
            let headers = [("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN), ("x-b3-sampled", sampled), ("x-b3-flags", flags)];
            assert_eq!(span_of(&headers).unwrap().sampled(), expected, "sampled={sampled:?} flags={flags:?}");
        }
    }

    #[test]
    fn the_single_header_wins_over_the_multi_headers() {
        let headers = [("b3", "a3ce929d0e0e4736-e457b5a2e4d86bd1-0"), ("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN), ("x-b3-sampled", "1")];
        assert!(!span_of(&headers).unwrap().sampled());
        let broken_single = [("b3", "garbage"), ("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN)];
        assert_eq!(span_of(&broken_single), None);
    }

    #[test]
    fn a_sampling_state_alone_or_bad_ids_start_a_new_trace() {
        for bad in [
            "0",
            "1",
            "d",
            "80f198ee56343ba864fe8b2a57d3eff7",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-extra",
            "00000000000000000000000000000000-e457b5a2e4d86bd1-1",
            "80f198ee56343ba864fe8b2a57d3eff7-0000000000000000-1",
            "80f198ee56343ba864fe8b2a57d3eff-e457b5a2e4d86bd1-1",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd-1",
            "80f198ee56343ba8-64fe8b2a57d3eff7e457b5a2e4d86bd1",
            "g0f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
            "80f198ee56343ba864fe8b2a57d3eff7--1",
        ] {
            assert_eq!(span_of(&[("b3", bad)]), None, "{bad}");
        }
        assert_eq!(span_of(&[("x-b3-traceid", TRACE)]), None);
        assert_eq!(span_of(&[("x-b3-spanid", SPAN), ("x-b3-sampled", "1")]), None);
        assert_eq!(span_of(&[("x-b3-traceid", "123"), ("x-b3-spanid", SPAN)]), None);
    }

    #[test]
    fn each_form_writes_itself_and_round_trips() {
        let propagated = extract(Format::B3Single, &[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")]);
        assert_eq!(inject(Format::B3Single, &propagated), [("b3".to_owned(), format!("{TRACE}-{SPAN}-1"))]);
        let multi = inject(Format::B3Multi, &propagated);
        assert_eq!(
            multi,
            [("x-b3-traceid".to_owned(), TRACE.to_owned()), ("x-b3-spanid".to_owned(), SPAN.to_owned()), ("x-b3-sampled".to_owned(), "1".to_owned())]
        );
        assert_eq!(extract(Format::B3Single, &multi), propagated);
        assert_eq!(extract(Format::B3Multi, &inject(Format::B3Single, &propagated)), propagated);
    }

    #[test]
    fn only_the_sampled_bit_is_written() {
        let mut span = extract(Format::B3Single, &[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0")]).span.unwrap();
        span.flags = 0x02;
        let propagated = Propagated { span: Some(span), baggage: Vec::new() };
        assert_eq!(inject(Format::B3Single, &propagated)[0].1, format!("{TRACE}-{SPAN}-0"));
    }
}
