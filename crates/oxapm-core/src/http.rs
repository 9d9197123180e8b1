//! HTTP as Elastic's agents report it, for the web and HTTP client instrumentations: the context
//! of an incoming request and of its response, and the exit span of an outgoing call.
//!
//! Built here in one call per request, not field by field from Python: these run on every request
//! a service serves and every call it makes.

use crate::model::{truncate_keyword, JsonMap};
use serde_json::Value;

/// The only WSGI environ keys reported: the rest may hold anything the server put there.
pub const ENVIRON_KEYS: [&str; 3] = ["REMOTE_ADDR", "SERVER_NAME", "SERVER_PORT"];

/// A request as a web framework received it. `headers` have lower-case names (repeated ones
/// joined with commas); `host` is the Host header, or the server's name and port.
pub struct IncomingRequest<'a> {
    pub method: &'a str,
    pub scheme: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    /// Without the `?`.
    pub query: &'a str,
    pub http_version: Option<&'a str>,
    pub remote_address: Option<&'a str>,
    pub headers: Vec<(&'a str, &'a str)>,
    /// The WSGI environ keys reported (`REMOTE_ADDR`, `SERVER_NAME`, `SERVER_PORT`), when WSGI.
    pub env: Option<Vec<(&'a str, String)>>,
}

/// `context.request`: method, URL, HTTP version, peer, and with `capture_headers` the headers and
/// cookies (the `Cookie` header goes to its own map, sanitized by name on export).
pub fn request_context(request: &IncomingRequest<'_>, capture_headers: bool) -> JsonMap {
    let (hostname, port) = match request.host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => (name, port),
        _ => (request.host, ""), // no port, or an IPv6 address without one
    };
    let search = if request.query.is_empty() { String::new() } else { ["?", request.query].concat() };
    let mut url = JsonMap::new();
    url.insert("full".into(), keyword(&[request.scheme, "://", request.host, request.path, &search].concat()));
    url.insert("protocol".into(), Value::String([request.scheme, ":"].concat()));
    url.insert("hostname".into(), keyword(hostname));
    url.insert("pathname".into(), keyword(request.path));
    if !port.is_empty() {
        url.insert("port".into(), Value::String(port.to_owned()));
    }
    if !search.is_empty() {
        url.insert("search".into(), keyword(&search));
    }
    let mut context = JsonMap::new();
    context.insert("method".into(), keyword(request.method));
    context.insert("url".into(), Value::Object(url));
    if let Some(version) = request.http_version.filter(|v| !v.is_empty()) {
        context.insert("http_version".into(), keyword(version));
    }
    if let Some(address) = request.remote_address.filter(|a| !a.is_empty()) {
        context.insert("socket".into(), Value::Object(JsonMap::from_iter([("remote_address".into(), Value::String(address.to_owned()))])));
    }
    if capture_headers {
        let headers = request.headers.iter().filter(|(name, _)| *name != "cookie");
        context.insert("headers".into(), Value::Object(headers.map(|(name, value)| ((*name).to_owned(), Value::String((*value).to_owned()))).collect()));
        if let Some((_, cookie)) = request.headers.iter().find(|(name, value)| *name == "cookie" && !value.is_empty()) {
            let cookies = cookies(cookie).map(|(name, value)| (name.to_owned(), Value::String(value.to_owned())));
            context.insert("cookies".into(), Value::Object(cookies.collect()));
        }
    }
    if let Some(env) = &request.env {
        context.insert("env".into(), Value::Object(env.iter().map(|(key, value)| ((*key).to_owned(), Value::String(value.clone()))).collect()));
    }
    context
}

/// The `name=value` pairs of a `Cookie` header.
pub fn cookies(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split(';').filter_map(|pair| pair.trim().split_once('=')).filter(|(name, _)| !name.is_empty())
}

