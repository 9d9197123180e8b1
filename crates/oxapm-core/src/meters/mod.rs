//! The OpenTelemetry metrics SDK: instruments registered per meter, their measurements aggregated
//! here (not in Python), and collected on the export thread every `metrics_interval`
//! (`OTEL_METRIC_EXPORT_INTERVAL`, which sets the same option; 0 turns metrics off) and at each
//! flush and close, into `points` the OTLP and intake encoders serialize. One `MeterRegistry` per meter provider; the engine collects every registry
//! attached to it (`MeterReader`). Elastic's own metricsets are `crate::metrics`.

pub mod aggregation;
pub mod attributes;
pub mod exponential;
pub mod points;
mod registry;
mod stream;
pub mod view;

pub use registry::{AttachedMeters, Instrument, InstrumentDescriptor, MeterReader, MeterRegistry, Observer};

use crate::config::Config;

/// The spec's default cardinality limit per metric stream.
pub const DEFAULT_CARDINALITY_LIMIT: usize = 2000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstrumentKind {
    Counter,
    UpDownCounter,
    Histogram,
    Gauge,
    ObservableCounter,
    ObservableUpDownCounter,
    ObservableGauge,
}

impl InstrumentKind {
    pub fn is_observable(self) -> bool {
        matches!(self, InstrumentKind::ObservableCounter | InstrumentKind::ObservableUpDownCounter | InstrumentKind::ObservableGauge)
    }

    /// Counters only go up: negative measurements are ignored and their sums are monotonic.
    pub fn is_monotonic(self) -> bool {
        matches!(self, InstrumentKind::Counter | InstrumentKind::ObservableCounter | InstrumentKind::Histogram)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Temporality {
    /// Since the previous collection.
    Delta,
    /// Since the stream started.
    Cumulative,
}

/// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemporalityPreference {
    Cumulative,
    Delta,
    LowMemory,
}

impl TemporalityPreference {
    /// The spec's table: `delta` makes counters and histograms (observable counters too) delta
    /// and keeps up-down counters cumulative; `lowmemory` is `delta` except for observable
    /// counters. Gauges keep their last value either way.
    pub fn for_kind(self, kind: InstrumentKind) -> Temporality {
        use InstrumentKind::*;
        match (self, kind) {
            (TemporalityPreference::Delta, Counter | Histogram | ObservableCounter) | (TemporalityPreference::LowMemory, Counter | Histogram) => {
                Temporality::Delta
            }
            _ => Temporality::Cumulative,
        }
    }
}

/// What the configuration decides for every meter provider.
#[derive(Clone, Debug)]
pub struct MeterSettings {
    pub temporality: TemporalityPreference,
    /// `OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION=base2_exponential_bucket_histogram`.
    pub exponential_histograms: bool,
    pub cardinality_limit: usize,
}

impl Default for MeterSettings {
    fn default() -> Self {
        MeterSettings { temporality: TemporalityPreference::Cumulative, exponential_histograms: false, cardinality_limit: DEFAULT_CARDINALITY_LIMIT }
    }
}

impl MeterSettings {
    pub fn from_config(config: &Config) -> MeterSettings {
        let temporality = match config.str("METRICS_TEMPORALITY_PREFERENCE") {
            Some("delta") => TemporalityPreference::Delta,
            Some("lowmemory") => TemporalityPreference::LowMemory,
            _ => TemporalityPreference::Cumulative,
        };
        let exponential_histograms = config.str("METRICS_DEFAULT_HISTOGRAM_AGGREGATION") == Some("base2_exponential_bucket_histogram");
        MeterSettings { temporality, exponential_histograms, ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporality_follows_the_preference_per_kind() {
        use InstrumentKind::*;
        let kinds = [Counter, UpDownCounter, Histogram, Gauge, ObservableCounter, ObservableUpDownCounter, ObservableGauge];
        let of = |preference: TemporalityPreference| kinds.map(|kind| preference.for_kind(kind) == Temporality::Delta);
        assert_eq!(of(TemporalityPreference::Cumulative), [false; 7]);
        assert_eq!(of(TemporalityPreference::Delta), [true, false, true, false, true, false, false]);
        assert_eq!(of(TemporalityPreference::LowMemory), [true, false, true, false, false, false, false]);
    }

    #[test]
    fn settings_from_the_environment() {
        let env = std::collections::HashMap::from([
            ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE".to_owned(), "Delta".to_owned()),
            ("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION".to_owned(), "base2_exponential_bucket_histogram".to_owned()),
        ]);
        let settings = MeterSettings::from_config(&Config::resolve(&env, &Default::default(), &Default::default()));
        assert_eq!((settings.temporality, settings.exponential_histograms), (TemporalityPreference::Delta, true));
        let defaults = MeterSettings::from_config(&Config::resolve(&Default::default(), &Default::default(), &Default::default()));
        assert_eq!((defaults.temporality, defaults.exponential_histograms), (TemporalityPreference::Cumulative, false));
    }
}
