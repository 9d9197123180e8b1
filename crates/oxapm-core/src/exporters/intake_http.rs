//! Sends intake v2 NDJSON to APM Server's `/intake/v2/events`, gzip-compressed, one request per
//! batch: a batch closes when its compressed size reaches `api_request_size` or it is
//! `api_request_time` old (see `batch` for retries and fault reports).

use crate::config::Config;
use crate::exporters::batch::{BatchExporter, Encoder};
use crate::exporters::http::HttpTransport;
use crate::exporters::tls::{self, TlsMaterial};
use crate::intake;
use crate::model::Event;
use crate::pipeline::Stats;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

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

pub type IntakeExporter = BatchExporter<IntakeEncoder, HttpTransport>;

/// NDJSON, the metadata line then one line per event, compressed in chunks as it grows.
pub struct IntakeEncoder {
    body: Option<GzEncoder<Vec<u8>>>,
    metadata_line: Vec<u8>,
    request_size: usize,
    /// Lines not compressed yet: one deflate call per chunk costs far less than one per line.
    pending: Vec<u8>,
}

const CHUNK: usize = 32 * 1024;

/// `apm-agent-python/<version> (<service> <version>)`, as the cross-agent user_agent spec asks, with
/// characters outside a conservative set replaced so the header stays valid.
pub fn user_agent(agent_version: &str, service_name: &str, service_version: Option<&str>) -> String {
    let clean = |s: &str| s.chars().map(|c| if c.is_ascii_alphanumeric() || " _-.:;".contains(c) { c } else { '_' }).collect::<String>();
    match service_version.filter(|v| !v.is_empty()) {
        Some(version) => format!("apm-agent-python/{agent_version} ({} {})", clean(service_name), clean(version)),
        None => format!("apm-agent-python/{agent_version} ({})", clean(service_name)),
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

impl IntakeSettings {
    /// How APM Server is trusted, for the intake and for central configuration.
    pub fn tls(&self) -> TlsMaterial {
        if !self.verify_server_cert {
            crate::diag::warn("verify_server_cert is false: the APM Server's certificate is not checked");
        }
        TlsMaterial {
            verify: self.verify_server_cert,
            roots_pem: tls::trust(self.server_ca_cert_file.as_deref().map(|path| ("server_ca_cert_file", path))),
            identity: None,
        }
    }

    pub fn authorization(&self) -> Option<String> {
        authorization(self.secret_token.as_deref(), self.api_key.as_deref())
    }
}

pub fn intake_exporter(settings: IntakeSettings, tls: &TlsMaterial, stats: Arc<Stats>) -> IntakeExporter {
    let mut headers = vec![("Content-Type".to_owned(), "application/x-ndjson".to_owned()), ("Content-Encoding".to_owned(), "gzip".to_owned())];
    headers.extend(settings.authorization().map(|auth| ("Authorization".to_owned(), auth)));
    let url = format!("{}/intake/v2/events", settings.server_url);
    let transport = HttpTransport::new("APM Server", url, headers, settings.timeout, &settings.user_agent, tls);
    let encoder = IntakeEncoder::new(settings.metadata_line, settings.request_size);
    BatchExporter::new(encoder, transport, settings.request_time, settings.retry_buffer_size, stats)
}

impl IntakeEncoder {
    /// Batches start with `metadata_line` and close at `request_size` compressed bytes.
    pub fn new(metadata_line: Vec<u8>, request_size: usize) -> Self {
        IntakeEncoder { body: None, metadata_line, request_size, pending: Vec::with_capacity(2 * CHUNK) }
    }

    fn compress_pending(&mut self) {
        if let Some(body) = &mut self.body {
            // Writing into a Vec cannot fail.
            let _ = body.write_all(&self.pending);
        }
        self.pending.clear();
    }
}

impl Encoder for IntakeEncoder {
    fn add(&mut self, event: &Event) -> bool {
        if self.body.is_none() {
            self.body = Some(GzEncoder::new(Vec::with_capacity(64 * 1024), Compression::fast()));
            self.pending.extend_from_slice(&self.metadata_line);
        }
        intake::encode_event(event, &mut self.pending);
        if self.pending.len() >= CHUNK.min(self.request_size) {
            self.compress_pending();
        }
        true
    }

    /// By compressed size, which lags the lines by less than one chunk.
    fn is_full(&self) -> bool {
        self.body.as_ref().is_some_and(|b| b.get_ref().len() >= self.request_size)
    }

    fn finish(&mut self) -> Result<Vec<u8>, String> {
        self.compress_pending();
        self.body.take().ok_or_else(|| "no open batch".to_owned())?.finish().map_err(|e| e.to_string())
    }

    /// `api_request_size` bounds the next batches; `api_request_time` is their age.
    fn reconfigure(&mut self, config: &Config) -> Option<Duration> {
        self.request_size = config.int("API_REQUEST_SIZE").max(1) as usize;
        Some(config.duration("API_REQUEST_TIME"))
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
    fn api_key_wins_over_secret_token() {
        assert_eq!(authorization(Some("secr3tT0ken"), None).as_deref(), Some("Bearer secr3tT0ken"));
        assert_eq!(authorization(None, Some("RTNxMjlXNEJt")).as_deref(), Some("ApiKey RTNxMjlXNEJt"));
        assert_eq!(authorization(Some("secr3tT0ken"), Some("MjlXNEJasdfDt")).as_deref(), Some("ApiKey MjlXNEJasdfDt"));
        assert_eq!(authorization(Some(""), None), None);
    }
}
