//! Property tests (proptest) for every parser that reads outside input: trace context headers and
//! configuration values (the OTLP exporter's variables included). Whatever the input, they return a value or a rejection, never panic, and
//! what they accept round-trips.

use oxapm_core::config::{self, Kind};
use oxapm_core::otlp;
use oxapm_core::traceparent::{TraceParent, TraceState};
use proptest::prelude::*;
use std::collections::HashMap;

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

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
    fn tracestate_members_survive(keys in proptest::collection::vec("[a-z][a-z0-9_*/-]{0,10}", 1..40), value in "[!-+--<>-~]{1,20}") {
        let header = keys.iter().map(|k| format!("{k}={value}")).collect::<Vec<_>>().join(",");
        let parsed = TraceState::parse(&header);
        let first = &keys[0];
        prop_assert_eq!(parsed.get(first), Some(value.as_str()));
    }

    #[test]
    fn config_values_never_panic(raw in ".{0,40}") {
        for kind in [
            Kind::Str, Kind::Bool, Kind::Int, Kind::ServiceName, Kind::SampleRate,
            Kind::Duration { bare_unit_ms: 1.0 }, Kind::Size, Kind::List, Kind::Map,
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
}
