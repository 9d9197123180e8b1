//! Breakdown metrics, as the Elastic agents report them: per transaction name and type, and per
//! span type and subtype, how many spans there were and how much self time (time not spent in a
//! child) they took, counted over one metrics interval.
//!
//! Application threads add a finished transaction's self times under one lock; the export thread
//! takes the sums at each collection, which starts the next interval.

use crate::model::{MetricKind, MetricSample, MetricSpan, MetricTransaction, Metricset};
use crate::shaping::SelfTime;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Sums {
    count: u64,
    sum_us: u64,
}

#[derive(Debug, Default)]
pub struct Breakdown {
    sums: Mutex<HashMap<(MetricTransaction, MetricSpan), Sums>>,
}

impl Breakdown {
    /// On the application thread, at the end of a sampled transaction: one lock, no I/O.
    pub fn record(&self, transaction_name: &str, transaction_type: &str, self_times: &[SelfTime]) {
        if self_times.is_empty() {
            return;
        }
        let Ok(mut sums) = self.sums.lock() else { return };
        for time in self_times {
            let transaction = MetricTransaction { name: transaction_name.to_owned(), transaction_type: transaction_type.to_owned() };
            let span = MetricSpan { span_type: time.span_type.clone(), subtype: time.subtype.clone().unwrap_or_default() };
            let entry = sums.entry((transaction, span)).or_default();
            entry.count += time.count;
            entry.sum_us += time.sum_us;
        }
    }

    /// On the export thread: one metricset per transaction and span kind seen since the previous
    /// collection (at `start_us`), and a fresh start.
    pub fn take(&self, start_us: u64, timestamp_us: u64) -> Vec<Metricset> {
        let sums = match self.sums.lock() {
            Ok(mut sums) => std::mem::take(&mut *sums),
            Err(_) => return Vec::new(),
        };
        let sample = |name: &str, value: u64| MetricSample { name: name.to_owned(), value: value as f64, kind: MetricKind::DeltaCounter };
        sums.into_iter()
            .map(|((transaction, span), sums)| Metricset {
                timestamp_us,
                start_us,
                samples: vec![sample("span.self_time.count", sums.count), sample("span.self_time.sum.us", sums.sum_us)],
                transaction: Some(transaction),
                span: Some(span),
                ..Default::default()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_time(span_type: &str, subtype: Option<&str>, count: u64, sum_us: u64) -> SelfTime {
        SelfTime { span_type: span_type.into(), subtype: subtype.map(Into::into), count, sum_us }
    }

    fn values(metricset: &Metricset) -> (&str, &str, &str, &str, f64, f64) {
        let (t, s) = (metricset.transaction.as_ref().unwrap(), metricset.span.as_ref().unwrap());
        (&t.name, &t.transaction_type, &s.span_type, &s.subtype, metricset.samples[0].value, metricset.samples[1].value)
    }

    #[test]
    fn sums_per_transaction_and_span_kind_then_starts_over() {
        let breakdown = Breakdown::default();
        breakdown.record("GET /users", "request", &[self_time("app", None, 1, 1147), self_time("db", Some("postgresql"), 2, 10_000)]);
        breakdown.record("GET /users", "request", &[self_time("app", None, 1, 853), self_time("db", Some("postgresql"), 1, 160)]);
        breakdown.record("GET /", "request", &[self_time("app", None, 1, 50)]);
        let mut taken = breakdown.take(1, 2);
        taken.sort_by(|a, b| values(a).partial_cmp(&values(b)).unwrap());
        let got: Vec<_> = taken.iter().map(values).collect();
        assert_eq!(
            got,
            vec![
                ("GET /", "request", "app", "", 1.0, 50.0),
                ("GET /users", "request", "app", "", 2.0, 2000.0),
                ("GET /users", "request", "db", "postgresql", 3.0, 10_160.0),
            ]
        );
        assert!(taken.iter().all(|m| m.start_us == 1 && m.timestamp_us == 2));
        assert_eq!(
            taken[0].samples.iter().map(|s| (s.name.as_str(), s.kind)).collect::<Vec<_>>(),
            [("span.self_time.count", MetricKind::DeltaCounter), ("span.self_time.sum.us", MetricKind::DeltaCounter)]
        );
        // Counts are per interval: the next collection starts from nothing.
        assert!(breakdown.take(2, 3).is_empty());
        breakdown.record("GET /", "request", &[self_time("app", None, 1, 7)]);
        assert_eq!(breakdown.take(3, 4).iter().map(values).collect::<Vec<_>>(), [("GET /", "request", "app", "", 1.0, 7.0)]);
    }
}
