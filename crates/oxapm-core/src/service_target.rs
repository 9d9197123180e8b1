//! The service an exit span calls, inferred as Elastic's cross-agent rules say: its
//! `context.service.target` (`type`, and `name` when the context names one: a database instance, a
//! queue, an HTTP host) and the older `context.destination.service.resource` built from it.
//!
//! For spans the Elastic API started as leaves (`capture_span(..., leaf=True)`); `bridge` does the
//! same for spans of the OpenTelemetry API, from their attributes, into their context. Inferred
//! where it is used, from the record as it is: the intake encoder writes it over the span's context
//! on the export thread (nothing is built into the record only to be encoded and freed), shaping
//! counts dropped spans and names compressed ones by it.

use crate::model::{truncate_keyword, SpanRecord};
use serde_json::Value;
use std::borrow::Cow;

/// The service a span calls, as intake v2 names it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceTarget<'a> {
    /// `service.target.type`.
    pub target_type: Cow<'a, str>,
    /// `service.target.name`.
    pub name: Option<Cow<'a, str>>,
    /// `destination.service.resource`.
    pub resource: Cow<'a, str>,
}

/// Whether the target of `span` is inferred here: it is an exit span of the Elastic API.
pub fn infers(span: &SpanRecord) -> bool {
    let started_by_otel = span.otel.as_ref().is_some_and(|otel| otel.kind.is_some());
    span.exit && !started_by_otel
}

/// The target of an exit span of the Elastic API, with what its context sets (a target type or
/// name, a resource) kept; None for other spans.
pub fn inferred(span: &SpanRecord) -> Option<ServiceTarget<'_>> {
    if !infers(span) {
        return None;
    }
    let context = &span.context;
    let user_target = context.get("service").and_then(|service| service.get("target"));
    let user_type = user_target.and_then(|target| text(target.get("type")));
    let user_name = user_target.and_then(|target| text(target.get("name")));
    let user_resource = context.get("destination").and_then(|destination| destination.get("service")).and_then(|service| text(service.get("resource")));
    let section = |key: &str| context.get(key).filter(|value| !value.is_null());
    // An HTTP host names the service alone; a database instance or a queue names it within its type.
    let (name, name_is_resource) = if let Some(name) = user_name {
        (Some(Cow::Borrowed(name)), false)
    } else if let Some(db) = section("db") {
        (text(db.get("instance")).map(Cow::Borrowed), false)
    } else if let Some(message) = section("message") {
        (text(message.pointer("/queue/name")).map(Cow::Borrowed), false)
    } else {
        (section("http").and_then(|http| text(http.get("url"))).and_then(url_host_port).map(Cow::Owned), true)
    };
    let target_type = truncated(Cow::Borrowed(user_type.or(span.subtype.as_deref().filter(|s| !s.is_empty())).unwrap_or(&span.span_type)));
    let name = name.map(truncated);
    let resource = match (user_resource, &name) {
        (Some(resource), _) => Cow::Borrowed(resource),
        (None, None) => target_type.clone(),
        (None, Some(name)) if name_is_resource => name.clone(),
        (None, Some(name)) => truncated(Cow::Owned(format!("{target_type}/{name}"))),
    };
    Some(ServiceTarget { target_type, name, resource })
}

/// The target a span reports: inferred for an exit span of the Elastic API, else as its context
/// says (`bridge` writes it there for the spans of the OpenTelemetry API); empty if it says none.
pub fn reported(span: &SpanRecord) -> ServiceTarget<'_> {
    inferred(span).unwrap_or_else(|| {
        let field = |section: &str, path: &str| span.context.get(section).and_then(|value| text(value.pointer(path))).map(Cow::Borrowed);
        ServiceTarget {
            target_type: field("service", "/target/type").unwrap_or_default(),
            name: field("service", "/target/name"),
            resource: field("destination", "/service/resource").unwrap_or_default(),
        }
    })
}

