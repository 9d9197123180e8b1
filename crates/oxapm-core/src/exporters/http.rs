//! One HTTP POST per batch (ureq, rustls, keep-alive), and what the answer means for the batch:
//! 2xx delivered; 429 (with `Retry-After`), 502, 503 and 504 retried, as are connection faults
//! and timeouts; any other status is final. Both APM Server and OTLP/HTTP answer this way.

use crate::diag::redacted;
use crate::exporters::batch::Transport;
use crate::exporters::retry::Attempt;
use crate::exporters::tls::TlsMaterial;
use std::time::Duration;

/// Reads a successful answer: a complaint about events the server dropped anyway, if any.
pub type AnswerReader = fn(&[u8]) -> Option<String>;

pub struct HttpTransport {
    agent: ureq::Agent,
    url: String,
    /// Who receives, as log lines name it (with the URL's credentials redacted).
    peer: String,
    headers: Vec<(String, String)>,
    read_success: Option<AnswerReader>,
}

/// Seconds, as `Retry-After` gives them (an HTTP date is treated as no hint).
fn retry_after(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A keep-alive client that reads every status as an answer (not an error).
pub fn agent(timeout: Duration, user_agent: &str, tls: &TlsMaterial) -> ureq::Agent {
    ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).user_agent(user_agent).tls_config(tls.ureq_config()).build().into()
}

impl HttpTransport {
    pub fn new(peer_name: &str, url: String, headers: Vec<(String, String)>, timeout: Duration, user_agent: &str, tls: &TlsMaterial) -> Self {
        let agent = agent(timeout, user_agent, tls);
        let peer = redacted(format!("{peer_name} at {url}"), &url);
        HttpTransport { agent, url, peer, headers, read_success: None }
    }

    pub fn reading_success(mut self, read: AnswerReader) -> Self {
        self.read_success = Some(read);
        self
    }
}

impl Transport for HttpTransport {
    fn attempt(&mut self, body: &[u8]) -> (Attempt, Option<String>) {
        let mut request = self.agent.post(&self.url);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        match request.send(body) {
            Ok(mut response) if response.status().is_success() => {
                let complaint = self.read_success.and_then(|read| read(&response.body_mut().with_config().limit(64 * 1024).read_to_vec().unwrap_or_default()));
                (Attempt::Delivered, complaint)
            }
            Ok(mut response) => {
                let status = response.status().as_u16();
                let wait = retry_after(response.headers().get("retry-after").and_then(|v| v.to_str().ok()));
                let detail = response.body_mut().with_config().limit(512).read_to_string().unwrap_or_default();
                let detail: String = detail.trim().chars().filter(|c| !c.is_control()).collect();
                let why = format!("{} answered {status}: {detail}", self.peer);
                match status {
                    429 => (Attempt::RetryLater(wait), Some(why)),
                    502..=504 => (Attempt::RetryLater(None), Some(why)),
                    _ => (Attempt::Rejected, Some(why)),
                }
            }
            Err(e) => (Attempt::RetryLater(None), Some(redacted(format!("could not reach {}: {e}", self.peer), &self.url))),
        }
    }

    fn peer(&self) -> &str {
        &self.peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds() {
        assert_eq!(retry_after(Some(" 7 ")), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
    }
}
