//! W3C Trace Context (Level 2): `traceparent` and `tracestate`. The trace flags byte is carried as
//! it is, so the "random trace id" bit (0x02) survives alongside "sampled"; we write version 00.

use super::{Headers, SpanContext};
use crate::traceparent::{TraceParent, TraceState};

pub(super) const TRACEPARENT: &str = "traceparent";
pub(super) const TRACESTATE: &str = "tracestate";

/// Reads a traceparent-format header named `traceparent` (Elastic's legacy name is another) and,
/// when it is valid, the tracestate that goes with it.
pub(super) fn extract(headers: &Headers, traceparent: &'static str) -> Option<SpanContext> {
    let parent = TraceParent::parse(headers.first(traceparent)?)?;
    let tracestate = headers.joined(TRACESTATE).map(|list| TraceState::parse(&list)).unwrap_or_default();
    Some(SpanContext { trace_id: parent.trace_id, span_id: parent.parent_id, flags: parent.flags, tracestate })
}

pub(super) fn inject(span: &SpanContext, traceparent: &'static str, out: &mut Vec<(String, String)>) {
    let parent = TraceParent { version: 0, trace_id: span.trace_id, parent_id: span.span_id, flags: span.flags };
    out.push((traceparent.to_owned(), parent.to_header()));
    let tracestate = span.tracestate.to_header();
    if !tracestate.is_empty() {
        out.push((TRACESTATE.to_owned(), tracestate));
    }
}

#[cfg(test)]
mod tests {
    use super::super::{extract, inject, Format, Propagated};

    // The examples of the W3C recommendation.
    const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const TRACESTATE: &str = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";

    fn span_of(headers: &[(&str, &str)]) -> Option<super::SpanContext> {
        extract(Format::TraceContext, headers).span
    }

    #[test]
    fn reads_the_w3c_example() {
        let span = span_of(&[("traceparent", TRACEPARENT), ("tracestate", TRACESTATE)]).unwrap();
        assert_eq!(span.trace_id.to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(span.span_id.to_string(), "b7ad6b7169203331");
        assert_eq!(span.flags, 0x01);
        assert_eq!(span.tracestate.to_header(), TRACESTATE);
    }

    #[test]
    fn carries_level_2_flags_as_they_are() {
        for flags in ["00", "01", "02", "03", "ff"] {
            let header = format!("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-{flags}");
            let extracted = extract(Format::TraceContext, &[("traceparent", header.as_str())]);
            assert_eq!(extracted.span.as_ref().unwrap().flags, u8::from_str_radix(flags, 16).unwrap());
            assert_eq!(inject(Format::TraceContext, &extracted), [("traceparent".to_owned(), header)]);
        }
    }

    #[test]
    fn repeated_tracestate_headers_are_one_list_discarded_whole_for_a_bad_member() {
        let span = span_of(&[("traceparent", TRACEPARENT), ("tracestate", "rojo=1"), ("TraceState", "congo=3")]).unwrap();
        assert_eq!(span.tracestate.to_header(), "rojo=1,congo=3");
        let span = span_of(&[("traceparent", TRACEPARENT), ("tracestate", "rojo=1,Bad=2"), ("TraceState", "congo=3")]).unwrap();
        assert_eq!(span.tracestate.to_header(), "");
    }

    #[test]
    fn a_future_version_is_read_and_written_as_00() {
        let future = "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-the-future-will-be-like";
        let extracted = extract(Format::TraceContext, &[("traceparent", future)]);
        assert_eq!(inject(Format::TraceContext, &extracted), [("traceparent".to_owned(), TRACEPARENT.to_owned())]);
    }

    #[test]
    fn a_bad_traceparent_starts_a_new_trace_whatever_the_tracestate() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01",
        ] {
            assert_eq!(extract(Format::TraceContext, &[("traceparent", bad), ("tracestate", TRACESTATE)]), Propagated::default(), "{bad}");
        }
        assert_eq!(span_of(&[("tracestate", TRACESTATE)]), None);
    }

    #[test]
    fn round_trips_with_tracestate() {
        let extracted = extract(Format::TraceContext, &[("traceparent", TRACEPARENT), ("tracestate", TRACESTATE)]);
        let headers = inject(Format::TraceContext, &extracted);
        assert_eq!(headers, [("traceparent".to_owned(), TRACEPARENT.to_owned()), ("tracestate".to_owned(), TRACESTATE.to_owned())]);
        assert_eq!(extract(Format::TraceContext, &headers), extracted);
    }
}
