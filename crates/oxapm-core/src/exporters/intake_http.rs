//! Sends intake v2 NDJSON to APM Server's `/intake/v2/events`, gzip-compressed, one request per
//! batch: a batch closes when its compressed size reaches `api_request_size` or it is
//! `api_request_time` old. Batches that meet a transient fault wait in a `RetryQueue`; faults are
//! logged once per episode.

use crate::diag;
use crate::exporters::retry::{Attempt, Pending, RetryQueue, Tally};
use crate::exporters::tls::tls_config;
use crate::intake;
use crate::model::Event;
use crate::pipeline::{Exporter, Stats};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct IntakeSettings {
    pub server_url: String,
    pub secret_token: Option<String>,
    pub api_key: Option<String>,
    pub user_agent: String,
    pub timeout: Duration,
    pub request_time: Duration,
    pub request_size: usize,
    pub retry_buffer_size: usize,
    pub verify_server_cert: bool,
    pub server_ca_cert_file: Option<String>,
    pub metadata_line: Vec<u8>,
}

struct Batch {
    body: GzEncoder<Vec<u8>>,
    events: u64,
    deadline: Instant,
}

/// One HTTP request to APM Server, and what its answer means for the batch.
struct Transport {
    agent: ureq::Agent,
    url: String,
    server_url: String,
    authorization: Option<String>,
}

pub struct IntakeExporter {
    transport: Transport,
    settings: IntakeSettings,
    batch: Option<Batch>,
    retry: RetryQueue,
    line: Vec<u8>,
    /// The fault being reported, while an episode lasts.
    fault: Option<String>,
    stats: Arc<Stats>,
}

/// `apm-agent-python/<version> (<service> <version>)`, as the cross-agent user_agent spec asks, with
/// characters outside a conservative set replaced so the header stays valid.
pub fn user_agent(agent_version: &str, service_name: &str, service_version: Option<&str>) -> String {
    let clean = |s: &str| s.chars().map(|c| if c.is_ascii_alphanumeric() || " _-.:;".contains(c) { c } else { '_' }).collect::<String>();
    match service_version.filter(|v| !v.is_empty()) {
        Some(version) => format!("apm-agent-python/{agent_version} ({} {})", clean(service_name), clean(version)),
        None => format!("apm-agent-python/{agent_version} ({})", clean(service_name)),
    }
}

/// The credentials of a URL (`http://user:secret@host`), which must never reach a log line.
fn url_credentials(url: &str) -> Option<&str> {
    let authority = url.split_once("://")?.1.split('/').next()?;
    authority.rsplit_once('@').map(|(userinfo, _)| userinfo).filter(|u| !u.is_empty())
}

/// `message` with the URL's credentials replaced.
fn redacted(message: String, url: &str) -> String {
    match url_credentials(url) {
        Some(userinfo) => message.replace(userinfo, "<redacted>"),
        None => message,
    }
}

/// An API key takes precedence over a secret token.
pub fn authorization(secret_token: Option<&str>, api_key: Option<&str>) -> Option<String> {
    match (api_key.filter(|k| !k.is_empty()), secret_token.filter(|t| !t.is_empty())) {
        (Some(key), _) => Some(format!("ApiKey {key}")),
        (None, Some(token)) => Some(format!("Bearer {token}")),
        (None, None) => None,
    }
}

/// Seconds, as `Retry-After` gives them (an HTTP date is treated as no hint).
fn retry_after(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

impl Transport {
    fn attempt(&self, body: &[u8]) -> (Attempt, Option<String>) {
        let mut request = self.agent.post(&self.url).header("Content-Type", "application/x-ndjson").header("Content-Encoding", "gzip");
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth);
        }
        match request.send(body) {
            Ok(response) if response.status().is_success() => (Attempt::Delivered, None),
            Ok(mut response) => {
                let status = response.status().as_u16();
                let wait = retry_after(response.headers().get("retry-after").and_then(|v| v.to_str().ok()));
                let detail = response.body_mut().with_config().limit(512).read_to_string().unwrap_or_default();
                let why = format!("APM Server answered {status}: {}", detail.trim());
                match status {
                    429 => (Attempt::RetryLater(wait), Some(why)),
                    502..=504 => (Attempt::RetryLater(None), Some(why)),
                    _ => (Attempt::Rejected, Some(why)),
                }
            }
            Err(e) => (Attempt::RetryLater(None), Some(redacted(format!("could not reach APM Server at {}: {e}", self.server_url), &self.server_url))),
        }
    }
}

