//! Criterion benchmarks of the engine's hot paths: id generation, a span's life, queueing, and the
//! encoders' throughput, intake and OTLP (`cargo bench -p oxapm-core`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use oxapm_core::exporters::batch::Encoder;
use oxapm_core::exporters::intake_http::IntakeEncoder;
use oxapm_core::exporters::otlp::OtlpEncoder;
use oxapm_core::ids::{SpanId, TraceId};
use oxapm_core::intake::{self, encode_event};
use oxapm_core::model::{Event, LabelValue, Outcome, SpanRecord};
use oxapm_core::otlp::resource;
use oxapm_core::pipeline::{Exporter, Pipeline, Stats};
use oxapm_core::shaping::ShapingSettings;
use oxapm_core::trace::{ActiveTransaction, TransactionStart};
use std::hint::black_box;
// The allocator the Python extension ships with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::sync::Arc;
use std::time::Instant;

fn transaction() -> ActiveTransaction {
    ActiveTransaction::start(TransactionStart {
        transaction_type: "request",
        parent: None,
        sampler: oxapm_core::sampling::Sampler::default(),
        start_epoch_us: None,
        links: vec![],
        // One transaction runs every iteration: no transaction_max_spans.
        shaping: Arc::new(ShapingSettings { max_spans: None, ..Default::default() }),
    })
}

fn sample_span() -> SpanRecord {
    let mut span = SpanRecord {
        id: SpanId::random(),
        trace_id: TraceId::random(),
        transaction_id: SpanId::random(),
        parent_id: SpanId::random(),
        name: "SELECT FROM users".into(),
        span_type: "db".into(),
        subtype: Some("postgresql".into()),
        action: Some("query".into()),
        timestamp_us: 1_795_280_317_687_267,
        duration_us: 10_160,
        outcome: Outcome::Success,
        sample_rate: Some(1.0),
        ..Default::default()
    };
    span.labels.set("customer", LabelValue::Str("gold".into()));
    span.context.insert("db".into(), serde_json::json!({"type": "sql", "statement": "SELECT * FROM users WHERE id = $1"}));
    span
}

struct Discard;
impl Exporter for Discard {
    fn export(&mut self, _events: &[Event]) {}
    fn deadline(&self) -> Option<Instant> {
        None
    }
    fn flush(&mut self, _deadline: Instant) {}
}

fn ids(c: &mut Criterion) {
    c.bench_function("span_id", |b| b.iter(SpanId::random));
    c.bench_function("trace_id", |b| b.iter(TraceId::random));
}

fn span_lifecycle(c: &mut Criterion) {
    let mut txn = transaction();
    c.bench_function("span start+finish", |b| {
        b.iter(|| {
            let mut span = txn.start_span(None, "span", "custom", None).unwrap();
            txn.end_span(&mut span, None, false, None, &mut |record| drop(black_box(record)))
        })
    });
    let pipeline = Pipeline::start(1 << 16, vec![Box::new(Discard)], Arc::new(Stats::default()), Default::default());
    c.bench_function("span start+finish+queue", |b| {
        b.iter(|| {
            let mut span = txn.start_span(None, "span", "custom", None).unwrap();
            txn.end_span(&mut span, None, false, None, &mut |record| pipeline.push(Event::Span(record)));
        })
    });
}

/// The exporters' own encoders, batch by batch (512 spans, the OTLP default; intake batches close
/// at 768 kB compressed, so a 512-span intake batch is one chunk of a larger request).
fn encoders(c: &mut Criterion) {
    const BATCH: usize = 512;
    let events: Vec<Event> = (0..BATCH).map(|_| Event::Span(Box::new(sample_span()))).collect();
    let metadata = serde_json::json!({"service": {"name": "shop", "version": "1.0"}, "process": {"pid": 42}});
    let encode_all = |encoder: &mut dyn Encoder| {
        for e in &events {
            encoder.add(e);
        }
        black_box(encoder.finish().unwrap().len())
    };
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("intake json", |b| {
        let mut out = Vec::with_capacity(1 << 20);
        b.iter(|| {
            out.clear();
            for e in &events {
                encode_event(e, &mut out);
            }
            black_box(out.len())
        })
    });
    group.bench_function("intake json+gzip", |b| {
        let mut encoder = IntakeEncoder::new(intake::metadata_line(&metadata), usize::MAX);
        b.iter(|| encode_all(&mut encoder))
    });
    for (name, gzip) in [("otlp protobuf", false), ("otlp protobuf+gzip", true)] {
        group.bench_function(name, |b| {
            let mut encoder = OtlpEncoder::new(resource::resource(&metadata, &[], "1.0"), resource::scope("1.0"), BATCH, gzip);
            b.iter(|| encode_all(&mut encoder))
        });
    }
    group.finish();
}

criterion_group!(benches, ids, span_lifecycle, encoders);
criterion_main!(benches);
