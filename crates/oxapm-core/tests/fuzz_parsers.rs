//! Property tests (proptest) for every parser that reads outside input: trace context headers, the
//! propagation formats, configuration values (the OTLP exporter's variables included), SQL
//! statements and the URLs of outgoing calls. Whatever the input, they return a value or a
//! rejection, never panic, and what they accept round-trips.

use oxapm_core::config::{self, Kind};
use oxapm_core::http::OutgoingRequest;
use oxapm_core::ids::{SpanId, TraceId};
use oxapm_core::otlp;
use oxapm_core::propagation::{self, Format, Propagated, SpanContext};
use oxapm_core::sql;
use oxapm_core::traceparent::{TraceParent, TraceState};
use proptest::prelude::*;
use std::collections::HashMap;

/// Any header a format reads, a baggage-prefixed one, or another, in any case.
fn header_name() -> impl Strategy<Value = String> {
    let mut names: Vec<String> = Format::ALL.iter().flat_map(|f| f.extracted_headers().iter().map(|n| (*n).to_owned())).collect();
    names.extend(["uberctx-k".to_owned(), "ot-baggage-k".to_owned(), "x-other".to_owned()]);
    (proptest::sample::select(names), any::<bool>()).prop_map(|(name, upper)| if upper { name.to_uppercase() } else { name })
}

/// Arbitrary text, or text made of the pieces the formats are built from.
fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![".{0,120}", "[0-9a-fA-F]{0,33}([-:;=,% ]{1,2}(Root|Parent|Sampled|1|d|[0-9a-fA-F]{0,33})){0,5}"]
}

fn span_context() -> impl Strategy<Value = SpanContext> {
    let members = proptest::collection::vec("[a-z][a-z0-9_*/-]{0,8}=[!-+--<>-~]{1,10}", 0..5);
    (any::<[u8; 16]>(), any::<[u8; 8]>(), any::<u8>(), members)
        .prop_filter("ids are not all zero", |(trace, span, _, _)| *trace != [0; 16] && *span != [0; 8])
        .prop_map(|(trace, span, flags, members)| SpanContext {
            trace_id: TraceId(trace),
            span_id: SpanId(span),
            flags,
            tracestate: TraceState::parse(&members.join(",")),
        })
}

/// Baggage with distinct token keys; `value` says what the values are made of.
fn baggage(value: &'static str) -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::btree_map("[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}", value, 0..8).prop_map(|entries| entries.into_iter().collect())
}

/// What `format` carries of `sent`; the rest it loses by design: formats other than trace context
/// know only the sampled flag and no tracestate, OT writes the low 64 bits of the trace id (unless
/// they are zero), and only three formats carry baggage.
fn carried(format: Format, sent: &Propagated) -> Propagated {
    let span = sent.span.clone().filter(|_| format.carries_span()).map(|mut span| {
        if !matches!(format, Format::TraceContext | Format::Elastic) {
            span.flags &= 0x01;
            span.tracestate = TraceState::default();
        }
        if format == Format::OtTrace && span.trace_id.0[8..] != [0; 8] {
            span.trace_id.0[..8].fill(0);
        }
        span
    });
    let baggage = if format.carries_baggage() { sent.baggage.clone() } else { Vec::new() };
    Propagated { span, baggage }
}