/// `context.response`: the status, and the headers when given (lower-case names, a list for a
/// repeated one).
pub fn response_context(status: i64, headers: Option<Vec<(String, String)>>) -> JsonMap {
    let mut context = JsonMap::new();
    context.insert("status_code".into(), Value::from(status));
    if let Some(headers) = headers {
        let mut map = JsonMap::new();
        for (mut name, value) in headers {
            name.make_ascii_lowercase();
            let value = Value::String(value);
            match map.get_mut(&name) {
                None => {
                    map.insert(name, value);
                }
                Some(Value::Array(values)) => values.push(value),
                Some(first) => *first = Value::Array(vec![first.take(), value]),
            }
        }
        context.insert("headers".into(), Value::Object(map));
    }
    context
}

/// An outgoing request: `port` is `None` when the URL gives none (the scheme's default);
/// `target` is the path with its query.
#[derive(Debug, PartialEq, Eq)]
pub struct OutgoingRequest<'a> {
    pub method: &'a str,
    pub scheme: String,
    pub host: String,
    pub port: Option<i64>,
    pub target: String,
}

impl<'a> OutgoingRequest<'a> {
    /// The request for an absolute URL, split as Python's `urlsplit` splits it: no user, password
    /// or fragment; the host in lower case; a port that is not a number in range is no port.
    pub fn for_url(method: &'a str, url: &str) -> Self {
        let url = url.trim();
        let (scheme, rest) = match url.split_once(':') {
            Some((scheme, rest)) if is_scheme(scheme) => (scheme.to_ascii_lowercase(), rest),
            _ => (String::new(), url),
        };
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (netloc, path_and_query) = match rest.strip_prefix("//") {
            Some(after) => after.find(['/', '?']).map_or((after, ""), |at| after.split_at(at)),
            None => ("", rest),
        };
        let host_port = netloc.rsplit_once('@').map_or(netloc, |(_, after)| after);
        let (host, port) = match host_port.strip_prefix('[') {
            Some(bracketed) => match bracketed.split_once(']') {
                Some((host, after)) => (host, after.strip_prefix(':')),
                None => (bracketed, None),
            },
            None => match host_port.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            },
        };
        let port = port.filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())).and_then(|p| p.parse::<u16>().ok()).map(i64::from);
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let path = if path.is_empty() { "/" } else { path };
        let target = if query.is_empty() { path.to_owned() } else { [path, "?", query].concat() };
        OutgoingRequest { method, scheme, host: host.to_lowercase(), port, target }
    }

    /// The exit span's name and context: named `GET host` (`host:port` when the port is not the
    /// scheme's default); `context.http` holds the URL, rebuilt from its parts, and the method,
    /// `context.destination` the address and port.
    pub fn exit_span(&self) -> (String, JsonMap) {
        let method = self.method.to_ascii_uppercase();
        let scheme = self.scheme.to_ascii_lowercase();
        let host = self.host.trim_matches(|c| c == '[' || c == ']');
        let default = match scheme.as_str() {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        };
        let mut netloc = if host.contains(':') { ["[", host, "]"].concat() } else { host.to_owned() };
        if let Some(port) = self.port.filter(|port| Some(*port) != default) {
            netloc.push(':');
            netloc.push_str(&port.to_string());
        }
        let mut destination = JsonMap::new();
        destination.insert("address".into(), Value::String(host.to_owned()));
        if let Some(port) = self.port.filter(|port| *port != 0).or(default) {
            destination.insert("port".into(), Value::from(port));
        }
        let mut http = JsonMap::new();
        http.insert("url".into(), Value::String([scheme.as_str(), "://", &netloc, &self.target].concat()));
        let name = [method.as_str(), " ", &netloc].concat();
        http.insert("method".into(), Value::String(method));
        let mut context = JsonMap::new();
        context.insert("http".into(), Value::Object(http));
        context.insert("destination".into(), Value::Object(destination));
        (name, context)
    }
}

/// What `context.http` of an exit span gets from the response's status. The intake schema
/// deprecates `status_code` for `response.status_code`; the Elastic agent sends `status_code`,
/// and the OTLP mapping reads it.
pub fn response_status(status: i64) -> JsonMap {
    let response = JsonMap::from_iter([("status_code".into(), Value::from(status))]);
    JsonMap::from_iter([("status_code".into(), Value::from(status)), ("response".into(), Value::Object(response))])
}

fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic()) && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