fn truncated(text: Cow<'_, str>) -> Cow<'_, str> {
    match truncate_keyword(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(cut) => Cow::Owned(cut),
    }
}

fn text(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty())
}

pub(crate) fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else {
        None
    }
}

/// `host:port` of a URL, the port defaulting to its scheme's; credentials are left out.
pub(crate) fn url_host_port(url: &str) -> Option<String> {
    let (scheme, rest) = split_scheme(url)?;
    let authority = rest.bytes().position(|byte| matches!(byte, b'/' | b'?' | b'#')).map_or(rest, |end| &rest[..end]);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host_port)| host_port);
    if host_port.is_empty() {
        return None;
    }
    let has_port = host_port.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok());
    Some(match (has_port, default_port(scheme)) {
        (false, Some(port)) => format!("{host_port}:{port}"),
        _ => host_port.to_owned(),
    })
}

/// `url.split_once("://")`, without the cost of a search for a three-byte pattern.
fn split_scheme(url: &str) -> Option<(&str, &str)> {
    let mut from = 0;
    while let Some(offset) = url[from..].find(':') {
        let colon = from + offset;
        if let Some(rest) = url[colon + 1..].strip_prefix("//") {
            return Some((&url[..colon], rest));
        }
        from = colon + 1;
    }
    None
}

