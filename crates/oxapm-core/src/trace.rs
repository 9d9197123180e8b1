//! Transactions and spans while they run: ids, timing, sampling and span accounting. Finishing one
//! yields the record that goes to the exporters.

use crate::ids::{SpanId, TraceId};
use crate::model::{now_epoch_us, Link, Outcome, SpanRecord, TransactionRecord};
use crate::sampling::Sampler;
use crate::shaping::{Children, SelfTime, Shaper, ShapingSettings};
use crate::traceparent::{TraceParent, TraceState, FLAG_RANDOM, FLAG_SAMPLED};
use std::sync::Arc;
use std::time::Instant;

/// A point in time on both clocks: wall time for timestamps, monotonic time for durations.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    epoch_us: u64,
    instant: Instant,
}

impl Clock {
    pub fn now() -> Self {
        Clock { epoch_us: now_epoch_us(), instant: Instant::now() }
    }
    /// Started at `epoch_us` (an explicit start time given by the caller).
    pub fn at(epoch_us: u64) -> Self {
        let now = Clock::now();
        let ago = now.epoch_us.saturating_sub(epoch_us);
        let instant = now.instant.checked_sub(std::time::Duration::from_micros(ago)).unwrap_or(now.instant);
        Clock { epoch_us, instant }
    }
    /// Timestamps of children come from the transaction's wall clock plus monotonic elapsed time,
    /// so a wall-clock jump inside a transaction cannot reorder its spans.
    fn epoch_at(&self, instant: Instant) -> u64 {
        self.epoch_us + instant.saturating_duration_since(self.instant).as_micros() as u64
    }
    fn elapsed_us(&self) -> u64 {
        self.instant.elapsed().as_micros() as u64
    }
}

#[derive(Debug)]
pub struct ActiveTransaction {
    pub record: TransactionRecord,
    pub tracestate: TraceState,
    /// The W3C trace flags sent downstream: sampled, and (Level 2) whether the trace id is random.
    pub trace_flags: u8,
    clock: Clock,
    ended: bool,
    shaper: Shaper,
    /// The transaction's direct children.
    children: Children,
}

pub struct TransactionStart<'a> {
    pub transaction_type: &'a str,
    pub parent: Option<(TraceParent, TraceState)>,
    pub sampler: Sampler,
    pub start_epoch_us: Option<u64>,
    pub links: Vec<Link>,
    pub shaping: Arc<ShapingSettings>,
}

impl ActiveTransaction {
    pub fn start(start: TransactionStart<'_>) -> Self {
        let clock = start.start_epoch_us.map(Clock::at).unwrap_or_else(Clock::now);
        let sampler = start.sampler;
        let (trace_id, parent_id, sampled, sample_rate, tracestate, random_flag) = match start.parent {
            // Continue the caller's trace: a parent-based sampler keeps its decision and its rate.
            Some((parent, mut tracestate)) => {
                let sampled = sampler.sample(&parent.trace_id, Some(parent.sampled()));
                let rate = if sampler.parent_based { tracestate.elastic_sample_rate() } else { Some(recorded_rate(sampler, sampled)) };
                if !sampler.parent_based {
                    tracestate.set_elastic_sample_rate(recorded_rate(sampler, sampled));
                }
                (parent.trace_id, Some(parent.parent_id), sampled, rate, tracestate, parent.flags & FLAG_RANDOM)
            }
            None => {
                let trace_id = TraceId::random();
                let sampled = sampler.sample(&trace_id, None);
                let rate = recorded_rate(sampler, sampled);
                let mut tracestate = TraceState::default();
                tracestate.set_elastic_sample_rate(rate);
                (trace_id, None, sampled, Some(rate), tracestate, FLAG_RANDOM)
            }
        };
        let record = TransactionRecord {
            id: SpanId::random(),
            trace_id,
            parent_id,
            transaction_type: start.transaction_type.to_owned(),
            timestamp_us: clock.epoch_us,
            sampled,
            sample_rate,
            links: start.links,
            ..Default::default()
        };
        let trace_flags = random_flag | if sampled { FLAG_SAMPLED } else { 0 };
        ActiveTransaction { record, tracestate, trace_flags, clock, ended: false, shaper: Shaper::new(start.shaping), children: Children::default() }
    }

