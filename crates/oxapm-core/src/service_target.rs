//! The service an exit span calls, inferred as Elastic's cross-agent rules say: its
//! `context.service.target` (`type`, and `name` when the context names one: a database instance, a
//! queue, an HTTP host) and the older `context.destination.service.resource` built from it.
//!
//! For spans the Elastic API started as leaves (`capture_span(..., leaf=True)`); `bridge` does the
//! same for spans of the OpenTelemetry API, from their attributes. Applied on the export thread.

use crate::model::{truncate_keyword, JsonMap, SpanRecord};
use serde_json::{json, Value};

pub fn infer(span: &mut SpanRecord) {
    let started_by_otel = span.otel.as_ref().is_some_and(|otel| otel.kind.is_some());
    if !span.exit || started_by_otel {
        return;
    }
    let context = &span.context;
    let user_target = context.get("service").and_then(|service| service.get("target"));
    let user_type = user_target.and_then(|target| text(target.get("type")));
    let user_name = user_target.and_then(|target| text(target.get("name")));
    let section = |key: &str| context.get(key).filter(|value| !value.is_null());
    // An HTTP host names the service alone; a database instance or a queue names it within its type.
    let (inferred_name, name_is_resource) = if let Some(db) = section("db") {
        (text(db.get("instance")).map(str::to_owned), false)
    } else if let Some(message) = section("message") {
        (text(message.pointer("/queue/name")).map(str::to_owned), false)
    } else {
        (section("http").and_then(|http| text(http.get("url"))).and_then(url_host_port), true)
    };
    let target_type = truncate_keyword(user_type.or(span.subtype.as_deref().filter(|s| !s.is_empty())).unwrap_or(&span.span_type)).into_owned();
    let (name, name_is_resource) = match user_name {
        Some(name) => (Some(name.to_owned()), false),
        None => (inferred_name, name_is_resource),
    };
    let name = name.map(|name| truncate_keyword(&name).into_owned());
    let resource = match &name {
        None => target_type.clone(),
        Some(name) if name_is_resource => name.clone(),
        Some(name) => format!("{target_type}/{name}"),
    };

    let target = match name {
        Some(name) => json!({"type": target_type, "name": name}),
        None => json!({"type": target_type}),
    };
    with_object(&mut span.context, "service", |service| {
        service.insert("target".to_owned(), target);
    });
    with_object(&mut span.context, "destination", |destination| {
        with_object(destination, "service", |service| {
            if text(service.get("resource")).is_none() {
                service.insert("resource".to_owned(), Value::String(truncate_keyword(&resource).into_owned()));
            }
            // Deprecated, but older APM Servers require them (as `bridge` writes them too).
            for key in ["name", "type"] {
                service.entry(key).or_insert_with(|| Value::String(String::new()));
            }
        })
    });
}

fn text(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Calls `f` with the object at `map[key]`, made (or replacing a value of another type) if needed.
fn with_object(map: &mut JsonMap, key: &str, f: impl FnOnce(&mut JsonMap)) {
    let slot = map.entry(key).or_insert_with(|| Value::Object(JsonMap::new()));
    if !slot.is_object() {
        *slot = Value::Object(JsonMap::new());
    }
    if let Value::Object(object) = slot {
        f(object);
    }
}

pub(crate) fn default_port(scheme: &str) -> Option<u16> {
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    }
}

/// `host:port` of a URL, the port defaulting to its scheme's; credentials are left out.
pub(crate) fn url_host_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    if host_port.is_empty() {
        return None;
    }
    let has_port = host_port.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok());
    Some(match (has_port, default_port(scheme)) {
        (false, Some(port)) => format!("{host_port}:{port}"),
        _ => host_port.to_owned(),
    })
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

    fn span(span_type: &str, subtype: Option<&str>, exit: bool, context: Value) -> SpanRecord {
        SpanRecord {
            span_type: span_type.to_owned(),
            subtype: subtype.map(str::to_owned),
            exit,
            context: context.as_object().cloned().unwrap_or_default(),
            ..Default::default()
        }
    }

    #[test]
    fn every_cross_agent_case() {
        let cases: Vec<Value> = serde_json::from_str(include_str!("../../../tests/specs/agent-specs/service_resource_inference.json")).unwrap();
        assert_eq!(cases.len(), 16);
        for case in cases {
            let given = &case["span"];
            let mut record = span(given["type"].as_str().unwrap(), given["subtype"].as_str(), given["exit"] == "true", given["context"].clone());
            infer(&mut record);
            let context = Value::Object(record.context);
            let why = case["failure_message"].as_str().unwrap();
            assert_eq!(context.pointer("/destination/service/resource").unwrap_or(&Value::Null), &case["expected_resource"], "{why}");
            assert_eq!(context.pointer("/service/target").unwrap_or(&Value::Null), &case["expected_service_target"], "{why}");
        }
    }

    #[test]
    fn what_the_user_set_is_kept() {
        let mut record = span(
            "db",
            Some("postgresql"),
            true,
            json!({"db": {"instance": "shop"}, "destination": {"address": "db", "port": 5432, "service": {"resource": "mine"}}, "service": {"target": {"type": "pg"}}}),
        );
        infer(&mut record);
        assert_eq!(record.context["destination"], json!({"address": "db", "port": 5432, "service": {"resource": "mine", "name": "", "type": ""}}));
        assert_eq!(record.context["service"], json!({"target": {"type": "pg", "name": "shop"}}));
    }

    #[test]
    fn http_hosts_and_odd_context() {
        let mut record = span("external", Some("http"), true, json!({"http": {"url": "https://user:pw@[::1]/path?q"}, "service": "not an object"}));
        infer(&mut record);
        assert_eq!(record.context["service"], json!({"target": {"type": "http", "name": "[::1]:443"}}));
        assert_eq!(record.context["destination"]["service"]["resource"], "[::1]:443");
        let mut unparsable = span("external", Some("http"), true, json!({"http": {"url": "/relative"}}));
        infer(&mut unparsable);
        assert_eq!(unparsable.context["destination"]["service"]["resource"], "http");
    }

    #[test]
    fn spans_of_the_otel_api_are_left_to_the_bridge() {
        let mut record = span("db", Some("redis"), true, json!({}));
        record.otel = Some(Box::new(OtelData { kind: Some(SpanKind::Client), ..Default::default() }));
        infer(&mut record);
        assert!(record.context.is_empty());
    }

    #[test]
    fn host_and_port_of_urls() {
        assert_eq!(url_host_port("http://h:8080/x").as_deref(), Some("h:8080"));
        assert_eq!(url_host_port("HTTPS://h").as_deref(), Some("h:443"));
        assert_eq!(url_host_port("ftp://h/x").as_deref(), Some("h"));
        assert_eq!(url_host_port("http:///x"), None);
        assert_eq!(url_host_port("no scheme"), None);
    }
}
