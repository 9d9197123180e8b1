//! OTLP export: batches of spans (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, `OTEL_BSP_SCHEDULE_DELAY`)
//! encoded as one `ExportTraceServiceRequest` each, and the metricsets and meters' metrics of each
//! collection as one `ExportMetricsServiceRequest`, sent over http/protobuf (`/v1/traces`, `/v1/metrics`) or gRPC.

use crate::exporters::batch::{BatchExporter, Encoder};
use crate::exporters::grpc::{GrpcSettings, GrpcTransport};
use crate::exporters::http::HttpTransport;
use crate::exporters::tls::{self, TlsMaterial};
use crate::model::Event;
use crate::otlp::metrics::{self, MetricsBatch};
use crate::otlp::proto::{ExportMetricsServiceResponse, ExportTraceServiceResponse, InstrumentationScope, Resource};
use crate::otlp::settings::{OtlpSettings, Protocol};
use crate::otlp::traces::{self, ScopedSpans};
use crate::pipeline::{Exporter, Stats};
use flate2::write::GzEncoder;
use flate2::Compression;
use prost::Message;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

const TRACE_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const METRICS_EXPORT_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

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
        compressed(traces::request(&self.resource, &self.scope, spans).encode_to_vec(), self.gzip)
    }
}

pub struct OtlpMetricsEncoder {
    resource: Resource,
    scope: InstrumentationScope,
    batch: MetricsBatch,
    /// Data points per request.
    max_batch: usize,
    gzip: bool,
}

impl Encoder for OtlpMetricsEncoder {
    fn add(&mut self, event: &Event) -> bool {
        match event {
            Event::Metricset(metricset) => self.batch.add(metricset),
            Event::Metrics(metrics) => self.batch.add_meter(metrics),
            _ => return false,
        }
        true
    }

    fn is_full(&self) -> bool {
        self.batch.len() >= self.max_batch
    }

    fn finish(&mut self) -> Result<Vec<u8>, String> {
        let batch = std::mem::take(&mut self.batch);
        compressed(metrics::request(&self.resource, &self.scope, batch).encode_to_vec(), self.gzip)
    }
}

pub(crate) fn compressed(body: Vec<u8>, gzip: bool) -> Result<Vec<u8>, String> {
    if !gzip {
        return Ok(body);
    }
    let mut gz = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    gz.write_all(&body).and_then(|_| gz.finish()).map_err(|e| e.to_string())
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

fn metrics_http_answer(body: &[u8]) -> Option<String> {
    let partial = ExportMetricsServiceResponse::decode(body).ok()?.partial_success.filter(|p| p.rejected_data_points > 0 || !p.error_message.is_empty())?;
    Some(format!("{} data points rejected: {}", partial.rejected_data_points, partial.error_message))
}

pub struct OtlpExport<'a> {
    pub settings: &'a OtlpSettings,
    /// From `tls_material(settings)`; exporters whose settings name the same files share it.
    pub tls: &'a TlsMaterial,
    pub resource: Resource,
    pub scope: InstrumentationScope,
    pub user_agent: &'a str,
    pub retry_buffer_size: usize,
}

/// The CAs and client identity the settings name (a file that cannot be used gives a warning).
pub fn tls_material(settings: &OtlpSettings) -> TlsMaterial {
    TlsMaterial {
        verify: true,
        roots_pem: tls::trust(pem_file(&settings.certificate)),
        identity: tls::identity(pem_file(&settings.client_certificate), pem_file(&settings.client_key)),
    }
}

/// Whether two exporters' settings name the same TLS files (then one reading, one warning, serves both).
pub fn same_tls_files(a: &OtlpSettings, b: &OtlpSettings) -> bool {
    let paths = |s: &OtlpSettings| [&s.certificate, &s.client_certificate, &s.client_key].map(|f| f.as_ref().map(|(_, path)| path.clone()));
    paths(a) == paths(b)
}

/// What differs between the trace, metrics and logs exporters.
pub(crate) struct Signal<E> {
    /// As warnings name it.
    pub name: &'static str,
    /// The encoder, compressing (http/protobuf) or not (gRPC compresses in its framing).
    pub encoder: E,
    pub grpc_path: &'static str,
    pub http_answer: fn(&[u8]) -> Option<String>,
    /// How long a batch stays open.
    pub max_age: Duration,
}

/// The trace exporter the settings describe; `None` (after a warning) if it cannot be built.
pub fn otlp_exporter(export: OtlpExport<'_>, stats: Arc<Stats>) -> Option<Box<dyn Exporter>> {
    let settings = export.settings;
    let encoder = |gzip| OtlpEncoder::new(export.resource.clone(), export.scope.clone(), settings.max_batch, gzip);
    let signal = Signal { name: "trace", encoder, grpc_path: TRACE_EXPORT_PATH, http_answer, max_age: settings.schedule_delay };
    exporter(&export, signal, stats)
}

/// The metrics exporter the settings describe. Each collection is sent as soon as it is made: the
/// metricsets of one collection arrive together, there is nothing to wait for.
pub fn otlp_metrics_exporter(export: OtlpExport<'_>, stats: Arc<Stats>) -> Option<Box<dyn Exporter>> {
    let settings = export.settings;
    let encoder = |gzip| OtlpMetricsEncoder {
        resource: export.resource.clone(),
        scope: export.scope.clone(),
        batch: MetricsBatch::default(),
        max_batch: settings.max_batch,
        gzip,
    };
    let signal = Signal { name: "metrics", encoder, grpc_path: METRICS_EXPORT_PATH, http_answer: metrics_http_answer, max_age: Duration::ZERO };
    exporter(&export, signal, stats)
}

pub(crate) fn exporter<E: Encoder + 'static>(export: &OtlpExport<'_>, signal: Signal<impl Fn(bool) -> E>, stats: Arc<Stats>) -> Option<Box<dyn Exporter>> {
    let settings = export.settings;
    let tls = export.tls;
    let encoder = signal.encoder;
    match settings.protocol {
        Protocol::HttpProtobuf => {
            let mut headers = vec![("Content-Type".to_owned(), "application/x-protobuf".to_owned())];
            if settings.gzip {
                headers.push(("Content-Encoding".to_owned(), "gzip".to_owned()));
            }
            headers.extend(settings.headers.iter().cloned());
            let transport = HttpTransport::new("the OTLP endpoint", settings.endpoint.clone(), headers, settings.timeout, export.user_agent, tls)
                .reading_success(signal.http_answer);
            Some(Box::new(BatchExporter::new(encoder(settings.gzip), transport, signal.max_age, export.retry_buffer_size, stats)))
        }
        Protocol::Grpc => {
            let grpc = GrpcSettings {
                endpoint: &settings.endpoint,
                path: signal.grpc_path,
                headers: &settings.headers,
                gzip: settings.gzip,
                timeout: settings.timeout,
                user_agent: export.user_agent,
            };
            match GrpcTransport::new(grpc, tls) {
                Ok(transport) => Some(Box::new(BatchExporter::new(encoder(false), transport, signal.max_age, export.retry_buffer_size, stats))),
                Err(why) => {
                    let message = format!("OTLP gRPC exporter for {} could not start ({why}); OTLP {} export is off", settings.endpoint, signal.name);
                    crate::diag::warn(&crate::diag::redacted(message, &settings.endpoint));
                    None
                }
            }
        }
    }
}
