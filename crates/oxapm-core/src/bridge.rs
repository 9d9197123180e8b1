//! How a span started through the OpenTelemetry API looks as an Elastic transaction or span, the
//! way Elastic's OTel bridge maps it: the type from the kind and the semantic-convention attributes
//! (old and stable names alike), the outcome from the status, and for exit spans the destination
//! resource and service target. Applied on the export thread, before any exporter sees the record.

use crate::model::{Attributes, Event, OtelData, Outcome, SpanKind, SpanRecord, StatusCode, TransactionRecord};
use crate::service_target::{default_port, url_host_port};
use serde_json::{json, Value};

// Each list names one thing under its old and its stable semantic-convention names.
const DB_SYSTEM: &[&str] = &["db.system", "db.system.name"];
const DB_NAME: &[&str] = &["db.name", "db.namespace"];
const MESSAGING_SYSTEM: &[&str] = &["messaging.system"];
const MESSAGING_DESTINATION: &[&str] = &["messaging.destination", "messaging.destination.name"];
const MESSAGING_TEMPORARY: &[&str] = &["messaging.temp_destination", "messaging.destination.temporary"];
const RPC_SYSTEM: &[&str] = &["rpc.system"];
const RPC_SERVICE: &[&str] = &["rpc.service"];
const HTTP_URL: &[&str] = &["http.url", "url.full"];
const HTTP_SCHEME: &[&str] = &["http.scheme", "url.scheme"];
const HTTP_METHOD: &[&str] = &["http.method", "http.request.method"];
const HTTP_HOST: &[&str] = &["http.host"];
const HTTP_STATUS: &[&str] = &["http.status_code", "http.response.status_code"];
const PEER_NAME: &[&str] = &["net.peer.name", "server.address", "net.peer.ip", "network.peer.address"];
const PEER_PORT: &[&str] = &["net.peer.port", "server.port", "network.peer.port"];

pub fn apply(event: &mut Event) {
    match event {
        Event::Transaction(transaction) => map_transaction(transaction),
        Event::Span(span) => shape_span(span),
        Event::Error(_) | Event::Metricset(_) | Event::Metrics(_) | Event::Log(_) => {}
    }
}

/// The OTel data of a record the OTel API started, with its kind.
fn started_by_otel(otel: &Option<Box<OtelData>>) -> Option<(&OtelData, SpanKind)> {
    let otel = otel.as_deref()?;
    Some((otel, otel.kind?))
}

fn outcome(status: StatusCode) -> Outcome {
    match status {
        StatusCode::Unset => Outcome::Unknown,
        StatusCode::Ok => Outcome::Success,
        StatusCode::Error => Outcome::Failure,
    }
}

fn map_transaction(t: &mut TransactionRecord) {
    let Some((otel, kind)) = started_by_otel(&t.otel) else { return };
    let a = &otel.attributes;
    let is_http = a.first(HTTP_URL).or_else(|| a.first(HTTP_SCHEME)).or_else(|| a.first(HTTP_METHOD)).is_some();
    t.transaction_type = match kind {
        SpanKind::Server if is_http || a.first(RPC_SYSTEM).is_some() => "request",
        SpanKind::Consumer if a.first(MESSAGING_SYSTEM).is_some() => "messaging",
        _ => "unknown",
    }
    .to_owned();
    if t.result.is_none() {
        t.result = a.first(HTTP_STATUS).and_then(|code| code.as_int()).map(|code| format!("HTTP {}xx", code / 100));
    }
    t.outcome = outcome(otel.status);
}

/// What an exit span is inferred to be: type, subtype, action, destination resource and target.
#[derive(Debug, Default, PartialEq)]
struct SpanShape {
    span_type: &'static str,
    subtype: Option<String>,
    action: Option<&'static str>,
    resource: Option<String>,
    target: Option<(String, Option<String>)>,
}

/// Gives a span the OpenTelemetry API started its Elastic shape (nothing for other spans). Also
/// used before compression, which compares the shapes; applying it twice changes nothing.
pub fn shape_span(s: &mut SpanRecord) {
    let Some((otel, kind)) = started_by_otel(&s.otel) else { return };
    let shape = shape(kind, &otel.attributes);
    s.outcome = outcome(otel.status);
    s.span_type = shape.span_type.to_owned();
    s.subtype = shape.subtype;
    s.action = shape.action.map(str::to_owned);
    if let Some(resource) = shape.resource {
        let mut destination = json!({"service": {"resource": resource, "name": "", "type": ""}});
        if let Some(address) = otel.attributes.first(PEER_NAME).and_then(|v| v.as_str()) {
            destination["address"] = json!(address);
        }
        if let Some(port) = otel.attributes.first(PEER_PORT).and_then(|v| v.as_int()).filter(|p| *p > 0) {
            destination["port"] = json!(port);
        }
        s.context.insert("destination".to_owned(), destination);
    }
    if let Some((target_type, name)) = shape.target {
        let mut target = json!({"type": target_type});
        if let Some(name) = name {
            target["name"] = Value::String(name);
        }
        s.context.insert("service".to_owned(), json!({"target": target}));
    }
}

