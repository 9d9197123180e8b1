//! The engine: the resolved configuration and the export pipeline built from it. Central
//! configuration (`reconfigure`) replaces, while it runs, what the dynamic options decide.

use crate::central_config::{self, CentralConfigClient, Listener};
use crate::config::{Config, ConfigValue};
use crate::continuation::Continuation;
use crate::diag;
use crate::exporters::console::ConsoleExporter;
use crate::exporters::intake_http::{intake_exporter, user_agent, IntakeSettings};
use crate::exporters::memory::MemoryExporter;
use crate::exporters::otlp::{otlp_exporter, otlp_metrics_exporter, same_tls_files, tls_material, OtlpExport};
use crate::exporters::otlp_logs::otlp_logs_exporter;
use crate::exporters::tls::{self, TlsMaterial};
use crate::intake;
use crate::live::Live;
use crate::meters::{AttachedMeters, MeterReader, MeterRegistry, MeterSettings};
use crate::metrics::{Collector, MetricsInputs};
use crate::model::{Event, LogRecord};
use crate::opamp::{self, OpampClient};
use crate::otlp::proto::Resource;
use crate::otlp::resource;
use crate::otlp::settings::OtlpSettings;
use crate::pipeline::{Exporter, Pipeline, Stats, StatsSnapshot};
use crate::policy::Policy;
use crate::remote_config::{self, Applied, RemoteLayer};
use crate::sampling::Sampler;
use crate::shaping::{SelfTime, ShapingSettings};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where Elastic agents send by default when nothing else is configured.
pub const DEFAULT_SERVER_URL: &str = "http://127.0.0.1:8200";

pub struct Engine {
    /// The configuration resolved at start (environment, config dict, keywords): the local layer,
    /// which central configuration overrides.
    pub config: Config,
    /// `config` with central configuration's values in place.
    effective: Live<Config>,
    remote: Mutex<RemoteLayer>,
    /// What the configuration decides about records (ignored URLs, redaction), compiled; the
    /// export thread reads it too.
    policy: Live<Policy>,
    sampler: Live<Sampler>,
    continuation: Live<Continuation>,
    /// The OpenTelemetry resource of this process, as OTLP sends it.
    pub resource: Resource,
    /// What transactions report of their spans; each transaction reads it when it starts.
    shaping: Live<ShapingSettings>,
    pipeline: Pipeline,
    memory: Option<MemoryExporter>,
    stats: Arc<Stats>,
    /// None when metrics are off (`metrics_interval` 0).
    metrics: Option<MetricsInputs>,
    /// The OpenTelemetry meter providers' registries the export thread collects.
    meters: AttachedMeters,
    /// Asks APM Server for central configuration (`central_config`, with the intake exporter),
    /// until the poller starts with it.
    central_config: Mutex<Option<CentralConfigClient>>,
    /// Dropped to stop the pollers (APM Server's, OpAMP's).
    stop_pollers: Mutex<Vec<Sender<()>>>,
    /// Whether log records are exported (`Config::exports_logs`).
    exports_logs: bool,
}

