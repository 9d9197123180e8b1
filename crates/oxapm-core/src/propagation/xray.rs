//! AWS X-Ray: `X-Amzn-Trace-Id: Root=1-{8 hex epoch}-{24 hex};Parent={16 hex};Sampled={0|1}`.
//!
//! Fields come in any order and unknown ones (`Self`, `Lineage`, ...) are ignored, as
//! opentelemetry-propagator-aws-xray does; a missing Root or Parent, a field without `=`, or a bad
//! value of a known field makes the whole header invalid.

use super::encoding::{span_id, trace_id};
use super::{is_blank, Headers, SpanContext};
use crate::ids::TraceId;

pub(super) const HEADER: &str = "X-Amzn-Trace-Id";

pub(super) fn extract(headers: &Headers) -> Option<SpanContext> {
    let (mut root, mut parent, mut sampled) = (None, None, false);
    for field in headers.first(HEADER)?.split(';').map(|f| f.trim_matches(is_blank)).filter(|f| !f.is_empty()) {
        let (key, value) = field.split_once('=')?;
        let value = value.trim_matches(is_blank);
        match key.trim_matches(is_blank) {
            "Root" => root = Some(parse_root(value)?),
            "Parent" if value.len() == 16 => parent = Some(span_id(value)?),
            "Parent" => return None,
            "Sampled" => {
                sampled = match value {
                    "1" => true,
                    "0" => false,
                    _ => return None,
                }
            }
            _ => {}
        }
    }
    Some(SpanContext::with_sampled(root?, parent?, sampled))
}

/// `1-{epoch}-{unique}`: the trace id is the epoch's 8 hex digits followed by the 24 others.
fn parse_root(value: &str) -> Option<TraceId> {
    let rest = value.strip_prefix("1-")?;
    let (epoch, unique) = rest.split_once('-')?;
    if epoch.len() != 8 || unique.len() != 24 {
        return None;
    }
    trace_id(&format!("{epoch}{unique}"))
}

pub(super) fn inject(span: &SpanContext, out: &mut Vec<(String, String)>) {
    let trace = span.trace_id.to_string();
    let sampled = u8::from(span.sampled());
    out.push((HEADER.to_owned(), format!("Root=1-{}-{};Parent={};Sampled={sampled}", &trace[..8], &trace[8..], span.span_id)));
}

#[cfg(test)]
mod tests {
    use super::super::{extract, inject, Format, SpanContext};

    // The example of the X-Ray developer guide.
    const EXAMPLE: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

    fn span_of(value: &str) -> Option<SpanContext> {
        extract(Format::XRay, &[("x-amzn-trace-id", value)]).span
    }

    #[test]
    fn reads_the_developer_guide_example() {
        let span = span_of(EXAMPLE).unwrap();
        assert_eq!(span.trace_id.to_string(), "5759e988bd862e3fe1be46a994272793");
        assert_eq!(span.span_id.to_string(), "53995c3f42cd8ad8");
        assert!(span.sampled());
    }

    #[test]
    fn fields_in_any_order_unknown_ones_ignored() {
        let expected = span_of(EXAMPLE);
        for value in [
            "Parent=53995c3f42cd8ad8;Sampled=1;Root=1-5759e988-bd862e3fe1be46a994272793",
            "Self=1-67891234-12456789abcdef012345678;Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:1|68fd508a:5",
            " Root = 1-5759e988-bd862e3fe1be46a994272793 ; Parent=53995c3f42cd8ad8;Sampled=1;",
            "Root=1-5759E988-BD862E3FE1BE46A994272793;Parent=53995C3F42CD8AD8;Sampled=1",
        ] {
            assert_eq!(span_of(value), expected, "{value}");
        }
        let unsampled = span_of("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8").unwrap();
        assert!(!unsampled.sampled());
    }

    #[test]
    fn bad_headers_start_a_new_trace() {
        for bad in [
            "",
            "Root=1-5759e988-bd862e3fe1be46a994272793",
            "Parent=53995c3f42cd8ad8;Sampled=1",
            "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
            "Root=1-5759e98-bd862e3fe1be46a9942727930;Parent=53995c3f42cd8ad8",
            "Root=1-5759e988-bd862e3fe1be46a99427279;Parent=53995c3f42cd8ad8",
            "Root=1-5759e988bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
            "Root=1-00000000-000000000000000000000000;Parent=53995c3f42cd8ad8",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000000",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;garbage",
            "Root=1-5759e988-bd862e3fe1be46a99427279g;Parent=53995c3f42cd8ad8",
        ] {
            assert_eq!(span_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn writes_and_round_trips() {
        let extracted = extract(Format::XRay, &[("X-Amzn-Trace-Id", EXAMPLE)]);
        assert_eq!(inject(Format::XRay, &extracted), [("X-Amzn-Trace-Id".to_owned(), EXAMPLE.to_owned())]);
        let unsampled = extract(Format::XRay, &[("X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0")]);
        assert_eq!(extract(Format::XRay, &inject(Format::XRay, &unsampled)), unsampled);
    }
}
