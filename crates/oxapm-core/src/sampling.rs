//! Head sampling of transactions. OpenTelemetry's built-in samplers (`OTEL_TRACES_SAMPLER`) are
//! a ratio and whether a parent's decision wins; Elastic's `transaction_sample_rate` is
//! `parentbased_traceidratio` with that ratio.

use crate::ids::TraceId;

/// The `OTEL_TRACES_SAMPLER` values the engine implements.
pub const SAMPLER_NAMES: &[&str] = &["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"];

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampler {
    /// The share of traces sampled when the ratio decides, in [0, 1].
    pub rate: f64,
    /// Whether a parent's decision (remote or local) is followed.
    pub parent_based: bool,
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler { rate: 1.0, parent_based: true }
    }
}

impl Sampler {
    /// `name` is one of `SAMPLER_NAMES`; the ratio samplers take `rate`.
    pub fn named(name: &str, rate: f64) -> Option<Sampler> {
        let parent_based = name.starts_with("parentbased_");
        let rate = match name.trim_start_matches("parentbased_") {
            "always_on" => 1.0,
            "always_off" => 0.0,
            "traceidratio" => rate,
            _ => return None,
        };
        Some(Sampler { rate, parent_based })
    }

    /// `parent_sampled` is the parent's decision when the transaction continues a trace.
    pub fn sample(&self, trace_id: &TraceId, parent_sampled: Option<bool>) -> bool {
        match parent_sampled {
            Some(sampled) if self.parent_based => sampled,
            _ => self.ratio_keeps(trace_id),
        }
    }

    /// Decided on the trace id, as OpenTelemetry's TraceIdRatioBased does (its lower 64 bits
    /// against `rate * 2^64`), so every service with the same ratio keeps the same traces.
    fn ratio_keeps(&self, trace_id: &TraceId) -> bool {
        if self.rate >= 1.0 {
            return true;
        }
        let bound = (self.rate * 18_446_744_073_709_551_616.0).round() as u64;
        let low = u64::from_be_bytes(trace_id.0[8..].try_into().unwrap_or_default());
        low < bound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace_id(low: u64) -> TraceId {
        let mut bytes = [7u8; 16];
        bytes[8..].copy_from_slice(&low.to_be_bytes());
        TraceId(bytes)
    }

    #[test]
    fn named_samplers() {
        assert_eq!(Sampler::named("always_on", 0.3), Some(Sampler { rate: 1.0, parent_based: false }));
        assert_eq!(Sampler::named("parentbased_always_off", 0.3), Some(Sampler { rate: 0.0, parent_based: true }));
        assert_eq!(Sampler::named("traceidratio", 0.3), Some(Sampler { rate: 0.3, parent_based: false }));
        assert_eq!(Sampler::named("jaeger_remote", 0.3), None);
    }

    #[test]
    fn the_ratio_decides_on_the_trace_id() {
        let half = Sampler { rate: 0.5, parent_based: false };
        assert!(half.sample(&trace_id(0), None));
        assert!(half.sample(&trace_id((1 << 63) - 1), None));
        assert!(!half.sample(&trace_id(1 << 63), None));
        assert!(!Sampler { rate: 0.0, parent_based: false }.sample(&trace_id(0), None));
        assert!(Sampler { rate: 1.0, parent_based: false }.sample(&trace_id(u64::MAX), None));
    }

    #[test]
    fn parent_based_samplers_follow_the_parent() {
        let off = Sampler { rate: 0.0, parent_based: true };
        assert!(off.sample(&trace_id(0), Some(true)));
        assert!(!off.sample(&trace_id(0), None));
        let on = Sampler { rate: 1.0, parent_based: true };
        assert!(!on.sample(&trace_id(0), Some(false)));
        // Not parent-based: the ratio decides even under a sampled parent.
        assert!(!Sampler { rate: 0.0, parent_based: false }.sample(&trace_id(0), Some(true)));
    }
}
