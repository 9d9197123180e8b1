//! HTTP for the web and HTTP client instrumentations: a WSGI request read, the context of a
//! request and of its response, an outgoing call's exit span. One call each, on every request.

use crate::convert::{display, text};
use crate::trace::{begin_exit, Span};
use oxapm_core::http::{request_context, response_context, IncomingRequest, OutgoingRequest, ENVIRON_KEYS};
use oxapm_core::model::JsonMap;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use std::borrow::Cow;

/// A WSGI request (PEP 3333) as the fields of `oxapm.instrumentation.web.Incoming`: `(method,
/// scheme, host, path, query, http_version, remote_address, headers)`, the headers by lower-case
/// name.
#[pyfunction]
pub fn wsgi_incoming<'py>(environ: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyTuple>> {
    let py = environ.py();
    let headers = PyDict::new(py);
    let mut host = None;
    for (key, value) in environ.iter() {
        let Ok(key) = key.cast::<PyString>() else { continue };
        let key = text(key);
        let name = match key.strip_prefix("HTTP_") {
            Some(name) => name,
            None if (key == "CONTENT_TYPE" || key == "CONTENT_LENGTH") && value.is_truthy()? => &key,
            None => continue,
        };
        let name = name.replace('_', "-").to_lowercase();
        if name == "host" {
            host = Some(display(&value));
        }
        headers.set_item(name, value)?;
    }
    let get = |key: &Bound<'py, PyString>| -> PyResult<Option<String>> { Ok(environ.get_item(key)?.filter(|v| !v.is_none()).map(|v| display(&v))) };
    let scheme = get(intern!(py, "wsgi.url_scheme"))?.unwrap_or_else(|| "http".to_owned());
    let host = match host.filter(|h| !h.is_empty()) {
        Some(host) => host,
        None => {
            let port = get(intern!(py, "SERVER_PORT"))?.unwrap_or_default();
            let default = port == if scheme == "https" { "443" } else { "80" };
            let name = get(intern!(py, "SERVER_NAME"))?.unwrap_or_default();
            if default || port.is_empty() {
                name
            } else {
                format!("{name}:{port}")
            }
        }
    };
    let path = format!("{}{}", get(intern!(py, "SCRIPT_NAME"))?.unwrap_or_default(), get(intern!(py, "PATH_INFO"))?.unwrap_or_default());
    let path = latin1_as_utf8(&path);
    let http_version = get(intern!(py, "SERVER_PROTOCOL"))?.and_then(|p| p.strip_prefix("HTTP/").map(str::to_owned));
    let fields = (
        get(intern!(py, "REQUEST_METHOD"))?.unwrap_or_else(|| "GET".to_owned()),
        scheme,
        host,
        if path.is_empty() { Cow::Borrowed("/") } else { path },
        get(intern!(py, "QUERY_STRING"))?.unwrap_or_default(),
        http_version,
        get(intern!(py, "REMOTE_ADDR"))?,
        headers,
    );
    fields.into_pyobject(py)
}

/// PEP 3333 strings carry the path's bytes as latin-1: the bytes decoded as UTF-8.
fn latin1_as_utf8(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        return Cow::Borrowed(s);
    }
    match s.chars().map(|c| u8::try_from(u32::from(c))).collect::<Result<Vec<u8>, _>>() {
        Ok(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
        Err(_) => Cow::Borrowed(s), // not latin-1: not from a WSGI server
    }
}

