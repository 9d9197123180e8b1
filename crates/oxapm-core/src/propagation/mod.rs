//! Context propagation: the span context and baggage that cross a process boundary in request
//! headers, read and written in every format `OTEL_PROPAGATORS` names, plus Elastic's legacy one.
//!
//! Extraction never fails loudly. A trace header that breaks its format's rules yields no span
//! context (the caller starts a new trace); a bad baggage entry is skipped on its own. Header names
//! are matched without regard to case, and surrounding blanks in values are ignored.

mod b3;
mod baggage;
mod elastic;
mod encoding;
mod jaeger;
mod ottrace;
mod tracecontext;
mod xray;

use crate::ids::{SpanId, TraceId};
use crate::traceparent::{TraceState, FLAG_SAMPLED};

/// The caller's span as a request carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// W3C trace flags, carried as they are by trace context (0x01 sampled, 0x02 random trace id);
    /// the other formats only know the sampled bit.
    pub flags: u8,
    pub tracestate: TraceState,
}

impl SpanContext {
    /// A span context from a format that has no tracestate and no flag but "sampled".
    fn with_sampled(trace_id: TraceId, span_id: SpanId, sampled: bool) -> Self {
        let flags = if sampled { FLAG_SAMPLED } else { 0 };
        SpanContext { trace_id, span_id, flags, tracestate: TraceState::default() }
    }

    fn sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }
}

/// Everything a format extracts, or is given to inject.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Propagated {
    pub span: Option<SpanContext>,
    /// Baggage entries in order, each key once.
    pub baggage: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    TraceContext,
    Baggage,
    B3Single,
    B3Multi,
    Jaeger,
    XRay,
    OtTrace,
    Elastic,
}

impl Format {
    pub const ALL: [Format; 8] =
        [Format::TraceContext, Format::Baggage, Format::B3Single, Format::B3Multi, Format::Jaeger, Format::XRay, Format::OtTrace, Format::Elastic];

    /// The format's name in `OTEL_PROPAGATORS`.
    pub fn name(self) -> &'static str {
        match self {
            Format::TraceContext => "tracecontext",
            Format::Baggage => "baggage",
            Format::B3Single => "b3",
            Format::B3Multi => "b3multi",
            Format::Jaeger => "jaeger",
            Format::XRay => "xray",
            Format::OtTrace => "ottrace",
            Format::Elastic => "elastic",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|format| format.name() == name)
    }

    /// The headers extraction reads (besides those starting with `baggage_prefix`), spelled as
    /// the upstream OpenTelemetry propagators spell them.
    pub fn extracted_headers(self) -> &'static [&'static str] {
        match self {
            Format::B3Single | Format::B3Multi => b3::EXTRACTED,
            _ => self.injected_headers(),
        }
    }

    /// The headers injection writes (besides those starting with `baggage_prefix`): the `fields`
    /// of an OpenTelemetry propagator.
    pub fn injected_headers(self) -> &'static [&'static str] {
        match self {
            Format::TraceContext => &[tracecontext::TRACEPARENT, tracecontext::TRACESTATE],
            Format::Baggage => &[baggage::HEADER],
            Format::B3Single => &[b3::SINGLE],
            Format::B3Multi => b3::MULTI,
            Format::Jaeger => &[jaeger::HEADER],
            Format::XRay => &[xray::HEADER],
            Format::OtTrace => ottrace::HEADERS,
            Format::Elastic => &[elastic::TRACEPARENT, tracecontext::TRACESTATE],
        }
    }

    /// Formats that carry each baggage entry in its own header, named this prefix and the key.
    pub fn baggage_prefix(self) -> Option<&'static str> {
        match self {
            Format::Jaeger => Some(jaeger::BAGGAGE_PREFIX),
            Format::OtTrace => Some(ottrace::BAGGAGE_PREFIX),
            _ => None,
        }
    }

    pub fn carries_span(self) -> bool {
        self != Format::Baggage
    }

    pub fn carries_baggage(self) -> bool {
        matches!(self, Format::Baggage | Format::Jaeger | Format::OtTrace)
    }
}

/// Reads `format` from a carrier's `(name, value)` headers; a name may come more than once.
pub fn extract<N: AsRef<str>, V: AsRef<str>>(format: Format, headers: &[(N, V)]) -> Propagated {
    let headers = Headers(headers.iter().map(|(name, value)| (name.as_ref(), value.as_ref().trim_matches(is_blank))).collect());
    let span = match format {
        Format::TraceContext => tracecontext::extract(&headers, tracecontext::TRACEPARENT),
        Format::Elastic => tracecontext::extract(&headers, elastic::TRACEPARENT),
        Format::B3Single | Format::B3Multi => b3::extract(&headers),
        Format::Jaeger => jaeger::extract(&headers),
        Format::XRay => xray::extract(&headers),
        Format::OtTrace => ottrace::extract(&headers),
        Format::Baggage => None,
    };
    let baggage = match format {
        Format::Baggage => baggage::extract(&headers),
        Format::Jaeger => jaeger::extract_baggage(&headers),
        Format::OtTrace => ottrace::extract_baggage(&headers),
        _ => Vec::new(),
    };
    Propagated { span, baggage }
}