fn text<'a>(a: &'a Attributes, keys: &[&str]) -> Option<&'a str> {
    a.first(keys).and_then(|v| v.as_str()).filter(|s| !s.is_empty())
}

/// `host:port` of the peer, when the attributes name it.
fn peer(a: &Attributes) -> Option<String> {
    let name = text(a, PEER_NAME)?;
    Some(match a.first(PEER_PORT).and_then(|v| v.as_int()).filter(|p| *p > 0) {
        Some(port) => format!("{name}:{port}"),
        None => name.to_owned(),
    })
}

fn shape(kind: SpanKind, a: &Attributes) -> SpanShape {
    let peer = peer(a);
    if let Some(system) = text(a, DB_SYSTEM) {
        let name = text(a, DB_NAME);
        let base = peer.unwrap_or_else(|| system.to_owned());
        return SpanShape {
            span_type: "db",
            subtype: Some(system.to_owned()),
            action: Some("query"),
            resource: Some(match name {
                Some(name) => format!("{base}/{name}"),
                None => base,
            }),
            target: Some((system.to_owned(), name.map(str::to_owned))),
        };
    }
    if let Some(system) = text(a, MESSAGING_SYSTEM) {
        let temporary = matches!(a.first(MESSAGING_TEMPORARY), Some(crate::model::AttributeValue::Bool(true)));
        let destination = text(a, MESSAGING_DESTINATION).filter(|_| !temporary);
        let base = peer.unwrap_or_else(|| system.to_owned());
        return SpanShape {
            span_type: "messaging",
            subtype: Some(system.to_owned()),
            action: match kind {
                SpanKind::Producer => Some("send"),
                SpanKind::Consumer => Some("receive"),
                _ => None,
            },
            resource: Some(match destination {
                Some(destination) => format!("{base}/{destination}"),
                None => base,
            }),
            target: Some((system.to_owned(), destination.map(str::to_owned))),
        };
    }
    if let Some(system) = text(a, RPC_SYSTEM) {
        let service = text(a, RPC_SERVICE);
        let resource = match (&peer, service) {
            (Some(peer), _) => peer.clone(),
            (None, Some(service)) => format!("{system}/{service}"),
            (None, None) => system.to_owned(),
        };
        let name = peer.or_else(|| service.map(str::to_owned));
        return SpanShape {
            span_type: "external",
            subtype: Some(system.to_owned()),
            action: None,
            resource: Some(resource),
            target: Some((system.to_owned(), name)),
        };
    }
    if a.first(HTTP_URL).is_some() || a.first(HTTP_SCHEME).is_some() {
        let resource = http_resource(a, peer);
        return SpanShape {
            span_type: "external",
            subtype: Some("http".to_owned()),
            action: None,
            target: Some(("http".to_owned(), resource.clone())),
            resource,
        };
    }
    match kind {
        SpanKind::Internal => SpanShape { span_type: "app", subtype: Some("internal".to_owned()), ..Default::default() },
        _ => SpanShape { span_type: "unknown", ..Default::default() },
    }
}

