//! Trace shaping, as the Elastic agents do it: what a transaction reports of its spans. Consecutive
//! short exit spans to the same service are compressed into one composite span, very short exit
//! spans are dropped, spans past `transaction_max_spans` are counted but not reported, and the
//! time spent in each kind of span is summed for the breakdown metrics.
//!
//! The settings are read once per transaction, when it starts: a change (central configuration)
//! applies to the transactions started after it.

use crate::config::Config;
use crate::model::{Composite, CompressionStrategy, DroppedSpanStats, Outcome, SpanKind, SpanRecord};
use crate::{bridge, service_target};
use serde_json::Value;
use std::borrow::Cow;
use std::sync::Arc;

/// Dropped spans are counted in at most this many groups per transaction, as the Elastic agents do.
pub const MAX_DROPPED_SPAN_STATS: usize = 128;

/// What a finished transaction adds to the breakdown metrics: the self time (time not spent in a
/// child) of its spans of one type and subtype, or of the transaction itself as type `app`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfTime {
    pub span_type: String,
    pub subtype: Option<String>,
    pub count: u64,
    pub sum_us: u64,
}

/// `span_compression_*`: the longest spans each strategy compresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compression {
    pub exact_match_max_us: u64,
    pub same_kind_max_us: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapingSettings {
    /// `transaction_max_spans`; None (a negative value) reports every span.
    pub max_spans: Option<u32>,
    /// None when `span_compression_enabled` is false.
    pub compression: Option<Compression>,
    /// `exit_span_min_duration`: shorter exit spans are dropped.
    pub exit_span_min_us: u64,
    /// `span_stack_trace_min_duration`: spans at least this long get a stack trace; None: none do.
    pub stack_trace_min_us: Option<u64>,
    /// `breakdown_metrics`.
    pub breakdown: bool,
}

impl Default for ShapingSettings {
    fn default() -> Self {
        ShapingSettings::from_config(&Config::resolve(&Default::default(), &Default::default(), &Default::default()))
    }
}

fn micros(ms: f64) -> u64 {
    (ms.max(0.0) * 1000.0).round() as u64
}

impl ShapingSettings {
    pub fn from_config(config: &Config) -> ShapingSettings {
        let max_spans = config.int("TRANSACTION_MAX_SPANS");
        let compression = config.bool("SPAN_COMPRESSION_ENABLED").then(|| Compression {
            exact_match_max_us: micros(config.float("SPAN_COMPRESSION_EXACT_MATCH_MAX_DURATION")),
            same_kind_max_us: micros(config.float("SPAN_COMPRESSION_SAME_KIND_MAX_DURATION")),
        });
        // The new option wins; the deprecated one counts the other way round: -1 always, 0 never.
        let stack_trace_min_ms = match config.get("SPAN_FRAMES_MIN_DURATION") {
            crate::config::ConfigValue::Float(frames) if !config.is_explicit("SPAN_STACK_TRACE_MIN_DURATION") => {
                if *frames < 0.0 {
                    0.0
                } else if *frames == 0.0 {
                    -1.0
                } else {
                    *frames
                }
            }
            _ => config.float("SPAN_STACK_TRACE_MIN_DURATION"),
        };
        ShapingSettings {
            max_spans: u32::try_from(max_spans).ok(),
            compression,
            exit_span_min_us: micros(config.float("EXIT_SPAN_MIN_DURATION")),
            stack_trace_min_us: (stack_trace_min_ms >= 0.0).then(|| micros(stack_trace_min_ms)),
            breakdown: config.bool("BREAKDOWN_METRICS"),
        }
    }
}

/// The direct children of a transaction or span, as shaping sees them: the one that ended last and
/// may still absorb its next siblings, and the time during which at least one of them ran.
#[derive(Debug, Default)]
pub struct Children {
    buffered: Option<Box<SpanRecord>>,
    running: u32,
    busy_since_us: u64,
    busy_us: u64,
}

