//! Metricsets as OTLP metrics. Samples keep their Elastic names; a breakdown metricset's
//! transaction and span become the attributes `transaction.name`, `transaction.type`, `span.type`
//! and `span.subtype` of its data points, and labels become attributes as on spans.
//! Gauges stay gauges; counters since start are cumulative monotonic sums, and the breakdown
//! counts, which restart every interval, are delta monotonic sums starting at the previous
//! collection: what they are, with no state kept to turn them into something else.

use super::proto::{
    any_value, metric, AggregationTemporality, ExportMetricsServiceRequest, Gauge, InstrumentationScope, KeyValue, Metric, NumberDataPoint, Resource,
    ResourceMetrics, ScopeMetrics, Sum,
};
use super::traces::{attribute, label_attributes};
use crate::model::{MetricKind, Metricset};

/// The metrics of one export request: the metricsets' data points grouped by metric name, in
/// order of appearance, and the OpenTelemetry meters' metrics under their own scopes.
#[derive(Default)]
pub struct MetricsBatch {
    metrics: Vec<Metric>,
    meters: Vec<ScopeMetrics>,
    points: usize,
}

impl MetricsBatch {
    pub fn add(&mut self, metricset: &Metricset) {
        let attributes = attributes(metricset);
        for sample in metricset.samples.iter().filter(|s| s.value.is_finite()) {
            let point = NumberDataPoint {
                attributes: attributes.clone(),
                start_time_unix_nano: if sample.kind == MetricKind::Gauge { 0 } else { metricset.start_us * 1000 },
                time_unix_nano: metricset.timestamp_us * 1000,
                as_double: Some(sample.value),
                as_int: None,
                flags: 0,
            };
            let index = match self.metrics.iter().position(|m| m.name == sample.name) {
                Some(index) => index,
                None => {
                    self.metrics.push(empty_metric(&sample.name, sample.kind));
                    self.metrics.len() - 1
                }
            };
            match &mut self.metrics[index].data {
                Some(metric::Data::Gauge(Gauge { data_points })) | Some(metric::Data::Sum(Sum { data_points, .. })) => data_points.push(point),
                _ => {} // metricsets are gauges and sums only
            }
            self.points += 1;
        }
    }

    pub fn add_meter(&mut self, metrics: &crate::meters::points::ScopeMetrics) {
        self.points += super::meters::point_count(metrics);
        self.meters.push(super::meters::scope_metrics(metrics));
    }

    /// Data points in the batch.
    pub fn len(&self) -> usize {
        self.points
    }

    pub fn is_empty(&self) -> bool {
        self.points == 0
    }
}

fn empty_metric(name: &str, kind: MetricKind) -> Metric {
    let sum = |temporality: AggregationTemporality| {
        metric::Data::Sum(Sum { data_points: Vec::new(), aggregation_temporality: temporality as i32, is_monotonic: true })
    };
    let data = match kind {
        MetricKind::Gauge => metric::Data::Gauge(Gauge { data_points: Vec::new() }),
        MetricKind::Counter => sum(AggregationTemporality::Cumulative),
        MetricKind::DeltaCounter => sum(AggregationTemporality::Delta),
    };
    Metric { name: name.to_owned(), description: String::new(), unit: unit(name).to_owned(), data: Some(data) }
}

/// UCUM units, as OTLP wants them, from the Elastic naming habits.
fn unit(name: &str) -> &'static str {
    if name.ends_with(".pct") {
        "1"
    } else if name.ends_with(".us") {
        "us"
    } else if name.starts_with("system.memory.") || name.starts_with("system.process.memory.") {
        "By"
    } else {
        ""
    }
}

fn attributes(metricset: &Metricset) -> Vec<KeyValue> {
    let mut out = Vec::new();
    let string = |key: &str, value: &str| attribute(key, any_value::Value::StringValue(value.to_owned()));
    if let Some(transaction) = &metricset.transaction {
        out.push(string("transaction.name", &transaction.name));
        out.push(string("transaction.type", &transaction.transaction_type));
    }
    if let Some(span) = &metricset.span {
        out.push(string("span.type", &span.span_type));
        out.push(string("span.subtype", &span.subtype));
    }
    label_attributes(&metricset.labels, &mut out);
    out
}

/// One export request: the batch's metricsets under the process's resource and oxapm's scope,
/// then the meters' metrics.
pub fn request(resource: &Resource, scope: &InstrumentationScope, batch: MetricsBatch) -> ExportMetricsServiceRequest {
    let own = (!batch.metrics.is_empty()).then(|| ScopeMetrics { scope: Some(scope.clone()), metrics: batch.metrics, schema_url: String::new() });
    let scope_metrics = own.into_iter().chain(batch.meters).collect();
    ExportMetricsServiceRequest { resource_metrics: vec![ResourceMetrics { resource: Some(resource.clone()), scope_metrics, schema_url: String::new() }] }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MetricSample, MetricSpan, MetricTransaction};

    fn sample(name: &str, value: f64, kind: MetricKind) -> MetricSample {
        MetricSample { name: name.into(), value, kind }
    }

    fn breakdown(span_type: &str, count: f64) -> Metricset {
        Metricset {
            timestamp_us: 2_000,
            start_us: 1_000,
            samples: vec![sample("span.self_time.count", count, MetricKind::DeltaCounter)],
            transaction: Some(MetricTransaction { name: "GET /".into(), transaction_type: "request".into() }),
            span: Some(MetricSpan { span_type: span_type.into(), subtype: String::new() }),
            ..Default::default()
        }
    }

    #[test]
    fn samples_become_metrics_with_one_point_per_metricset() {
        let mut batch = MetricsBatch::default();
        let system = Metricset {
            timestamp_us: 2_000,
            start_us: 500,
            samples: vec![sample("system.cpu.total.norm.pct", 0.0, MetricKind::Gauge), sample("python.gc.collections.gen0", 4.0, MetricKind::Counter)],
            ..Default::default()
        };
        batch.add(&system);
        batch.add(&breakdown("app", 2.0));
        batch.add(&breakdown("db", 1.0));
        assert_eq!(batch.len(), 4);
        let request = request(&Resource::default(), &InstrumentationScope::default(), batch);
        let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;
        assert_eq!(
            metrics.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            ["system.cpu.total.norm.pct", "python.gc.collections.gen0", "span.self_time.count"]
        );
        let Some(metric::Data::Gauge(gauge)) = &metrics[0].data else { panic!("{:?}", metrics[0]) };
        assert_eq!((gauge.data_points[0].as_double, gauge.data_points[0].start_time_unix_nano, metrics[0].unit.as_str()), (Some(0.0), 0, "1"));
        let Some(metric::Data::Sum(cumulative)) = &metrics[1].data else { panic!() };
        assert_eq!((cumulative.aggregation_temporality, cumulative.is_monotonic), (AggregationTemporality::Cumulative as i32, true));
        assert_eq!(cumulative.data_points[0].start_time_unix_nano, 500_000);
        let Some(metric::Data::Sum(delta)) = &metrics[2].data else { panic!() };
        assert_eq!(delta.aggregation_temporality, AggregationTemporality::Delta as i32);
        assert_eq!(delta.data_points.len(), 2);
        let point = &delta.data_points[1];
        assert_eq!((point.start_time_unix_nano, point.time_unix_nano, point.as_double), (1_000_000, 2_000_000, Some(1.0)));
        let keys: Vec<&str> = point.attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["transaction.name", "transaction.type", "span.type", "span.subtype"]);
    }
}
