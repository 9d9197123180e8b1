//! HTTP for the web and HTTP client instrumentations: a WSGI request read, the context of a
//! request and of its response, an outgoing call's exit span. One call each, on every request.

use crate::convert::{display, text};
use crate::trace::{begin_exit, Span};
use oxapm_core::http::{request_context, response_context, IncomingRequest, OutgoingRequest, ENVIRON_KEYS};
use oxapm_core::model::JsonMap;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use std::borrow::Cow;

/// A request as a web framework received it (`oxapm.instrumentation.web.Incoming`): `headers`
/// by lower-case name (repeated headers joined by commas), `host` the Host header (or the
/// server's name and port), `query` without `?`, `env` the WSGI environ (or None).
#[pyclass(module = "oxapm._core", frozen)]
pub struct Incoming {
    #[pyo3(get)]
    pub method: String,
    #[pyo3(get)]
    pub scheme: String,
    #[pyo3(get)]
    pub host: String,
    #[pyo3(get)]
    pub path: String,
    #[pyo3(get)]
    pub query: String,
    #[pyo3(get)]
    pub http_version: Option<String>,
    #[pyo3(get)]
    pub remote_address: Option<String>,
    pub headers: Headers,
    #[pyo3(get)]
    pub env: Option<Py<PyDict>>,
}

/// Request headers: lower-case names, each once (repeated headers joined with commas, as HTTP
/// allows), in the order they came.
#[derive(Default)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    fn add(&mut self, name: String, value: &str) {
        match self.0.iter_mut().find(|(known, _)| *known == name) {
            Some((_, values)) => {
                values.push(',');
                values.push_str(value);
            }
            None => self.0.push((name, value.to_owned())),
        }
    }

    /// The value of the header `name`, in any case.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(known, _)| known.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// From a mapping (its `items()`) or `(name, value)` pairs; names and values text or bytes
    /// (as ASGI gives them: latin-1).
    pub fn from_python(headers: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = headers.py();
        let pairs = match headers.cast::<PyDict>() {
            Ok(dict) => dict.items().into_any(),
            Err(_) if headers.hasattr(intern!(py, "items"))? => headers.call_method0(intern!(py, "items"))?,
            Err(_) => headers.clone(),
        };
        let mut read = Headers::default();
        for (mut name, value) in header_pairs(&pairs)? {
            name.make_ascii_lowercase();
            read.add(name, &value);
        }
        Ok(read)
    }
}

#[pymethods]
impl Incoming {
    /// Values are taken as their `str()`; a `None` method, scheme, host, path or query reads as
    /// `GET`, `http`, empty, `/` and empty. `headers` as `Headers::from_python` reads them.
    #[new]
    #[pyo3(signature = (method, scheme, host, path, query, http_version, remote_address, headers, env=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        method: &Bound<'_, PyAny>,
        scheme: &Bound<'_, PyAny>,
        host: &Bound<'_, PyAny>,
        path: &Bound<'_, PyAny>,
        query: &Bound<'_, PyAny>,
        http_version: &Bound<'_, PyAny>,
        remote_address: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        env: Option<Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let given = |value: &Bound<'_, PyAny>| Some(value).filter(|v| !v.is_none()).map(display);
        Ok(Incoming {
            method: given(method).unwrap_or_else(|| "GET".to_owned()),
            scheme: given(scheme).unwrap_or_else(|| "http".to_owned()),
            host: given(host).unwrap_or_default(),
            path: given(path).unwrap_or_else(|| "/".to_owned()),
            query: given(query).unwrap_or_default(),
            http_version: given(http_version),
            remote_address: given(remote_address),
            headers: Headers::from_python(headers)?,
            env: env.map(Bound::unbind),
        })
    }

    /// The headers by lower-case name, as a new dict.
    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (name, value) in self.headers.iter() {
            dict.set_item(name, value)?;
        }
        Ok(dict)
    }
}