impl Children {
    pub fn started(&mut self, at_us: u64) {
        if self.running == 0 {
            self.busy_since_us = at_us;
        }
        self.running += 1;
    }

    fn ended(&mut self, at_us: u64) {
        if self.running == 0 {
            return;
        }
        self.running -= 1;
        if self.running == 0 {
            self.busy_us += at_us.saturating_sub(self.busy_since_us);
        }
    }

    /// The time of a parent that ran from `start_us` to `end_us` when none of its children ran.
    fn self_time(&self, start_us: u64, end_us: u64) -> u64 {
        let still_running = if self.running > 0 { end_us.saturating_sub(self.busy_since_us) } else { 0 };
        end_us.saturating_sub(start_us).saturating_sub(self.busy_us + still_running)
    }
}

/// A transaction's span accounting: which spans are reported, dropped or compressed, and the self
/// times of the breakdown metrics.
#[derive(Debug)]
pub struct Shaper {
    pub settings: Arc<ShapingSettings>,
    /// Spans reported or still to be (a composite counts once): what `transaction_max_spans` limits.
    pub started: u32,
    pub dropped: u32,
    pub dropped_stats: Vec<DroppedSpanStats>,
    pub self_times: Vec<SelfTime>,
}

impl Shaper {
    pub fn new(settings: Arc<ShapingSettings>) -> Shaper {
        Shaper { settings, started: 0, dropped: 0, dropped_stats: Vec::new(), self_times: Vec::new() }
    }

    /// Whether a new span is recorded; if not (over `transaction_max_spans`, or below a span that
    /// was not), it is counted as dropped.
    pub fn admit(&mut self, parent_dropped: bool) -> bool {
        if parent_dropped || self.settings.max_spans.is_some_and(|max| self.started >= max) {
            self.dropped += 1;
            false
        } else {
            self.started += 1;
            true
        }
    }

    /// A span ended: its own buffered child goes out, its self time is counted, and it is reported
    /// (through `report`), dropped, or kept in its parent's buffer for compression.
    pub fn span_ended(
        &mut self,
        mut span: Box<SpanRecord>,
        admitted: bool,
        own: &mut Children,
        parent: &mut Children,
        parent_open: bool,
        report: &mut dyn FnMut(Box<SpanRecord>),
    ) {
        let end_us = span.timestamp_us + span.duration_us;
        if let Some(child) = own.buffered.take() {
            self.report(child, report);
        }
        if self.settings.breakdown {
            let self_time = own.self_time(span.timestamp_us, end_us);
            self.add_self_time(&span.span_type, span.subtype.as_deref(), self_time);
        }
        parent.ended(end_us);
        if !admitted {
            if is_exit(&mut span) {
                self.count_dropped(&span, 1, span.duration_us);
            }
            return;
        }
        let buffered = parent.buffered.take();
        let compression = self.settings.compression.filter(|_| parent_open && compressible(&mut span));
        let Some(compression) = compression else {
            if let Some(buffered) = buffered {
                self.report(buffered, report);
            }
            self.report(span, report);
            return;
        };
        parent.buffered = Some(match buffered {
            None => span,
            Some(mut buffered) => {
                if compress(&mut buffered, &span, compression) {
                    self.started -= 1;
                    buffered
                } else {
                    self.report(buffered, report);
                    span
                }
            }
        });
    }

    /// The transaction ended after `duration_us`: its buffered child goes out and its own time
    /// (when none of its children ran) is counted as type `app`.
    pub fn transaction_ended(&mut self, children: &mut Children, start_us: u64, duration_us: u64, report: &mut dyn FnMut(Box<SpanRecord>)) {
        if let Some(child) = children.buffered.take() {
            self.report(child, report);
        }
        if self.settings.breakdown {
            let self_time = children.self_time(start_us, start_us + duration_us);
            self.add_self_time("app", None, self_time);
        }
    }

