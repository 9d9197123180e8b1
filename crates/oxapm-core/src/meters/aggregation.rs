//! How measurements of one series add up: a sum, the last value, a histogram with explicit
//! bucket boundaries or a base-2 exponential one. `Aggregation` is what a view asks for;
//! `Aggregator` is the running state of one series, and also what a collected point carries.

use super::exponential::{ExponentialHistogram, DEFAULT_MAX_SCALE, DEFAULT_MAX_SIZE};
use super::InstrumentKind;
use std::sync::Arc;

/// The OpenTelemetry SDK's default boundaries for an explicit-bucket histogram.
pub const DEFAULT_BOUNDARIES: [f64; 15] = [0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0, 10000.0];

#[derive(Clone, Debug, Default, PartialEq)]
pub enum Aggregation {
    /// What the instrument kind implies (`resolve`).
    #[default]
    Default,
    /// Measurements are ignored and nothing is exported.
    Drop,
    Sum,
    LastValue,
    ExplicitBucketHistogram {
        boundaries: Arc<[f64]>,
        record_min_max: bool,
    },
    ExponentialHistogram {
        max_size: usize,
        max_scale: i32,
        record_min_max: bool,
    },
}

impl Aggregation {
    pub fn exponential() -> Aggregation {
        Aggregation::ExponentialHistogram { max_size: DEFAULT_MAX_SIZE, max_scale: DEFAULT_MAX_SCALE, record_min_max: true }
    }

    /// The aggregation `Default` stands for: sums for counters, the last value for gauges, and
    /// for histograms the exponential one when it is the configured default, else explicit
    /// buckets at the instrument's advised boundaries or the SDK's.
    pub fn resolve(&self, kind: InstrumentKind, advised_boundaries: Option<&Arc<[f64]>>, exponential_by_default: bool) -> Aggregation {
        if *self != Aggregation::Default {
            return self.clone();
        }
        match kind {
            InstrumentKind::Counter | InstrumentKind::UpDownCounter | InstrumentKind::ObservableCounter | InstrumentKind::ObservableUpDownCounter => {
                Aggregation::Sum
            }
            InstrumentKind::Gauge | InstrumentKind::ObservableGauge => Aggregation::LastValue,
            InstrumentKind::Histogram if exponential_by_default => Aggregation::exponential(),
            InstrumentKind::Histogram => Aggregation::ExplicitBucketHistogram {
                boundaries: advised_boundaries.cloned().unwrap_or_else(|| Arc::from(DEFAULT_BOUNDARIES)),
                record_min_max: true,
            },
        }
    }
}

/// A measured value: integers stay integers until a float is added to them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }

    pub fn plus(self, other: Number) -> Number {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => Number::Int(a.saturating_add(b)),
            (a, b) => Number::Float(a.as_f64() + b.as_f64()),
        }
    }

    pub fn minus(self, other: Number) -> Number {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => Number::Int(a.saturating_sub(b)),
            (a, b) => Number::Float(a.as_f64() - b.as_f64()),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct HistogramState {
    /// One more than the boundaries: the last bucket is (last boundary, +inf).
    pub counts: Vec<u64>,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Aggregator {
    Sum(Number),
    LastValue(Number),
    Histogram(HistogramState),
    Exponential(Box<ExponentialHistogram>),
}

impl Aggregator {
    /// None for `Drop` (and `Default`, which is resolved first).
    pub fn new(aggregation: &Aggregation) -> Option<Aggregator> {
        Some(match aggregation {
            Aggregation::Default | Aggregation::Drop => return None,
            Aggregation::Sum => Aggregator::Sum(Number::Int(0)),
            Aggregation::LastValue => Aggregator::LastValue(Number::Int(0)),
            Aggregation::ExplicitBucketHistogram { boundaries, .. } => {
                Aggregator::Histogram(HistogramState { counts: vec![0; boundaries.len() + 1], count: 0, sum: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY })
            }
            Aggregation::ExponentialHistogram { max_size, max_scale, .. } => {
                Aggregator::Exponential(Box::new(ExponentialHistogram::new(*max_size, *max_scale)))
            }
        })
    }

    pub fn update(&mut self, value: Number, aggregation: &Aggregation) {
        match self {
            Aggregator::Sum(sum) => *sum = sum.plus(value),
            Aggregator::LastValue(last) => *last = value,
            Aggregator::Histogram(state) => {
                let value = value.as_f64();
                if value.is_nan() {
                    return;
                }
                let Aggregation::ExplicitBucketHistogram { boundaries, .. } = aggregation else { return };
                // Buckets are (previous, boundary]: the first boundary not below the value.
                let bucket = boundaries.partition_point(|boundary| *boundary < value);
                state.counts[bucket] += 1;
                state.count += 1;
                state.sum += value;
                state.min = state.min.min(value);
                state.max = state.max.max(value);
            }
            Aggregator::Exponential(histogram) => histogram.record(value.as_f64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(aggregation: &Aggregation, values: &[Number]) -> Aggregator {
        let mut aggregator = Aggregator::new(aggregation).unwrap();
        for value in values {
            aggregator.update(*value, aggregation);
        }
        aggregator
    }

    #[test]
    fn sums_stay_integers_until_a_float_comes() {
        assert_eq!(measured(&Aggregation::Sum, &[Number::Int(2), Number::Int(3)]), Aggregator::Sum(Number::Int(5)));
        assert_eq!(measured(&Aggregation::Sum, &[Number::Int(2), Number::Float(0.5)]), Aggregator::Sum(Number::Float(2.5)));
        assert_eq!(measured(&Aggregation::LastValue, &[Number::Int(2), Number::Float(-1.5)]), Aggregator::LastValue(Number::Float(-1.5)));
    }

    #[test]
    fn explicit_buckets_are_closed_above() {
        let aggregation = Aggregation::ExplicitBucketHistogram { boundaries: Arc::from([0.0, 10.0, 100.0]), record_min_max: true };
        let values = [-1.0, 0.0, 0.5, 10.0, 10.5, 1000.0, f64::NAN].map(Number::Float);
        let Aggregator::Histogram(state) = measured(&aggregation, &values) else { panic!() };
        assert_eq!(state.counts, [2, 2, 1, 1]);
        assert_eq!((state.count, state.sum, state.min, state.max), (6, 1020.0, -1.0, 1000.0));
    }

    #[test]
    fn the_default_follows_the_instrument_kind() {
        let advised: Arc<[f64]> = Arc::from([1.0, 2.0]);
        assert_eq!(Aggregation::Default.resolve(InstrumentKind::ObservableUpDownCounter, None, false), Aggregation::Sum);
        assert_eq!(Aggregation::Default.resolve(InstrumentKind::Gauge, None, true), Aggregation::LastValue);
        assert_eq!(Aggregation::Default.resolve(InstrumentKind::Histogram, None, true), Aggregation::exponential());
        let Aggregation::ExplicitBucketHistogram { boundaries, .. } = Aggregation::Default.resolve(InstrumentKind::Histogram, Some(&advised), false) else {
            panic!()
        };
        assert_eq!(&*boundaries, [1.0, 2.0]);
        let Aggregation::ExplicitBucketHistogram { boundaries, .. } = Aggregation::Default.resolve(InstrumentKind::Histogram, None, false) else { panic!() };
        assert_eq!(boundaries.len(), 15);
        assert_eq!(Aggregation::Drop.resolve(InstrumentKind::Counter, None, false), Aggregation::Drop);
    }
}