/// SQL-like text: keywords, names, quotes, dollar signs, comments and brackets in any order.
fn sql_text() -> impl Strategy<Value = String> {
    let keyword =
        proptest::sample::select(vec!["SELECT", "from", "INSERT", "INTO", "UPDATE", "DELETE", "CALL", "MERGE", "REPLACE", "ONLY"]).prop_map(str::to_owned);
    let piece = prop_oneof![keyword, "[ \n\t]", "['\"`$\\[\\]().,;*/\\\\-]{1,2}", "[a-z_$0-9]{1,6}", "\\PC"];
    proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn sql_never_panics_and_signatures_stay_short(sql in prop_oneof!["(?s).{0,200}", sql_text()]) {
        let mut end = 0;
        for token in sql::tokens(&sql) {
            prop_assert!(token.start >= end && sql[token.start..].contains(token.text), "{:?}", token);
            end = token.start + 1;
        }
        prop_assert!(sql::signature(&sql).chars().count() <= 1024);
    }

    #[test]
    fn propagation_never_panics(headers in proptest::collection::vec((header_name(), header_value()), 0..6)) {
        for format in Format::ALL {
            let extracted = propagation::extract(format, &headers);
            if let Some(span) = &extracted.span {
                prop_assert!(span.trace_id.is_valid() && span.span_id.is_valid());
            }
            propagation::inject(format, &extracted);
        }
    }

    #[test]
    fn propagation_round_trips(span in proptest::option::of(span_context()), baggage in baggage("[!-~]([ -~]{0,20}[!-~])?")) {
        let sent = Propagated { span, baggage };
        for format in Format::ALL {
            let headers = propagation::inject(format, &sent);
            prop_assert_eq!(propagation::extract(format, &headers), carried(format, &sent), "{:?}: {:?}", format, headers);
        }
    }

    #[test]
    fn encoded_baggage_round_trips_any_text(baggage in baggage("\\PC{0,30}")) {
        let sent = Propagated { span: None, baggage };
        for format in [Format::Baggage, Format::Jaeger] {
            prop_assert_eq!(propagation::extract(format, &propagation::inject(format, &sent)), sent.clone());
        }
    }

    #[test]
    fn traceparent_never_panics(header in ".{0,80}") {
        if let Some(tp) = TraceParent::parse(&header) {
            prop_assert!(tp.trace_id.is_valid() && tp.parent_id.is_valid());
            prop_assert_ne!(tp.version, 0xff);
        }
    }

    #[test]
    fn traceparent_shaped_inputs_round_trip(
        version in "[0-9a-f]{2}", trace in "[0-9a-f]{32}", span in "[0-9a-f]{16}", flags in "[0-9a-f]{2}", tail in "(-[a-z0-9]{0,8})?"
    ) {
        let header = format!("{version}-{trace}-{span}-{flags}{tail}");
        match TraceParent::parse(&header) {
            Some(tp) => {
                prop_assert_eq!(TraceParent::parse(&tp.to_header()), Some(TraceParent { version: 0, ..tp }));
                prop_assert!(version != "ff" && (version != "00" || tail.is_empty()));
            }
            None => prop_assert!(version == "ff" || (version == "00" && !tail.is_empty()) || trace.bytes().all(|b| b == b'0') || span.bytes().all(|b| b == b'0')),
        }
    }

    #[test]
    fn tracestate_is_idempotent(header in "[ -~]{0,300}") {
        let once = TraceState::parse(&header);
        let twice = TraceState::parse(&once.to_header());
        prop_assert_eq!(&once, &twice);
        if let Some(rate) = once.elastic_sample_rate() {
            prop_assert!((0.0..=1.0).contains(&rate));
        }
    }

    #[test]
    fn a_valid_tracestate_survives_whole_and_an_invalid_one_not_at_all(keys in proptest::collection::hash_set("[a-z][a-z0-9_*/-]{0,10}", 1..40), value in "[!-+--<>-~]{1,20}") {
        let header = keys.iter().map(|k| format!("{k}={value}")).collect::<Vec<_>>().join(",");
        let parsed = TraceState::parse(&header);
        let first = keys.iter().next().unwrap();
        if keys.len() <= 32 {
            prop_assert_eq!(parsed.get(first), Some(value.as_str()));
            prop_assert_eq!(parsed.to_header(), header);
        } else {
            prop_assert_eq!(parsed, TraceState::default());
        }
    }

    #[test]
    fn config_values_never_panic(raw in ".{0,40}") {
        for kind in [
            Kind::Str, Kind::Bool, Kind::Int, Kind::ServiceName, Kind::SampleRate,
            Kind::Duration { bare_unit_ms: 1.0, signed: true }, Kind::Size, Kind::List, Kind::Map,
            Kind::Enum(&["off", "errors"]), Kind::Url,
        ] {
            let _ = config::parse(kind, &raw);
        }
    }

    #[test]
    fn otel_attribute_lists_never_panic(raw in "[ -~]{0,120}") {
        let mut warnings = Vec::new();
        let pairs = config::parse_otel_pairs(&raw, "OTEL_RESOURCE_ATTRIBUTES", &mut warnings);
        prop_assert!(pairs.iter().all(|(k, _)| !k.is_empty()));
    }

    #[test]
    fn malformed_headers_never_echo_their_values(key in "[a-zA-Z-]{1,12}", secret in "[A-Za-z0-9]{12,24}", bad_escape in "%[G-Z]{2}") {
        let raw = format!("{key}={secret}{bad_escape},other=ok");
        let mut warnings = Vec::new();
        config::parse_otel_pairs(&raw, "OTEL_EXPORTER_OTLP_HEADERS", &mut warnings);
        prop_assert_eq!(warnings.len(), 1);
        prop_assert!(!warnings[0].contains(&secret), "{} leaks the value", warnings[0]);
    }

    #[test]
    fn resolution_never_panics(env in proptest::collection::hash_map("(ELASTIC_APM_|OTEL_)[A-Z_]{1,30}", ".{0,30}", 0..12)) {
        let resolved = config::Config::resolve(&env, &HashMap::new(), &HashMap::new());
        prop_assert!(resolved.str("SERVICE_NAME").is_some());
    }

    #[test]
    fn otlp_settings_never_panic_and_keep_secrets(
        setting in "(ENDPOINT|TRACES_ENDPOINT|PROTOCOL|HEADERS|TRACES_HEADERS|COMPRESSION|TIMEOUT|INSECURE)",
        raw in "[ -~]{0,60}",
        secret in "[A-Za-z0-9]{16}",
    ) {
        let mut env = HashMap::new();
        env.insert(format!("OTEL_EXPORTER_OTLP_{setting}"), raw.clone());
        env.insert("OTEL_EXPORTER_OTLP_HEADERS".to_owned(), format!("{raw},authorization=Bearer%20{secret}"));
        let mut warnings = Vec::new();
        if let Some(settings) = otlp::settings::resolve(&env, "TRACES", &mut warnings) {
            prop_assert!(settings.endpoint.starts_with("http://") || settings.endpoint.starts_with("https://"));
        }
        prop_assert!(warnings.iter().all(|w| !w.contains(&secret)), "{:?}", warnings);
    }

    #[test]
    fn urls_never_panic_and_lose_their_credentials(
        scheme in "(https?|HTTP|ftp|[a-z][a-z+.-]{0,5})",
        user in "[a-z]{0,5}(:s3cret)?@",
        host in "([a-zA-Z0-9.-]{0,20}|\\[[0-9a-f:]{0,12}\\]?)",
        rest in "(:[0-9a-z]{0,6})?[/?#]?.{0,40}",
    ) {
        let url = format!("{scheme}://{user}{host}{rest}");
        let request = OutgoingRequest::for_url("GET", &url);
        let (name, context) = request.exit_span();
        prop_assert!(name.starts_with("GET "));
        prop_assert!(!context["http"]["url"].as_str().unwrap_or("").contains("s3cret"), "{}", url);
        prop_assert!(request.port.is_none_or(|port| (0..=65535).contains(&port)));
    }
}