    /// Reports `span`, unless it is an exit span shorter than `exit_span_min_duration` that can be
    /// dropped: it did not propagate its context (a callee names it) and did not fail.
    fn report(&mut self, mut span: Box<SpanRecord>, report: &mut dyn FnMut(Box<SpanRecord>)) {
        if span.duration_us < self.settings.exit_span_min_us && !span.propagated && span.outcome != Outcome::Failure && is_exit(&mut span) {
            let (count, sum_us) = span.composite.map_or((1, span.duration_us), |c| (c.count, c.sum_us));
            self.started -= 1;
            self.dropped += count;
            self.count_dropped(&span, count, sum_us);
            return;
        }
        report(span);
    }

    fn count_dropped(&mut self, span: &SpanRecord, count: u32, sum_us: u64) {
        let target = service_target::reported(span);
        let same = |s: &&mut DroppedSpanStats| {
            s.destination_resource == target.resource
                && s.target_type == target.target_type
                && s.target_name.as_deref() == target.name.as_deref()
                && s.outcome == span.outcome
        };
        if let Some(stats) = self.dropped_stats.iter_mut().find(same) {
            stats.count += u64::from(count);
            stats.sum_us += sum_us;
        } else if self.dropped_stats.len() < MAX_DROPPED_SPAN_STATS {
            self.dropped_stats.push(DroppedSpanStats {
                destination_resource: target.resource.into_owned(),
                target_type: target.target_type.into_owned(),
                target_name: target.name.map(Cow::into_owned),
                outcome: span.outcome,
                count: u64::from(count),
                sum_us,
            });
        }
    }

    fn add_self_time(&mut self, span_type: &str, subtype: Option<&str>, us: u64) {
        match self.self_times.iter_mut().find(|s| s.span_type == span_type && s.subtype.as_deref() == subtype) {
            Some(entry) => {
                entry.count += 1;
                entry.sum_us += us;
            }
            None => self.self_times.push(SelfTime { span_type: span_type.to_owned(), subtype: subtype.map(str::to_owned), count: 1, sum_us: us }),
        }
    }
}

/// A call to another service: a leaf of the Elastic API, or a CLIENT or PRODUCER span of the
/// OpenTelemetry API (given its Elastic shape here, as the export thread would).
fn is_exit(span: &mut SpanRecord) -> bool {
    if span.exit {
        return true;
    }
    let kind = span.otel.as_ref().and_then(|otel| otel.kind);
    let exit = matches!(kind, Some(SpanKind::Client | SpanKind::Producer));
    if exit {
        bridge::shape_span(span);
    }
    exit
}

/// Elastic's compression eligibility: an exit span that did not propagate its context and did
/// not fail.
fn compressible(span: &mut SpanRecord) -> bool {
    !span.propagated && span.outcome != Outcome::Failure && is_exit(span)
}

/// What a span's service target is inferred from (`service_target::inferred`; an OpenTelemetry
/// span's is set already): spans alike in all of it call the same service. Compared as they are,
/// without inferring the target of every span that ends.
fn target_sources(span: &SpanRecord) -> [Option<&Value>; 4] {
    let context = &span.context;
    [
        context.get("service").and_then(|service| service.get("target")),
        context.get("db").and_then(|db| db.get("instance")),
        context.get("message").and_then(|message| message.pointer("/queue/name")),
        context.get("http").and_then(|http| http.get("url")),
    ]
}

/// Same type, subtype and service target.
fn same_kind(a: &SpanRecord, b: &SpanRecord) -> bool {
    a.span_type == b.span_type && a.subtype == b.subtype && target_sources(a) == target_sources(b)
}

