//! Prints each finished transaction as an indented waterfall, for development
//! (`OTEL_TRACES_EXPORTER=console`). Spans are held until their transaction ends; a bounded number
//! of them, so a transaction that never ends cannot grow memory.

use crate::ids::SpanId;
use crate::model::{Event, SpanRecord, TransactionRecord};
use crate::pipeline::Exporter;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Instant;

const MAX_HELD_SPANS: usize = 10_000;

#[derive(Default)]
pub struct ConsoleExporter {
    spans: HashMap<SpanId, Vec<SpanRecord>>,
    held: usize,
}

impl Exporter for ConsoleExporter {
    fn export(&mut self, events: &[Event]) {
        let mut out = String::new();
        for event in events {
            match event {
                Event::Span(span) => {
                    if self.held >= MAX_HELD_SPANS {
                        self.spans.clear();
                        self.held = 0;
                    }
                    self.spans.entry(span.transaction_id).or_default().push((**span).clone());
                    self.held += 1;
                }
                Event::Transaction(txn) => {
                    let spans = self.spans.remove(&txn.id).unwrap_or_default();
                    self.held -= spans.len();
                    out.push_str(&render(txn, spans));
                }
                Event::Error(error) => {
                    let what = error
                        .exception
                        .as_ref()
                        .and_then(|e| e.get("message"))
                        .or_else(|| error.log.as_ref().and_then(|l| l.get("message")))
                        .and_then(|m| m.as_str())
                        .unwrap_or("error");
                    let _ = writeln!(out, "error {} · {}", error.id, what);
                }
                // The waterfall shows traces; metrics would drown it every interval, and log
                // records are already where the application's own handlers print them.
                Event::Metricset(_) | Event::Metrics(_) | Event::Log(_) => {}
            }
        }
        if !out.is_empty() {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(out.as_bytes());
            let _ = stdout.flush();
        }
    }
    fn deadline(&self) -> Option<Instant> {
        None
    }
    fn flush(&mut self, _deadline: Instant) {}
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

/// The transaction line, then each span indented under its parent, in start order, with its
/// offset from the transaction start.
pub fn render(txn: &TransactionRecord, mut spans: Vec<SpanRecord>) -> String {
    let mut out = String::new();
    let _ = write!(out, "{} · {} · {} · {}", txn.name, txn.transaction_type, ms(txn.duration_us), txn.outcome.as_str());
    if let Some(result) = &txn.result {
        let _ = write!(out, " · {result}");
    }
    let _ = writeln!(out, " · trace {}", txn.trace_id);
    spans.sort_by_key(|s| s.timestamp_us);
    let mut children: HashMap<SpanId, Vec<&SpanRecord>> = HashMap::new();
    for span in &spans {
        children.entry(span.parent_id).or_default().push(span);
    }
    render_children(&mut out, txn, &children, txn.id, "");
    out
}

fn render_children(out: &mut String, txn: &TransactionRecord, children: &HashMap<SpanId, Vec<&SpanRecord>>, parent: SpanId, prefix: &str) {
    let Some(kids) = children.get(&parent) else { return };
    for (i, span) in kids.iter().enumerate() {
        let last = i + 1 == kids.len();
        let kind = [Some(span.span_type.as_str()), span.subtype.as_deref(), span.action.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(".");
        let offset = span.timestamp_us.saturating_sub(txn.timestamp_us);
        let _ = writeln!(
            out,
            "{prefix}{} {} ({kind}) · +{} · {} · {}",
            if last { "└─" } else { "├─" },
            span.name,
            ms(offset),
            ms(span.duration_us),
            span.outcome.as_str()
        );
        let deeper = format!("{prefix}{}", if last { "   " } else { "│  " });
        render_children(out, txn, children, span.id, &deeper);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Outcome;

    #[test]
    fn renders_a_nested_waterfall() {
        let txn = TransactionRecord {
            id: SpanId([1; 8]),
            name: "GET /".into(),
            transaction_type: "request".into(),
            duration_us: 12_000,
            outcome: Outcome::Success,
            result: Some("HTTP 2xx".into()),
            timestamp_us: 1000,
            ..Default::default()
        };
        let span = |id: u8, parent: u8, name: &str, ts: u64| SpanRecord {
            id: SpanId([id; 8]),
            parent_id: SpanId([parent; 8]),
            name: name.into(),
            span_type: "db".into(),
            subtype: Some("sqlite".into()),
            timestamp_us: ts,
            duration_us: 500,
            outcome: Outcome::Success,
            ..Default::default()
        };
        let text = render(&txn, vec![span(3, 1, "second", 3000), span(2, 1, "first", 2000), span(4, 2, "inner", 2100)]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("GET / · request · 12.00 ms · success · HTTP 2xx"));
        assert_eq!(lines[1], "├─ first (db.sqlite) · +1.00 ms · 0.50 ms · success");
        assert_eq!(lines[2], "│  └─ inner (db.sqlite) · +1.10 ms · 0.50 ms · success");
        assert_eq!(lines[3], "└─ second (db.sqlite) · +2.00 ms · 0.50 ms · success");
    }
}
