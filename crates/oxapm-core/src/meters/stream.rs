//! One metric stream: what an instrument's measurements become through one view (or none), with
//! a series per attribute set up to the cardinality limit and the overflow series past it.

use super::aggregation::{Aggregation, Aggregator, Number};
use super::attributes::AttributeSet;
use super::points::{Metric, Point, Shape};
use super::{InstrumentKind, Temporality};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug)]
pub struct Stream {
    pub name: String,
    pub description: String,
    pub unit: String,
    pub kind: InstrumentKind,
    /// Resolved: never `Default` nor `Drop`.
    pub aggregation: Aggregation,
    pub temporality: Temporality,
    pub attribute_keys: Option<Vec<String>>,
    pub cardinality_limit: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    series: HashMap<AttributeSet, Aggregator>,
    /// When what the next collection reports began: the stream's start (cumulative) or the
    /// previous collection (delta).
    start_us: u64,
    /// Observable sums reported as deltas: the totals the previous collection observed.
    previous: HashMap<AttributeSet, Number>,
}

impl Stream {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        description: String,
        unit: String,
        kind: InstrumentKind,
        aggregation: Aggregation,
        temporality: Temporality,
        attribute_keys: Option<Vec<String>>,
        cardinality_limit: usize,
        start_us: u64,
    ) -> Stream {
        let state = State { series: HashMap::new(), start_us, previous: HashMap::new() };
        Stream {
            name,
            description,
            unit,
            kind,
            aggregation,
            temporality,
            attribute_keys,
            cardinality_limit: cardinality_limit.max(1),
            state: Mutex::new(state),
        }
    }

    /// The hot path: one lock, and no allocation when the series exists.
    pub fn record(&self, value: Number, attributes: AttributeSet) {
        let attributes = match &self.attribute_keys {
            Some(keys) => attributes.only(keys),
            None => attributes,
        };
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        add_to(&mut state.series, value, attributes, &self.aggregation, self.cardinality_limit);
    }

    /// The points of this collection. Observable streams are given what the callbacks observed;
    /// synchronous ones report their series: every one when cumulative, those measured since the
    /// previous collection (and then forgotten) when delta.
    pub fn collect(&self, now_us: u64, observed: Option<&[(Number, AttributeSet)]>) -> Option<Metric> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let start_us = state.start_us;
        let delta = self.temporality == Temporality::Delta;
        let series: Vec<(AttributeSet, Aggregator)> = match observed {
            Some(observations) => {
                let mut this_time = HashMap::new();
                for (value, attributes) in observations {
                    let attributes = match &self.attribute_keys {
                        Some(keys) => attributes.only(keys),
                        None => attributes.clone(),
                    };
                    add_to(&mut this_time, *value, attributes, &self.aggregation, self.cardinality_limit);
                }
                if delta {
                    self.observed_deltas(&mut state.previous, this_time)
                } else {
                    this_time.into_iter().collect()
                }
            }
            None if delta => state.series.drain().collect(),
            None => state.series.iter().map(|(attributes, aggregator)| (attributes.clone(), aggregator.clone())).collect(),
        };
        if delta {
            state.start_us = now_us;
        }
        drop(state);
        if series.is_empty() {
            return None;
        }
        let gauge = matches!(self.aggregation, Aggregation::LastValue);
        let points =
            series.into_iter().map(|(attributes, value)| Point { attributes, start_us: if gauge { 0 } else { start_us }, time_us: now_us, value }).collect();
        Some(Metric {
            name: self.name.clone(),
            description: self.description.clone(),
            unit: self.unit.clone(),
            shape: self.shape(),
            temporality: self.temporality,
            points,
        })
    }

    /// Observed totals minus the previous collection's, which they replace.
    fn observed_deltas(&self, previous: &mut HashMap<AttributeSet, Number>, totals: HashMap<AttributeSet, Aggregator>) -> Vec<(AttributeSet, Aggregator)> {
        let mut out = Vec::with_capacity(totals.len());
        let mut next = HashMap::with_capacity(totals.len());
        for (attributes, aggregator) in totals {
            let Aggregator::Sum(total) = aggregator else {
                out.push((attributes, aggregator));
                continue;
            };
            let before = previous.get(&attributes).copied().unwrap_or(Number::Int(0));
            next.insert(attributes.clone(), total);
            out.push((attributes, Aggregator::Sum(total.minus(before))));
        }
        *previous = next;
        out
    }

    fn shape(&self) -> Shape {
        match &self.aggregation {
            Aggregation::LastValue | Aggregation::Default | Aggregation::Drop => Shape::Gauge,
            Aggregation::Sum => Shape::Sum { monotonic: self.kind.is_monotonic() },
            Aggregation::ExplicitBucketHistogram { boundaries, record_min_max } => {
                Shape::Histogram { boundaries: boundaries.clone(), record_min_max: *record_min_max }
            }
            Aggregation::ExponentialHistogram { record_min_max, .. } => Shape::ExponentialHistogram { record_min_max: *record_min_max },
        }
    }
}

