//! OTLP trace export: batches of spans (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, `OTEL_BSP_SCHEDULE_DELAY`)
//! encoded as one `ExportTraceServiceRequest` each, sent over http/protobuf (`/v1/traces`) or gRPC.

use crate::exporters::batch::{BatchExporter, Encoder};
use crate::exporters::grpc::{GrpcSettings, GrpcTransport};
use crate::exporters::http::HttpTransport;
use crate::exporters::tls::{self, TlsMaterial};
use crate::model::Event;
use crate::otlp::proto::{ExportTraceServiceResponse, InstrumentationScope, Resource};
use crate::otlp::settings::{OtlpSettings, Protocol};
use crate::otlp::traces::{self, ScopedSpans};
use crate::pipeline::{Exporter, Stats};
use flate2::write::GzEncoder;
use flate2::Compression;
use prost::Message;
use std::io::Write;
use std::sync::Arc;

const TRACE_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

pub struct OtlpEncoder {
    resource: Resource,
    scope: InstrumentationScope,
    spans: ScopedSpans,
    max_batch: usize,
    /// Compress here (http/protobuf); gRPC compresses in its own framing.
    gzip: bool,
}

impl OtlpEncoder {
    /// Batches of at most `max_batch` spans; `gzip` compresses each request body.
    pub fn new(resource: Resource, scope: InstrumentationScope, max_batch: usize, gzip: bool) -> Self {
        OtlpEncoder { resource, scope, spans: ScopedSpans::default(), max_batch, gzip }
    }
}

impl Encoder for OtlpEncoder {
    fn add(&mut self, event: &Event) -> bool {
        let Some((span, scope)) = traces::span(event) else { return false };
        self.spans.push(span, scope);
        true
    }

    fn is_full(&self) -> bool {
        self.spans.len() >= self.max_batch
    }

    fn finish(&mut self) -> Result<Vec<u8>, String> {
        let spans = std::mem::take(&mut self.spans);
        let body = traces::request(&self.resource, &self.scope, spans).encode_to_vec();
        if !self.gzip {
            return Ok(body);
        }
        let mut gz = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
        gz.write_all(&body).and_then(|_| gz.finish()).map_err(|e| e.to_string())
    }
}

fn pem_file(setting: &Option<(String, String)>) -> Option<(&str, &str)> {
    setting.as_ref().map(|(variable, path)| (variable.as_str(), path.as_str()))
}

/// What a server that accepted a batch said about the spans it dropped anyway, if anything.
pub fn partial_success(response: &ExportTraceServiceResponse) -> Option<String> {
    let partial = response.partial_success.as_ref().filter(|p| p.rejected_spans > 0 || !p.error_message.is_empty())?;
    Some(format!("{} spans rejected: {}", partial.rejected_spans, partial.error_message))
}

fn http_answer(body: &[u8]) -> Option<String> {
    partial_success(&ExportTraceServiceResponse::decode(body).ok()?)
}

pub struct OtlpExport<'a> {
    pub settings: &'a OtlpSettings,
    pub resource: Resource,
    pub scope: InstrumentationScope,
    pub user_agent: &'a str,
    pub retry_buffer_size: usize,
}

/// The exporter the settings describe; `None` (after a warning) if it cannot be built.
pub fn otlp_exporter(export: OtlpExport<'_>, stats: Arc<Stats>) -> Option<Box<dyn Exporter>> {
    let settings = export.settings;
    let tls = TlsMaterial {
        verify: true,
        roots_pem: tls::trust(pem_file(&settings.certificate)),
        identity: tls::identity(pem_file(&settings.client_certificate), pem_file(&settings.client_key)),
    };
    let encoder = |gzip| OtlpEncoder::new(export.resource.clone(), export.scope.clone(), settings.max_batch, gzip);
    match settings.protocol {
        Protocol::HttpProtobuf => {
            let mut headers = vec![("Content-Type".to_owned(), "application/x-protobuf".to_owned())];
            if settings.gzip {
                headers.push(("Content-Encoding".to_owned(), "gzip".to_owned()));
            }
            headers.extend(settings.headers.iter().cloned());
            let transport = HttpTransport::new("the OTLP endpoint", settings.endpoint.clone(), headers, settings.timeout, export.user_agent, &tls)
                .reading_success(http_answer);
            Some(Box::new(BatchExporter::new(encoder(settings.gzip), transport, settings.schedule_delay, export.retry_buffer_size, stats)))
        }
        Protocol::Grpc => {
            let grpc = GrpcSettings {
                endpoint: &settings.endpoint,
                path: TRACE_EXPORT_PATH,
                headers: &settings.headers,
                gzip: settings.gzip,
                timeout: settings.timeout,
                user_agent: export.user_agent,
            };
            match GrpcTransport::new(grpc, &tls) {
                Ok(transport) => Some(Box::new(BatchExporter::new(encoder(false), transport, settings.schedule_delay, export.retry_buffer_size, stats))),
                Err(why) => {
                    let message = format!("OTLP gRPC exporter for {} could not start ({why}); OTLP trace export is off", settings.endpoint);
                    crate::diag::warn(&crate::diag::redacted(message, &settings.endpoint));
                    None
                }
            }
        }
    }
}
