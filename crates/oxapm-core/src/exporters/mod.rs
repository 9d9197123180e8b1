//! Where finished records go: Elastic APM Server (intake v2 over HTTP), an OTLP endpoint (HTTP or
//! gRPC), the console, or memory. The network exporters share `batch` (batching, retries, fault
//! reports), `retry` and `tls`.

pub mod batch;
pub mod console;
pub mod grpc;
pub mod http;
pub mod intake_http;
pub mod memory;
pub mod otlp;
pub mod otlp_logs;
pub mod retry;
pub mod tls;