/// Compresses `sibling` into `buffered` when the buffered span's strategy (or, if it is not a
/// composite yet, the first that applies) allows it.
fn compress(buffered: &mut SpanRecord, sibling: &SpanRecord, compression: Compression) -> bool {
    if !same_kind(buffered, sibling) {
        return false;
    }
    let exact = buffered.name == sibling.name;
    let strategy = match buffered.composite {
        Some(composite) => composite.strategy,
        None if exact && buffered.duration_us <= compression.exact_match_max_us => CompressionStrategy::ExactMatch,
        None if buffered.duration_us <= compression.same_kind_max_us => CompressionStrategy::SameKind,
        None => return false,
    };
    let fits = match strategy {
        CompressionStrategy::ExactMatch => exact && sibling.duration_us <= compression.exact_match_max_us,
        CompressionStrategy::SameKind => sibling.duration_us <= compression.same_kind_max_us,
    };
    if !fits {
        return false;
    }
    if buffered.composite.is_none() && strategy == CompressionStrategy::SameKind {
        buffered.name = calls_to(buffered);
    }
    let composite = buffered.composite.get_or_insert(Composite { strategy, count: 1, sum_us: buffered.duration_us });
    composite.count += 1;
    composite.sum_us += sibling.duration_us;
    let end_us = (sibling.timestamp_us + sibling.duration_us).max(buffered.timestamp_us + buffered.duration_us);
    buffered.duration_us = end_us - buffered.timestamp_us;
    true
}