/// `host:port` of an HTTP call: from `http.host` or the peer, else from the URL; the port
/// defaults to the scheme's.
fn http_resource(a: &Attributes, peer: Option<String>) -> Option<String> {
    if let Some(host) = text(a, HTTP_HOST).map(str::to_owned).or(peer) {
        if host.contains(':') {
            return Some(host);
        }
        return Some(match text(a, HTTP_SCHEME).and_then(default_port) {
            Some(port) => format!("{host}:{port}"),
            None => host,
        });
    }
    url_host_port(text(a, HTTP_URL)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AttributeValue;

    fn attributes(pairs: &[(&str, AttributeValue)]) -> Attributes {
        let mut out = Attributes::default();
        for (key, value) in pairs {
            out.set(key, value.clone(), 128, None);
        }
        out
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::Str(v.to_owned())
    }

    #[test]
    fn database_spans_old_and_stable_names() {
        let old = shape(
            SpanKind::Client,
            &attributes(&[("db.system", s("postgresql")), ("db.name", s("shop")), ("net.peer.name", s("db")), ("net.peer.port", AttributeValue::Int(5432))]),
        );
        let stable = shape(
            SpanKind::Client,
            &attributes(&[
                ("db.system.name", s("postgresql")),
                ("db.namespace", s("shop")),
                ("server.address", s("db")),
                ("server.port", AttributeValue::Int(5432)),
            ]),
        );
        assert_eq!(old, stable);
        assert_eq!(old.span_type, "db");
        assert_eq!(old.subtype.as_deref(), Some("postgresql"));
        assert_eq!(old.resource.as_deref(), Some("db:5432/shop"));
        assert_eq!(old.target, Some(("postgresql".into(), Some("shop".into()))));
        let bare = shape(SpanKind::Client, &attributes(&[("db.system", s("sqlite"))]));
        assert_eq!(bare.resource.as_deref(), Some("sqlite"));
        assert_eq!(bare.target, Some(("sqlite".into(), None)));
    }

    #[test]
    fn messaging_spans() {
        let send = shape(SpanKind::Producer, &attributes(&[("messaging.system", s("kafka")), ("messaging.destination.name", s("orders"))]));
        assert_eq!((send.span_type, send.action), ("messaging", Some("send")));
        assert_eq!(send.resource.as_deref(), Some("kafka/orders"));
        let temporary = shape(
            SpanKind::Consumer,
            &attributes(&[
                ("messaging.system", s("rabbitmq")),
                ("messaging.destination", s("amq.gen-1")),
                ("messaging.temp_destination", AttributeValue::Bool(true)),
            ]),
        );
        assert_eq!(temporary.resource.as_deref(), Some("rabbitmq"));
        assert_eq!(temporary.action, Some("receive"));
    }

    #[test]
    fn http_and_rpc_spans() {
        let url = shape(SpanKind::Client, &attributes(&[("http.url", s("https://user:pw@api.example.com/v1?q=1"))]));
        assert_eq!((url.span_type, url.subtype.as_deref()), ("external", Some("http")));
        assert_eq!(url.resource.as_deref(), Some("api.example.com:443"));
        assert_eq!(url.target, Some(("http".into(), Some("api.example.com:443".into()))));
        let stable =
            shape(SpanKind::Client, &attributes(&[("url.full", s("http://h:8080/x")), ("server.address", s("h")), ("server.port", AttributeValue::Int(8080))]));
        assert_eq!(stable.resource.as_deref(), Some("h:8080"));
        let host = shape(SpanKind::Client, &attributes(&[("http.scheme", s("http")), ("http.host", s("example.com"))]));
        assert_eq!(host.resource.as_deref(), Some("example.com:80"));
        let grpc = shape(SpanKind::Client, &attributes(&[("rpc.system", s("grpc")), ("rpc.service", s("Greeter"))]));
        assert_eq!((grpc.span_type, grpc.subtype.as_deref()), ("external", Some("grpc")));
        assert_eq!(grpc.resource.as_deref(), Some("grpc/Greeter"));
    }

    #[test]
    fn other_spans() {
        assert_eq!(shape(SpanKind::Internal, &Attributes::default()).span_type, "app");
        assert_eq!(shape(SpanKind::Internal, &Attributes::default()).subtype.as_deref(), Some("internal"));
        assert_eq!(shape(SpanKind::Client, &Attributes::default()).span_type, "unknown");
    }

    fn otel(kind: SpanKind, attrs: Attributes, status: StatusCode) -> Option<Box<OtelData>> {
        Some(Box::new(OtelData { kind: Some(kind), attributes: attrs, status, ..Default::default() }))
    }

    #[test]
    fn transactions_get_type_result_and_outcome() {
        let mut t = TransactionRecord {
            otel: otel(
                SpanKind::Server,
                attributes(&[("http.request.method", s("GET")), ("http.response.status_code", AttributeValue::Int(404))]),
                StatusCode::Unset,
            ),
            ..Default::default()
        };
        map_transaction(&mut t);
        assert_eq!((t.transaction_type.as_str(), t.result.as_deref(), t.outcome), ("request", Some("HTTP 4xx"), Outcome::Unknown));
        let mut consumer =
            TransactionRecord { otel: otel(SpanKind::Consumer, attributes(&[("messaging.system", s("sqs"))]), StatusCode::Error), ..Default::default() };
        map_transaction(&mut consumer);
        assert_eq!((consumer.transaction_type.as_str(), consumer.outcome), ("messaging", Outcome::Failure));
        let mut internal = TransactionRecord { otel: otel(SpanKind::Internal, Attributes::default(), StatusCode::Ok), ..Default::default() };
        map_transaction(&mut internal);
        assert_eq!((internal.transaction_type.as_str(), internal.outcome), ("unknown", Outcome::Success));
    }

    #[test]
    fn records_the_elastic_api_started_keep_their_fields() {
        let mut span = SpanRecord { span_type: "db".into(), outcome: Outcome::Success, ..Default::default() };
        span.otel = Some(Box::new(OtelData { attributes: attributes(&[("http.url", s("http://x/"))]), ..Default::default() }));
        shape_span(&mut span);
        assert_eq!((span.span_type.as_str(), span.outcome), ("db", Outcome::Success));
        assert!(span.context.is_empty());
    }

    #[test]
    fn exit_spans_get_destination_and_target() {
        let mut span = SpanRecord {
            otel: otel(
                SpanKind::Client,
                attributes(&[("db.system", s("redis")), ("net.peer.name", s("cache")), ("net.peer.port", AttributeValue::Int(6379))]),
                StatusCode::Ok,
            ),
            ..Default::default()
        };
        shape_span(&mut span);
        assert_eq!(span.context["destination"], json!({"address": "cache", "port": 6379, "service": {"resource": "cache:6379", "name": "", "type": ""}}));
        assert_eq!(span.context["service"], json!({"target": {"type": "redis"}}));
        assert_eq!(span.outcome, Outcome::Success);
    }
}
