//! OpenTelemetry Protocol: the messages (`proto`), how records become OTLP spans (`traces`),
//! metricsets and the OpenTelemetry SDK's metrics OTLP metrics (`metrics`, `meters`) and log
//! records OTLP logs (`logs`) under the process's `resource`, and the exporter `settings` read from
//! `OTEL_EXPORTER_OTLP_*`.

pub mod logs;
pub mod meters;
pub mod metrics;
pub mod proto;
pub mod resource;
pub mod settings;
pub mod traces;