/// Adds to the series of `attributes`, or to the overflow series when it would be a new series
/// past the limit (the overflow series counts in the limit).
fn add_to(series: &mut HashMap<AttributeSet, Aggregator>, value: Number, attributes: AttributeSet, aggregation: &Aggregation, limit: usize) {
    if let Some(aggregator) = series.get_mut(&attributes) {
        aggregator.update(value, aggregation);
        return;
    }
    let overflow = AttributeSet::overflow();
    let has_overflow = series.contains_key(&overflow);
    let key = if series.len() - usize::from(has_overflow) + 1 >= limit { overflow } else { attributes };
    if let Some(aggregator) = series.get_mut(&key) {
        aggregator.update(value, aggregation);
    } else if let Some(mut aggregator) = Aggregator::new(aggregation) {
        aggregator.update(value, aggregation);
        series.insert(key, aggregator);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AttributeValue;

    fn stream(kind: InstrumentKind, aggregation: Aggregation, temporality: Temporality, limit: usize) -> Stream {
        Stream::new("s".into(), String::new(), String::new(), kind, aggregation, temporality, None, limit, 100)
    }

    fn attrs(route: &str) -> AttributeSet {
        AttributeSet::new(vec![("route".into(), AttributeValue::Str(route.into()))])
    }

    fn sums(metric: &Metric) -> Vec<(String, f64, u64)> {
        let mut out: Vec<_> = metric
            .points
            .iter()
            .map(|p| {
                let Aggregator::Sum(n) = p.value else { panic!() };
                (format!("{:?}", p.attributes.pairs()), n.as_f64(), p.start_us)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn cumulative_sums_keep_counting_delta_sums_restart() {
        let cumulative = stream(InstrumentKind::Counter, Aggregation::Sum, Temporality::Cumulative, 2000);
        let delta = stream(InstrumentKind::Counter, Aggregation::Sum, Temporality::Delta, 2000);
        for s in [&cumulative, &delta] {
            s.record(Number::Int(2), attrs("/a"));
            s.record(Number::Int(3), attrs("/a"));
            s.record(Number::Int(1), attrs("/b"));
        }
        assert_eq!(sums(&cumulative.collect(200, None).unwrap()).iter().map(|s| s.1).collect::<Vec<_>>(), [5.0, 1.0]);
        assert_eq!(sums(&delta.collect(200, None).unwrap()).iter().map(|s| (s.1, s.2)).collect::<Vec<_>>(), [(5.0, 100), (1.0, 100)]);
        cumulative.record(Number::Int(1), attrs("/a"));
        delta.record(Number::Int(1), attrs("/a"));
        let again = cumulative.collect(300, None).unwrap();
        assert_eq!(sums(&again).iter().map(|s| (s.1, s.2)).collect::<Vec<_>>(), [(6.0, 100), (1.0, 100)]);
        assert_eq!(again.shape, Shape::Sum { monotonic: true });
        // Only what was measured since, starting at the previous collection.
        assert_eq!(sums(&delta.collect(300, None).unwrap()).iter().map(|s| (s.1, s.2)).collect::<Vec<_>>(), [(1.0, 200)]);
        assert!(delta.collect(400, None).is_none());
    }

    #[test]
    fn series_past_the_limit_go_to_the_overflow_series() {
        let s = stream(InstrumentKind::UpDownCounter, Aggregation::Sum, Temporality::Cumulative, 3);
        for route in ["/a", "/b", "/c", "/d", "/a"] {
            s.record(Number::Int(1), attrs(route));
        }
        let metric = s.collect(200, None).unwrap();
        assert_eq!(metric.shape, Shape::Sum { monotonic: false });
        let got = sums(&metric);
        assert_eq!(got.len(), 3, "{got:?}");
        let overflow = got.iter().find(|s| s.0.contains("otel.metric.overflow")).unwrap();
        assert_eq!(overflow.1, 2.0);
        assert_eq!(got.iter().find(|s| s.0.contains("/a")).unwrap().1, 2.0);
    }

    #[test]
    fn observable_sums_as_deltas_and_gauges_as_last_values() {
        let counter = stream(InstrumentKind::ObservableCounter, Aggregation::Sum, Temporality::Delta, 2000);
        let first = counter.collect(200, Some(&[(Number::Int(10), attrs("/a"))])).unwrap();
        assert_eq!(sums(&first).iter().map(|s| (s.1, s.2)).collect::<Vec<_>>(), [(10.0, 100)]);
        let second = counter.collect(300, Some(&[(Number::Int(15), attrs("/a"))])).unwrap();
        assert_eq!(sums(&second).iter().map(|s| (s.1, s.2)).collect::<Vec<_>>(), [(5.0, 200)]);
        let cumulative = stream(InstrumentKind::ObservableCounter, Aggregation::Sum, Temporality::Cumulative, 2000);
        cumulative.collect(200, Some(&[(Number::Int(10), attrs("/a"))]));
        let total = cumulative.collect(300, Some(&[(Number::Int(15), attrs("/a"))])).unwrap();
        assert_eq!(sums(&total).iter().map(|s| (s.1, s.2)).collect::<Vec<_>>(), [(15.0, 100)]);
        let gauge = stream(InstrumentKind::ObservableGauge, Aggregation::LastValue, Temporality::Cumulative, 2000);
        let metric = gauge.collect(300, Some(&[(Number::Float(0.5), attrs("/a")), (Number::Float(0.7), attrs("/a"))])).unwrap();
        assert_eq!((metric.shape.clone(), metric.points.len(), metric.points[0].start_us), (Shape::Gauge, 1, 0));
        assert_eq!(metric.points[0].value, Aggregator::LastValue(Number::Float(0.7)));
        assert!(gauge.collect(400, Some(&[])).is_none(), "only what the callbacks observe this time");
    }

    #[test]
    fn attribute_keys_merge_series() {
        let mut s = stream(InstrumentKind::Counter, Aggregation::Sum, Temporality::Cumulative, 2000);
        s.attribute_keys = Some(vec!["route".into()]);
        let with_code = |code| AttributeSet::new(vec![("route".into(), AttributeValue::Str("/a".into())), ("code".into(), AttributeValue::Int(code))]);
        s.record(Number::Int(1), with_code(200));
        s.record(Number::Int(1), with_code(500));
        assert_eq!(sums(&s.collect(200, None).unwrap()), [(format!("{:?}", attrs("/a").pairs()), 2.0, 100)]);
    }
}
