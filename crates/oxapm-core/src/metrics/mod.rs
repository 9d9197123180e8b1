//! Metricsets, collected on the export thread every `metrics_interval` (0 turns metrics off) and
//! at each flush and close: the `breakdown` of transactions' self time, `system` and process
//! readings, and the Python `runtime` counters the host reports. `disable_metrics` patterns
//! leave out the samples whose names they match.

pub mod breakdown;
pub mod runtime;
pub mod system;

use crate::config::Config;
use crate::model::{now_epoch_us, Event, Metricset};
use crate::wildcard::WildcardMatchers;
use breakdown::Breakdown;
use runtime::GcCounters;
use std::sync::Arc;
use std::time::{Duration, Instant};
use system::SystemSampler;

/// What application threads and the host write into: kept by the engine, read by the collector.
#[derive(Debug)]
pub struct MetricsInputs {
    /// Whether a transaction adds to it is `ShapingSettings::breakdown` (`breakdown_metrics`, which
    /// central configuration may change), decided when the transaction starts.
    pub breakdown: Arc<Breakdown>,
    pub gc: Arc<GcCounters>,
}

/// Lives on the export thread.
pub struct Collector {
    interval: Duration,
    next: Instant,
    disabled: WildcardMatchers,
    breakdown: Arc<Breakdown>,
    gc: Arc<GcCounters>,
    system: SystemSampler,
    started_us: u64,
    /// When the previous collection was: the start of what the breakdown counts now.
    last_us: u64,
}

impl Collector {
    /// None when `metrics_interval` is 0.
    pub fn new(config: &Config) -> Option<(Collector, MetricsInputs)> {
        let interval = config.duration("METRICS_INTERVAL");
        if interval.is_zero() {
            return None;
        }
        let breakdown = Arc::<Breakdown>::default();
        let gc = Arc::<GcCounters>::default();
        let now = now_epoch_us();
        let collector = Collector {
            interval,
            next: Instant::now() + interval,
            disabled: WildcardMatchers::new(config.list("DISABLE_METRICS")),
            breakdown: breakdown.clone(),
            gc: gc.clone(),
            system: SystemSampler::default(),
            started_us: now,
            last_us: now,
        };
        Some((collector, MetricsInputs { breakdown, gc }))
    }

    /// When the next collection is due.
    pub fn deadline(&self) -> Instant {
        self.next
    }

    /// Every metricset with samples left after `disable_metrics`; the next one is due an interval
    /// from now.
    pub fn collect(&mut self) -> Vec<Event> {
        self.next = Instant::now() + self.interval;
        let now = now_epoch_us();
        let mut samples = self.system.sample();
        samples.extend(self.gc.samples());
        let mut metricsets = vec![Metricset { timestamp_us: now, start_us: self.started_us, samples, ..Default::default() }];
        metricsets.extend(self.breakdown.take(self.last_us, now));
        self.last_us = now;
        metricsets
            .into_iter()
            .filter_map(|mut metricset| {
                metricset.samples.retain(|sample| !self.disabled.matches(&sample.name));
                (!metricset.samples.is_empty()).then(|| Event::Metricset(Box::new(metricset)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shaping::SelfTime;
    use std::collections::HashMap;

    fn collector_for(env: &[(&str, &str)]) -> Option<(Collector, MetricsInputs)> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (format!("ELASTIC_APM_{k}"), v.to_string())).collect();
        Collector::new(&Config::resolve(&env, &HashMap::new(), &HashMap::new()))
    }

    fn names(events: &[Event]) -> Vec<String> {
        let mut names: Vec<String> =
            events.iter().flat_map(|e| if let Event::Metricset(m) = e { m.samples.iter().map(|s| s.name.clone()).collect() } else { vec![] }).collect();
        names.sort();
        names
    }

    #[test]
    fn an_interval_of_zero_turns_metrics_off() {
        assert!(collector_for(&[("METRICS_INTERVAL", "0")]).is_none());
        let (collector, inputs) = collector_for(&[]).unwrap();
        assert_eq!(collector.interval, Duration::from_secs(30));
        drop(inputs);
    }

    #[test]
    fn disabled_metrics_are_left_out() {
        let (mut collector, inputs) = collector_for(&[("DISABLE_METRICS", "system.process.*, *.SUM.us")]).unwrap();
        let self_time = SelfTime { span_type: "app".into(), subtype: None, count: 1, sum_us: 5 };
        inputs.breakdown.record("t", "job", &[self_time]);
        inputs.gc.collected(1);
        let names = names(&collector.collect());
        assert!(names.contains(&"span.self_time.count".to_owned()) && names.contains(&"python.gc.collections.gen1".to_owned()), "{names:?}");
        assert!(!names.iter().any(|n| n.starts_with("system.process.") || n.ends_with(".sum.us")), "{names:?}");
        if cfg!(target_os = "linux") {
            assert!(names.contains(&"system.memory.total".to_owned()), "{names:?}");
        }
    }

    #[test]
    fn a_metricset_left_without_samples_is_not_sent() {
        let (mut collector, inputs) = collector_for(&[("DISABLE_METRICS", "system.*,python.*,span.self_time.count")]).unwrap();
        inputs.gc.collected(0);
        assert!(collector.collect().is_empty());
        let self_time = SelfTime { span_type: "app".into(), subtype: None, count: 1, sum_us: 5 };
        inputs.breakdown.record("t", "job", &[self_time]);
        assert_eq!(names(&collector.collect()), ["span.self_time.sum.us"]);
    }
}