    pub fn is_sampled(&self) -> bool {
        self.record.sampled
    }
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The traceparent to send downstream from this transaction or from one of its spans.
    pub fn traceparent(&self, current: Option<SpanId>) -> TraceParent {
        TraceParent { version: 0, trace_id: self.record.trace_id, parent_id: current.unwrap_or(self.record.id), flags: self.trace_flags }
    }

    /// Starts a span below `parent` (None: the transaction), or returns `None` when this
    /// transaction records no spans. `start_epoch_us` is an explicit start time. A span over
    /// `transaction_max_spans` still runs, to be counted as dropped when it ends.
    pub fn start_span(&mut self, parent: Option<&mut ActiveSpan>, name: &str, span_type: &str, start_epoch_us: Option<u64>) -> Option<ActiveSpan> {
        if !self.record.sampled || self.ended {
            return None;
        }
        let (timestamp_us, start) = match start_epoch_us {
            Some(epoch_us) => (epoch_us, Clock::at(epoch_us).instant),
            None => {
                let now = Instant::now();
                (self.clock.epoch_at(now), now)
            }
        };
        let (parent_id, parent_admitted, siblings) = match parent {
            Some(parent) => (parent.record.id, parent.admitted, &mut parent.children),
            None => (self.record.id, true, &mut self.children),
        };
        siblings.started(timestamp_us);
        let admitted = self.shaper.admit(!parent_admitted);
        let record = SpanRecord {
            id: SpanId::random(),
            trace_id: self.record.trace_id,
            transaction_id: self.record.id,
            parent_id,
            name: name.to_owned(),
            span_type: span_type.to_owned(),
            timestamp_us,
            sample_rate: self.record.sample_rate,
            ..Default::default()
        };
        Some(ActiveSpan { record, start, ended: false, admitted, children: Children::default() })
    }

    /// Ends `span`, a span of this transaction under `parent` (None: the transaction), now or at
    /// `end_epoch_us`; an unset outcome becomes success, or failure when `failed`. What is to be
    /// reported now (this span, or siblings it did not compress with) goes to `report`. Returns
    /// false when the span had already ended.
    pub fn end_span(
        &mut self,
        span: &mut ActiveSpan,
        parent: Option<&mut ActiveSpan>,
        failed: bool,
        end_epoch_us: Option<u64>,
        report: &mut dyn FnMut(Box<SpanRecord>),
    ) -> bool {
        let Some(record) = span.finish(failed, end_epoch_us) else { return false };
        let (siblings, parent_open) = match parent {
            Some(parent) => (&mut parent.children, !parent.ended),
            None => (&mut self.children, !self.ended),
        };
        self.shaper.span_ended(Box::new(record), span.admitted, &mut span.children, siblings, parent_open, report);
        true
    }

    /// Ends the transaction; `duration_us` overrides the measured duration. Ending twice yields
    /// `None` the second time. A span still held for compression goes to `report`.
    pub fn finish(&mut self, duration_us: Option<u64>, report: &mut dyn FnMut(Box<SpanRecord>)) -> Option<TransactionRecord> {
        self.finish_at(duration_us.map(|d| self.record.timestamp_us + d), report)
    }

