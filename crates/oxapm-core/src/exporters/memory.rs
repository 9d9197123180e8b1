//! Keeps the intake v2 lines it would send, for tests: they see exactly what the encoder produces.

use crate::intake;
use crate::model::Event;
use crate::pipeline::Exporter;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Clone, Default)]
pub struct MemoryExporter {
    lines: Arc<Mutex<Vec<String>>>,
}

impl MemoryExporter {
    /// Takes the lines exported so far.
    pub fn take(&self) -> Vec<String> {
        self.lines.lock().map(|mut lines| std::mem::take(&mut *lines)).unwrap_or_default()
    }
}

impl Exporter for MemoryExporter {
    fn export(&mut self, events: &[Event]) {
        let mut buf = Vec::new();
        let encoded: Vec<String> = events
            .iter()
            .map(|event| {
                buf.clear();
                intake::encode_event(event, &mut buf);
                String::from_utf8_lossy(buf.strip_suffix(b"\n").unwrap_or(&buf)).into_owned()
            })
            .collect();
        if let Ok(mut lines) = self.lines.lock() {
            lines.extend(encoded);
        }
    }
    fn deadline(&self) -> Option<Instant> {
        None
    }
    fn flush(&mut self, _deadline: Instant) {}
}
