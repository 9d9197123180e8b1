//! OpenTelemetry metrics as OTLP: each meter its own `ScopeMetrics`, each stream a `Metric` of
//! the shape its aggregation gives (Sum, Gauge, Histogram, ExponentialHistogram).

use super::proto::{
    self, metric, AggregationTemporality, ExponentialBuckets, ExponentialHistogramDataPoint, HistogramDataPoint, InstrumentationScope, KeyValue,
    NumberDataPoint,
};
use super::traces::{any, attribute};
use crate::meters::aggregation::{Aggregator, Number};
use crate::meters::attributes::AttributeSet;
use crate::meters::exponential::Buckets;
use crate::meters::points::{Metric, Point, ScopeMetrics, Shape};
use crate::meters::Temporality;

pub fn scope_metrics(scope_metrics: &ScopeMetrics) -> proto::ScopeMetrics {
    let scope = &scope_metrics.scope;
    proto::ScopeMetrics {
        scope: Some(InstrumentationScope {
            name: scope.name.clone(),
            version: scope.version.clone().unwrap_or_default(),
            attributes: key_values(&scope.attributes),
            dropped_attributes_count: 0,
        }),
        metrics: scope_metrics.metrics.iter().map(metric).collect(),
        schema_url: scope.schema_url.clone().unwrap_or_default(),
    }
}

/// Data points in the metrics of one meter.
pub fn point_count(scope_metrics: &ScopeMetrics) -> usize {
    scope_metrics.metrics.iter().map(|m| m.points.len()).sum()
}

fn key_values(attributes: &AttributeSet) -> Vec<KeyValue> {
    attributes.pairs().iter().map(|(key, value)| attribute(key, any(value))).collect()
}

fn temporality(temporality: Temporality) -> i32 {
    match temporality {
        Temporality::Delta => AggregationTemporality::Delta as i32,
        Temporality::Cumulative => AggregationTemporality::Cumulative as i32,
    }
}

fn metric(m: &Metric) -> proto::Metric {
    let data = match &m.shape {
        Shape::Sum { monotonic } => metric::Data::Sum(proto::Sum {
            data_points: m.points.iter().map(number_point).collect(),
            aggregation_temporality: temporality(m.temporality),
            is_monotonic: *monotonic,
        }),
        Shape::Gauge => metric::Data::Gauge(proto::Gauge { data_points: m.points.iter().map(number_point).collect() }),
        Shape::Histogram { boundaries, record_min_max } => metric::Data::Histogram(proto::Histogram {
            data_points: m.points.iter().map(|p| histogram_point(p, boundaries, *record_min_max)).collect(),
            aggregation_temporality: temporality(m.temporality),
        }),
        Shape::ExponentialHistogram { record_min_max } => metric::Data::ExponentialHistogram(proto::ExponentialHistogram {
            data_points: m.points.iter().map(|p| exponential_point(p, *record_min_max)).collect(),
            aggregation_temporality: temporality(m.temporality),
        }),
    };
    proto::Metric { name: m.name.clone(), description: m.description.clone(), unit: m.unit.clone(), data: Some(data) }
}

fn number_point(point: &Point) -> NumberDataPoint {
    let value = match point.value {
        Aggregator::Sum(n) | Aggregator::LastValue(n) => n,
        _ => Number::Float(f64::NAN),
    };
    let (as_int, as_double) = match value {
        Number::Int(i) => (Some(i), None),
        Number::Float(f) => (None, Some(f)),
    };
    NumberDataPoint {
        attributes: key_values(&point.attributes),
        start_time_unix_nano: point.start_us * 1000,
        time_unix_nano: point.time_us * 1000,
        as_double,
        as_int,
        flags: 0,
    }
}

/// Min and max only when recorded and something was.
fn min_max(record: bool, count: u64, min: f64, max: f64) -> (Option<f64>, Option<f64>) {
    if record && count > 0 {
        (Some(min), Some(max))
    } else {
        (None, None)
    }
}

fn histogram_point(point: &Point, boundaries: &[f64], record_min_max: bool) -> HistogramDataPoint {
    let Aggregator::Histogram(state) = &point.value else { return HistogramDataPoint::default() };
    let (min, max) = min_max(record_min_max, state.count, state.min, state.max);
    HistogramDataPoint {
        attributes: key_values(&point.attributes),
        start_time_unix_nano: point.start_us * 1000,
        time_unix_nano: point.time_us * 1000,
        count: state.count,
        sum: Some(state.sum),
        bucket_counts: state.counts.clone(),
        explicit_bounds: boundaries.to_vec(),
        flags: 0,
        min,
        max,
    }
}