    /// Ends the transaction at `end_epoch_us` (an explicit end time), else now.
    pub fn finish_at(&mut self, end_epoch_us: Option<u64>, report: &mut dyn FnMut(Box<SpanRecord>)) -> Option<TransactionRecord> {
        if std::mem::replace(&mut self.ended, true) {
            return None;
        }
        let mut record = std::mem::take(&mut self.record);
        record.duration_us = match end_epoch_us {
            Some(end) => end.saturating_sub(record.timestamp_us),
            None => self.clock.elapsed_us(),
        };
        if record.sampled {
            self.shaper.transaction_ended(&mut self.children, record.timestamp_us, record.duration_us, report);
        }
        record.spans_started = self.shaper.started;
        record.spans_dropped = self.shaper.dropped;
        record.dropped_spans_stats = std::mem::take(&mut self.shaper.dropped_stats);
        // Keep what later calls (get_trace_id, traceparent headers) still read.
        self.record.id = record.id;
        self.record.trace_id = record.trace_id;
        self.record.parent_id = record.parent_id;
        self.record.sampled = record.sampled;
        self.record.name = record.name.clone();
        self.record.transaction_type = record.transaction_type.clone();
        Some(record)
    }

    /// Whether `span`, still running, has lasted long enough for a stack trace.
    pub fn wants_stack_trace(&self, span: &ActiveSpan) -> bool {
        !span.ended && self.shaper.settings.stack_trace_min_us.is_some_and(|min| span.start.elapsed().as_micros() as u64 >= min)
    }

    /// The breakdown metrics' self times of the ended transaction (empty when `breakdown_metrics`
    /// is off or it was not sampled), taken.
    pub fn take_self_times(&mut self) -> Vec<SelfTime> {
        std::mem::take(&mut self.shaper.self_times)
    }
}

#[derive(Debug)]
pub struct ActiveSpan {
    pub record: SpanRecord,
    start: Instant,
    ended: bool,
    /// False past `transaction_max_spans`: counted, not reported.
    admitted: bool,
    children: Children,
}

impl ActiveSpan {
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Ends the span, now or at `end_epoch_us`; an unset outcome becomes success, or failure when
    /// it ended by an exception. (`ActiveTransaction::end_span` decides what becomes of it.)
    fn finish(&mut self, failed: bool, end_epoch_us: Option<u64>) -> Option<SpanRecord> {
        if std::mem::replace(&mut self.ended, true) {
            return None;
        }
        // Keep the ids (get_span_id and traceparent headers may still read them) and the leaf flag.
        let ids = SpanRecord {
            id: self.record.id,
            trace_id: self.record.trace_id,
            transaction_id: self.record.transaction_id,
            parent_id: self.record.parent_id,
            exit: self.record.exit,
            propagated: self.record.propagated,
            ..Default::default()
        };
        let mut record = std::mem::replace(&mut self.record, ids);
        record.duration_us = match end_epoch_us {
            Some(end) => end.saturating_sub(record.timestamp_us),
            None => self.start.elapsed().as_micros() as u64,
        };
        if record.outcome == Outcome::Unknown {
            record.outcome = if failed { Outcome::Failure } else { Outcome::Success };
        }
        Some(record)
    }
}

/// The rate recorded in `es=s:` for a decision the sampler's ratio made.
fn recorded_rate(sampler: Sampler, sampled: bool) -> f64 {
    if sampled {
        sampler.rate
    } else {
        0.0
    }
}

