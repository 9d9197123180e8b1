//! OpenTelemetry metrics as intake v2 metricsets, the way APM Server converts OTLP metrics: the
//! points of one time and attribute set make one metricset, the attributes its `tags`; monotonic
//! sums are `counter` samples, gauges and the sums that may go down (up-down counters) `gauge`
//! ones, and histograms `histogram` samples whose `values` are
//! bucket midpoints and `counts` the non-empty buckets' counts.

use crate::meters::aggregation::{Aggregator, HistogramState, Number};
use crate::meters::attributes::AttributeSet;
use crate::meters::exponential::ExponentialHistogram;
use crate::meters::points::{ScopeMetrics, Shape};
use crate::model::{sanitize_label_key, AttributeValue};
use serde_json::{json, Map, Value};

/// Appends one NDJSON metricset line per time and attribute set.
pub fn encode(metrics: &ScopeMetrics, out: &mut Vec<u8>) {
    let mut metricsets: Vec<(u64, &AttributeSet, Map<String, Value>)> = Vec::new();
    for metric in &metrics.metrics {
        for point in &metric.points {
            let Some(sample) = sample(&metric.shape, &point.value) else { continue };
            // A name twice (two streams named alike) goes to another metricset.
            let existing = metricsets
                .iter_mut()
                .find(|(time, attributes, samples)| *time == point.time_us && **attributes == point.attributes && !samples.contains_key(&metric.name));
            match existing {
                Some((_, _, samples)) => {
                    samples.insert(metric.name.clone(), sample);
                }
                None => metricsets.push((point.time_us, &point.attributes, Map::from_iter([(metric.name.clone(), sample)]))),
            }
        }
    }
    for (time, attributes, samples) in metricsets {
        let mut metricset = json!({"timestamp": time, "samples": samples});
        let tags = tags(attributes);
        if !tags.is_empty() {
            metricset["tags"] = Value::Object(tags);
        }
        crate::json::value(out, &json!({ "metricset": metricset }));
        out.push(b'\n');
    }
}

/// Tags take strings, booleans and numbers; arrays are left out, and keys lose `.`, `*`, `"`.
fn tags(attributes: &AttributeSet) -> Map<String, Value> {
    attributes
        .pairs()
        .iter()
        .filter_map(|(key, value)| {
            let value = match value {
                AttributeValue::Str(s) => json!(s),
                AttributeValue::Bool(b) => json!(b),
                AttributeValue::Int(i) => json!(i),
                AttributeValue::Float(f) if f.is_finite() => json!(f),
                _ => return None,
            };
            Some((sanitize_label_key(key), value))
        })
        .collect()
}

fn number(n: Number) -> Option<Value> {
    match n {
        Number::Int(i) => Some(json!(i)),
        Number::Float(f) if f.is_finite() => Some(json!(f)),
        Number::Float(_) => None,
    }
}

fn sample(shape: &Shape, value: &Aggregator) -> Option<Value> {
    match (shape, value) {
        (Shape::Sum { monotonic: true }, Aggregator::Sum(n)) => Some(json!({"value": number(*n)?, "type": "counter"})),
        (Shape::Sum { monotonic: false }, Aggregator::Sum(n)) | (Shape::Gauge, Aggregator::LastValue(n)) => {
            Some(json!({"value": number(*n)?, "type": "gauge"}))
        }
        (Shape::Histogram { boundaries, .. }, Aggregator::Histogram(state)) => histogram(explicit_buckets(boundaries, state)),
        (_, Aggregator::Exponential(histogram)) => self::histogram(exponential_buckets(histogram)),
        _ => None,
    }
}

fn histogram(buckets: Vec<(f64, u64)>) -> Option<Value> {
    if buckets.is_empty() {
        return None;
    }
    let (values, counts): (Vec<f64>, Vec<u64>) = buckets.into_iter().unzip();
    Some(json!({"type": "histogram", "values": values, "counts": counts}))
}

/// (midpoint, count) of the non-empty buckets: the first bucket (-inf, b0] at b0 (halved when
/// positive), the last (bn, +inf) at bn, the others halfway between their boundaries.
fn explicit_buckets(boundaries: &[f64], state: &HistogramState) -> Vec<(f64, u64)> {
    let last = state.counts.len() - 1;
    state
        .counts
        .iter()
        .enumerate()
        .filter(|(_, count)| **count > 0)
        .map(|(i, count)| {
            let value = match i {
                _ if boundaries.is_empty() => state.sum / state.count as f64,
                0 if boundaries[0] > 0.0 => boundaries[0] / 2.0,
                0 => boundaries[0],
                i if i == last => boundaries[i - 1],
                i => boundaries[i - 1] + (boundaries[i] - boundaries[i - 1]) / 2.0,
            };
            (value, *count)
        })
        .collect()
}

