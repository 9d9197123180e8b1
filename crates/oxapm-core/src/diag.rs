//! The engine's own log lines. The host (the Python binding) installs a sink that forwards them to
//! its logging; without one they go to stderr. Senders log once per episode, not per event, and
//! never with a URL's credentials (`redacted`).

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

/// The credentials of a URL (`http://user:secret@host`, scheme or not), which must never reach a
/// log line.
fn url_credentials(url: &str) -> Option<&str> {
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest).split('/').next()?;
    authority.rsplit_once('@').map(|(userinfo, _)| userinfo).filter(|u| !u.is_empty())
}

/// `message` with the URL's credentials replaced.
pub fn redacted(message: String, url: &str) -> String {
    match url_credentials(url) {
        Some(userinfo) => message.replace(userinfo, "<redacted>"),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_the_url_are_redacted() {
        let url = "https://elastic:s3cret@apm.example:8200";
        assert_eq!(redacted(format!("could not reach {url}/intake/v2/events"), url), "could not reach https://<redacted>@apm.example:8200/intake/v2/events");
        assert_eq!(redacted("unchanged".into(), "http://apm:8200"), "unchanged");
        assert_eq!(redacted("bad: elastic:pw@host:1".into(), "elastic:pw@host:1"), "bad: <redacted>@host:1");
    }
}
