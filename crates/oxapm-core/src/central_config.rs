//! Asks APM Server for the agent's central configuration
//! (`GET /config/v1/agents?service.name=..&service.environment=..`), as the Elastic agents do:
//! with the intake's credentials, and `If-None-Match` with the last `ETag` so an unchanged
//! configuration costs a 304. `Cache-Control: max-age` says when to ask again.
//!
//! An APM Server without central configuration (403, 404) is asked again later, quietly; other
//! faults are logged once per episode. The requests are made on a named thread of their own
//! (`start_poller`), which stops when the engine closes.

use crate::diag::{self, redacted};
use crate::engine::Engine;
use crate::exporters::http;
use crate::exporters::tls::TlsMaterial;
use crate::poller;
use crate::remote_config::Change;
use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::sync::Weak;
use std::time::Duration;

/// When the server does not say (`max-age`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
/// However often the server asks to be polled.
pub const MIN_INTERVAL: Duration = Duration::from_secs(5);
const MAX_BODY: u64 = 1024 * 1024;

pub struct CentralConfigClient {
    agent: ureq::Agent,
    url: String,
    service_name: String,
    environment: Option<String>,
    authorization: Option<String>,
    etag: Option<String>,
    /// The fault being reported, while an episode lasts.
    fault: Option<String>,
}

/// What one request brought: the remote values when they changed, and when to ask again.
#[derive(Debug, PartialEq)]
pub struct Fetched {
    pub values: Option<HashMap<String, String>>,
    pub next_in: Duration,
}

impl CentralConfigClient {
    pub fn new(
        server_url: &str,
        service_name: &str,
        environment: Option<&str>,
        authorization: Option<String>,
        timeout: Duration,
        user_agent: &str,
        tls: &TlsMaterial,
    ) -> Self {
        CentralConfigClient {
            agent: http::agent(timeout, user_agent, tls),
            url: format!("{server_url}/config/v1/agents"),
            service_name: service_name.to_owned(),
            environment: environment.filter(|e| !e.is_empty()).map(str::to_owned),
            authorization,
            etag: None,
            fault: None,
        }
    }

    /// One request; waits on the network (call it off the application's threads).
    pub fn fetch(&mut self) -> Fetched {
        let mut request = self.agent.get(&self.url).query("service.name", &self.service_name);
        if let Some(environment) = &self.environment {
            request = request.query("service.environment", environment);
        }
        if let Some(authorization) = &self.authorization {
            request = request.header("Authorization", authorization);
        }
        if let Some(etag) = &self.etag {
            request = request.header("If-None-Match", etag);
        }
        let mut response = match request.call() {
            Ok(response) => response,
            Err(e) => return self.failed(format!("could not reach APM Server at {}: {e}", self.url), None),
        };
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let next_in = max_age(header("cache-control").as_deref()).unwrap_or(DEFAULT_INTERVAL).max(MIN_INTERVAL);
        let etag = header("etag");
        let values = match response.status().as_u16() {
            200 => match response.body_mut().with_config().limit(MAX_BODY).read_to_vec().map_err(|e| e.to_string()).and_then(|body| values(&body)) {
                Ok(values) => {
                    self.etag = etag;
                    Some(values)
                }
                Err(why) => return self.failed(format!("APM Server at {} sent a central configuration that does not read: {why}", self.url), Some(next_in)),
            },
            304 => None,
            status @ (403 | 404) => {
                diag::log(diag::Level::Debug, &format!("APM Server at {} answered {status}: central configuration is not available", self.url));
                None
            }
            status => return self.failed(format!("APM Server at {} answered {status} to a central configuration request", self.url), Some(next_in)),
        };
        if self.fault.take().is_some() {
            diag::log(diag::Level::Info, &format!("APM Server at {} answers central configuration requests again", self.url));
        }
        Fetched { values, next_in }
    }

    fn failed(&mut self, why: String, next_in: Option<Duration>) -> Fetched {
        let next_in = next_in.unwrap_or(DEFAULT_INTERVAL);
        if self.fault.is_none() {
            diag::warn(&redacted(format!("{why}; asking again every {} s", next_in.as_secs()), &self.url));
            self.fault = Some(why);
        }
        Fetched { values: None, next_in }
    }
}

/// Told of each configuration the server sends: its values and what they changed.
pub type Listener = Box<dyn Fn(&HashMap<String, String>, &[Change]) + Send>;

/// Polls on a thread `oxapm-central-config` and applies what the server sends to `engine`, until
/// the returned sender is dropped (or the engine is).
pub fn start_poller(mut client: CentralConfigClient, engine: Weak<Engine>, listener: Listener) -> Option<Sender<()>> {
    poller::spawn("oxapm-central-config", "central configuration", engine, move |engine_if_running| {
        let fetched = client.fetch();
        if let Some(values) = fetched.values {
            if let Some(engine) = engine_if_running() {
                let applied = engine.reconfigure(&values);
                listener(&values, &applied.changes);
            }
        }
        fetched.next_in
    })
}

/// The configuration object: option names to values (strings; other scalars are taken as written).
fn values(body: &[u8]) -> Result<HashMap<String, String>, String> {
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(object
        .into_iter()
        .map(|(name, value)| {
            let value = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (name, value)
        })
        .collect())
}

/// `max-age=N` of a `Cache-Control` header.
fn max_age(cache_control: Option<&str>) -> Option<Duration> {
    cache_control?.split(',').find_map(|directive| directive.trim().strip_prefix("max-age=")?.trim().parse::<u64>().ok()).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(max_age(Some("must-revalidate, max-age=30")), Some(Duration::from_secs(30)));
        assert_eq!(max_age(Some("no-cache")), None);
        assert_eq!(max_age(None), None);
    }

    #[test]
    fn values_are_strings() {
        let read = values(br#"{"transaction_sample_rate": "0.5", "transaction_max_spans": 20}"#).unwrap();
        assert_eq!(read["transaction_sample_rate"], "0.5");
        assert_eq!(read["transaction_max_spans"], "20");
        assert!(values(b"[1]").is_err());
    }
}