/// `context.request` of an `Incoming` request.
pub fn incoming_request_context(incoming: &Bound<'_, PyAny>, capture_headers: bool) -> PyResult<JsonMap> {
    let py = incoming.py();
    let field = |name: &Bound<'_, PyString>| -> PyResult<Option<String>> { Ok(Some(incoming.getattr(name)?).filter(|v| !v.is_none()).map(|v| display(&v))) };
    let (method, scheme, host) = (field(intern!(py, "method"))?, field(intern!(py, "scheme"))?, field(intern!(py, "host"))?);
    let (path, query) = (field(intern!(py, "path"))?, field(intern!(py, "query"))?);
    let (http_version, remote_address) = (field(intern!(py, "http_version"))?, field(intern!(py, "remote_address"))?);
    let headers: Vec<(String, String)> = match incoming.getattr(intern!(py, "headers"))?.cast_into::<PyDict>() {
        Ok(headers) => headers.iter().map(|(name, value)| (display(&name), display(&value))).collect(),
        Err(_) => Vec::new(),
    };
    let env = match incoming.getattr(intern!(py, "env"))?.cast_into::<PyDict>() {
        Ok(env) => {
            let mut reported = Vec::new();
            for key in ENVIRON_KEYS {
                if let Some(value) = env.get_item(key)? {
                    reported.push((key, display(&value)));
                }
            }
            Some(reported)
        }
        Err(_) => None,
    };
    let request = IncomingRequest {
        method: method.as_deref().unwrap_or("GET"),
        scheme: scheme.as_deref().unwrap_or("http"),
        host: host.as_deref().unwrap_or(""),
        path: path.as_deref().unwrap_or("/"),
        query: query.as_deref().unwrap_or(""),
        http_version: http_version.as_deref(),
        remote_address: remote_address.as_deref(),
        headers: headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect(),
        env,
    };
    Ok(request_context(&request, capture_headers))
}

/// `context.response`: `status`, and `headers` (name, value pairs, text or bytes) when given.
pub fn response(status: i64, headers: Option<&Bound<'_, PyAny>>) -> PyResult<JsonMap> {
    let pairs = match headers {
        Some(headers) => {
            let mut pairs = Vec::new();
            for pair in headers.try_iter()? {
                let (name, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair?.extract()?;
                pairs.push((header_text(&name), header_text(&value)));
            }
            Some(pairs)
        }
        None => None,
    };
    Ok(response_context(status, pairs.as_deref()))
}

/// A header name or value: ASGI gives bytes, as they came (latin-1).
fn header_text(value: &Bound<'_, PyAny>) -> String {
    match value.cast::<PyBytes>() {
        Ok(bytes) => bytes.as_bytes().iter().map(|&b| char::from(b)).collect(),
        Err(_) => display(value),
    }
}

/// `(method, scheme, host, port, target)`.
type SplitRequest<'py> = (Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>, Option<i64>, Bound<'py, PyAny>);

/// Starts the exit span of an outgoing HTTP call under `parent`, see `OutgoingRequest`:
/// `request` is `(method, absolute_url)` or `(method, scheme, host, port, target)`, `port` None
/// for the scheme's default and `target` the path with its query. None when nothing is recorded.
#[pyfunction]
pub fn begin_http_span(parent: &Bound<'_, PyAny>, request: &Bound<'_, PyTuple>) -> PyResult<Option<Py<Span>>> {
    let method = request.get_item(0)?;
    let method = display(&method);
    let outgoing = if request.len() == 2 {
        OutgoingRequest::for_url(&method, &display(&request.get_item(1)?))
    } else {
        let (_, scheme, host, port, target): SplitRequest<'_> = request.extract()?;
        OutgoingRequest { method: &method, scheme: display(&scheme), host: display(&host), port, target: display(&target) }
    };
    let (name, context) = outgoing.exit_span();
    begin_exit(parent, &name, "external", Some("http"), None, context)
}

/// Writes trace-context `headers` into the request an http.client connection is about to send.
/// `buffer` is the connection's `_buffer`: the request line, then one `b"Name: value"` line per
/// header put so far. Lines of the same names (in any case) go first: the headers replace the
/// caller's. A header http.client would refuse (a CR, LF or NUL in it) is left out.
///
/// Written here, at the end of the headers, a header costs one line; put on the request of a
/// library above (requests, urllib3), it would go through each layer's header handling.
#[pyfunction]
pub fn put_connection_headers(buffer: &Bound<'_, PyList>, headers: Vec<(String, String)>) -> PyResult<()> {
    let ours = |line: &[u8]| {
        let name = line.split(|&b| b == b':').next().unwrap_or_default().trim_ascii();
        headers.iter().any(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
    };
    for index in (1..buffer.len()).rev() {
        if buffer.get_item(index)?.cast::<PyBytes>().is_ok_and(|line| ours(line.as_bytes())) {
            buffer.del_item(index)?;
        }
    }
    let refused = |s: &str| s.bytes().any(|b| matches!(b, b'\r' | b'\n' | b'\0'));
    for (name, value) in headers.iter().filter(|(n, v)| !refused(n) && !refused(v)) {
        buffer.append(PyBytes::new(buffer.py(), format!("{name}: {value}").as_bytes()))?;
    }
    Ok(())
}
