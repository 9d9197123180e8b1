//! The export pipeline: a bounded queue filled by application threads without waiting, and one named
//! worker thread that drains it in batches and hands the batches to the exporters.
//!
//! The worker sleeps on a control channel, not on the event queue, so pushing an event never wakes
//! it: a wake-up is sent once per `WAKE_BATCH` events, and the worker also wakes at each exporter's
//! deadline and at least every `MAX_IDLE`. With metrics on, it also wakes to collect them, and
//! collects at each flush and at shutdown; metricsets go to the exporters like the other events.
//! So do the OpenTelemetry meters' metrics, which the `MeterReader` collects the same way.

use crate::config::Config;
use crate::diag;
use crate::live::Live;
use crate::meters::MeterReader;
use crate::metrics::Collector;
use crate::model::Event;
use crate::policy::Policy;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const WAKE_BATCH: u64 = 512;
const MAX_IDLE: Duration = Duration::from_secs(1);
const EXPORT_CHUNK: usize = 1024;

pub trait Exporter: Send {
    fn export(&mut self, events: &[Event]);
    /// When the exporter wants `tick` called: its open batch is due, or a retry.
    fn deadline(&self) -> Option<Instant>;
    /// Does what is due at `now` without waiting (the worker must get back to the queue).
    fn tick(&mut self, now: Instant) {
        self.flush(now);
    }
    /// Sends whatever is buffered, waiting for retries until `deadline` at the latest.
    fn flush(&mut self, deadline: Instant);
    /// The last flush: what is still undelivered after it is given up.
    fn close(&mut self, deadline: Instant) {
        self.flush(deadline);
    }
    /// Takes the options central configuration changed (the exporters that read any).
    fn reconfigure(&mut self, _config: &Config) {}
}

/// Counters readable from Python. The delivery counters add up over the exporters: with intake
/// and OTLP both on, an event delivered to both counts twice in `sent`.
#[derive(Default, Debug)]
pub struct Stats {
    pub queued: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub sent: AtomicU64,
    /// Failed attempts that will be retried.
    pub retries: AtomicU64,
    /// Events dropped, oldest first, because undelivered batches outgrew their byte bound.
    pub dropped_buffer_full: AtomicU64,
    /// Events the server refused for good (4xx other than 429, a final gRPC status), that could
    /// not be encoded, or that were still undelivered when close gave up.
    pub failed: AtomicU64,
    pub requests: AtomicU64,
    pub failed_requests: AtomicU64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub queued: u64,
    pub dropped_queue_full: u64,
    pub sent: u64,
    pub retries: u64,
    pub dropped_buffer_full: u64,
    pub failed: u64,
    pub requests: u64,
    pub failed_requests: u64,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            queued: get(&self.queued),
            dropped_queue_full: get(&self.dropped_queue_full),
            sent: get(&self.sent),
            retries: get(&self.retries),
            dropped_buffer_full: get(&self.dropped_buffer_full),
            failed: get(&self.failed),
            requests: get(&self.requests),
            failed_requests: get(&self.failed_requests),
        }
    }
}

enum Control {
    Wake,
    Flush(Instant, Sender<()>),
    Shutdown(Instant, Sender<()>),
    Reconfigure(Arc<Config>),
}

pub struct Pipeline {
    events: SyncSender<Event>,
    control: Sender<Control>,
    wake_pending: Arc<AtomicBool>,
    warned_full: AtomicBool,
    stats: Arc<Stats>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Pipeline {
    /// `policy` finishes each record on the worker before the exporters see it.
    pub fn start(capacity: usize, exporters: Vec<Box<dyn Exporter>>, stats: Arc<Stats>, policy: Live<Policy>) -> Pipeline {
        Pipeline::start_with_metrics(capacity, exporters, stats, policy, None, None)
    }

    /// `metrics` and `meters`, when given, collect on the worker.
    pub fn start_with_metrics(
        capacity: usize,
        exporters: Vec<Box<dyn Exporter>>,
        stats: Arc<Stats>,
        policy: Live<Policy>,
        metrics: Option<Collector>,
        meters: Option<MeterReader>,
    ) -> Pipeline {
        let (events, event_rx) = mpsc::sync_channel(capacity.max(1));
        let (control, control_rx) = mpsc::channel();
        let wake_pending = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            events: event_rx,
            control: control_rx,
            exporters,
            policy,
            metrics,
            meters,
            wake_pending: wake_pending.clone(),
            batch: Vec::with_capacity(EXPORT_CHUNK),
        };
        let handle = std::thread::Builder::new().name("oxapm-export".into()).spawn(move || worker.run());
        let worker = match handle {
            Ok(handle) => Some(handle),
            Err(e) => {
                diag::warn(&format!("could not start the export thread ({e}); nothing will be exported"));
                None
            }
        };
        Pipeline { events, control, wake_pending, warned_full: AtomicBool::new(false), stats, worker: Mutex::new(worker) }
    }

