//! Secrets kept out of exported data: in the HTTP context of transactions and errors, the value of
//! every field whose name matches `sanitize_field_names` becomes `[REDACTED]`. That covers request
//! and response headers, cookies (the ones inside the `Cookie` header too), the environment, form
//! bodies and the query string; and log record attributes. Applied on the export thread, before any exporter sees the record.

use crate::model::{AttributeValue, Attributes, JsonMap};
use crate::wildcard::WildcardMatchers;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

pub const REDACTED: &str = "[REDACTED]";

/// How many names `FieldNames` keeps its verdict on. Names past it (a client sending made-up
/// header names) are matched each time.
const VERDICTS_KEPT: usize = 512;

/// `sanitize_field_names`, and its verdict on each name already seen: the same header, cookie and
/// environment names come with every request, and matching one against every pattern costs more
/// than looking it up.
#[derive(Debug, Default)]
pub struct FieldNames {
    patterns: WildcardMatchers,
    /// Ordered, not hashed: a few comparisons find a name among a few dozen (hashing one costs
    /// more), and names made up to collide cannot slow lookups down.
    verdicts: Mutex<BTreeMap<Box<str>, bool>>,
}

impl FieldNames {
    pub fn new(patterns: WildcardMatchers) -> FieldNames {
        FieldNames { patterns, verdicts: Mutex::default() }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The names of one record are matched holding the verdicts once, not once per name.
    fn matcher(&self) -> Matcher<'_> {
        Matcher { patterns: &self.patterns, verdicts: self.verdicts.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) }
    }
}

struct Matcher<'a> {
    patterns: &'a WildcardMatchers,
    verdicts: MutexGuard<'a, BTreeMap<Box<str>, bool>>,
}

impl Matcher<'_> {
    /// Whether `name` is a field to redact.
    fn matches(&mut self, name: &str) -> bool {
        if let Some(&verdict) = self.verdicts.get(name) {
            return verdict;
        }
        let verdict = self.patterns.matches(name);
        if self.verdicts.len() < VERDICTS_KEPT {
            self.verdicts.insert(name.into(), verdict);
        }
        verdict
    }
}

/// Redacts `context.request` and `context.response` of a transaction or an error in place.
pub fn http_context(context: &mut JsonMap, field_names: &FieldNames) {
    if field_names.is_empty() {
        return;
    }
    let names = &mut field_names.matcher();
    if let Some(Value::Object(request)) = context.get_mut("request") {
        let form_body = request.get("headers").and_then(Value::as_object).is_some_and(has_form_content_type);
        for (key, value) in request.iter_mut() {
            match (key.as_str(), value) {
                ("headers", Value::Object(headers)) => redact_headers(headers, names),
                ("cookies" | "env" | "body", Value::Object(fields)) => redact_fields(fields, names),
                ("body", Value::String(body)) if form_body => redact_pairs(body, '&', names),
                ("url", Value::Object(url)) => redact_url(url, names),
                _ => {}
            }
        }
    }
    if let Some(Value::Object(headers)) = context.get_mut("response").and_then(|response| response.get_mut("headers")) {
        redact_headers(headers, names);
    }
}

/// Redacts the values of log record attributes whose names match (an `extra={"password": ...}`
/// given to a logging call), by the whole name or its last dotted part (`user.password`), as a
/// nested field would be. The message itself is the application's text and is left alone.
pub fn attributes(attributes: &mut Attributes, field_names: &FieldNames) {
    if field_names.is_empty() {
        return;
    }
    let names = &mut field_names.matcher();
    for (key, value) in attributes.entries.iter_mut() {
        let leaf = key.rsplit('.').next().unwrap_or(key);
        if names.matches(key) || names.matches(leaf) {
            *value = AttributeValue::Str(REDACTED.to_owned());
        }
    }
}