/// Spans for the encoders' tests, as they end (not finished by the policy): every cross-agent
/// case, exit spans with contexts of odd shapes, spans that are not exit spans, and one the
/// OpenTelemetry API started.
#[cfg(test)]
pub(crate) fn test_spans() -> Vec<SpanRecord> {
    use crate::ids::SpanId;
    use crate::model::{LabelValue, OtelData, SpanKind};
    use serde_json::json;
    let cases: Vec<Value> = serde_json::from_str(include_str!("../../../tests/specs/agent-specs/service_resource_inference.json")).unwrap();
    let mut spans: Vec<(Value, bool)> = cases.iter().map(|case| (case["span"].clone(), case["span"]["exit"] == "true")).collect();
    let exit = |context: Value| (json!({"type": "db", "subtype": "postgresql", "context": context}), true);
    spans.extend([
        exit(json!({"db": {"instance": "shop"}, "destination": {"address": "db", "port": 5432, "service": {"resource": "mine"}}, "service": {"target": {"type": "pg"}}})),
        exit(json!({"http": {"url": "https://user:pw@[::1]/path?q"}, "service": "not an object", "destination": null})),
        exit(json!({"destination": {"service": "not an object"}, "service": {"name": "kept", "target": "replaced", "zz": 1}})),
        exit(json!({"destination": {"service": {"resource": "", "name": null, "other": true}}, "service": {"target": {"name": "", "type": ""}}})),
        exit(json!({"a": 1, "dest": 2, "destination_x": 3, "message": {"queue": {"name": "q\"1"}}, "service2": 4, "tags": 5, "user": {"id": "u"}})),
        exit(json!({"db": null, "message": {"queue": {"name": ""}}})),
        exit(json!({"db": {"instance": "i".repeat(1100)}})),
        exit(json!({})),
        (json!({"type": "external", "subtype": "", "context": {"http": {"url": "HTTPS://h:x/"}}}), true),
        (json!({"type": "template", "context": {}}), true),
        (json!({"type": "template", "context": {}}), false),
        (json!({"type": "db", "subtype": "sqlite", "context": {}}), false),
        (json!({"type": "template", "context": {"destination": {"address": "h"}}}), false),
    ]);
    let mut records: Vec<SpanRecord> = spans
        .into_iter()
        .enumerate()
        .map(|(index, (given, exit))| {
            let mut span = SpanRecord {
                id: SpanId([index as u8; 8]),
                span_type: given["type"].as_str().unwrap().to_owned(),
                subtype: given["subtype"].as_str().map(str::to_owned),
                exit,
                context: given["context"].as_object().cloned().unwrap_or_default(),
                ..Default::default()
            };
            if index % 4 == 0 {
                span.labels.set("k", LabelValue::Int(1));
            }
            span
        })
        .collect();
    // The bridge's to shape.
    records.push(SpanRecord { exit: true, otel: Some(Box::new(OtelData { kind: Some(SpanKind::Internal), ..Default::default() })), ..Default::default() });
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{OtelData, SpanKind};
    use serde_json::json;

    fn span(span_type: &str, subtype: Option<&str>, exit: bool, context: Value) -> SpanRecord {
        SpanRecord {
            span_type: span_type.to_owned(),
            subtype: subtype.map(str::to_owned),
            exit,
            context: context.as_object().cloned().unwrap_or_default(),
            ..Default::default()
        }
    }

    /// `destination.service.resource` and `service.target`, as intake v2 writes them.
    fn as_sent(target: Option<ServiceTarget>) -> (Value, Value) {
        let Some(target) = target else { return (Value::Null, Value::Null) };
        let mut sent = json!({"type": target.target_type});
        if let Some(name) = target.name {
            sent["name"] = json!(name);
        }
        (json!(target.resource), sent)
    }

    #[test]
    fn every_cross_agent_case() {
        let cases: Vec<Value> = serde_json::from_str(include_str!("../../../tests/specs/agent-specs/service_resource_inference.json")).unwrap();
        assert_eq!(cases.len(), 16);
        for case in cases {
            let given = &case["span"];
            let record = span(given["type"].as_str().unwrap(), given["subtype"].as_str(), given["exit"] == "true", given["context"].clone());
            let why = case["failure_message"].as_str().unwrap();
            assert_eq!(as_sent(inferred(&record)), (case["expected_resource"].clone(), case["expected_service_target"].clone()), "{why}");
        }
    }

    #[test]
    fn what_the_user_set_is_kept() {
        let context =
            json!({"db": {"instance": "shop"}, "destination": {"address": "db", "service": {"resource": "mine"}}, "service": {"target": {"type": "pg"}}});
        let record = span("db", Some("postgresql"), true, context);
        assert_eq!(as_sent(inferred(&record)), (json!("mine"), json!({"type": "pg", "name": "shop"})));
    }

    #[test]
    fn http_hosts_and_odd_context() {
        let record = span("external", Some("http"), true, json!({"http": {"url": "https://user:pw@[::1]/path?q"}, "service": "not an object"}));
        assert_eq!(as_sent(inferred(&record)), (json!("[::1]:443"), json!({"type": "http", "name": "[::1]:443"})));
        let unparsable = span("external", Some("http"), true, json!({"http": {"url": "/relative"}}));
        assert_eq!(as_sent(inferred(&unparsable)), (json!("http"), json!({"type": "http"})));
    }

    #[test]
    fn spans_of_the_otel_api_report_what_the_bridge_wrote() {
        let bridged = json!({"destination": {"service": {"resource": "cache:6379", "name": "", "type": ""}}, "service": {"target": {"type": "redis"}}});
        let mut record = span("db", Some("redis"), true, bridged);
        record.otel = Some(Box::new(OtelData { kind: Some(SpanKind::Client), ..Default::default() }));
        assert_eq!(inferred(&record), None);
        assert_eq!(as_sent(Some(reported(&record))), (json!("cache:6379"), json!({"type": "redis"})));
        assert_eq!(reported(&span("app", None, false, json!({}))), ServiceTarget::default());
    }

    #[test]
    fn host_and_port_of_urls() {
        assert_eq!(url_host_port("http://h:8080/x").as_deref(), Some("h:8080"));
        assert_eq!(url_host_port("HTTPS://h").as_deref(), Some("h:443"));
        assert_eq!(url_host_port("ftp://h/x").as_deref(), Some("h"));
        assert_eq!(url_host_port("http:///x"), None);
        assert_eq!(url_host_port("no scheme"), None);
        assert_eq!(url_host_port("a:b://h/x").as_deref(), Some("h"));
        assert_eq!(url_host_port("Http://u@h?q").as_deref(), Some("h:80"));
    }
}
