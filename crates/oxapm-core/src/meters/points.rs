//! What a collection produces: the metrics of one meter (its instrumentation scope), each a
//! stream of points per attribute set. Both encoders serialize these (OTLP as they are, intake
//! as metricsets).

use super::aggregation::Aggregator;
use super::attributes::AttributeSet;
use super::Temporality;
use std::sync::Arc;

/// The instrumentation scope of a meter.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MeterScope {
    pub name: String,
    pub version: Option<String>,
    pub schema_url: Option<String>,
    pub attributes: AttributeSet,
}

#[derive(Clone, Debug)]
pub struct ScopeMetrics {
    pub scope: Arc<MeterScope>,
    pub metrics: Vec<Metric>,
}

#[derive(Clone, Debug)]
pub struct Metric {
    pub name: String,
    pub description: String,
    pub unit: String,
    pub shape: Shape,
    pub temporality: Temporality,
    pub points: Vec<Point>,
}

/// The OTLP data type of a metric.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    Sum { monotonic: bool },
    Gauge,
    Histogram { boundaries: Arc<[f64]>, record_min_max: bool },
    ExponentialHistogram { record_min_max: bool },
}

#[derive(Clone, Debug)]
pub struct Point {
    pub attributes: AttributeSet,
    pub start_us: u64,
    pub time_us: u64,
    pub value: Aggregator,
}
