//! `oxapm._core`: the engine seen from Python. Conversion and GIL release only; the logic lives in
//! oxapm-core.

mod client;
mod context;
mod convert;
mod dbapi;
mod engine;
mod failures;
mod hooks;
mod http;
mod logs;
mod meters;
mod method;
mod otel;
mod outgoing;
mod patch;
mod propagation;
mod python_attribute;
mod served;
mod sql;
mod stack_capture;
mod trace;
mod tracer;
mod wsgi;

use oxapm_core::diag;
use oxapm_core::traceparent::{TraceParent, TraceState};
use pyo3::prelude::*;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Parses a `traceparent` header: `(version, trace_id, parent_id, flags)` or `None` when invalid.
#[pyfunction]
fn parse_traceparent(header: &str) -> Option<(u8, String, String, u8)> {
    TraceParent::parse(header).map(|tp| (tp.version, tp.trace_id.to_string(), tp.parent_id.to_string(), tp.flags))
}

/// Keeps the valid members of a `tracestate` header, in order.
#[pyfunction]
fn normalize_tracestate(header: &str) -> String {
    TraceState::parse(header).to_header()
}

/// The name of a database span for a SQL statement (`SELECT FROM users`, `INSERT INTO orders`).
#[pyfunction]
fn sql_signature(sql: &str) -> String {
    oxapm_core::sql::signature(sql)
}

/// Every environment variable the engine reads (`oxapm run` offers a flag for each).
#[pyfunction]
fn environment_variables() -> Vec<String> {
    oxapm_core::config::environment_variables()
}

/// Gives this thread's id generator a new seed: called in a forked child, which would otherwise
/// repeat its parent's ids.
#[pyfunction]
fn reseed_ids() {
    oxapm_core::ids::reseed();
}

/// Forwards the engine's log lines to the `oxapm` Python logger, when Python can take them.
fn install_log_sink() {
    diag::install(Box::new(|level, message| {
        let level = match level {
            diag::Level::Debug => 10,
            diag::Level::Info => 20,
            diag::Level::Warning => 30,
            diag::Level::Error => 40,
        };
        let logged = Python::try_attach(|py| {
            py.import("logging")
                .and_then(|logging| logging.call_method1("getLogger", ("oxapm",)))
                .and_then(|logger| logger.call_method1("log", (level, message)))
                .is_ok()
        });
        if logged != Some(true) && level >= 30 {
            eprintln!("oxapm: {message}");
        }
    }));
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    install_log_sink();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<engine::Config>()?;
    m.add_class::<engine::Engine>()?;
    m.add_class::<trace::Transaction>()?;
    m.add_class::<trace::Span>()?;
    m.add_class::<tracer::Tracer>()?;
    m.add_class::<logs::LogEmitter>()?;
    m.add_class::<logs::LoggingRecords>()?;
    m.add_function(wrap_pyfunction!(logs::correlation, m)?)?;
    m.add_class::<meters::MeterRegistry>()?;
    m.add_class::<meters::MeterScopeHandle>()?;
    m.add_class::<meters::MeterInstrument>()?;
    m.add_class::<meters::CounterHandle>()?;
    m.add_class::<meters::HistogramHandle>()?;
    m.add_class::<meters::GaugeHandle>()?;
    m.add_function(wrap_pyfunction!(hooks::set_span_hooks, m)?)?;
    m.add_function(wrap_pyfunction!(stack_capture::set_span_stack_capture, m)?)?;
    m.add_class::<propagation::PropagationFormat>()?;
    m.add_function(wrap_pyfunction!(propagation::outgoing_headers, m)?)?;
    m.add_function(wrap_pyfunction!(propagation::incoming_parent, m)?)?;
    m.add_function(wrap_pyfunction!(trace::begin_span, m)?)?;
    m.add_function(wrap_pyfunction!(trace::begin_exit_span, m)?)?;
    m.add_function(wrap_pyfunction!(parse_traceparent, m)?)?;
    m.add_function(wrap_pyfunction!(normalize_tracestate, m)?)?;
    m.add_function(wrap_pyfunction!(reseed_ids, m)?)?;
    m.add_function(wrap_pyfunction!(environment_variables, m)?)?;
    m.add_function(wrap_pyfunction!(sql_signature, m)?)?;
    m.add_class::<sql::SqlEndpoint>()?;
    m.add_function(wrap_pyfunction!(sql::begin_sql_span, m)?)?;
    m.add_function(wrap_pyfunction!(sql::changes_rows, m)?)?;
    m.add_class::<dbapi::TracedMethod>()?;
    m.add_function(wrap_pyfunction!(dbapi::cursor_proxy, m)?)?;
    m.add_function(wrap_pyfunction!(http::begin_http_span, m)?)?;
    m.add_class::<http::Incoming>()?;
    m.add_class::<served::Served>()?;
    m.add_function(wrap_pyfunction!(served::serve, m)?)?;
    m.add_function(wrap_pyfunction!(served::serving, m)?)?;
    m.add_function(wrap_pyfunction!(wsgi::serve_wsgi, m)?)?;
    m.add_function(wrap_pyfunction!(client::client_is_recording, m)?)?;
    m.add_function(wrap_pyfunction!(client::begin_transaction, m)?)?;
    m.add_class::<wsgi::StartResponse>()?;
    m.add_class::<wsgi::ResponseBody>()?;
    m.add_class::<http::HeaderLines>()?;
    m.add_function(wrap_pyfunction!(http::put_connection_headers, m)?)?;
    m.add_class::<outgoing::OutgoingHttp>()?;
    m.add_class::<outgoing::HttpCall>()?;
    m.add_function(wrap_pyfunction!(outgoing::call_in_progress, m)?)?;
    m.add_class::<patch::Patch>()?;
    Ok(())
}
