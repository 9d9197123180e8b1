//! OpenTelemetry Protocol: the messages (`proto`), how records become OTLP spans (`traces`) and
//! metricsets and the OpenTelemetry SDK's metrics OTLP metrics (`metrics`, `meters`) under the process's `resource`, and the exporter `settings`
//! read from `OTEL_EXPORTER_OTLP_*`.

pub mod meters;
pub mod metrics;
pub mod proto;
pub mod resource;
pub mod settings;
pub mod traces;