    /// The hot path: never blocks. A full queue drops the event and counts it.
    pub fn push(&self, event: Event) {
        match self.events.try_send(event) {
            Ok(()) => {
                let queued = self.stats.queued.fetch_add(1, Ordering::Relaxed) + 1;
                if queued % WAKE_BATCH == 0 && !self.wake_pending.swap(true, Ordering::AcqRel) {
                    let _ = self.control.send(Control::Wake);
                }
            }
            // After shutdown: the application asked to stop sending.
            Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.stats.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
                if !self.warned_full.swap(true, Ordering::Relaxed) {
                    diag::warn("export queue full: dropping events (counted in stats as dropped_queue_full); raise max_queue_size if this persists");
                }
            }
        }
    }

    /// Waits until everything pushed before this call was handed to the exporters and sent, or the
    /// timeout passed. Returns whether it completed in time.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        self.request(deadline, |reply| Control::Flush(deadline, reply))
    }

    /// Flushes and stops the worker, waiting at most `timeout`: a hanging backend cannot hang exit.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let done = self.request(deadline, |reply| Control::Shutdown(deadline, reply));
        if done {
            if let Some(handle) = self.worker.lock().ok().and_then(|mut w| w.take()) {
                let _ = handle.join();
            }
        }
        done
    }

    /// Hands the exporters the options central configuration changed.
    pub fn reconfigure(&self, config: Arc<Config>) {
        let _ = self.control.send(Control::Reconfigure(config));
    }

    fn request(&self, deadline: Instant, message: impl FnOnce(Sender<()>) -> Control) -> bool {
        let (reply, done) = mpsc::channel();
        if self.control.send(message(reply)).is_err() {
            return true; // The worker is gone: nothing is left to flush.
        }
        // A little grace beyond the deadline so the worker's own give-up can be reported.
        let wait = deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(50);
        done.recv_timeout(wait).is_ok()
    }
}

struct Worker {
    events: Receiver<Event>,
    control: Receiver<Control>,
    exporters: Vec<Box<dyn Exporter>>,
    policy: Live<Policy>,
    metrics: Option<Collector>,
    meters: Option<MeterReader>,
    wake_pending: Arc<AtomicBool>,
    batch: Vec<Event>,
}

impl Worker {
    fn run(mut self) {
        loop {
            let now = Instant::now();
            let deadlines = self.exporters.iter().filter_map(|e| e.deadline()).chain(self.metrics.as_ref().map(Collector::deadline));
            let deadlines = deadlines.chain(self.meters.as_ref().map(MeterReader::deadline));
            let next = deadlines.min().unwrap_or(now + MAX_IDLE).min(now + MAX_IDLE);
            match self.control.recv_timeout(next.saturating_duration_since(now)) {
                Ok(Control::Wake) => {
                    self.wake_pending.store(false, Ordering::Release);
                    self.drain();
                }
                Err(RecvTimeoutError::Timeout) => self.drain(),
                Ok(Control::Flush(deadline, reply)) => {
                    self.drain();
                    self.collect_metrics();
                    self.flush_all(deadline);
                    let _ = reply.send(());
                }
                Ok(Control::Reconfigure(config)) => {
                    for exporter in &mut self.exporters {
                        exporter.reconfigure(&config);
                    }
                }
                Ok(Control::Shutdown(deadline, reply)) => {
                    self.drain();
                    self.collect_metrics();
                    self.close_all(deadline);
                    let _ = reply.send(());
                    return;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.drain();
                    self.close_all(Instant::now() + Duration::from_secs(1));
                    return;
                }
            }
            let now = Instant::now();
            let meters_due = self.meters.as_ref().is_some_and(|m| m.deadline() <= now);
            if meters_due || self.metrics.as_ref().is_some_and(|m| m.deadline() <= now) {
                self.collect_metrics();
            }
            for exporter in &mut self.exporters {
                if exporter.deadline().is_some_and(|d| d <= now) {
                    exporter.tick(now);
                }
            }
        }
    }

    fn drain(&mut self) {
        let policy = self.policy.get();
        while let Ok(mut event) = self.events.try_recv() {
            policy.finish(&mut event);
            self.batch.push(event);
            if self.batch.len() == EXPORT_CHUNK {
                self.export_batch();
            }
        }
        self.export_batch();
    }

    /// Metricsets and meters' metrics are the engine's own records: nothing for the policy to
    /// finish. Both are collected together, so that one collection is one export request.
    fn collect_metrics(&mut self) {
        if let Some(metrics) = &mut self.metrics {
            self.batch.extend(metrics.collect());
        }
        if let Some(meters) = &mut self.meters {
            self.batch.extend(meters.collect());
        }
        self.export_batch();
    }

