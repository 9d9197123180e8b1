//! OpAMP over HTTP, as EDOT Python speaks it (`ELASTIC_OTEL_OPAMP_ENDPOINT`): the agent POSTs an
//! `AgentToServer` message (protobuf) every `POLL_INTERVAL` and reads the `ServerToAgent` answer.
//! A remote configuration (`config_map["elastic"]`, a JSON object) is applied, and whether it was
//! is reported (`remote_config_status`) in a message sent right away.
//!
//! The messages are declared from opamp-spec's `opamp.proto`, with only the fields used here.

use crate::diag;
use crate::engine::Engine;
use crate::exporters::http;
use crate::exporters::tls::TlsMaterial;
use crate::otlp::proto::{any_value, AnyValue, KeyValue};
use crate::poller;
use crate::remote_config::Applied;
use prost::Message;
use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::sync::Weak;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const POLL_INTERVAL: Duration = Duration::from_secs(30);

// AgentCapabilities
const REPORTS_STATUS: u64 = 0x1;
const ACCEPTS_REMOTE_CONFIG: u64 = 0x2;
const REPORTS_REMOTE_CONFIG: u64 = 0x1000;
// RemoteConfigStatuses
const APPLIED: i32 = 1;
const FAILED: i32 = 3;

#[derive(Clone, PartialEq, Message)]
pub struct AgentToServer {
    #[prost(bytes = "vec", tag = "1")]
    pub instance_uid: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub sequence_num: u64,
    #[prost(message, optional, tag = "3")]
    pub agent_description: Option<AgentDescription>,
    #[prost(uint64, tag = "4")]
    pub capabilities: u64,
    #[prost(message, optional, tag = "7")]
    pub remote_config_status: Option<RemoteConfigStatus>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AgentDescription {
    #[prost(message, repeated, tag = "1")]
    pub identifying_attributes: Vec<KeyValue>,
    #[prost(message, repeated, tag = "2")]
    pub non_identifying_attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RemoteConfigStatus {
    #[prost(bytes = "vec", tag = "1")]
    pub last_remote_config_hash: Vec<u8>,
    #[prost(int32, tag = "2")]
    pub status: i32,
    #[prost(string, tag = "3")]
    pub error_message: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ServerToAgent {
    #[prost(bytes = "vec", tag = "1")]
    pub instance_uid: Vec<u8>,
    #[prost(message, optional, tag = "3")]
    pub remote_config: Option<AgentRemoteConfig>,
    #[prost(message, optional, tag = "8")]
    pub agent_identification: Option<AgentIdentification>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AgentRemoteConfig {
    #[prost(message, optional, tag = "1")]
    pub config: Option<AgentConfigMap>,
    #[prost(bytes = "vec", tag = "2")]
    pub config_hash: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AgentConfigMap {
    #[prost(map = "string, message", tag = "1")]
    pub config_map: HashMap<String, AgentConfigFile>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AgentConfigFile {
    #[prost(bytes = "vec", tag = "1")]
    pub body: Vec<u8>,
    #[prost(string, tag = "2")]
    pub content_type: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct AgentIdentification {
    #[prost(bytes = "vec", tag = "1")]
    pub new_instance_uid: Vec<u8>,
}

/// What the `elastic` configuration says beyond options: instrumentations to turn off.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Deactivation {
    pub all: bool,
    pub names: Vec<String>,
}

/// The options and deactivations of an `elastic` configuration (EDOT's names), or why it does not read.
pub fn elastic_config(body: &[u8]) -> Result<(HashMap<String, String>, Deactivation), String> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| format!("the elastic configuration is not a JSON object: {e}"))?;
    let mut options = HashMap::new();
    let mut deactivation = Deactivation::default();
    for (name, value) in object {
        let value = match value {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        match name.as_str() {
            // EDOT's levels; `fatal` is the highest before `off`.
            "logging_level" => options.insert("log_level".to_owned(), if value.eq_ignore_ascii_case("fatal") { "critical".to_owned() } else { value }),
            "sampling_rate" => options.insert("transaction_sample_rate".to_owned(), value),
            "deactivate_instrumentations" => {
                deactivation.names = value.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect();
                None
            }
            "deactivate_all_instrumentations" => {
                deactivation.all = value.trim().eq_ignore_ascii_case("true");
                None
            }
            other => {
                diag::log(diag::Level::Debug, &format!("OpAMP: the elastic configuration's {other:?} is not used by this agent"));
                None
            }
        };
    }
    Ok((options, deactivation))
}

pub struct OpampClient {
    agent: ureq::Agent,
    endpoint: String,
    instance_uid: Vec<u8>,
    sequence_num: u64,
    description: AgentDescription,
    /// The status of the last remote configuration, reported in every message.
    status: Option<RemoteConfigStatus>,
    /// The fault being reported, while an episode lasts.
    fault: Option<String>,
}

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.to_owned(), value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_owned())) }) }
}

/// A UUIDv7: the time in milliseconds, then random bits.
fn uuid_v7() -> Vec<u8> {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default();
    let mut uid = [0u8; 16];
    uid[..8].copy_from_slice(&(millis << 16 | crate::ids::random_u64() & 0xffff).to_be_bytes());
    uid[8..].copy_from_slice(&crate::ids::random_u64().to_be_bytes());
    uid[6] = 0x70 | (uid[6] & 0x0f); // version 7
    uid[8] = 0x80 | (uid[8] & 0x3f); // RFC 4122 variant
    uid.to_vec()
}