impl Engine {
    /// `metadata` is the intake `metadata` object (service, process, system, labels), built by the
    /// host, which knows its runtime.
    pub fn start(config: Config, metadata: &Value, agent_version: &str) -> Engine {
        let stats = Arc::new(Stats::default());
        let mut exporters: Vec<Box<dyn Exporter>> = Vec::new();
        let mut memory = None;
        let mut central_config = None;
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
            let tls = settings.tls();
            if config.bool("CENTRAL_CONFIG") {
                let (service_name, environment) = (config.str("SERVICE_NAME").unwrap_or_default(), config.str("ENVIRONMENT"));
                let client = CentralConfigClient::new(
                    &settings.server_url,
                    service_name,
                    environment,
                    settings.authorization(),
                    settings.timeout,
                    &settings.user_agent,
                    &tls,
                );
                central_config = Some(client);
            }
            exporters.push(Box::new(intake_exporter(settings, &tls, stats.clone())));
        }
        let (collector, metrics) = Collector::new(&config).unzip();
        for other in config.list("METRICS_EXPORTER").iter().filter(|name| !matches!(name.as_str(), "otlp" | "none")) {
            diag::warn(&format!("metrics exporter {other:?} is not available; ignored"));
        }
        for other in config.list("LOGS_EXPORTER").iter().filter(|name| !matches!(name.as_str(), "otlp" | "none")) {
            diag::warn(&format!("logs exporter {other:?} is not available; ignored"));
        }
        // Metrics and logs share the trace exporter's TLS material when their settings name the
        // same files (one reading, one warning); otherwise each reads its own.
        type Build = fn(OtlpExport<'_>, Arc<Stats>) -> Option<Box<dyn Exporter>>;
        let other_signals: Vec<(&OtlpSettings, Build, Option<TlsMaterial>)> =
            [(config.otlp_metrics.as_ref().filter(|_| collector.is_some()), otlp_metrics_exporter as Build), (config.otlp_logs.as_ref(), otlp_logs_exporter)]
                .into_iter()
                .filter_map(|(settings, build)| {
                    let settings = settings?;
                    let shared = matches!(&traces_tls, Some((traces, _)) if same_tls_files(traces, settings));
                    Some((settings, build, (!shared).then(|| tls_material(settings))))
                })
                .collect();
        for (settings, build, own) in &other_signals {
            if let Some(tls) = own.as_ref().or(traces_tls.as_ref().map(|(_, tls)| tls)) {
                exporters.extend(build(otlp_export(settings, tls), stats.clone()));
            }
        }
        let capacity = config.int("MAX_QUEUE_SIZE").clamp(1, 10_000_000) as usize;
        let policy = Live::new(Policy::new(&config));
        // `metrics_interval` 0 turns the OpenTelemetry metrics off too.
        let metrics_interval = config.duration("METRICS_INTERVAL");
        let (meter_reader, meters) = MeterReader::new(metrics_interval);
        let meter_reader = (!metrics_interval.is_zero()).then_some(meter_reader);
        let pipeline = Pipeline::start_with_metrics(capacity, exporters, stats.clone(), policy.clone(), collector, meter_reader);
        let exports_logs = config.exports_logs();
        Engine {
            effective: Live::new(config.clone()),
            remote: Mutex::default(),
            policy,
            sampler: Live::new(config.sampler()),
            continuation: Live::new(Continuation::from_config(&config)),
            shaping: Live::new(ShapingSettings::from_config(&config)),
            config,
            resource,
            pipeline,
            memory,
            stats,
            central_config: Mutex::new(central_config),
            stop_pollers: Mutex::default(),
            metrics,
            meters,
            exports_logs,
        }
    }

    /// What the configuration decides for meter providers (temporality, default histograms).
    pub fn meter_settings(&self) -> MeterSettings {
        MeterSettings::from_config(&self.config)
    }

    /// Has the export thread collect `registry` (a meter provider's) from now on: every
    /// `metrics_interval` and at each flush and close (never with metrics off, an interval of 0).
    pub fn attach_meters(&self, registry: Arc<MeterRegistry>) {
        self.meters.attach(registry);
    }

    pub fn detach_meters(&self, registry: &Arc<MeterRegistry>) {
        self.meters.detach(registry);
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
        self.shaping.get()
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.policy.get()
    }

    /// How transactions that start a trace, or whose parent does not decide, are sampled.
    pub fn sampler(&self) -> Sampler {
        *self.sampler.get()
    }

    /// Whether a transaction continues the trace of an incoming `traceparent`.
    pub fn continuation(&self) -> Continuation {
        *self.continuation.get()
    }

    /// The configuration in effect: the local one with central configuration's values in place.
    pub fn effective_config(&self) -> Arc<Config> {
        self.effective.get()
    }

    /// Applies central configuration's latest values (names as it spells them: `capture_body`),
    /// in place of the previous ones: an option no longer given reverts to its local value. A
    /// value that is not taken is warned about once. What changed is logged.
    pub fn reconfigure(&self, remote: &HashMap<String, String>) -> Applied {
        let mut layer = self.remote.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut rejected = Vec::new();
        let next = layer.next(remote, &mut rejected);
        for warning in &rejected {
            diag::warn(warning);
        }
        let after = next.over(&self.config);
        let changes = remote_config::changes(&self.effective.get(), &after);
        *layer = next;
        if !changes.is_empty() {
            for change in &changes {
                diag::log(diag::Level::Info, &format!("updated config: {} from {} to {}", change.key.to_ascii_lowercase(), change.old, change.new));
            }
            self.policy.set(Policy::new(&after));
            self.sampler.set(after.sampler());
            self.continuation.set(Continuation::from_config(&after));
            self.shaping.set(ShapingSettings::from_config(&after));
            self.effective.set(after);
            self.pipeline.reconfigure(self.effective.get());
        }
        Applied { changes, rejected }
    }