/// `db.mysql.query` → (`db`, `mysql`, `query`); explicit subtype/action win over the dotted parts.
pub fn split_span_type<'a>(span_type: &'a str, subtype: Option<&'a str>, action: Option<&'a str>) -> (&'a str, Option<&'a str>, Option<&'a str>) {
    if subtype.is_some() || action.is_some() {
        return (span_type, subtype, action);
    }
    let mut parts = span_type.splitn(3, '.');
    let main = parts.next().unwrap_or(span_type);
    (main, parts.next().filter(|s| !s.is_empty()), parts.next().filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(rate: f64) -> ActiveTransaction {
        ActiveTransaction::start(TransactionStart {
            transaction_type: "request",
            parent: None,
            sampler: Sampler { rate, parent_based: true },
            start_epoch_us: None,
            links: vec![],
            shaping: Arc::new(ShapingSettings::default()),
        })
    }

    #[test]
    fn root_transactions_sample_and_write_tracestate() {
        let t = root(1.0);
        assert!(t.is_sampled());
        assert_eq!(t.tracestate.to_header(), "es=s:1");
        let t = root(0.0);
        assert!(!t.is_sampled());
        assert_eq!(t.record.sample_rate, Some(0.0));
        assert_eq!(t.tracestate.to_header(), "es=s:0");
        let sampled = (0..2000).filter(|_| root(0.25).is_sampled()).count();
        assert!((300..700).contains(&sampled), "{sampled}");
    }

    #[test]
    fn continues_the_incoming_trace_and_its_decision() {
        let parent = TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00").unwrap();
        let mut t = ActiveTransaction::start(TransactionStart {
            transaction_type: "request",
            parent: Some((parent, TraceState::parse("es=s:0.5,x=y"))),
            sampler: Sampler::default(),
            start_epoch_us: None,
            links: vec![],
            shaping: Arc::new(ShapingSettings::default()),
        });
        assert!(!t.is_sampled());
        assert_eq!(t.record.trace_id, parent.trace_id);
        assert_eq!(t.record.parent_id, Some(parent.parent_id));
        assert_eq!(t.record.sample_rate, Some(0.5));
        assert!(t.start_span(None, "s", "custom", None).is_none(), "unsampled transactions record no spans");
        assert_eq!(t.traceparent(None).flags, 0);
    }

    #[test]
    fn spans_count_and_nest() {
        let mut t = root(1.0);
        let mut reported = Vec::new();
        let mut outer = t.start_span(None, "outer", "custom", None).unwrap();
        let mut inner = t.start_span(Some(&mut outer), "inner", "db", None).unwrap();
        assert_eq!(inner.record.parent_id, outer.record.id);
        assert_eq!(outer.record.parent_id, t.record.id);
        assert!(t.end_span(&mut inner, Some(&mut outer), true, None, &mut |s| reported.push(s)));
        assert!(t.end_span(&mut outer, None, false, None, &mut |s| reported.push(s)));
        assert!(!t.end_span(&mut outer, None, false, None, &mut |s| reported.push(s)));
        let outcomes: Vec<_> = reported.iter().map(|s| (s.name.as_str(), s.outcome)).collect();
        assert_eq!(outcomes, [("inner", Outcome::Failure), ("outer", Outcome::Success)]);
        let record = t.finish(Some(1500), &mut |s| reported.push(s)).unwrap();
        assert_eq!(record.spans_started, 2);
        assert_eq!(record.duration_us, 1500);
        assert!(t.finish(None, &mut |_| {}).is_none());
        assert_eq!(t.record.trace_id, record.trace_id);
    }

    #[test]
    fn explicit_start_time() {
        let epoch = now_epoch_us() - 2_000_000;
        let mut t = ActiveTransaction::start(TransactionStart {
            transaction_type: "job",
            parent: None,
            sampler: Sampler::default(),
            start_epoch_us: Some(epoch),
            links: vec![],
            shaping: Arc::new(ShapingSettings::default()),
        });
        let record = t.finish(None, &mut |_| {}).unwrap();
        assert_eq!(record.timestamp_us, epoch);
        assert!(record.duration_us >= 2_000_000);
    }

    #[test]
    fn dotted_span_types() {
        assert_eq!(split_span_type("db.mysql.query", None, None), ("db", Some("mysql"), Some("query")));
        assert_eq!(split_span_type("custom", None, None), ("custom", None, None));
        assert_eq!(split_span_type("db", Some("redis"), None), ("db", Some("redis"), None));
        assert_eq!(split_span_type("a.b.c.d", None, None), ("a", Some("b"), Some("c.d")));
    }
}
