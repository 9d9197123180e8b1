//! `trace_continuation_strategy`: whether a transaction continues the trace of the request that
//! started it. `restart` starts a new trace (sampled afresh) linked to the caller's span, for
//! services behind a gateway whose traces should not be joined; `restart_external` does so only
//! when the caller was not an Elastic agent (its `tracestate` has no `es` entry).

use crate::config::Config;
use crate::model::Link;
use crate::traceparent::{TraceParent, TraceState};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Continuation {
    #[default]
    Continue,
    Restart,
    RestartExternal,
}

impl Continuation {
    pub fn from_config(config: &Config) -> Continuation {
        match config.str("TRACE_CONTINUATION_STRATEGY") {
            Some("restart") => Continuation::Restart,
            Some("restart_external") => Continuation::RestartExternal,
            _ => Continuation::Continue,
        }
    }

    /// The parent a transaction started from `incoming` continues; on a restart none, and the
    /// incoming parent is added to `links`.
    pub fn resolve(self, incoming: Option<(TraceParent, TraceState)>, links: &mut Vec<Link>) -> Option<(TraceParent, TraceState)> {
        let (parent, tracestate) = incoming?;
        let restart = match self {
            Continuation::Continue => false,
            Continuation::Restart => true,
            Continuation::RestartExternal => tracestate.get("es").is_none(),
        };
        if !restart {
            return Some((parent, tracestate));
        }
        links.push(Link { trace_id: parent.trace_id, span_id: parent.parent_id, attributes: Default::default() });
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(tracestate: &str) -> Option<(TraceParent, TraceState)> {
        Some((TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap(), TraceState::parse(tracestate)))
    }

    #[test]
    fn continue_keeps_the_parent() {
        let mut links = Vec::new();
        assert_eq!(Continuation::Continue.resolve(incoming(""), &mut links), incoming(""));
        assert!(links.is_empty());
    }

    #[test]
    fn restart_links_the_incoming_parent() {
        let mut links = Vec::new();
        assert_eq!(Continuation::Restart.resolve(incoming("es=s:1"), &mut links), None);
        assert_eq!(
            (links[0].trace_id.to_string(), links[0].span_id.to_string()),
            ("0af7651916cd43dd8448eb211c80319c".to_owned(), "b7ad6b7169203331".to_owned())
        );
        assert_eq!(Continuation::Restart.resolve(None, &mut links), None);
        assert_eq!(links.len(), 1);
    }

    #[test]
    fn restart_external_continues_only_elastic_callers() {
        let mut links = Vec::new();
        assert_eq!(Continuation::RestartExternal.resolve(incoming("es=s:0.5,other=x"), &mut links), incoming("es=s:0.5,other=x"));
        assert!(links.is_empty());
        assert_eq!(Continuation::RestartExternal.resolve(incoming("other=x"), &mut links), None);
        assert_eq!(links.len(), 1);
    }
}
