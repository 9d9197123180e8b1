//! Python runtime metrics the host reports to the engine: garbage collections per generation.
//! The export thread never takes the GIL: Python's `gc.callbacks` bump these counters (see
//! `oxapm.Client`) and the collection reads them.

use crate::model::{MetricKind, MetricSample};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// CPython's generations: 0, 1 and 2.
const GENERATIONS: usize = 3;
const NAMES: [&str; GENERATIONS] = ["python.gc.collections.gen0", "python.gc.collections.gen1", "python.gc.collections.gen2"];

#[derive(Debug, Default)]
pub struct GcCounters {
    collections: [AtomicU64; GENERATIONS],
    /// Whether the host has reported a collection: without its callback there is nothing to say.
    reporting: AtomicBool,
}

impl GcCounters {
    /// One finished collection of `generation`; other generations are ignored.
    pub fn collected(&self, generation: usize) {
        if let Some(counter) = self.collections.get(generation) {
            counter.fetch_add(1, Ordering::Relaxed);
            self.reporting.store(true, Ordering::Relaxed);
        }
    }

    /// Collections since the engine started, per generation; none before the first is reported
    /// (a host without the callback has nothing to say).
    pub fn samples(&self) -> Vec<MetricSample> {
        if !self.reporting.load(Ordering::Relaxed) {
            return Vec::new();
        }
        NAMES
            .iter()
            .zip(&self.collections)
            .map(|(name, counter)| MetricSample { name: (*name).to_owned(), value: counter.load(Ordering::Relaxed) as f64, kind: MetricKind::Counter })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_generation_once_reported() {
        let gc = GcCounters::default();
        assert!(gc.samples().is_empty());
        for generation in [0, 0, 2, 7] {
            gc.collected(generation);
        }
        let got: Vec<(String, f64)> = gc.samples().into_iter().map(|s| (s.name, s.value)).collect();
        assert_eq!(
            got,
            [("python.gc.collections.gen0".to_owned(), 2.0), ("python.gc.collections.gen1".to_owned(), 0.0), ("python.gc.collections.gen2".to_owned(), 1.0)]
        );
    }
}
