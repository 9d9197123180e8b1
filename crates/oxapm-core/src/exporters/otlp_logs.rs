//! OTLP log export: batches of log records, sized and timed as span batches are (`OTEL_BSP_*`;
//! the `OTEL_BLRP_*` variables are not read), each encoded as one `ExportLogsServiceRequest` and sent over http/protobuf (`/v1/logs`) or gRPC, through the same
//! machinery as spans and metrics (retry, TLS, headers, compression).

use crate::exporters::batch::Encoder;
use crate::exporters::otlp::{compressed, exporter, OtlpExport, Signal};
use crate::model::Event;
use crate::otlp::logs::{self, LogsBatch};
use crate::otlp::proto::{ExportLogsServiceResponse, InstrumentationScope, Resource};
use crate::pipeline::{Exporter, Stats};
use prost::Message;
use std::sync::Arc;

const LOGS_EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

pub struct OtlpLogsEncoder {
    resource: Resource,
    scope: InstrumentationScope,
    batch: LogsBatch,
    max_batch: usize,
    gzip: bool,
}

impl Encoder for OtlpLogsEncoder {
    fn add(&mut self, event: &Event) -> bool {
        let Event::Log(record) = event else { return false };
        self.batch.add(record);
        true
    }

    fn is_full(&self) -> bool {
        self.batch.len() >= self.max_batch
    }

    fn finish(&mut self) -> Result<Vec<u8>, String> {
        let batch = std::mem::take(&mut self.batch);
        compressed(logs::request(&self.resource, &self.scope, batch).encode_to_vec(), self.gzip)
    }
}

fn logs_http_answer(body: &[u8]) -> Option<String> {
    let partial = ExportLogsServiceResponse::decode(body).ok()?.partial_success.filter(|p| p.rejected_log_records > 0 || !p.error_message.is_empty())?;
    Some(format!("{} log records rejected: {}", partial.rejected_log_records, partial.error_message))
}

/// The logs exporter the settings describe; `None` (after a warning) if it cannot be built.
pub fn otlp_logs_exporter(export: OtlpExport<'_>, stats: Arc<Stats>) -> Option<Box<dyn Exporter>> {
    let settings = export.settings;
    let encoder = |gzip| OtlpLogsEncoder {
        resource: export.resource.clone(),
        scope: export.scope.clone(),
        batch: LogsBatch::default(),
        max_batch: settings.max_batch,
        gzip,
    };
    let signal = Signal { name: "logs", encoder, grpc_path: LOGS_EXPORT_PATH, http_answer: logs_http_answer, max_age: settings.schedule_delay };
    exporter(&export, signal, stats)
}