impl IntakeExporter {
    pub fn new(settings: IntakeSettings, stats: Arc<Stats>) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(settings.timeout))
            .http_status_as_error(false)
            .user_agent(settings.user_agent.as_str())
            .tls_config(tls_config(settings.verify_server_cert, settings.server_ca_cert_file.as_deref()))
            .build()
            .into();
        let transport = Transport {
            agent,
            url: format!("{}/intake/v2/events", settings.server_url),
            server_url: settings.server_url.clone(),
            authorization: authorization(settings.secret_token.as_deref(), settings.api_key.as_deref()),
        };
        IntakeExporter {
            transport,
            retry: RetryQueue::new(settings.retry_buffer_size),
            settings,
            batch: None,
            line: Vec::with_capacity(1024),
            fault: None,
            stats,
        }
    }

    fn open_batch(&mut self) -> &mut Batch {
        let settings = &self.settings;
        self.batch.get_or_insert_with(|| {
            let mut body = GzEncoder::new(Vec::with_capacity(64 * 1024), Compression::fast());
            let _ = body.write_all(&settings.metadata_line);
            Batch { body, events: 0, deadline: Instant::now() + settings.request_time }
        })
    }

    /// Moves the open batch, compressed, to the queue of batches to send.
    fn close_batch(&mut self) {
        let Some(batch) = self.batch.take() else { return };
        match batch.body.finish() {
            Ok(body) => {
                let dropped = self.retry.push(Pending { body, events: batch.events });
                if dropped > 0 {
                    self.stats.dropped_buffer_full.fetch_add(dropped, Ordering::Relaxed);
                }
            }
            Err(e) => diag::warn(&format!("could not compress a batch of events: {e}")),
        }
    }

    /// Sends what is due now; one log line when a fault episode starts, one when it ends.
    fn send_due(&mut self) {
        let transport = &self.transport;
        let mut fault = None;
        let mut requests = 0;
        let tally = self.retry.send_due(Instant::now(), |pending| {
            requests += 1;
            let (attempt, why) = transport.attempt(&pending.body);
            fault = why.or(fault.take());
            attempt
        });
        self.account(requests, &tally);
        match (fault, self.fault.is_some()) {
            (Some(why), false) => {
                diag::warn(&format!("{why}; undelivered events are kept (up to retry_buffer_size) and sent again when it recovers"));
                self.fault = Some(why);
            }
            (None, true) if tally.delivered > 0 => {
                diag::log(diag::Level::Info, "APM Server accepts events again");
                self.fault = None;
            }
            _ => {}
        }
    }

    fn account(&self, requests: u64, tally: &Tally) {
        let add = |counter: &std::sync::atomic::AtomicU64, n: u64| {
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

impl Exporter for IntakeExporter {
    fn export(&mut self, events: &[Event]) {
        for event in events {
            let mut line = std::mem::take(&mut self.line);
            line.clear();
            intake::encode_event(event, &mut line);
            let batch = self.open_batch();
            let _ = batch.body.write_all(&line);
            batch.events += 1;
            let full = batch.body.get_ref().len() >= self.settings.request_size;
            self.line = line;
            if full {
                self.close_batch();
                self.send_due();
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        [self.batch.as_ref().map(|b| b.deadline), self.retry.next_attempt()].into_iter().flatten().min()
    }

    fn tick(&mut self, now: Instant) {
        if self.batch.as_ref().is_some_and(|b| b.deadline <= now) {
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
        diag::warn(&format!("{} events not yet delivered to APM Server when the flush deadline passed", self.retry.events()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_follows_the_cross_agent_spec() {
        assert_eq!(user_agent("1.0", "myService", None), "apm-agent-python/1.0 (myService)");
        assert_eq!(user_agent("1.0", "myService", Some("v42")), "apm-agent-python/1.0 (myService v42)");
        assert_eq!(user_agent("1.0", "myService", Some("123(:\\;)456")), "apm-agent-python/1.0 (myService 123_:_;_456)");
    }

    #[test]
    fn credentials_in_the_server_url_are_redacted() {
        let url = "https://elastic:s3cret@apm.example:8200";
        assert_eq!(redacted(format!("could not reach {url}/intake/v2/events"), url), "could not reach https://<redacted>@apm.example:8200/intake/v2/events");
        assert_eq!(redacted("unchanged".into(), "http://apm:8200"), "unchanged");
    }

    #[test]
    fn api_key_wins_over_secret_token() {
        assert_eq!(authorization(Some("secr3tT0ken"), None).as_deref(), Some("Bearer secr3tT0ken"));
        assert_eq!(authorization(None, Some("RTNxMjlXNEJt")).as_deref(), Some("ApiKey RTNxMjlXNEJt"));
        assert_eq!(authorization(Some("secr3tT0ken"), Some("MjlXNEJasdfDt")).as_deref(), Some("ApiKey MjlXNEJasdfDt"));
        assert_eq!(authorization(Some(""), None), None);
    }
}
