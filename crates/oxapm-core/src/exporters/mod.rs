//! Where finished records go: Elastic APM Server (intake v2 over HTTP), the console, or memory.

pub mod console;
pub mod intake_http;
pub mod memory;
pub mod retry;
pub mod tls;