fn exponential_point(point: &Point, record_min_max: bool) -> ExponentialHistogramDataPoint {
    let Aggregator::Exponential(histogram) = &point.value else { return ExponentialHistogramDataPoint::default() };
    let buckets = |b: &Buckets| Some(ExponentialBuckets { offset: b.offset, bucket_counts: b.counts.clone() });
    let (min, max) = min_max(record_min_max, histogram.count, histogram.min, histogram.max);
    ExponentialHistogramDataPoint {
        attributes: key_values(&point.attributes),
        start_time_unix_nano: point.start_us * 1000,
        time_unix_nano: point.time_us * 1000,
        count: histogram.count,
        sum: Some(histogram.sum),
        scale: histogram.scale,
        zero_count: histogram.zero_count,
        positive: buckets(&histogram.positive),
        negative: buckets(&histogram.negative),
        flags: 0,
        min,
        max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meters::aggregation::{Aggregation, HistogramState};
    use crate::meters::exponential::ExponentialHistogram;
    use crate::meters::points::MeterScope;
    use crate::model::AttributeValue;
    use prost::Message;
    use std::sync::Arc;

    fn point(value: Aggregator) -> Point {
        Point { attributes: AttributeSet::new(vec![("k".into(), AttributeValue::Str("v".into()))]), start_us: 1, time_us: 2, value }
    }

    fn metric_of(shape: Shape, value: Aggregator) -> Metric {
        Metric { name: "m".into(), description: "d".into(), unit: "ms".into(), shape, temporality: Temporality::Delta, points: vec![point(value)] }
    }

    #[test]
    fn each_shape_and_the_scope() {
        let mut exponential = ExponentialHistogram::new(160, 20);
        exponential.record(3.0);
        let Some(Aggregator::Histogram(mut histogram)) =
            Aggregator::new(&Aggregation::ExplicitBucketHistogram { boundaries: Arc::from([1.0]), record_min_max: true })
        else {
            panic!()
        };
        histogram.counts[1] = 1;
        histogram = HistogramState { count: 1, sum: 2.0, min: 2.0, max: 2.0, ..histogram };
        let scope = ScopeMetrics {
            scope: Arc::new(MeterScope {
                name: "shop".into(),
                version: Some("1".into()),
                schema_url: Some("https://s".into()),
                attributes: AttributeSet::default(),
            }),
            metrics: vec![
                metric_of(Shape::Sum { monotonic: true }, Aggregator::Sum(Number::Int(3))),
                metric_of(Shape::Gauge, Aggregator::LastValue(Number::Float(0.5))),
                metric_of(Shape::Histogram { boundaries: Arc::from([1.0]), record_min_max: true }, Aggregator::Histogram(histogram)),
                metric_of(Shape::ExponentialHistogram { record_min_max: false }, Aggregator::Exponential(Box::new(exponential))),
            ],
        };
        assert_eq!(point_count(&scope), 4);
        let encoded = scope_metrics(&scope);
        let decoded = proto::ScopeMetrics::decode(encoded.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, encoded);
        assert_eq!((decoded.scope.as_ref().unwrap().name.as_str(), decoded.schema_url.as_str()), ("shop", "https://s"));
        let [sum, gauge, histogram, exponential] = &decoded.metrics[..] else { panic!() };
        let Some(metric::Data::Sum(sum)) = &sum.data else { panic!() };
        assert_eq!((sum.data_points[0].as_int, sum.aggregation_temporality, sum.is_monotonic), (Some(3), AggregationTemporality::Delta as i32, true));
        assert_eq!((sum.data_points[0].start_time_unix_nano, sum.data_points[0].time_unix_nano), (1000, 2000));
        let Some(metric::Data::Gauge(gauge)) = &gauge.data else { panic!() };
        assert_eq!((gauge.data_points[0].as_double, gauge.data_points[0].as_int), (Some(0.5), None));
        let Some(metric::Data::Histogram(histogram)) = &histogram.data else { panic!() };
        let h = &histogram.data_points[0];
        assert_eq!((&h.bucket_counts[..], &h.explicit_bounds[..], h.count, h.sum, h.min, h.max), (&[0, 1][..], &[1.0][..], 1, Some(2.0), Some(2.0), Some(2.0)));
        let Some(metric::Data::ExponentialHistogram(exponential)) = &exponential.data else { panic!() };
        let e = &exponential.data_points[0];
        assert_eq!((e.scale, e.count, e.min, e.positive.as_ref().unwrap().bucket_counts.as_slice()), (20, 1, None, &[1][..]));
    }
}
