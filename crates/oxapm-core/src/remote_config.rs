//! Central configuration's layer over the local configuration: the options APM Server (or an
//! OpAMP server) sets while the agent runs. Remote values win over local ones, as in the Elastic
//! agents; an option the server stops sending reverts to its local value. Only the options Elastic
//! lists as dynamic can be set this way.

use crate::config::{self, Config, ConfigValue};
use std::collections::HashMap;

/// The options central configuration may change (Elastic's dynamic options), by key.
pub const DYNAMIC_OPTIONS: &[&str] = &[
    "RECORDING",
    "LOG_LEVEL",
    "TRANSACTION_IGNORE_URLS",
    "CAPTURE_BODY",
    "CAPTURE_HEADERS",
    "TRANSACTION_MAX_SPANS",
    "STACK_TRACE_LIMIT",
    "SPAN_STACK_TRACE_MIN_DURATION",
    "SPAN_FRAMES_MIN_DURATION",
    "SPAN_COMPRESSION_ENABLED",
    "SPAN_COMPRESSION_EXACT_MATCH_MAX_DURATION",
    "SPAN_COMPRESSION_SAME_KIND_MAX_DURATION",
    "EXIT_SPAN_MIN_DURATION",
    "API_REQUEST_SIZE",
    "API_REQUEST_TIME",
    "SANITIZE_FIELD_NAMES",
    "TRANSACTION_SAMPLE_RATE",
    "TRACE_CONTINUATION_STRATEGY",
];

/// The remote values accepted so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RemoteLayer {
    values: Vec<(&'static str, ConfigValue)>,
}

/// What applying central configuration's values did: the options whose effective value changed,
/// and a line for each value not taken (also logged).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    pub changes: Vec<Change>,
    pub rejected: Vec<String>,
}

/// An option whose effective value a new layer changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub key: &'static str,
    pub old: ConfigValue,
    pub new: ConfigValue,
}

impl RemoteLayer {
    /// The layer the server's latest values make (names as central configuration spells them,
    /// `transaction_sample_rate`), with a warning for each value not taken: a name that is not a
    /// dynamic option, or a value that does not parse, for which the option keeps the value it
    /// had in this layer (or its local value).
    pub fn next(&self, remote: &HashMap<String, String>, warnings: &mut Vec<String>) -> RemoteLayer {
        let mut names: Vec<&String> = remote.keys().collect();
        names.sort(); // warnings in a stable order
        let mut values = Vec::new();
        for name in names {
            let raw = &remote[name];
            let key = name.to_ascii_uppercase();
            let Some(spec) = config::spec(&key).filter(|spec| DYNAMIC_OPTIONS.contains(&spec.key)) else {
                warnings.push(format!("central configuration: {name:?} is not a dynamic option; ignored"));
                continue;
            };
            match config::parse(spec.kind, raw) {
                Ok(value) => values.push((spec.key, value)),
                Err(why) => {
                    warnings.push(format!("central configuration: invalid value {raw:?} for {}: {why}; the previous value is kept", name.to_ascii_lowercase()));
                    values.extend(self.values.iter().filter(|(k, _)| *k == spec.key).cloned());
                }
            }
        }
        RemoteLayer { values }
    }

    /// The effective configuration: `local` with this layer's values in place.
    pub fn over(&self, local: &Config) -> Config {
        local.overlaid(&self.values)
    }
}

/// The dynamic options whose value differs between two effective configurations.
pub fn changes(before: &Config, after: &Config) -> Vec<Change> {
    DYNAMIC_OPTIONS
        .iter()
        .filter(|key| before.get(key) != after.get(key))
        .map(|&key| Change { key, old: before.get(key).clone(), new: after.get(key).clone() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(env: &[(&str, &str)]) -> Config {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (format!("ELASTIC_APM_{k}"), v.to_string())).collect();
        Config::resolve(&env, &HashMap::new(), &HashMap::new())
    }

    fn remote(values: &[(&str, &str)]) -> HashMap<String, String> {
        values.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn remote_values_win_and_a_removed_one_reverts_to_its_local_value() {
        let local = local(&[("TRANSACTION_SAMPLE_RATE", "0.5"), ("CAPTURE_BODY", "errors")]);
        let mut warnings = Vec::new();
        let first = RemoteLayer::default().next(&remote(&[("transaction_sample_rate", "0.1"), ("capture_body", "all")]), &mut warnings);
        let effective = first.over(&local);
        assert_eq!((effective.float("TRANSACTION_SAMPLE_RATE"), effective.str("CAPTURE_BODY")), (0.1, Some("all")));
        let second = first.next(&remote(&[("capture_body", "all")]), &mut warnings);
        let reverted = second.over(&local);
        assert_eq!(reverted.float("TRANSACTION_SAMPLE_RATE"), 0.5);
        assert_eq!(changes(&effective, &reverted), vec![Change { key: "TRANSACTION_SAMPLE_RATE", old: ConfigValue::Float(0.1), new: ConfigValue::Float(0.5) }]);
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn a_bad_value_warns_once_and_keeps_the_previous_value() {
        let local = local(&[]);
        let mut warnings = Vec::new();
        let layer = RemoteLayer::default().next(&remote(&[("transaction_max_spans", "20")]), &mut warnings);
        let next = layer.next(&remote(&[("transaction_max_spans", "lots"), ("transaction_sample_rate", "2")]), &mut warnings);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("transaction_max_spans") && warnings[0].contains("lots"), "{warnings:?}");
        assert!(warnings[1].contains("transaction_sample_rate"), "{warnings:?}");
        let effective = next.over(&local);
        assert_eq!((effective.int("TRANSACTION_MAX_SPANS"), effective.float("TRANSACTION_SAMPLE_RATE")), (20, 1.0));
    }

    #[test]
    fn only_dynamic_options_are_taken() {
        let mut warnings = Vec::new();
        let layer = RemoteLayer::default().next(&remote(&[("service_name", "other"), ("no_such_option", "1")]), &mut warnings);
        assert_eq!(layer, RemoteLayer::default());
        assert_eq!(warnings.len(), 2);
        assert!(warnings.iter().all(|w| w.contains("not a dynamic option")), "{warnings:?}");
    }

    #[test]
    fn a_remote_stack_trace_duration_wins_over_the_local_deprecated_option() {
        let local = local(&[("SPAN_FRAMES_MIN_DURATION", "-1")]);
        let layer = RemoteLayer::default().next(&remote(&[("span_stack_trace_min_duration", "20ms")]), &mut Vec::new());
        let shaping = crate::shaping::ShapingSettings::from_config(&layer.over(&local));
        assert_eq!(shaping.stack_trace_min_us, Some(20_000));
    }
}
