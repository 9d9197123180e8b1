//! The engine's own log lines. The host (the Python binding) installs a sink that forwards them to
//! its logging; without one they go to stderr. Senders log once per episode, not per event.

use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
}

type Sink = Box<dyn Fn(Level, &str) + Send + Sync>;

static SINK: OnceLock<Sink> = OnceLock::new();

/// Installs the sink; only the first call takes effect.
pub fn install(sink: Sink) {
    let _ = SINK.set(sink);
}

pub fn log(level: Level, message: &str) {
    match SINK.get() {
        Some(sink) => sink(level, message),
        None if level != Level::Debug => eprintln!("oxapm: {message}"),
        None => {}
    }
}

pub fn warn(message: &str) {
    log(Level::Warning, message);
}