impl OpampClient {
    pub fn new(endpoint: &str, service_name: &str, environment: Option<&str>, timeout: Duration, user_agent: &str, tls: &TlsMaterial) -> Self {
        let mut identifying = vec![attribute("service.name", service_name)];
        identifying.extend(environment.filter(|e| !e.is_empty()).map(|e| attribute("deployment.environment.name", e)));
        OpampClient {
            agent: http::agent(timeout, user_agent, tls),
            endpoint: endpoint.to_owned(),
            instance_uid: uuid_v7(),
            sequence_num: 0,
            description: AgentDescription { identifying_attributes: identifying, non_identifying_attributes: Vec::new() },
            status: None,
            fault: None,
        }
    }

    /// One exchange (waiting on the network): returns a remote configuration not applied yet, as
    /// its hash and the body of its `elastic` file.
    pub fn exchange(&mut self) -> Option<(Vec<u8>, Vec<u8>)> {
        let message = AgentToServer {
            instance_uid: self.instance_uid.clone(),
            sequence_num: self.sequence_num,
            agent_description: Some(self.description.clone()),
            capabilities: REPORTS_STATUS | ACCEPTS_REMOTE_CONFIG | REPORTS_REMOTE_CONFIG,
            remote_config_status: self.status.clone(),
        };
        self.sequence_num += 1;
        let sent = self.agent.post(&self.endpoint).header("Content-Type", "application/x-protobuf").send(&message.encode_to_vec()[..]);
        let answer = match sent {
            Ok(mut response) if response.status().is_success() => response
                .body_mut()
                .with_config()
                .limit(4 * 1024 * 1024)
                .read_to_vec()
                .map_err(|e| e.to_string())
                .and_then(|body| ServerToAgent::decode(&body[..]).map_err(|e| e.to_string())),
            Ok(response) => Err(format!("answered {}", response.status().as_u16())),
            Err(e) => Err(e.to_string()),
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(why) => {
                if self.fault.is_none() {
                    diag::warn(&diag::redacted(
                        format!("OpAMP server at {}: {why}; asking again every {} s", self.endpoint, POLL_INTERVAL.as_secs()),
                        &self.endpoint,
                    ));
                    self.fault = Some(why);
                }
                return None;
            }
        };
        if self.fault.take().is_some() {
            diag::log(diag::Level::Info, &format!("OpAMP server at {} answers again", self.endpoint));
        }
        if let Some(new_uid) = answer.agent_identification.map(|a| a.new_instance_uid).filter(|uid| uid.len() == 16) {
            self.instance_uid = new_uid;
        }
        let remote = answer.remote_config?;
        if self.status.as_ref().is_some_and(|s| s.last_remote_config_hash == remote.config_hash) {
            return None;
        }
        let body = remote.config.and_then(|mut c| c.config_map.remove("elastic")).map(|file| file.body).unwrap_or_else(|| b"{}".to_vec());
        Some((remote.config_hash, body))
    }

    /// What came of applying the configuration of `hash`, for the next message.
    pub fn report(&mut self, hash: Vec<u8>, result: Result<(), String>) {
        let (status, error_message) = match result {
            Ok(()) => (APPLIED, String::new()),
            Err(why) => (FAILED, why),
        };
        self.status = Some(RemoteConfigStatus { last_remote_config_hash: hash, status, error_message });
    }
}

/// Told of each configuration applied: what it changed, and the instrumentations it turns off;
/// returns why it could not apply them, if so.
pub type Listener = Box<dyn Fn(&Applied, &Deactivation) -> Result<(), String> + Send>;

/// Polls on a thread `oxapm-opamp` and applies what the server sends to `engine`, until the
/// returned sender is dropped (or the engine is).
pub fn start_poller(mut client: OpampClient, engine: Weak<Engine>, listener: Listener) -> Option<Sender<()>> {
    poller::spawn("oxapm-opamp", "OpAMP", engine, move |engine_if_running| {
        let Some((hash, body)) = client.exchange() else { return POLL_INTERVAL };
        if let Some(engine) = engine_if_running() {
            client.report(hash, apply(&engine, &body, &listener));
        }
        Duration::ZERO // the status goes out now
    })
}

fn apply(engine: &Engine, body: &[u8], listener: &Listener) -> Result<(), String> {
    let (options, deactivation) = elastic_config(body).inspect_err(|why| diag::warn(&format!("OpAMP: {why}")))?;
    let applied = engine.reconfigure(&options);
    let told = listener(&applied, &deactivation);
    let mut errors = applied.rejected;
    errors.extend(told.err());
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_elastic_configuration_in_elastic_option_names() {
        let body = br#"{"logging_level": "fatal", "sampling_rate": "0.25", "deactivate_instrumentations": "sqlite3, redis", "deactivate_all_instrumentations": "false", "send_traces": "true"}"#;
        let (options, deactivation) = elastic_config(body).unwrap();
        assert_eq!(options, HashMap::from([("log_level".to_owned(), "critical".to_owned()), ("transaction_sample_rate".to_owned(), "0.25".to_owned())]));
        assert_eq!(deactivation, Deactivation { all: false, names: vec!["sqlite3".to_owned(), "redis".to_owned()] });
        assert!(elastic_config(b"not json").is_err());
    }

    #[test]
    fn instance_uids_are_uuid_v7() {
        let (a, b) = (uuid_v7(), uuid_v7());
        assert_eq!((a.len(), a[6] >> 4, a[8] >> 6), (16, 7, 2));
        assert_ne!(a, b);
    }
}
