//! The engine: the resolved configuration and the export pipeline built from it.

use crate::config::{Config, ConfigValue};
use crate::diag;
use crate::exporters::console::ConsoleExporter;
use crate::exporters::intake_http::{intake_exporter, user_agent, IntakeSettings};
use crate::exporters::memory::MemoryExporter;
use crate::exporters::otlp::{otlp_exporter, OtlpExport};
use crate::intake;
use crate::model::Event;
use crate::otlp::proto::Resource;
use crate::otlp::resource;
use crate::pipeline::{Exporter, Pipeline, Stats, StatsSnapshot};
use crate::policy::Policy;
use crate::shaping::ShapingSettings;
use serde_json::Value;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Where Elastic agents send by default when nothing else is configured.
pub const DEFAULT_SERVER_URL: &str = "http://127.0.0.1:8200";

pub struct Engine {
    pub config: Config,
    /// What `config` decides about records (ignored URLs, redaction), compiled.
    pub policy: Arc<Policy>,
    /// The OpenTelemetry resource of this process, as OTLP sends it.
    pub resource: Resource,
    /// What transactions report of their spans; each transaction reads it when it starts.
    shaping: RwLock<Arc<ShapingSettings>>,
    pipeline: Pipeline,
    memory: Option<MemoryExporter>,
    stats: Arc<Stats>,
}

impl Engine {
    /// `metadata` is the intake `metadata` object (service, process, system, labels), built by the
    /// host, which knows its runtime.
    pub fn start(config: Config, metadata: &Value, agent_version: &str) -> Engine {
        let stats = Arc::new(Stats::default());
        let mut exporters: Vec<Box<dyn Exporter>> = Vec::new();
        let mut memory = None;
        let resource = resource::resource(metadata, &global_labels(&config), agent_version);
        let selected = config.list("TRACES_EXPORTER");
        let server_url = config.str("SERVER_URL");
        let wants_intake = server_url.is_some() || selected.is_empty();
        for name in selected {
            match name.as_str() {
                "console" => exporters.push(Box::<ConsoleExporter>::default()),
                "memory" => {
                    let exporter = MemoryExporter::default();
                    memory = Some(exporter.clone());
                    exporters.push(Box::new(exporter));
                }
                // Without settings its endpoint was unusable, as a warning said.
                "otlp" => {
                    if let Some(settings) = &config.otlp_traces {
                        let export = OtlpExport {
                            settings,
                            resource: resource.clone(),
                            scope: resource::scope(agent_version),
                            user_agent: &format!("oxapm/{agent_version}"),
                            retry_buffer_size: config.int("RETRY_BUFFER_SIZE").max(0) as usize,
                        };
                        exporters.extend(otlp_exporter(export, stats.clone()));
                    }
                }
                "none" | "elastic" | "intake" => {}
                other => diag::warn(&format!("traces exporter {other:?} is not available; ignored")),
            }
        }
        if wants_intake && !selected.iter().any(|s| s == "none") {
            let settings = IntakeSettings {
                server_url: server_url.unwrap_or(DEFAULT_SERVER_URL).to_owned(),
                secret_token: config.str("SECRET_TOKEN").map(str::to_owned),
                api_key: config.str("API_KEY").map(str::to_owned),
                user_agent: user_agent(agent_version, config.str("SERVICE_NAME").unwrap_or_default(), config.str("SERVICE_VERSION")),
                timeout: config.duration("SERVER_TIMEOUT"),
                request_time: config.duration("API_REQUEST_TIME"),
                request_size: config.int("API_REQUEST_SIZE").max(1) as usize,
                retry_buffer_size: config.int("RETRY_BUFFER_SIZE").max(0) as usize,
                verify_server_cert: config.bool("VERIFY_SERVER_CERT"),
                server_ca_cert_file: config.str("SERVER_CA_CERT_FILE").filter(|p| !p.is_empty()).map(str::to_owned),
                metadata_line: intake::metadata_line(metadata),
            };
            exporters.push(Box::new(intake_exporter(settings, stats.clone())));
        }
        let capacity = config.int("MAX_QUEUE_SIZE").clamp(1, 10_000_000) as usize;
        let policy = Arc::new(Policy::new(&config));
        let pipeline = Pipeline::start(capacity, exporters, stats.clone(), policy.clone());
        let shaping = RwLock::new(Arc::new(ShapingSettings::from_config(&config)));
        Engine { config, policy, resource, shaping, pipeline, memory, stats }
    }

    pub fn shaping(&self) -> Arc<ShapingSettings> {
        self.shaping.read().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn push(&self, event: Event) {
        self.pipeline.push(event);
    }

    pub fn flush(&self, timeout: Duration) -> bool {
        self.pipeline.flush(timeout)
    }

    pub fn shutdown(&self, timeout: Duration) -> bool {
        self.pipeline.shutdown(timeout)
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// The intake lines the in-memory exporter holds (`TRACES_EXPORTER=memory`), taken.
    pub fn take_memory(&self) -> Vec<String> {
        self.memory.as_ref().map(MemoryExporter::take).unwrap_or_default()
    }
}

/// `global_labels` with their keys as given (intake metadata sanitizes them; OTel keeps dots).
fn global_labels(config: &Config) -> Vec<(String, String)> {
    match config.get("GLOBAL_LABELS") {
        ConfigValue::Map(pairs) => pairs.clone(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SpanRecord, TransactionRecord};
    use serde_json::json;
    use std::collections::HashMap;

    #[test]
    fn exporters_get_records_finished_by_the_policy() {
        let env = HashMap::from([("ELASTIC_APM_TRACES_EXPORTER".to_owned(), "memory".to_owned())]);
        let engine = Engine::start(Config::resolve(&env, &HashMap::new(), &HashMap::new()), &json!({}), "test");
        let context = json!({"request": {"method": "GET", "headers": {"authorization": "Basic c2VjcmV0"}}}).as_object().cloned().unwrap();
        engine.push(Event::Transaction(Box::new(TransactionRecord { context, ..Default::default() })));
        engine.push(Event::Span(Box::new(SpanRecord { span_type: "db".into(), subtype: Some("sqlite".into()), exit: true, ..Default::default() })));
        assert!(engine.flush(Duration::from_secs(5)));
        let lines = engine.take_memory().join("\n");
        assert!(lines.contains(r#""authorization":"[REDACTED]""#) && !lines.contains("c2VjcmV0"), "{lines}");
        assert!(lines.contains(r#""target":{"type":"sqlite"}"#), "{lines}");
        engine.shutdown(Duration::from_secs(1));
    }
}
