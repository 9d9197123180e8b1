//! OpenTelemetry Protocol: the messages (`proto`), how records become OTLP spans (`traces`) under
//! the process's `resource`, and the exporter `settings` read from `OTEL_EXPORTER_OTLP_*`.

pub mod proto;
pub mod resource;
pub mod settings;
pub mod traces;