    fn export_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        for exporter in &mut self.exporters {
            exporter.export(&self.batch);
        }
        self.batch.clear();
    }

    fn flush_all(&mut self, deadline: Instant) {
        for exporter in &mut self.exporters {
            exporter.flush(deadline);
        }
    }

    fn close_all(&mut self, deadline: Instant) {
        for exporter in &mut self.exporters {
            exporter.close(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SpanRecord;

    struct Recorder(Arc<Mutex<Vec<String>>>, Option<Instant>);

    impl Exporter for Recorder {
        fn export(&mut self, events: &[Event]) {
            let mut seen = self.0.lock().unwrap();
            for e in events {
                if let Event::Span(s) = e {
                    seen.push(s.name.clone());
                }
            }
        }
        fn deadline(&self) -> Option<Instant> {
            self.1
        }
        fn flush(&mut self, _deadline: Instant) {
            self.0.lock().unwrap().push("<flush>".into());
        }
    }

    fn span(name: &str) -> Event {
        Event::Span(Box::new(SpanRecord { name: name.into(), ..Default::default() }))
    }

    #[test]
    fn flush_delivers_everything_pushed_before_it() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let pipeline = Pipeline::start(10_000, vec![Box::new(Recorder(seen.clone(), None))], Arc::default(), Live::default());
        for i in 0..5000 {
            pipeline.push(span(&i.to_string()));
        }
        assert!(pipeline.flush(Duration::from_secs(5)));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 5001);
        assert_eq!(seen.last().unwrap(), "<flush>");
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        struct Stuck;
        impl Exporter for Stuck {
            fn export(&mut self, _: &[Event]) {
                std::thread::sleep(Duration::from_secs(3));
            }
            fn deadline(&self) -> Option<Instant> {
                None
            }
            fn flush(&mut self, _: Instant) {}
        }
        let stats = Arc::new(Stats::default());
        let pipeline = Pipeline::start(4, vec![Box::new(Stuck)], stats.clone(), Live::default());
        let started = Instant::now();
        for i in 0..100 {
            pipeline.push(span(&i.to_string()));
        }
        // Blocking on the stuck exporter would take seconds per event.
        assert!(started.elapsed() < Duration::from_secs(2));
        let snap = stats.snapshot();
        assert!(snap.dropped_queue_full >= 90, "{snap:?}");
        assert_eq!(snap.queued + snap.dropped_queue_full, 100);
    }

    #[test]
    fn events_after_shutdown_are_ignored_quietly() {
        let stats = Arc::new(Stats::default());
        let pipeline = Pipeline::start(8, vec![], stats.clone(), Live::default());
        assert!(pipeline.shutdown(Duration::from_secs(1)));
        pipeline.push(span("late"));
        assert_eq!(stats.snapshot(), StatsSnapshot::default());
    }

    #[test]
    fn shutdown_gives_up_at_its_deadline() {
        struct Hanging;
        impl Exporter for Hanging {
            fn export(&mut self, _: &[Event]) {}
            fn deadline(&self) -> Option<Instant> {
                None
            }
            fn flush(&mut self, _: Instant) {
                std::thread::sleep(Duration::from_secs(30));
            }
        }
        let pipeline = Pipeline::start(8, vec![Box::new(Hanging)], Arc::default(), Live::default());
        let started = Instant::now();
        assert!(!pipeline.shutdown(Duration::from_millis(200)));
        assert!(started.elapsed() < Duration::from_secs(15));
    }

    #[test]
    fn metrics_are_collected_at_their_interval_and_at_flush() {
        struct Metricsets(Arc<Mutex<usize>>);
        impl Exporter for Metricsets {
            fn export(&mut self, events: &[Event]) {
                *self.0.lock().unwrap() += events.iter().filter(|e| matches!(e, Event::Metricset(_))).count();
            }
            fn deadline(&self) -> Option<Instant> {
                None
            }
            fn flush(&mut self, _: Instant) {}
        }
        let env = std::collections::HashMap::from([("ELASTIC_APM_METRICS_INTERVAL".to_owned(), "100ms".to_owned())]);
        let config = crate::config::Config::resolve(&env, &Default::default(), &Default::default());
        let (collector, inputs) = Collector::new(&config).unwrap();
        inputs.gc.collected(0); // Something to report on any platform.
        let seen = Arc::new(Mutex::new(0));
        let pipeline = Pipeline::start_with_metrics(8, vec![Box::new(Metricsets(seen.clone()))], Arc::default(), Live::default(), Some(collector), None);
        let give_up = Instant::now() + Duration::from_secs(10);
        while *seen.lock().unwrap() == 0 && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(20));
        }
        let before = *seen.lock().unwrap();
        assert!(before > 0, "no collection at the interval");
        assert!(pipeline.flush(Duration::from_secs(5)));
        assert!(*seen.lock().unwrap() > before, "no collection at flush");
    }

    #[test]
    fn the_worker_wakes_at_an_exporter_deadline() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let soon = Instant::now() + Duration::from_millis(100);
        let _pipeline = Pipeline::start(8, vec![Box::new(Recorder(seen.clone(), Some(soon)))], Arc::default(), Live::default());
        // Nothing but the deadline can make the worker flush; give it plenty of time to.
        let flushed = || seen.lock().unwrap().iter().any(|s| s == "<flush>");
        let give_up = Instant::now() + Duration::from_secs(10);
        while !flushed() && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(flushed());
    }
}
