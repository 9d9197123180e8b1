//! What every network exporter does the same way: fill a batch until it is full or old enough,
//! hand it to a transport, keep what met a transient fault in a `RetryQueue`, count, and log a
//! fault once when the episode starts and once when it ends. Formats differ only in their
//! `Encoder`, protocols in their `Transport`.

use crate::config::Config;
use crate::diag;
use crate::exporters::retry::{Attempt, Pending, RetryQueue, Tally};
use crate::model::Event;
use crate::pipeline::{Exporter, Stats};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Builds request bodies.
pub trait Encoder: Send {
    /// Adds the event to the open batch; false when this format does not carry such events.
    fn add(&mut self, event: &Event) -> bool;
    /// Whether the open batch reached its size bound.
    fn is_full(&self) -> bool;
    /// Closes the open batch and returns its request body.
    fn finish(&mut self) -> Result<Vec<u8>, String>;
    /// Takes the options central configuration changed; returns how long batches of this format
    /// now stay open, if an option says.
    fn reconfigure(&mut self, _config: &Config) -> Option<Duration> {
        None
    }
}

/// Delivers one request body.
pub trait Transport: Send {
    /// What came of it and, for the log (no secrets): for anything but a delivery, why; for a
    /// delivery, what the server said about events it dropped anyway (an OTLP partial success).
    fn attempt(&mut self, body: &[u8]) -> (Attempt, Option<String>);
    /// Who receives, as log lines name it.
    fn peer(&self) -> &str;
}

pub struct BatchExporter<E, T> {
    encoder: E,
    transport: T,
    /// How long a batch stays open for more events.
    max_age: Duration,
    /// Events in the open batch and when it is due.
    open: Option<(u64, Instant)>,
    retry: RetryQueue,
    /// The fault being reported, while an episode lasts.
    fault: Option<String>,
    /// Whether a partial success was reported (once is enough: it repeats for every batch).
    complained: bool,
    stats: Arc<Stats>,
}

impl<E: Encoder, T: Transport> BatchExporter<E, T> {
    pub fn new(encoder: E, transport: T, max_age: Duration, retry_buffer_size: usize, stats: Arc<Stats>) -> Self {
        BatchExporter { encoder, transport, max_age, open: None, retry: RetryQueue::new(retry_buffer_size), fault: None, complained: false, stats }
    }

    /// Moves the open batch, encoded, to the queue of batches to send.
    fn close_batch(&mut self) {
        let Some((events, _)) = self.open.take() else { return };
        match self.encoder.finish() {
            Ok(body) => {
                let dropped = self.retry.push(Pending { body, events });
                if dropped > 0 {
                    self.stats.dropped_buffer_full.fetch_add(dropped, Ordering::Relaxed);
                }
            }
            Err(e) => {
                diag::warn(&format!("could not encode a batch of {events} events for {}: {e}", self.transport.peer()));
                self.stats.failed.fetch_add(events, Ordering::Relaxed);
            }
        }
    }

    /// Sends what is due now; one log line when a fault episode starts, one when it ends.
    fn send_due(&mut self) {
        let transport = &mut self.transport;
        let (mut fault, mut complaint) = (None, None);
        let mut requests = 0;
        let tally = self.retry.send_due(Instant::now(), |pending| {
            requests += 1;
            let (attempt, remark) = transport.attempt(&pending.body);
            match attempt {
                Attempt::Delivered => complaint = remark.or(complaint.take()),
                _ => fault = remark.or(fault.take()),
            }
            attempt
        });
        if let Some(complaint) = complaint.filter(|_| !self.complained) {
            diag::warn(&format!("{} accepted a batch but said: {complaint} (reported once)", self.transport.peer()));
            self.complained = true;
        }
        self.account(requests, &tally);
        match (fault, self.fault.is_some()) {
            (Some(why), false) => {
                diag::warn(&format!("{why}; undelivered events are kept (up to retry_buffer_size) and sent again when it recovers"));
                self.fault = Some(why);
            }
            (None, true) if tally.delivered > 0 => {
                diag::log(diag::Level::Info, &format!("{} accepts events again", self.transport.peer()));
                self.fault = None;
            }
            _ => {}
        }
    }

    fn account(&self, requests: u64, tally: &Tally) {
        let add = |counter: &AtomicU64, n: u64| {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&self.stats.requests, requests);
        add(&self.stats.failed_requests, tally.retries + tally.rejected_batches);
        add(&self.stats.sent, tally.delivered);
        add(&self.stats.retries, tally.retries);
        add(&self.stats.failed, tally.rejected);
    }
}

impl<E: Encoder, T: Transport> Exporter for BatchExporter<E, T> {
    fn export(&mut self, events: &[Event]) {
        for event in events {
            if !self.encoder.add(event) {
                continue;
            }
            let max_age = self.max_age;
            self.open.get_or_insert_with(|| (0, Instant::now() + max_age)).0 += 1;
            if self.encoder.is_full() {
                self.close_batch();
                self.send_due();
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        [self.open.map(|(_, due)| due), self.retry.next_attempt()].into_iter().flatten().min()
    }

    fn tick(&mut self, now: Instant) {
        if self.open.is_some_and(|(_, due)| due <= now) {
            self.close_batch();
        }
        self.send_due();
    }

    fn flush(&mut self, deadline: Instant) {
        self.close_batch();
        loop {
            self.send_due();
            match self.retry.next_attempt() {
                None => return,
                Some(next) if next <= deadline => std::thread::sleep(next.saturating_duration_since(Instant::now())),
                Some(_) => break,
            }
        }
        diag::warn(&format!("{} events not yet delivered to {} when the flush deadline passed", self.retry.events(), self.transport.peer()));
    }

    fn reconfigure(&mut self, config: &Config) {
        if let Some(max_age) = self.encoder.reconfigure(config) {
            self.max_age = max_age;
        }
    }

    fn close(&mut self, deadline: Instant) {
        self.flush(deadline);
        self.stats.failed.fetch_add(self.retry.events(), Ordering::Relaxed);
    }
}