/// The `(name, value)` headers that carry `propagated` in `format`. A span context with an
/// all-zero id is not written.
pub fn inject(format: Format, propagated: &Propagated) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(span) = propagated.span.as_ref().filter(|s| s.trace_id.is_valid() && s.span_id.is_valid()) {
        match format {
            Format::TraceContext => tracecontext::inject(span, tracecontext::TRACEPARENT, &mut out),
            Format::Elastic => tracecontext::inject(span, elastic::TRACEPARENT, &mut out),
            Format::B3Single => b3::inject_single(span, &mut out),
            Format::B3Multi => b3::inject_multi(span, &mut out),
            Format::Jaeger => jaeger::inject(span, &mut out),
            Format::XRay => xray::inject(span, &mut out),
            Format::OtTrace => ottrace::inject(span, &mut out),
            Format::Baggage => {}
        }
    }
    match format {
        Format::Baggage => baggage::inject(&propagated.baggage, &mut out),
        Format::Jaeger => jaeger::inject_baggage(&propagated.baggage, &mut out),
        Format::OtTrace => ottrace::inject_baggage(&propagated.baggage, &mut out),
        _ => {}
    }
    out
}

/// HTTP's optional whitespace.
fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// A carrier's headers, values already stripped of surrounding blanks.
struct Headers<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Headers<'a> {
    fn values(&self, name: &'a str) -> impl Iterator<Item = &'a str> + '_ {
        self.0.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
    }

    fn first(&self, name: &'a str) -> Option<&'a str> {
        self.values(name).next()
    }

    /// Every value of a list header joined with commas, as HTTP combines repeated list headers.
    fn joined(&self, name: &'a str) -> Option<String> {
        let mut values = self.values(name);
        let first = values.next()?;
        Some(values.fold(first.to_owned(), |joined, value| joined + "," + value))
    }

    /// `(key, value)` for each header named `prefix` and a non-empty key.
    fn prefixed(&self, prefix: &'static str) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.0.iter().filter_map(move |(name, value)| {
            let head = name.as_bytes().get(..prefix.len())?;
            // An ASCII prefix matched, so the key starts on a character boundary.
            (head.eq_ignore_ascii_case(prefix.as_bytes()) && name.len() > prefix.len()).then(|| (&name[prefix.len()..], *value))
        })
    }
}

/// Adds a baggage entry; a key seen again keeps its place and takes the later value.
fn set_entry(baggage: &mut Vec<(String, String)>, key: &str, value: String) {
    match baggage.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value,
        None => baggage.push((key.to_owned(), value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_none() {
        for format in Format::ALL {
            assert_eq!(Format::parse(format.name()), Some(format));
            assert!(!format.injected_headers().is_empty());
        }
        assert_eq!(Format::parse("B3"), None);
        assert_eq!(Format::parse("none"), None);
    }

    #[test]
    fn header_names_are_matched_regardless_of_case_and_values_trimmed() {
        let headers = Headers(vec![("X-B3-TraceId", "abc"), ("x-b3-traceid", "def"), ("UberCtx-Key", "v"), ("uberctx-", "empty key")]);
        assert_eq!(headers.first("x-b3-traceid"), Some("abc"));
        assert_eq!(headers.joined("X-B3-TRACEID").as_deref(), Some("abc,def"));
        assert_eq!(headers.joined("tracestate"), None);
        assert_eq!(headers.prefixed("uberctx-").collect::<Vec<_>>(), [("Key", "v")]);
        let extracted = extract(Format::TraceContext, &[("TraceParent", " 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\t")]);
        assert!(extracted.span.is_some());
    }

    #[test]
    fn a_non_ascii_name_never_splits_a_character() {
        let headers = Headers(vec![("uberctxé-x", "v"), ("é", "v")]);
        assert_eq!(headers.prefixed("uberctx-").count(), 0);
    }

    #[test]
    fn span_contexts_with_an_all_zero_id_are_not_injected() {
        for span in [SpanContext::with_sampled(TraceId::default(), SpanId([1; 8]), true), SpanContext::with_sampled(TraceId([1; 16]), SpanId::default(), true)]
        {
            let propagated = Propagated { span: Some(span), baggage: Vec::new() };
            for format in Format::ALL {
                assert_eq!(inject(format, &propagated), [], "{format:?}");
            }
        }
    }

    #[test]
    fn baggage_comes_only_from_formats_that_carry_it() {
        let propagated = Propagated { span: None, baggage: vec![("k".into(), "v".into())] };
        for format in Format::ALL {
            let headers = inject(format, &propagated);
            assert_eq!(!headers.is_empty(), format.carries_baggage(), "{format:?}");
            if format.carries_baggage() {
                assert_eq!(extract(format, &headers), propagated, "{format:?}");
            }
        }
    }
}
