//! The engine: the resolved configuration and the export pipeline built from it.

use crate::config::{Config, ConfigValue};
use crate::diag;
use crate::exporters::console::ConsoleExporter;
use crate::exporters::intake_http::{intake_exporter, user_agent, IntakeSettings};
use crate::exporters::memory::MemoryExporter;
use crate::exporters::otlp::{otlp_exporter, otlp_metrics_exporter, same_tls_files, tls_material, OtlpExport};
use crate::intake;
use crate::metrics::{Collector, MetricsInputs};
use crate::model::Event;
use crate::otlp::proto::Resource;
use crate::otlp::resource;
use crate::pipeline::{Exporter, Pipeline, Stats, StatsSnapshot};
use crate::policy::Policy;
use crate::shaping::{SelfTime, ShapingSettings};
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
    /// None when metrics are off (`metrics_interval` 0).
    metrics: Option<MetricsInputs>,
}

impl Engine {
    /// `metadata` is the intake `metadata` object (service, process, system, labels), built by the
    /// host, which knows its runtime.
    pub fn start(config: Config, metadata: &Value, agent_version: &str) -> Engine {
        let stats = Arc::new(Stats::default());
        let mut exporters: Vec<Box<dyn Exporter>> = Vec::new();
        let mut memory = None;
        let resource = resource::resource(metadata, &global_labels(&config), agent_version);
        let otlp_user_agent = format!("oxapm/{agent_version}");
        let otlp_export = |settings, tls| OtlpExport {
            settings,
            tls,
            resource: resource.clone(),
            scope: resource::scope(agent_version),
            user_agent: &otlp_user_agent,
            retry_buffer_size: config.int("RETRY_BUFFER_SIZE").max(0) as usize,
        };
        let selected = config.list("TRACES_EXPORTER");
        let traces_tls = config.otlp_traces.as_ref().filter(|_| selected.iter().any(|s| s == "otlp")).map(|settings| (settings, tls_material(settings)));
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
                    if let Some((settings, tls)) = &traces_tls {
                        exporters.extend(otlp_exporter(otlp_export(settings, tls), stats.clone()));
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
        let (collector, metrics) = Collector::new(&config).unzip();
        for other in config.list("METRICS_EXPORTER").iter().filter(|name| !matches!(name.as_str(), "otlp" | "none")) {
            diag::warn(&format!("metrics exporter {other:?} is not available; ignored"));
        }
        if let Some(settings) = config.otlp_metrics.as_ref().filter(|_| collector.is_some()) {
            let own;
            let tls = match &traces_tls {
                Some((traces, tls)) if same_tls_files(traces, settings) => tls,
                _ => {
                    own = tls_material(settings);
                    &own
                }
            };
            exporters.extend(otlp_metrics_exporter(otlp_export(settings, tls), stats.clone()));
        }
        let capacity = config.int("MAX_QUEUE_SIZE").clamp(1, 10_000_000) as usize;
        let policy = Arc::new(Policy::new(&config));
        let pipeline = Pipeline::start_with_metrics(capacity, exporters, stats.clone(), policy.clone(), collector);
        let shaping = RwLock::new(Arc::new(ShapingSettings::from_config(&config)));
        Engine { config, policy, resource, shaping, pipeline, memory, stats, metrics }
    }

    /// At the end of a sampled transaction whose `ShapingSettings::breakdown` was on (the caller
    /// decides: the setting follows central configuration): its spans' self times, for the
    /// breakdown metrics. One short lock; nothing when metrics are off.
    pub fn record_breakdown(&self, transaction_name: &str, transaction_type: &str, self_times: &[SelfTime]) {
        if let Some(metrics) = &self.metrics {
            metrics.breakdown.record(transaction_name, transaction_type, self_times);
        }
    }

    /// The host's garbage collector finished a collection of `generation`.
    pub fn gc_collected(&self, generation: usize) {
        if let Some(metrics) = &self.metrics {
            metrics.gc.collected(generation);
        }
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

    fn memory_engine(env: &[(&str, &str)]) -> Engine {
        let mut env: HashMap<String, String> = env.iter().map(|(k, v)| (format!("ELASTIC_APM_{k}"), v.to_string())).collect();
        env.insert("ELASTIC_APM_TRACES_EXPORTER".to_owned(), "memory".to_owned());
        Engine::start(Config::resolve(&env, &HashMap::new(), &HashMap::new()), &json!({}), "test")
    }

    fn metricsets(engine: &Engine) -> Vec<Value> {
        assert!(engine.flush(Duration::from_secs(5)));
        engine.take_memory().iter().map(|line| serde_json::from_str::<Value>(line).unwrap()).filter_map(|v| v.get("metricset").cloned()).collect()
    }

    #[test]
    fn breakdown_metrics_are_collected_at_flush_per_interval() {
        let engine = memory_engine(&[]);
        let app = SelfTime { span_type: "app".into(), subtype: None, count: 1, sum_us: 1147 };
        let db = SelfTime { span_type: "db".into(), subtype: Some("postgresql".into()), count: 1, sum_us: 10_160 };
        engine.record_breakdown("GET /users", "request", &[app.clone(), db]);
        engine.record_breakdown("GET /users", "request", &[app]);
        let breakdown: Vec<Value> = metricsets(&engine).into_iter().filter(|m| m.get("span").is_some()).collect();
        let app = breakdown.iter().find(|m| m["span"]["type"] == "app").unwrap();
        assert_eq!(app["transaction"], json!({"name": "GET /users", "type": "request"}));
        assert_eq!(app["span"]["subtype"], "");
        assert_eq!(
            (app["samples"]["span.self_time.count"]["value"].as_f64(), app["samples"]["span.self_time.sum.us"]["value"].as_f64()),
            (Some(2.0), Some(2294.0))
        );
        assert_eq!(breakdown.len(), 2);
        assert!(metricsets(&engine).iter().all(|m| m.get("span").is_none()), "counts restart every interval");
        engine.shutdown(Duration::from_secs(1));
    }

    #[test]
    fn metrics_are_off_with_an_interval_of_zero() {
        let off = memory_engine(&[("METRICS_INTERVAL", "0")]);
        off.gc_collected(0);
        off.record_breakdown("t", "job", &[SelfTime { span_type: "app".into(), subtype: None, count: 1, sum_us: 1 }]);
        assert!(metricsets(&off).is_empty());
        off.shutdown(Duration::from_secs(1));
    }
}