    /// Starts asking APM Server for central configuration, when the configuration says to (the
    /// intake exporter is in use and `central_config` is true), and returns whether it did.
    /// `listener` hears of what each configuration the server sends changed.
    pub fn start_central_config(self: &Arc<Engine>, listener: Listener) -> bool {
        let Some(client) = self.central_config.lock().ok().and_then(|mut c| c.take()) else { return false };
        self.keep_poller(central_config::start_poller(client, Arc::downgrade(self), listener))
    }

    /// Starts an OpAMP client of the server at `endpoint` (EDOT's `ELASTIC_OTEL_OPAMP_ENDPOINT`),
    /// which applies the remote configuration it is offered; returns whether it started.
    pub fn start_opamp(self: &Arc<Engine>, endpoint: &str, agent_version: &str, listener: opamp::Listener) -> bool {
        let tls = TlsMaterial { verify: true, roots_pem: tls::trust(None), identity: None };
        let (service_name, environment) = (self.config.str("SERVICE_NAME").unwrap_or_default(), self.config.str("ENVIRONMENT"));
        let user_agent = format!("oxapm/{agent_version}");
        let client = OpampClient::new(endpoint, service_name, environment, self.config.duration("SERVER_TIMEOUT"), &user_agent, &tls);
        self.keep_poller(opamp::start_poller(client, Arc::downgrade(self), listener))
    }

    fn keep_poller(&self, stop: Option<Sender<()>>) -> bool {
        let Some(stop) = stop else { return false };
        if let Ok(mut pollers) = self.stop_pollers.lock() {
            pollers.push(stop);
        }
        true
    }

    pub fn push(&self, event: Event) {
        self.pipeline.push(event);
    }

    /// Queues a log record, unless log records are not exported (`OTEL_LOGS_EXPORTER=none`).
    pub fn push_log(&self, record: LogRecord) {
        if self.exports_logs {
            self.pipeline.push(Event::Log(Box::new(record)));
        }
    }

    /// Whether `push_log` queues anything: a logging handler can skip building records.
    pub fn exports_logs(&self) -> bool {
        self.exports_logs
    }

    pub fn flush(&self, timeout: Duration) -> bool {
        self.pipeline.flush(timeout)
    }