fn keyword(s: &str) -> Value {
    Value::String(truncate_keyword(s).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parts(url: &str) -> (String, String, Option<i64>, String) {
        let r = OutgoingRequest::for_url("GET", url);
        (r.scheme, r.host, r.port, r.target)
    }

    #[test]
    fn urls_split_as_urlsplit_splits_them() {
        let s = |x: &str| x.to_owned();
        assert_eq!(parts("http://example.com"), (s("http"), s("example.com"), None, s("/")));
        assert_eq!(parts("https://user:secret@Example.COM:8443/a/b?x=1#frag"), (s("https"), s("example.com"), Some(8443), s("/a/b?x=1")));
        assert_eq!(parts("http://[::1]:8080/p"), (s("http"), s("::1"), Some(8080), s("/p")));
        assert_eq!(parts("http://[::1]/p"), (s("http"), s("::1"), None, s("/p")));
        assert_eq!(parts("http://host:notaport/p"), (s("http"), s("host"), None, s("/p")));
        assert_eq!(parts("http://host:99999/p"), (s("http"), s("host"), None, s("/p")));
        assert_eq!(parts("http://host?q=1"), (s("http"), s("host"), None, s("/?q=1")));
        assert_eq!(parts("HTTP://host:/"), (s("http"), s("host"), None, s("/")));
    }

    #[test]
    fn the_exit_span_of_a_call() {
        let request = OutgoingRequest { method: "get", scheme: "HTTP".into(), host: "::1".into(), port: Some(8080), target: "/p?q".into() };
        let (name, context) = request.exit_span();
        assert_eq!(name, "GET [::1]:8080");
        assert_eq!(Value::Object(context), json!({"http": {"url": "http://[::1]:8080/p?q", "method": "GET"}, "destination": {"address": "::1", "port": 8080}}));
        let (name, context) = OutgoingRequest::for_url("POST", "https://example.com/x").exit_span();
        assert_eq!(name, "POST example.com");
        assert_eq!(context["destination"], json!({"address": "example.com", "port": 443}));
        let (_, context) = OutgoingRequest::for_url("GET", "ftp://example.com/x").exit_span();
        assert_eq!(context["destination"], json!({"address": "example.com"}));
    }

    #[test]
    fn the_context_of_a_request() {
        let request = IncomingRequest {
            method: "POST",
            scheme: "http",
            host: "shop:8000",
            path: "/cart",
            query: "id=1",
            http_version: Some("1.1"),
            remote_address: Some("127.0.0.1"),
            headers: vec![("host", "shop:8000"), ("cookie", "a=1; b=2; junk"), ("x-y", "z")],
            env: Some(vec![("SERVER_PORT", "8000".to_owned())]),
        };
        assert_eq!(
            Value::Object(request_context(&request, true)),
            json!({
                "method": "POST",
                "url": {"full": "http://shop:8000/cart?id=1", "protocol": "http:", "hostname": "shop", "pathname": "/cart",
                        "port": "8000", "search": "?id=1"},
                "http_version": "1.1",
                "socket": {"remote_address": "127.0.0.1"},
                "headers": {"host": "shop:8000", "x-y": "z"},
                "cookies": {"a": "1", "b": "2"},
                "env": {"SERVER_PORT": "8000"},
            })
        );
        let without = request_context(&request, false);
        assert!(!without.contains_key("headers") && !without.contains_key("cookies"));
        let ipv6 = IncomingRequest { host: "[::1]", ..request };
        assert_eq!(request_context(&ipv6, false)["url"]["hostname"], json!("[::1]"));
    }

    #[test]
    fn the_context_of_a_response() {
        let headers = [("Set-Cookie".to_owned(), "a".to_owned()), ("set-cookie".to_owned(), "b".to_owned()), ("X".to_owned(), "1".to_owned())];
        assert_eq!(Value::Object(response_context(200, Some(headers.to_vec()))), json!({"status_code": 200, "headers": {"set-cookie": ["a", "b"], "x": "1"}}));
        assert_eq!(Value::Object(response_context(404, None)), json!({"status_code": 404}));
    }
}
