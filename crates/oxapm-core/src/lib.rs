//! oxapm-core: the engine of the oxapm APM agent, with no Python in it.
//!
//! `trace` runs transactions and spans and produces `model` records; `engine` owns the `pipeline`
//! that carries them to the `exporters`, which encode them (`intake`, written with `json`; `otlp`;
//! console). `config` resolves options, and `remote_config` lays central configuration over them
//! (fetched from APM Server by `central_config` or from an OpAMP server by `opamp`, on `poller`
//! threads; `live` holds what it replaces).
//! `traceparent` and `ids` implement W3C trace context, and `propagation` reads and writes it, with
//! baggage, in every `OTEL_PROPAGATORS` format; `sampling` decides which traces are recorded, and
//! `continuation` whether an incoming trace is continued; `shaping` decides what a transaction
//! reports of its spans. On the way out, `policy` finishes every record: `bridge` gives spans
//! started through the OpenTelemetry API their Elastic shape, and `sanitize` redacts secrets, with
//! the `wildcard` patterns of the config; `service_target` names the service an exit span calls,
//! which the intake encoder writes into its context.
//! For the instrumentations, `sql` names database spans after their statement and `http` builds
//! the context of requests served and of calls made. `metrics` collects metricsets (breakdown,
//! system, process, Python GC) on the export thread; `meters` is the OpenTelemetry metrics SDK,
//! collected there too. Log records (`model::LogRecord`) travel the same pipeline and are encoded
//! by `otlp::logs` and `intake_log`.

pub mod bridge;
pub mod central_config;
pub mod config;
pub mod continuation;
pub mod diag;
pub mod engine;
pub mod exporters;
pub mod http;
pub mod ids;
pub mod intake;
pub mod intake_log;
pub mod intake_meters;
pub mod json;
pub mod live;
pub mod meters;
pub mod metrics;
pub mod model;
pub mod opamp;
pub mod otlp;
pub mod pipeline;
pub mod policy;
pub mod poller;
pub mod propagation;
pub mod remote_config;
pub mod sampling;
pub mod sanitize;
pub mod service_target;
pub mod shaping;
pub mod sql;
pub mod trace;
pub mod traceparent;
pub mod wildcard;
