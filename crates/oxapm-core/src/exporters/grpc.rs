//! OTLP over gRPC: one unary `Export` call per batch through tonic, on a single-threaded tokio
//! runtime that only the export thread drives. The batch is encoded before it gets here (it may
//! wait in the retry queue as bytes), so the codec passes bytes through; tonic frames and
//! compresses them.

use crate::diag::redacted;
use crate::exporters::batch::Transport;
use crate::exporters::otlp::partial_success;
use crate::exporters::retry::Attempt;
use crate::exporters::tls::TlsMaterial;
use crate::otlp::proto::ExportTraceServiceResponse;
use bytes::{Buf, BufMut};
use prost::Message;
use std::error::Error;
use std::str::FromStr;
use std::time::Duration;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};

pub struct GrpcTransport {
    runtime: tokio::runtime::Runtime,
    channel: Channel,
    path: PathAndQuery,
    headers: Vec<(MetadataKey<tonic::metadata::Ascii>, MetadataValue<tonic::metadata::Ascii>)>,
    gzip: bool,
    peer: String,
}

pub struct GrpcSettings<'a> {
    pub endpoint: &'a str,
    /// `/package.Service/Method`.
    pub path: &'static str,
    pub headers: &'a [(String, String)],
    pub gzip: bool,
    pub timeout: Duration,
    pub user_agent: &'a str,
}

impl GrpcTransport {
    pub fn new(settings: GrpcSettings<'_>, tls: &TlsMaterial) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        let mut endpoint = Endpoint::from_shared(settings.endpoint.to_owned())
            .map_err(|e| e.to_string())?
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(settings.user_agent)
            .map_err(|e| e.to_string())?;
        if settings.endpoint.starts_with("https://") {
            let mut config = ClientTlsConfig::new();
            if let Some(roots) = &tls.roots_pem {
                config = config.ca_certificate(Certificate::from_pem(roots));
            }
            if let Some(identity) = &tls.identity {
                config = config.identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem));
            }
            endpoint = endpoint.tls_config(config).map_err(|e| e.to_string())?;
        }
        // The channel's background task is spawned on this runtime and runs while calls drive it.
        let channel = {
            let _inside = runtime.enter();
            endpoint.connect_lazy()
        };
        let headers = settings.headers.iter().filter_map(|(k, v)| Some((MetadataKey::from_str(k).ok()?, MetadataValue::try_from(v.as_str()).ok()?))).collect();
        Ok(GrpcTransport {
            runtime,
            channel,
            path: PathAndQuery::from_static(settings.path),
            headers,
            gzip: settings.gzip,
            peer: redacted(format!("the OTLP gRPC endpoint at {}", settings.endpoint), settings.endpoint),
        })
    }
}

/// gRPC codes the OTLP specification says to retry; the rest are final.
fn retryable(code: Code) -> bool {
    matches!(code, Code::Cancelled | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted | Code::OutOfRange | Code::Unavailable | Code::DataLoss)
}

impl Transport for GrpcTransport {
    fn attempt(&mut self, body: &[u8]) -> (Attempt, Option<String>) {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        if self.gzip {
            grpc = grpc.send_compressed(CompressionEncoding::Gzip);
        }
        let mut request = tonic::Request::new(body.to_vec());
        for (key, value) in &self.headers {
            request.metadata_mut().insert(key.clone(), value.clone());
        }
        let path = self.path.clone();
        let answer = self.runtime.block_on(async move {
            grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
            grpc.unary(request, path, PassThrough).await
        });
        match answer {
            Ok(response) => (Attempt::Delivered, partial_success(&response.into_inner())),
            // A status with a source error is tonic's own: the connection failed, nobody answered.
            Err(status) if status.source().is_some() => (Attempt::RetryLater(None), Some(format!("could not reach {}: {}", self.peer, causes(&status)))),
            Err(status) => {
                let why = format!("{} answered {:?}: {}", self.peer, status.code(), status.message());
                (if retryable(status.code()) { Attempt::RetryLater(None) } else { Attempt::Rejected }, Some(why))
            }
        }
    }

    fn peer(&self) -> &str {
        &self.peer
    }
}

/// An error and its causes, as one line ("transport error" alone says nothing).
fn causes(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

/// Sends already-encoded request bytes; decodes the OTLP export response.
struct PassThrough;

impl Codec for PassThrough {
    type Encode = Vec<u8>;
    type Decode = ExportTraceServiceResponse;
    type Encoder = PassThrough;
    type Decoder = PassThrough;

    fn encoder(&mut self) -> Self::Encoder {
        PassThrough
    }
    fn decoder(&mut self) -> Self::Decoder {
        PassThrough
    }
}

impl Encoder for PassThrough {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for PassThrough {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        ExportTraceServiceResponse::decode(bytes).map(Some).map_err(|e| Status::internal(e.to_string()))
    }
}
