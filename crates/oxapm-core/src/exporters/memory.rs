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
        for event in events {
            intake::encode_event(event, &mut buf);
        }
        let encoded: Vec<String> = String::from_utf8_lossy(&buf).lines().map(str::to_owned).collect();
        if let Ok(mut lines) = self.lines.lock() {
            lines.extend(encoded);
        }
    }
    fn deadline(&self) -> Option<Instant> {
        None
    }
    fn flush(&mut self, _deadline: Instant) {}
}
