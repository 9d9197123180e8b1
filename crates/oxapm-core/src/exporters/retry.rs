//! Batches that could not be delivered yet, kept for another attempt: oldest first, bounded in
//! bytes (past the bound the oldest are dropped), retried with exponential backoff and jitter, or
//! when the server says (`Retry-After`).

use crate::ids::random_unit;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A server may ask for a longer pause, but not for one that outlasts an outage report.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Batches sent per call of `send_due`, so the worker returns to draining the event queue.
const MAX_SENDS_PER_CALL: usize = 16;

pub struct Pending {
    pub body: Vec<u8>,
    pub events: u64,
}

/// What one delivery attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// A transient fault (unreachable, timeout, 429, 502, 503, 504); `Some` when the server said
    /// how long to wait.
    RetryLater(Option<Duration>),
    /// The server refused the batch for good (4xx other than 429): it is dropped.
    Rejected,
}

/// What one `send_due` call accounted, for the exporter's counters.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub delivered: u64,
    /// Events, and the batches that carried them.
    pub rejected: u64,
    pub rejected_batches: u64,
    pub retries: u64,
}

pub struct RetryQueue {
    items: VecDeque<Pending>,
    bytes: usize,
    max_bytes: usize,
    backoff: Duration,
    next_attempt: Option<Instant>,
}

impl RetryQueue {
    pub fn new(max_bytes: usize) -> Self {
        RetryQueue { items: VecDeque::new(), bytes: 0, max_bytes, backoff: INITIAL_BACKOFF, next_attempt: None }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn events(&self) -> u64 {
        self.items.iter().map(|p| p.events).sum()
    }

    /// Queues a batch; returns the events dropped, oldest first, to stay within the byte bound.
    pub fn push(&mut self, pending: Pending) -> u64 {
        self.bytes += pending.body.len();
        self.items.push_back(pending);
        let mut dropped = 0;
        while self.bytes > self.max_bytes {
            let Some(oldest) = self.items.pop_front() else { break };
            self.bytes -= oldest.body.len();
            dropped += oldest.events;
        }
        dropped
    }

    /// When the next attempt is due, if anything waits.
    pub fn next_attempt(&self) -> Option<Instant> {
        if self.items.is_empty() {
            None
        } else {
            Some(self.next_attempt.unwrap_or_else(Instant::now))
        }
    }

    /// Sends what is due at `now`, oldest first, until a transient fault or `MAX_SENDS_PER_CALL`.
    pub fn send_due(&mut self, now: Instant, mut send: impl FnMut(&Pending) -> Attempt) -> Tally {
        let mut tally = Tally::default();
        if self.next_attempt.is_some_and(|t| t > now) {
            return tally;
        }
        for _ in 0..MAX_SENDS_PER_CALL {
            let Some(head) = self.items.front() else { break };
            match send(head) {
                outcome @ (Attempt::Delivered | Attempt::Rejected) => {
                    if let Some(done) = self.items.pop_front() {
                        self.bytes -= done.body.len();
                        if outcome == Attempt::Delivered {
                            tally.delivered += done.events;
                        } else {
                            tally.rejected += done.events;
                            tally.rejected_batches += 1;
                        }
                    }
                    self.backoff = INITIAL_BACKOFF;
                    self.next_attempt = None;
                }
                Attempt::RetryLater(after) => {
                    tally.retries += 1;
                    let wait = after.map(|a| a.min(MAX_RETRY_AFTER)).unwrap_or_else(|| self.backoff.mul_f64(0.5 + 0.5 * random_unit()));
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    self.next_attempt = Some(now + wait);
                    break;
                }
            }
        }
        tally
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(bytes: usize, events: u64) -> Pending {
        Pending { body: vec![0; bytes], events }
    }

    #[test]
    fn past_the_byte_bound_the_oldest_are_dropped() {
        let mut queue = RetryQueue::new(100);
        assert_eq!(queue.push(batch(40, 1)), 0);
        assert_eq!(queue.push(batch(40, 2)), 0);
        assert_eq!(queue.push(batch(40, 4)), 1);
        assert_eq!(queue.events(), 6);
    }

    #[test]
    fn delivers_in_order_and_backs_off_on_transient_faults() {
        let mut queue = RetryQueue::new(1 << 20);
        for events in 1..=3 {
            queue.push(batch(10, events));
        }
        let now = Instant::now();
        let mut seen = Vec::new();
        let tally = queue.send_due(now, |p| {
            seen.push(p.events);
            if p.events == 2 {
                Attempt::RetryLater(None)
            } else {
                Attempt::Delivered
            }
        });
        assert_eq!(seen, vec![1, 2]);
        assert_eq!(tally, Tally { delivered: 1, retries: 1, ..Tally::default() });
        let due = queue.next_attempt().unwrap();
        assert!(due > now && due <= now + INITIAL_BACKOFF);
        assert_eq!(queue.send_due(now, |_| panic!("not due yet")), Tally::default());
        let tally = queue.send_due(due, |_| Attempt::Delivered);
        assert_eq!(tally.delivered, 5);
        assert!(queue.is_empty() && queue.next_attempt().is_none());
    }

    #[test]
    fn backoff_grows_to_its_cap_and_honours_retry_after() {
        let mut queue = RetryQueue::new(1 << 20);
        queue.push(batch(10, 1));
        let mut now = Instant::now();
        for _ in 0..20 {
            queue.send_due(now, |_| Attempt::RetryLater(None));
            let wait = queue.next_attempt().unwrap() - now;
            assert!(wait <= MAX_BACKOFF);
            now += wait;
        }
        assert!(queue.backoff == MAX_BACKOFF);
        queue.send_due(now, |_| Attempt::RetryLater(Some(Duration::from_secs(7))));
        assert_eq!(queue.next_attempt().unwrap() - now, Duration::from_secs(7));
    }

    #[test]
    fn rejected_batches_are_dropped_and_the_rest_goes_on() {
        let mut queue = RetryQueue::new(1 << 20);
        queue.push(batch(10, 1));
        queue.push(batch(10, 2));
        let tally = queue.send_due(Instant::now(), |p| if p.events == 1 { Attempt::Rejected } else { Attempt::Delivered });
        assert_eq!(tally, Tally { delivered: 2, rejected: 1, rejected_batches: 1, ..Tally::default() });
    }
}