/// A WSGI request (PEP 3333), `env` the environ itself.
pub fn wsgi_incoming(environ: &Bound<'_, PyDict>) -> PyResult<Incoming> {
    let py = environ.py();
    let mut headers = Headers::default();
    for (key, value) in environ.iter() {
        let Ok(key) = key.cast::<PyString>() else { continue };
        let key = text(key);
        let name = match key.strip_prefix("HTTP_") {
            Some(name) => name,
            None if (key == "CONTENT_TYPE" || key == "CONTENT_LENGTH") && value.is_truthy()? => &key,
            None => continue,
        };
        headers.add(name.chars().map(|c| if c == '_' { '-' } else { c.to_ascii_lowercase() }).collect(), &display(&value));
    }
    let get = |key: &Bound<'_, PyString>| -> PyResult<Option<String>> { Ok(environ.get_item(key)?.filter(|v| !v.is_none()).map(|v| display(&v))) };
    let scheme = get(intern!(py, "wsgi.url_scheme"))?.unwrap_or_else(|| "http".to_owned());
    let host = match headers.get("host").filter(|h| !h.is_empty()) {
        Some(host) => host.to_owned(),
        None => {
            let port = get(intern!(py, "SERVER_PORT"))?.unwrap_or_default();
            let default = port == if scheme == "https" { "443" } else { "80" };
            let name = get(intern!(py, "SERVER_NAME"))?.unwrap_or_default();
            if default || port.is_empty() {
                name
            } else {
                [name.as_str(), ":", &port].concat()
            }
        }
    };
    let path = get(intern!(py, "SCRIPT_NAME"))?.unwrap_or_default() + &get(intern!(py, "PATH_INFO"))?.unwrap_or_default();
    let path = latin1_as_utf8(&path);
    Ok(Incoming {
        method: get(intern!(py, "REQUEST_METHOD"))?.unwrap_or_else(|| "GET".to_owned()),
        scheme,
        host,
        path: if path.is_empty() { "/".to_owned() } else { path.into_owned() },
        query: get(intern!(py, "QUERY_STRING"))?.unwrap_or_default(),
        http_version: get(intern!(py, "SERVER_PROTOCOL"))?.and_then(|p| p.strip_prefix("HTTP/").map(str::to_owned)),
        remote_address: get(intern!(py, "REMOTE_ADDR"))?,
        headers,
        env: Some(environ.clone().unbind()),
    })
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

/// `ENVIRON_KEYS` as Python strings, made once: they are looked up on every request.
fn environ_key_names(py: Python<'_>) -> &'static [Py<PyString>; 3] {
    static NAMES: PyOnceLock<[Py<PyString>; 3]> = PyOnceLock::new();
    NAMES.get_or_init(py, || ENVIRON_KEYS.map(|key| PyString::intern(py, key).unbind()))
}

/// `context.request` of an `Incoming` request.
pub fn incoming_request_context(incoming: &Incoming, py: Python<'_>, capture_headers: bool) -> PyResult<JsonMap> {
    let env = match &incoming.env {
        Some(env) => {
            let env = env.bind(py);
            let mut reported = Vec::new();
            for (key, name) in ENVIRON_KEYS.into_iter().zip(environ_key_names(py)) {
                if let Some(value) = env.get_item(name.bind(py))? {
                    reported.push((key, display(&value)));
                }
            }
            Some(reported)
        }
        None => None,
    };
    let request = IncomingRequest {
        method: &incoming.method,
        scheme: &incoming.scheme,
        host: &incoming.host,
        path: &incoming.path,
        query: &incoming.query,
        http_version: incoming.http_version.as_deref(),
        remote_address: incoming.remote_address.as_deref(),
        headers: incoming.headers.iter().collect(),
        env,
    };
    Ok(request_context(&request, capture_headers))
}

/// `context.response`: `status`, and `headers` (name, value pairs, text or bytes) when given.
pub fn response(status: i64, headers: Option<&Bound<'_, PyAny>>) -> PyResult<JsonMap> {
    Ok(response_context(status, headers.map(header_pairs).transpose()?))
}

/// `(name, value)` pairs (tuples, or lists as some ASGI servers give), as text.
fn header_pairs(pairs: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    let mut read = Vec::new();
    for pair in pairs.try_iter()? {
        let pair = pair?;
        read.push((header_text(&pair.get_item(0)?), header_text(&pair.get_item(1)?)));
    }
    Ok(read)
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

/// Trace-context headers as the lines of an HTTP/1 request (`b"Name: value"`), made once for
/// `put_connection_headers`. A header http.client would refuse (a CR, LF or NUL in it) is left out.
#[pyclass(module = "oxapm._core", frozen)]
pub struct HeaderLines {
    lines: Vec<(String, Vec<u8>)>,
}

#[pymethods]
impl HeaderLines {
    /// From `(name, value)` pairs.
    #[new]
    pub fn new(headers: Vec<(String, String)>) -> Self {
        let refused = |s: &str| s.bytes().any(|b| matches!(b, b'\r' | b'\n' | b'\0'));
        let lines = headers.into_iter().filter(|(n, v)| !refused(n) && !refused(v)).map(|(name, value)| {
            let line = [name.as_str(), ": ", &value].concat().into_bytes();
            (name, line)
        });
        HeaderLines { lines: lines.collect() }
    }
}

/// Writes trace-context `headers` into the request an http.client connection is about to send.
/// `buffer` is the connection's `_buffer`: the request line, then one `b"Name: value"` line per
/// header put so far. Lines of the same names (in any case) go first: the headers replace the
/// caller's.
///
/// Written here, at the end of the headers, a header costs one line; put on the request of a
/// library above (requests, urllib3), it would go through each layer's header handling.
#[pyfunction]
pub fn put_connection_headers(buffer: &Bound<'_, PyList>, headers: &Bound<'_, HeaderLines>) -> PyResult<()> {
    let lines = &headers.get().lines;
    let ours = |line: &[u8]| {
        let name = line.split(|&b| b == b':').next().unwrap_or_default().trim_ascii();
        lines.iter().any(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
    };
    for index in (1..buffer.len()).rev() {
        if buffer.get_item(index)?.cast::<PyBytes>().is_ok_and(|line| ours(line.as_bytes())) {
            buffer.del_item(index)?;
        }
    }
    for (_, line) in lines {
        buffer.append(PyBytes::new(buffer.py(), line))?;
    }
    Ok(())
}
