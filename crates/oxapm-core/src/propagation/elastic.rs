//! Elastic's legacy `elastic-apm-traceparent` header, which older Elastic agents send and read
//! instead of `traceparent`: the same format, with the W3C `tracestate` beside it.

pub(super) const TRACEPARENT: &str = "elastic-apm-traceparent";

#[cfg(test)]
mod tests {
    use super::super::{extract, inject, Format};

    const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn reads_and_writes_the_legacy_header_with_tracestate() {
        let headers = [("Elastic-Apm-Traceparent", TRACEPARENT), ("tracestate", "es=s:0.5")];
        let extracted = extract(Format::Elastic, &headers);
        let span = extracted.span.as_ref().unwrap();
        assert_eq!(span.trace_id.to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(span.tracestate.elastic_sample_rate(), Some(0.5));
        assert_eq!(
            inject(Format::Elastic, &extracted),
            [("elastic-apm-traceparent".to_owned(), TRACEPARENT.to_owned()), ("tracestate".to_owned(), "es=s:0.5".to_owned())]
        );
    }

    #[test]
    fn ignores_the_w3c_header_and_bad_values() {
        assert_eq!(extract(Format::Elastic, &[("traceparent", TRACEPARENT)]).span, None);
        assert_eq!(extract(Format::Elastic, &[("elastic-apm-traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331")]).span, None);
        assert_eq!(extract(Format::TraceContext, &[("elastic-apm-traceparent", TRACEPARENT)]).span, None);
    }
}
