//! Trace shaping, as the Elastic agents do it: what a transaction reports of its spans. Consecutive
//! short exit spans to the same service are compressed into one composite span, very short exit
//! spans are dropped, spans past `transaction_max_spans` are counted but not reported, and the
//! time spent in each kind of span is summed for the breakdown metrics.
//!
//! The settings are read once per transaction, when it starts: a change (central configuration)
//! applies to the transactions started after it.

use crate::config::Config;

/// What a finished transaction adds to the breakdown metrics: the self time (time not spent in a
/// child) of its spans of one type and subtype, or of the transaction itself as type `app`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfTime {
    pub span_type: String,
    pub subtype: Option<String>,
    pub count: u64,
    pub sum_us: u64,
}

/// `span_compression_*`: the longest spans each strategy compresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compression {
    pub exact_match_max_us: u64,
    pub same_kind_max_us: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapingSettings {
    /// `transaction_max_spans`; None (a negative value) reports every span.
    pub max_spans: Option<u32>,
    /// None when `span_compression_enabled` is false.
    pub compression: Option<Compression>,
    /// `exit_span_min_duration`: shorter exit spans are dropped.
    pub exit_span_min_us: u64,
    /// `span_stack_trace_min_duration`: spans at least this long get a stack trace; None: none do.
    pub stack_trace_min_us: Option<u64>,
    /// `breakdown_metrics`.
    pub breakdown: bool,
}

impl Default for ShapingSettings {
    fn default() -> Self {
        ShapingSettings::from_config(&Config::resolve(&Default::default(), &Default::default(), &Default::default()))
    }
}

fn micros(ms: f64) -> u64 {
    (ms.max(0.0) * 1000.0).round() as u64
}

impl ShapingSettings {
    pub fn from_config(config: &Config) -> ShapingSettings {
        let max_spans = config.int("TRANSACTION_MAX_SPANS");
        let compression = config.bool("SPAN_COMPRESSION_ENABLED").then(|| Compression {
            exact_match_max_us: micros(config.float("SPAN_COMPRESSION_EXACT_MATCH_MAX_DURATION")),
            same_kind_max_us: micros(config.float("SPAN_COMPRESSION_SAME_KIND_MAX_DURATION")),
        });
        // The new option wins; the deprecated one counts the other way round: -1 always, 0 never.
        let stack_trace_min_ms = match (config.get("SPAN_STACK_TRACE_MIN_DURATION"), config.get("SPAN_FRAMES_MIN_DURATION")) {
            (_, crate::config::ConfigValue::Float(frames)) if !config.is_explicit("SPAN_STACK_TRACE_MIN_DURATION") => match *frames {
                f if f < 0.0 => 0.0,
                f if f == 0.0 => -1.0,
                f => f,
            },
            _ => config.float("SPAN_STACK_TRACE_MIN_DURATION"),
        };
        ShapingSettings {
            max_spans: u32::try_from(max_spans).ok(),
            compression,
            exit_span_min_us: micros(config.float("EXIT_SPAN_MIN_DURATION")),
            stack_trace_min_us: (stack_trace_min_ms >= 0.0).then(|| micros(stack_trace_min_ms)),
            breakdown: config.bool("BREAKDOWN_METRICS"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(env: &[(&str, &str)]) -> ShapingSettings {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (format!("ELASTIC_APM_{k}"), v.to_string())).collect();
        ShapingSettings::from_config(&Config::resolve(&env, &HashMap::new(), &HashMap::new()))
    }

    #[test]
    fn the_elastic_defaults() {
        let defaults = settings(&[]);
        assert_eq!(defaults.max_spans, Some(500));
        assert_eq!(defaults.compression, Some(Compression { exact_match_max_us: 50_000, same_kind_max_us: 0 }));
        assert_eq!((defaults.exit_span_min_us, defaults.stack_trace_min_us, defaults.breakdown), (0, Some(5_000), true));
    }

    #[test]
    fn negative_values_mean_unlimited_or_never() {
        let s = settings(&[("TRANSACTION_MAX_SPANS", "-1"), ("SPAN_STACK_TRACE_MIN_DURATION", "-1ms"), ("SPAN_COMPRESSION_ENABLED", "false")]);
        assert_eq!((s.max_spans, s.stack_trace_min_us, s.compression), (None, None, None));
    }

    #[test]
    fn the_deprecated_frames_option_counts_the_other_way_round() {
        assert_eq!(settings(&[("SPAN_FRAMES_MIN_DURATION", "-1")]).stack_trace_min_us, Some(0));
        assert_eq!(settings(&[("SPAN_FRAMES_MIN_DURATION", "0")]).stack_trace_min_us, None);
        assert_eq!(settings(&[("SPAN_FRAMES_MIN_DURATION", "20ms")]).stack_trace_min_us, Some(20_000));
        let both = settings(&[("SPAN_FRAMES_MIN_DURATION", "0"), ("SPAN_STACK_TRACE_MIN_DURATION", "1ms")]);
        assert_eq!(both.stack_trace_min_us, Some(1_000));
    }
}