/// (midpoint, count) of the non-empty buckets, ascending: negative ones, zero, positive ones.
fn exponential_buckets(histogram: &ExponentialHistogram) -> Vec<(f64, u64)> {
    let base = 2f64.powf(2f64.powi(-histogram.scale));
    let midpoint = |index: i32| (base.powi(index) + base.powi(index + 1)) / 2.0;
    let of = |offset: i32, counts: &[u64]| counts.iter().enumerate().filter(|(_, c)| **c > 0).map(move |(i, c)| (offset + i as i32, *c)).collect::<Vec<_>>();
    let mut out: Vec<(f64, u64)> = of(histogram.negative.offset, &histogram.negative.counts).into_iter().rev().map(|(i, c)| (-midpoint(i), c)).collect();
    if histogram.zero_count > 0 {
        out.push((0.0, histogram.zero_count));
    }
    out.extend(of(histogram.positive.offset, &histogram.positive.counts).into_iter().map(|(i, c)| (midpoint(i), c)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meters::aggregation::Aggregation;
    use crate::meters::points::{MeterScope, Metric, Point};
    use crate::meters::Temporality;
    use std::sync::Arc;

    fn lines(metrics: &ScopeMetrics) -> Vec<Value> {
        let mut out = Vec::new();
        encode(metrics, &mut out);
        out.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect()
    }

    fn metric(name: &str, shape: Shape, points: Vec<Point>) -> Metric {
        Metric { name: name.into(), description: String::new(), unit: String::new(), shape, temporality: Temporality::Cumulative, points }
    }

    fn point(route: &str, value: Aggregator) -> Point {
        let attributes = AttributeSet::new(vec![("http.route".into(), AttributeValue::Str(route.into())), ("ids".into(), AttributeValue::IntArray(vec![1]))]);
        Point { attributes, start_us: 1, time_us: 2, value }
    }

    #[test]
    fn points_of_one_attribute_set_share_a_metricset() {
        let aggregation = Aggregation::ExplicitBucketHistogram { boundaries: Arc::from([0.0, 10.0, 100.0]), record_min_max: true };
        let mut histogram = Aggregator::new(&aggregation).unwrap();
        for value in [-1.0, 5.0, 5.0, 500.0] {
            histogram.update(Number::Float(value), &aggregation);
        }
        let Aggregation::ExplicitBucketHistogram { boundaries, .. } = aggregation.clone() else { panic!() };
        let metrics = ScopeMetrics {
            scope: Arc::new(MeterScope::default()),
            metrics: vec![
                metric(
                    "requests",
                    Shape::Sum { monotonic: true },
                    vec![point("/a", Aggregator::Sum(Number::Int(3))), point("/b", Aggregator::Sum(Number::Int(1)))],
                ),
                metric("in.flight", Shape::Sum { monotonic: false }, vec![point("/a", Aggregator::Sum(Number::Int(-1)))]),
                metric("load", Shape::Gauge, vec![point("/a", Aggregator::LastValue(Number::Float(0.5)))]),
                metric("duration", Shape::Histogram { boundaries, record_min_max: true }, vec![point("/a", histogram)]),
            ],
        };
        let lines = lines(&metrics);
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            json!({"metricset": {
                "timestamp": 2,
                "tags": {"http_route": "/a"},
                "samples": {
                    "requests": {"value": 3, "type": "counter"},
                    "in.flight": {"value": -1, "type": "gauge"},
                    "load": {"value": 0.5, "type": "gauge"},
                    "duration": {"type": "histogram", "values": [0.0, 5.0, 100.0], "counts": [1, 2, 1]},
                },
            }})
        );
        assert_eq!(lines[1]["metricset"]["samples"], json!({"requests": {"value": 1, "type": "counter"}}));
    }

    #[test]
    fn exponential_buckets_become_ascending_midpoints() {
        let mut histogram = ExponentialHistogram::new(4, 0);
        for value in [-3.0, 0.0, 1.5, 3.0, 3.5] {
            histogram.record(value);
        }
        // Scale 0: 1.5 is in (1, 2], 3 and 3.5 in (2, 4]; -3 in -(2, 4].
        assert_eq!(exponential_buckets(&histogram), [(-3.0, 1), (0.0, 1), (1.5, 1), (3.0, 2)]);
    }
}