/// Values under a matching key, nested objects (and objects in arrays) searched too.
fn redact_fields(fields: &mut JsonMap, names: &mut Matcher) {
    for (key, value) in fields.iter_mut() {
        match value {
            Value::Null => {}
            Value::Object(inner) => redact_fields(inner, names),
            _ if names.matches(key) => *value = Value::String(REDACTED.to_owned()),
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(inner) = item {
                        redact_fields(inner, names);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Header names come in any case; a header's value is a string or a list of them.
fn redact_headers(headers: &mut JsonMap, names: &mut Matcher) {
    redact_fields(headers, names);
    for (_, value) in headers.iter_mut().filter(|(name, _)| name.eq_ignore_ascii_case("cookie")) {
        match value {
            Value::String(cookies) => redact_pairs(cookies, ';', names),
            Value::Array(items) => {
                for item in items {
                    if let Value::String(cookies) = item {
                        redact_pairs(cookies, ';', names);
                    }
                }
            }
            _ => {}
        }
    }
}

fn has_form_content_type(headers: &JsonMap) -> bool {
    headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("content-type") && value.as_str().is_some_and(|v| v.trim_start().starts_with("application/x-www-form-urlencoded"))
    })
}

/// The query string in `search` (with or without its `?`) and in the `full` and `raw` URLs.
fn redact_url(url: &mut JsonMap, names: &mut Matcher) {
    for (key, value) in url.iter_mut() {
        let Value::String(text) = value else { continue };
        let query_start = match key.as_str() {
            "search" => usize::from(text.starts_with('?')),
            "full" | "raw" => match text.find('?') {
                Some(mark) => mark + 1,
                None => continue,
            },
            _ => continue,
        };
        let query_end = text[query_start..].find('#').map_or(text.len(), |at| query_start + at);
        let mut query = text[query_start..query_end].to_owned();
        redact_pairs(&mut query, '&', names);
        text.replace_range(query_start..query_end, &query);
    }
}

/// `a=1; session=x` → `a=1; session=[REDACTED]`: items of `name=value` joined by `separator`,
/// spacing kept.
fn redact_pairs(text: &mut String, separator: char, names: &mut Matcher) {
    let mut redacted = String::with_capacity(text.len());
    let mut changed = false;
    for (index, item) in text.split(separator).enumerate() {
        if index > 0 {
            redacted.push(separator);
        }
        match item.split_once('=') {
            Some((name, _)) if names.matches(name.trim()) => {
                redacted.push_str(name);
                redacted.push('=');
                redacted.push_str(REDACTED);
                changed = true;
            }
            _ => redacted.push_str(item),
        }
    }
    if changed {
        *text = redacted;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_SANITIZE_FIELD_NAMES;
    use serde_json::json;

    fn defaults() -> FieldNames {
        FieldNames::new(WildcardMatchers::new(&DEFAULT_SANITIZE_FIELD_NAMES.split(',').collect::<Vec<_>>()))
    }

    fn redacted(context: Value) -> Value {
        let mut context = context.as_object().cloned().unwrap();
        http_context(&mut context, &defaults());
        Value::Object(context)
    }

    #[test]
    fn verdicts_on_names_seen_and_past_the_names_kept() {
        let field_names = defaults();
        for _ in 0..2 {
            let mut names = field_names.matcher();
            assert!(names.matches("Authorization") && !names.matches("accept"));
        }
        let mut names = field_names.matcher();
        for index in 0..VERDICTS_KEPT + 10 {
            assert!(names.matches(&format!("x-{index}-token")) && !names.matches(&format!("x-{index}")));
        }
        assert!(names.matches("X-Api-Key") && !names.matches("x-request-id"));
        assert_eq!(names.verdicts.len(), VERDICTS_KEPT);
    }

    #[test]
    fn headers_of_request_and_response_in_any_case() {
        let context = redacted(json!({
            "request": {"method": "GET", "headers": {"Authorization": "Bearer abc", "X-Api-Key": ["k1", "k2"], "accept": "text/html", "Empty": null}},
            "response": {"status_code": 200, "headers": {"Set-Cookie": "session=abc; HttpOnly", "content-type": "text/html"}},
        }));
        assert_eq!(context["request"]["headers"], json!({"Authorization": REDACTED, "X-Api-Key": REDACTED, "accept": "text/html", "Empty": null}));
        assert_eq!(context["response"]["headers"], json!({"Set-Cookie": REDACTED, "content-type": "text/html"}));
    }

    #[test]
    fn cookies_as_a_map_and_inside_the_cookie_header() {
        let context = redacted(json!({"request": {
            "cookies": {"sessionid": "s3cr3t", "theme": "dark"},
            "headers": {"cookie": "a=1; sessionid=s3cr3t;csrftoken=t0k", "COOKIE": ["x=1", "my_auth=2"]},
        }}));
        assert_eq!(context["request"]["cookies"], json!({"sessionid": REDACTED, "theme": "dark"}));
        assert_eq!(context["request"]["headers"]["cookie"], "a=1; sessionid=[REDACTED];csrftoken=[REDACTED]");
        assert_eq!(context["request"]["headers"]["COOKIE"], json!(["x=1", "my_auth=[REDACTED]"]));
    }

    #[test]
    fn environment_and_form_bodies() {
        let context = redacted(json!({"request": {
            "env": {"SERVER_NAME": "h", "HTTP_AUTHORIZATION": "Basic x", "DB_PASSWORD": "p"},
            "body": {"username": "u", "password": "p", "nested": {"card_number": 4111}, "list": [{"pwd": "p"}], "tokens": ["a", "b"]},
        }}));
        assert_eq!(context["request"]["env"], json!({"SERVER_NAME": "h", "HTTP_AUTHORIZATION": REDACTED, "DB_PASSWORD": "p"}));
        assert_eq!(
            context["request"]["body"],
            json!({"username": "u", "password": REDACTED, "nested": {"card_number": REDACTED}, "list": [{"pwd": REDACTED}], "tokens": REDACTED})
        );
        let form = redacted(json!({"request": {"headers": {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, "body": "user=u&password=p"}}));
        assert_eq!(form["request"]["body"], "user=u&password=[REDACTED]");
        let raw = redacted(json!({"request": {"headers": {"content-type": "text/plain"}, "body": "password=p"}}));
        assert_eq!(raw["request"]["body"], "password=p");
    }

    #[test]
    fn query_strings() {
        let context = redacted(json!({"request": {"url": {
            "search": "?q=1&api_key=k",
            "full": "https://h/p?q=1&access_token=t#frag",
            "raw": "/p?secret=s",
            "pathname": "/p?password=stays",
        }}}));
        assert_eq!(
            context["request"]["url"],
            json!({"search": "?q=1&api_key=[REDACTED]", "full": "https://h/p?q=1&access_token=[REDACTED]#frag", "raw": "/p?secret=[REDACTED]", "pathname": "/p?password=stays"})
        );
    }

    #[test]
    fn patterns_come_from_the_option() {
        let mut context = json!({"request": {"headers": {"X-Custom": "v", "Authorization": "a"}}}).as_object().cloned().unwrap();
        http_context(&mut context, &FieldNames::new(WildcardMatchers::new(&["x-*"])));
        assert_eq!(context["request"]["headers"], json!({"X-Custom": REDACTED, "Authorization": "a"}));
        let untouched = json!({"request": {"headers": {"Authorization": "a"}}}).as_object().cloned().unwrap();
        let mut context = untouched.clone();
        http_context(&mut context, &FieldNames::default());
        assert_eq!(context, untouched);
    }
}