    pub fn shutdown(&self, timeout: Duration) -> bool {
        if let Ok(mut pollers) = self.stop_pollers.lock() {
            pollers.clear(); // dropping their senders stops them
        }
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

    fn remote(values: &[(&str, &str)]) -> HashMap<String, String> {
        values.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn reconfigure_swaps_what_the_dynamic_options_decide_and_reverts() {
        let env = HashMap::from([("ELASTIC_APM_TRACES_EXPORTER".to_owned(), "memory".to_owned())]);
        let engine = Engine::start(Config::resolve(&env, &HashMap::new(), &HashMap::new()), &json!({}), "test");
        let values = remote(&[
            ("transaction_sample_rate", "0"),
            ("transaction_ignore_urls", "/health*"),
            ("transaction_max_spans", "3"),
            ("trace_continuation_strategy", "restart"),
        ]);
        let changes = engine.reconfigure(&values).changes;
        assert_eq!(changes.len(), 4, "{changes:?}");
        assert_eq!(engine.sampler().rate, 0.0);
        assert!(engine.policy().ignores_url("/healthz"));
        assert_eq!(engine.shaping().max_spans, Some(3));
        assert_eq!(engine.continuation(), Continuation::Restart);
        assert_eq!(engine.effective_config().float("TRANSACTION_SAMPLE_RATE"), 0.0);
        // The same values again change nothing; none at all revert everything.
        assert!(engine.reconfigure(&values).changes.is_empty());
        assert_eq!(engine.reconfigure(&HashMap::new()).changes.len(), 4);
        assert_eq!((engine.sampler().rate, engine.policy().ignores_url("/healthz"), engine.shaping().max_spans), (1.0, false, Some(500)));
        assert_eq!(engine.continuation(), Continuation::Continue);
        engine.shutdown(Duration::from_secs(1));
    }

    #[test]
    fn log_records_reach_the_intake_with_secret_attributes_redacted_unless_logs_are_off() {
        let record = || {
            let mut record = LogRecord { body: Some(crate::model::LogValue::Str("login".into())), severity_number: 9, ..Default::default() };
            record.attributes.set("user.password", crate::model::AttributeValue::Str("hunter2".into()), 128, None);
            record.attributes.set("password", crate::model::AttributeValue::Str("hunter2".into()), 128, None);
            record
        };
        let engine = memory_engine(&[]);
        engine.push_log(record());
        assert!(engine.flush(Duration::from_secs(5)));
        let lines = engine.take_memory().join("\n");
        assert!(lines.contains(r#""message":"login""#) && lines.contains(r#""user_password":"[REDACTED]""#), "{lines}");
        assert!(!lines.contains("hunter2"), "{lines}");
        engine.shutdown(Duration::from_secs(1));
        let off = memory_engine(&[("LOGS_EXPORTER", "none")]);
        off.push_log(record());
        assert!(off.flush(Duration::from_secs(5)));
        assert!(off.take_memory().iter().all(|line| !line.contains("login")));
        off.shutdown(Duration::from_secs(1));
    }

    #[test]
    fn metrics_are_off_with_an_interval_of_zero() {
        let off = memory_engine(&[("METRICS_INTERVAL", "0")]);
        off.gc_collected(0);
        off.record_breakdown("t", "job", &[SelfTime { span_type: "app".into(), subtype: None, count: 1, sum_us: 1 }]);
        assert!(metricsets(&off).is_empty());
        off.shutdown(Duration::from_secs(1));
    }

    fn counted_meter(engine: &Engine) -> Arc<MeterRegistry> {
        use crate::meters::aggregation::Number;
        use crate::meters::{attributes::AttributeSet, points::MeterScope, InstrumentDescriptor, InstrumentKind};
        let registry = Arc::new(MeterRegistry::new(engine.meter_settings(), Vec::new()));
        let descriptor = InstrumentDescriptor {
            scope: Arc::new(MeterScope { name: "shop".into(), ..Default::default() }),
            name: "orders".into(),
            unit: String::new(),
            description: String::new(),
            kind: InstrumentKind::Counter,
            advised_boundaries: None,
        };
        registry.instrument(descriptor, None).record(Number::Int(2), AttributeSet::default());
        engine.attach_meters(registry.clone());
        registry
    }

    #[test]
    fn attached_meters_are_collected_at_flush_unless_metrics_are_off() {
        let engine = memory_engine(&[("DISABLE_METRICS", "system.*,python.*")]);
        let registry = counted_meter(&engine);
        let collected = metricsets(&engine);
        assert_eq!(collected.len(), 1, "{collected:?}");
        assert_eq!(collected[0]["samples"], json!({"orders": {"value": 2, "type": "counter"}}));
        engine.detach_meters(&registry);
        assert!(metricsets(&engine).is_empty());
        engine.shutdown(Duration::from_secs(1));
        let off = memory_engine(&[("METRICS_INTERVAL", "0")]);
        counted_meter(&off);
        assert!(metricsets(&off).is_empty());
        off.shutdown(Duration::from_secs(1));
    }

    #[test]
    fn the_export_thread_redacts_with_the_new_field_names() {
        let env = HashMap::from([("ELASTIC_APM_TRACES_EXPORTER".to_owned(), "memory".to_owned())]);
        let engine = Engine::start(Config::resolve(&env, &HashMap::new(), &HashMap::new()), &json!({}), "test");
        engine.reconfigure(&remote(&[("sanitize_field_names", "x-internal")]));
        let context = json!({"request": {"method": "GET", "headers": {"x-internal": "hidden", "authorization": "shown"}}}).as_object().cloned().unwrap();
        engine.push(Event::Transaction(Box::new(TransactionRecord { context, ..Default::default() })));
        assert!(engine.flush(Duration::from_secs(5)));
        let lines = engine.take_memory().join("\n");
        assert!(lines.contains(r#""x-internal":"[REDACTED]""#) && lines.contains(r#""authorization":"shown""#), "{lines}");
        engine.shutdown(Duration::from_secs(1));
    }
}