/// "Calls to <target type>/<target name>" (or the type alone): a same_kind composite's name.
fn calls_to(span: &SpanRecord) -> String {
    let target = service_target::reported(span);
    match (target.target_type.as_ref(), target.name) {
        ("", _) => format!("Calls to {}", span.subtype.as_deref().unwrap_or(&span.span_type)),
        (kind, Some(name)) => format!("Calls to {kind}/{name}"),
        (kind, None) => format!("Calls to {kind}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(env: &[(&str, &str)]) -> ShapingSettings {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (format!("ELASTIC_APM_{k}"), v.to_string())).collect();
        ShapingSettings::from_config(&Config::resolve(&env, &HashMap::new(), &HashMap::new()))
    }

    #[test]
    fn the_elastic_defaults() {
        let defaults = settings(&[]);
        assert_eq!(defaults.max_spans, Some(500));
        assert_eq!(defaults.compression, Some(Compression { exact_match_max_us: 50_000, same_kind_max_us: 0 }));
        assert_eq!((defaults.exit_span_min_us, defaults.stack_trace_min_us, defaults.breakdown), (0, Some(5_000), true));
    }

    #[test]
    fn negative_values_mean_unlimited_or_never() {
        let s = settings(&[("TRANSACTION_MAX_SPANS", "-1"), ("SPAN_STACK_TRACE_MIN_DURATION", "-1ms"), ("SPAN_COMPRESSION_ENABLED", "false")]);
        assert_eq!((s.max_spans, s.stack_trace_min_us, s.compression), (None, None, None));
    }

    #[test]
    fn the_deprecated_frames_option_counts_the_other_way_round() {
        assert_eq!(settings(&[("SPAN_FRAMES_MIN_DURATION", "-1")]).stack_trace_min_us, Some(0));
        assert_eq!(settings(&[("SPAN_FRAMES_MIN_DURATION", "0")]).stack_trace_min_us, None);
        assert_eq!(settings(&[("SPAN_FRAMES_MIN_DURATION", "20ms")]).stack_trace_min_us, Some(20_000));
        let both = settings(&[("SPAN_FRAMES_MIN_DURATION", "0"), ("SPAN_STACK_TRACE_MIN_DURATION", "1ms")]);
        assert_eq!(both.stack_trace_min_us, Some(1_000));
    }

    use crate::model::{SpanRecord, TransactionRecord};
    use crate::sampling::Sampler;
    use crate::trace::{ActiveSpan, ActiveTransaction, TransactionStart};
    use serde_json::json;

    const T0: u64 = 1_700_000_000_000_000;

    /// A transaction started at T0 with the settings `env` gives, and what it reports.
    struct Run {
        transaction: ActiveTransaction,
        // Boxed as `end_span` reports them.
        #[allow(clippy::vec_box)]
        reported: Vec<Box<SpanRecord>>,
    }

    impl Run {
        fn new(env: &[(&str, &str)]) -> Run {
            let transaction = ActiveTransaction::start(TransactionStart {
                transaction_type: "request",
                parent: None,
                sampler: Sampler::default(),
                start_epoch_us: Some(T0),
                links: vec![],
                shaping: Arc::new(settings(env)),
            });
            Run { transaction, reported: Vec::new() }
        }

        /// An exit span to `db.instance` from `start` to `end` (ms after T0), under the transaction.
        fn db(&mut self, name: &str, instance: &str, start_ms: u64, end_ms: u64) -> Box<SpanRecord> {
            let mut span = self.start(None, name, start_ms);
            span.record.exit = true;
            span.record.subtype = Some("mysql".into());
            span.record.context = json!({"db": {"instance": instance, "type": "sql"}}).as_object().cloned().unwrap();
            self.end(&mut span, None, end_ms);
            span.record.clone().into()
        }

        fn start(&mut self, parent: Option<&mut ActiveSpan>, name: &str, start_ms: u64) -> ActiveSpan {
            self.transaction.start_span(parent, name, "db", Some(T0 + start_ms * 1000)).unwrap()
        }

        fn end(&mut self, span: &mut ActiveSpan, parent: Option<&mut ActiveSpan>, end_ms: u64) {
            let reported = &mut self.reported;
            self.transaction.end_span(span, parent, false, Some(T0 + end_ms * 1000), &mut |s| reported.push(s));
        }

        fn finish(&mut self, duration_ms: u64) -> TransactionRecord {
            let reported = &mut self.reported;
            self.transaction.finish(Some(duration_ms * 1000), &mut |s| reported.push(s)).unwrap()
        }

        fn names(&self) -> Vec<&str> {
            self.reported.iter().map(|s| s.name.as_str()).collect()
        }
    }

    #[test]
    fn consecutive_identical_exit_spans_become_one_composite() {
        let mut run = Run::new(&[]);
        for i in 0..3 {
            run.db("SELECT FROM items", "shop", 10 * i, 10 * i + 2);
        }
        assert!(run.reported.is_empty(), "held while a sibling may follow");
        let transaction = run.finish(40);
        assert_eq!(run.names(), ["SELECT FROM items"]);
        let composite = run.reported[0].composite.unwrap();
        assert_eq!((composite.strategy, composite.count, composite.sum_us), (CompressionStrategy::ExactMatch, 3, 6_000));
        assert_eq!((run.reported[0].timestamp_us, run.reported[0].duration_us), (T0, 22_000), "first start to last end");
        assert_eq!((transaction.spans_started, transaction.spans_dropped), (1, 0));
    }

    #[test]
    fn same_kind_compression_names_the_target() {
        let mut run = Run::new(&[("SPAN_COMPRESSION_SAME_KIND_MAX_DURATION", "5ms")]);
        run.db("SELECT FROM a", "shop", 0, 1);
        run.db("SELECT FROM b", "shop", 2, 3);
        run.db("INSERT INTO a", "shop", 3, 4);
        run.db("SELECT FROM c", "other", 4, 5);
        run.finish(10);
        assert_eq!(run.names(), ["Calls to mysql/shop", "SELECT FROM c"]);
        assert_eq!(run.reported[0].composite.map(|c| (c.strategy, c.count)), Some((CompressionStrategy::SameKind, 3)));
        assert!(run.reported[1].composite.is_none());
    }

    #[test]
    fn long_failed_propagating_or_interrupted_spans_are_not_compressed() {
        let mut run = Run::new(&[]);
        run.db("SELECT", "shop", 0, 60); // longer than the 50 ms of exact_match
        run.db("SELECT", "shop", 61, 62);
        let mut propagating = run.start(None, "SELECT", 63);
        propagating.record.exit = true;
        propagating.record.propagated = true;
        run.end(&mut propagating, None, 64);
        run.db("SELECT", "shop", 65, 66);
        let mut internal = run.start(None, "work", 67);
        run.end(&mut internal, None, 68);
        run.db("SELECT", "shop", 69, 70);
        run.finish(80);
        assert_eq!(run.reported.len(), 6, "{:?}", run.names());
        assert!(run.reported.iter().all(|s| s.composite.is_none()));
        let mut disabled = Run::new(&[("SPAN_COMPRESSION_ENABLED", "false")]);
        disabled.db("SELECT", "shop", 0, 1);
        disabled.db("SELECT", "shop", 2, 3);
        disabled.finish(5);
        assert_eq!(disabled.reported.len(), 2);
    }

    #[test]
    fn short_exit_spans_are_dropped_and_counted() {
        let mut run = Run::new(&[("EXIT_SPAN_MIN_DURATION", "5ms"), ("SPAN_COMPRESSION_ENABLED", "false")]);
        run.db("SELECT", "shop", 0, 1);
        run.db("SELECT", "shop", 2, 4);
        run.db("SELECT", "shop", 5, 15);
        let transaction = run.finish(20);
        assert_eq!(run.reported.len(), 1);
        assert_eq!((transaction.spans_started, transaction.spans_dropped), (1, 2));
        let stats = &transaction.dropped_spans_stats;
        assert_eq!(stats.len(), 1);
        assert_eq!(
            (stats[0].destination_resource.as_str(), stats[0].target_type.as_str(), stats[0].target_name.as_deref()),
            ("mysql/shop", "mysql", Some("shop"))
        );
        assert_eq!((stats[0].outcome, stats[0].count, stats[0].sum_us), (Outcome::Success, 2, 3_000));
    }

    #[test]
    fn spans_past_the_maximum_are_counted_not_reported() {
        let mut run = Run::new(&[("TRANSACTION_MAX_SPANS", "2"), ("SPAN_COMPRESSION_ENABLED", "false")]);
        for i in 0..5 {
            run.db("SELECT", if i < 3 { "shop" } else { "other" }, i, i + 1);
        }
        let transaction = run.finish(10);
        assert_eq!(run.reported.len(), 2);
        assert_eq!((transaction.spans_started, transaction.spans_dropped), (2, 3));
        let stats: Vec<_> = transaction.dropped_spans_stats.iter().map(|s| (s.destination_resource.as_str(), s.count)).collect();
        assert_eq!(stats, [("mysql/shop", 1), ("mysql/other", 2)]);
    }

    #[test]
    fn dropped_span_stats_keep_at_most_128_groups() {
        let mut run = Run::new(&[("TRANSACTION_MAX_SPANS", "0")]);
        for i in 0..200 {
            run.db("SELECT", &format!("db{i}"), 0, 1);
        }
        let transaction = run.finish(2);
        assert_eq!((transaction.spans_started, transaction.spans_dropped), (0, 200));
        assert_eq!(transaction.dropped_spans_stats.len(), MAX_DROPPED_SPAN_STATS);
    }

    #[test]
    fn self_times_for_the_breakdown() {
        let mut run = Run::new(&[("SPAN_COMPRESSION_ENABLED", "false")]);
        // An app span from 10 to 40 whose db child runs from 20 to 30 (self time 20), then two
        // overlapping db calls, 50-70 and 60-80: the transaction (100) is in its children from 10
        // to 40 and from 50 to 80, so its own time is 40.
        let mut outer = run.start(None, "outer", 10);
        outer.record.span_type = "app".into();
        let mut inner = run.start(Some(&mut outer), "inner", 20);
        run.end(&mut inner, Some(&mut outer), 30);
        run.end(&mut outer, None, 40);
        let mut a = run.start(None, "a", 50);
        let mut b = run.start(None, "b", 60);
        run.end(&mut a, None, 70);
        run.end(&mut b, None, 80);
        run.finish(100);
        let times: Vec<_> = run.transaction.take_self_times().into_iter().map(|t| (t.span_type, t.count, t.sum_us / 1000)).collect();
        assert_eq!(times, [("db".into(), 3, 10 + 20 + 20), ("app".into(), 2, 20 + 40)]);
        let mut off = Run::new(&[("BREAKDOWN_METRICS", "false")]);
        off.db("SELECT", "shop", 0, 1);
        off.finish(2);
        assert!(off.transaction.take_self_times().is_empty());
    }
}
