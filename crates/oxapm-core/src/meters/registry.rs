//! A meter provider's instruments (`MeterRegistry`), the handle the application measures through
//! (`Instrument`), and the export thread's side (`MeterReader`), which collects every registry
//! attached to the engine.

use super::aggregation::{Aggregation, Number};
use super::attributes::AttributeSet;
use super::points::{MeterScope, ScopeMetrics};
use super::stream::Stream;
use super::view::View;
use super::{InstrumentKind, MeterSettings};
use crate::diag;
use crate::model::{now_epoch_us, Event};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An observable instrument's callbacks, called on the export thread at each collection: what
/// they observe, as (value, attributes).
pub type Observer = Box<dyn Fn() -> Vec<(Number, AttributeSet)> + Send + Sync>;

#[derive(Clone, Debug)]
pub struct InstrumentDescriptor {
    pub scope: Arc<MeterScope>,
    pub name: String,
    pub unit: String,
    pub description: String,
    pub kind: InstrumentKind,
    /// A histogram's `explicit_bucket_boundaries_advisory`.
    pub advised_boundaries: Option<Arc<[f64]>>,
}

impl InstrumentDescriptor {
    fn same_identity(&self, other: &InstrumentDescriptor) -> bool {
        self.scope == other.scope && self.name.eq_ignore_ascii_case(&other.name)
    }

    fn same_definition(&self, other: &InstrumentDescriptor) -> bool {
        self.kind == other.kind && self.unit == other.unit && self.description == other.description && self.advised_boundaries == other.advised_boundaries
    }
}

/// What the application measures through: the instrument's streams (none when every view drops
/// it, or when it is a no-op for an invalid name).
#[derive(Debug)]
pub struct Instrument {
    name: String,
    kind: InstrumentKind,
    streams: Vec<Arc<Stream>>,
    warned_negative: AtomicBool,
}

impl Instrument {
    fn new(name: &str, kind: InstrumentKind, streams: Vec<Arc<Stream>>) -> Instrument {
        Instrument { name: name.to_owned(), kind, streams, warned_negative: AtomicBool::new(false) }
    }

    /// Whether measurements go anywhere.
    pub fn is_enabled(&self) -> bool {
        !self.streams.is_empty()
    }

    /// A measurement of a synchronous instrument. A counter's or histogram's negative value is
    /// ignored, with one warning per instrument.
    pub fn record(&self, value: Number, attributes: AttributeSet) {
        if self.kind.is_monotonic() && value.as_f64() < 0.0 {
            if !self.warned_negative.swap(true, Ordering::Relaxed) {
                diag::warn(&format!("negative value {} for {:?} ignored: a {:?} only takes non-negative values", value.as_f64(), self.name, self.kind));
            }
            return;
        }
        if let Some((last, others)) = self.streams.split_last() {
            for stream in others {
                stream.record(value, attributes.clone());
            }
            last.record(value, attributes);
        }
    }
}

struct Registered {
    descriptor: InstrumentDescriptor,
    instrument: Arc<Instrument>,
    /// Behind Arcs so collection calls them with no lock held: a callback waits for the GIL,
    /// which a registering application thread holds.
    observers: Mutex<Vec<Arc<Observer>>>,
}

/// The instruments of one meter provider, with its views.
pub struct MeterRegistry {
    settings: MeterSettings,
    views: Vec<View>,
    registered: Mutex<Vec<Arc<Registered>>>,
}

impl MeterRegistry {
    pub fn new(settings: MeterSettings, views: Vec<View>) -> MeterRegistry {
        MeterRegistry { settings, views, registered: Mutex::default() }
    }

    /// The instrument the descriptor names. Registering the same one again returns it (adding
    /// the observer); a different one under the same name gets a warning and is reported as well.
    /// An invalid name or unit gets a warning and a no-op instrument.
    pub fn instrument(&self, descriptor: InstrumentDescriptor, observer: Option<Observer>) -> Arc<Instrument> {
        if let Some(problem) = invalid(&descriptor) {
            diag::warn(&format!("{problem}; the instrument records nothing"));
            return Arc::new(Instrument::new(&descriptor.name, descriptor.kind, Vec::new()));
        }
        let mut registered = self.registered.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let existing = registered.iter().find(|r| r.descriptor.same_identity(&descriptor));
        if let Some(existing) = existing.filter(|r| r.descriptor.same_definition(&descriptor)) {
            if let Some(observer) = observer {
                existing.observers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(Arc::new(observer));
            }
            return existing.instrument.clone();
        }
        if let Some(existing) = existing {
            diag::warn(&format!(
                "instrument {:?} of meter {:?} was created before as a {:?} (unit {:?}, description {:?}); both are reported",
                descriptor.name, descriptor.scope.name, existing.descriptor.kind, existing.descriptor.unit, existing.descriptor.description
            ));
        }
        let instrument = Arc::new(Instrument::new(&descriptor.name, descriptor.kind, self.streams(&descriptor)));
        let observers = Mutex::new(observer.into_iter().map(Arc::new).collect());
        registered.push(Arc::new(Registered { descriptor, instrument: instrument.clone(), observers }));
        instrument
    }

    /// One stream per matching view (none for a view that drops), or the default stream.
    fn streams(&self, descriptor: &InstrumentDescriptor) -> Vec<Arc<Stream>> {
        let d = descriptor;
        let matching: Vec<&View> = self.views.iter().filter(|v| v.selector.matches(&d.name, d.kind, &d.unit, &d.scope)).collect();
        let default_view = View::default();
        let views = if matching.is_empty() { vec![&default_view] } else { matching };
        let started_us = now_epoch_us();
        views
            .into_iter()
            .filter_map(|view| {
                let aggregation = view.aggregation.resolve(d.kind, d.advised_boundaries.as_ref(), self.settings.exponential_histograms);
                (aggregation != Aggregation::Drop).then(|| {
                    Arc::new(Stream::new(
                        view.name.clone().unwrap_or_else(|| d.name.clone()),
                        view.description.clone().unwrap_or_else(|| d.description.clone()),
                        d.unit.clone(),
                        d.kind,
                        aggregation,
                        self.settings.temporality.for_kind(d.kind),
                        view.attribute_keys.clone(),
                        view.cardinality_limit.unwrap_or(self.settings.cardinality_limit),
                        started_us,
                    ))
                })
            })
            .collect()
    }

    /// Every stream's points, grouped by meter, observable callbacks called first (no lock held).
    pub fn collect(&self, now_us: u64) -> Vec<ScopeMetrics> {
        let registered: Vec<Arc<Registered>> = self.registered.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let mut out: Vec<ScopeMetrics> = Vec::new();
        for entry in registered {
            let observed = entry.descriptor.kind.is_observable().then(|| {
                let observers: Vec<Arc<Observer>> = entry.observers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
                observers.iter().flat_map(|observe| observe()).collect::<Vec<_>>()
            });
            let metrics = entry.instrument.streams.iter().filter_map(|stream| stream.collect(now_us, observed.as_deref()));
            let scope = &entry.descriptor.scope;
            let index = match out.iter().position(|s| s.scope == *scope) {
                Some(index) => index,
                None => {
                    out.push(ScopeMetrics { scope: scope.clone(), metrics: Vec::new() });
                    out.len() - 1
                }
            };
            out[index].metrics.extend(metrics);
        }
        out.retain(|scope| !scope.metrics.is_empty());
        out
    }
}

/// Why the spec does not take this name or unit, if it does not.
fn invalid(descriptor: &InstrumentDescriptor) -> Option<String> {
    let name = &descriptor.name;
    let name_ok = name.len() <= 255
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'));
    if !name_ok {
        return Some(format!("invalid instrument name {name:?}: a letter, then at most 254 letters, digits, '_', '.', '-' or '/'"));
    }
    let unit = &descriptor.unit;
    if unit.len() > 63 || !unit.is_ascii() {
        return Some(format!("invalid unit {unit:?} for instrument {name:?}: at most 63 ASCII characters"));
    }
    None
}

/// The meter registries the engine collects, shared by the engine (which attaches them) and the
/// export thread's reader.
#[derive(Clone, Default)]
pub struct AttachedMeters(Arc<Mutex<Vec<Arc<MeterRegistry>>>>);

impl AttachedMeters {
    pub fn attach(&self, registry: Arc<MeterRegistry>) {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(registry);
    }

    pub fn detach(&self, registry: &Arc<MeterRegistry>) {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).retain(|r| !Arc::ptr_eq(r, registry));
    }
}

/// Lives on the export thread: collects the attached registries every `interval` and whenever
/// asked (flush, close).
pub struct MeterReader {
    meters: AttachedMeters,
    interval: Duration,
    next: Instant,
}

impl MeterReader {
    pub fn new(interval: Duration) -> (MeterReader, AttachedMeters) {
        let meters = AttachedMeters::default();
        (MeterReader { meters: meters.clone(), interval, next: Instant::now() + interval }, meters)
    }

    pub fn deadline(&self) -> Instant {
        self.next
    }

    pub fn collect(&mut self) -> Vec<Event> {
        self.next = Instant::now() + self.interval;
        let registries: Vec<Arc<MeterRegistry>> = self.meters.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let now = now_epoch_us();
        registries.iter().flat_map(|registry| registry.collect(now)).map(|scope| Event::Metrics(Box::new(scope))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meters::aggregation::Aggregator;
    use crate::meters::points::Shape;
    use crate::meters::view::Selector;
    use crate::model::AttributeValue;
    use crate::wildcard::Wildcard;

    fn descriptor(name: &str, kind: InstrumentKind) -> InstrumentDescriptor {
        let scope = Arc::new(MeterScope { name: "shop".into(), ..Default::default() });
        InstrumentDescriptor { scope, name: name.into(), unit: "1".into(), description: String::new(), kind, advised_boundaries: None }
    }

    fn metric_names(registry: &MeterRegistry) -> Vec<String> {
        registry.collect(1).iter().flat_map(|s| s.metrics.iter().map(|m| m.name.clone())).collect()
    }

    #[test]
    fn the_same_instrument_twice_is_one_and_invalid_ones_record_nothing() {
        let registry = MeterRegistry::new(MeterSettings::default(), Vec::new());
        let a = registry.instrument(descriptor("requests", InstrumentKind::Counter), None);
        let b = registry.instrument(descriptor("Requests", InstrumentKind::Counter), None);
        assert!(Arc::ptr_eq(&a, &b));
        let conflicting = registry.instrument(descriptor("requests", InstrumentKind::UpDownCounter), None);
        assert!(!Arc::ptr_eq(&a, &conflicting));
        for bad in ["1st", "", "a b", &"x".repeat(256)] {
            assert!(!registry.instrument(descriptor(bad, InstrumentKind::Counter), None).is_enabled(), "{bad:?}");
        }
        let mut bad_unit = descriptor("ok", InstrumentKind::Counter);
        bad_unit.unit = "µs".into();
        assert!(!registry.instrument(bad_unit, None).is_enabled());
        a.record(Number::Int(1), AttributeSet::default());
        a.record(Number::Int(-1), AttributeSet::default());
        conflicting.record(Number::Int(-1), AttributeSet::default());
        assert_eq!(metric_names(&registry), ["requests", "requests"]);
    }

    #[test]
    fn views_rename_rebucket_filter_and_drop() {
        let views = vec![
            View {
                selector: Selector { instrument_name: Some(Wildcard::new("http.*")), ..Default::default() },
                name: Some("renamed".into()),
                aggregation: Aggregation::ExplicitBucketHistogram { boundaries: Arc::from([1.0, 2.0]), record_min_max: false },
                attribute_keys: Some(vec!["route".into()]),
                ..Default::default()
            },
            View {
                selector: Selector { instrument_name: Some(Wildcard::new("noisy")), ..Default::default() },
                aggregation: Aggregation::Drop,
                ..Default::default()
            },
            View {
                selector: Selector { instrument_kind: Some(InstrumentKind::Gauge), ..Default::default() },
                cardinality_limit: Some(1),
                ..Default::default()
            },
        ];
        let registry = MeterRegistry::new(MeterSettings::default(), views);
        let histogram = registry.instrument(descriptor("http.duration", InstrumentKind::Histogram), None);
        let attributes = AttributeSet::new(vec![("route".into(), AttributeValue::Str("/".into())), ("user".into(), AttributeValue::Int(7))]);
        histogram.record(Number::Float(1.5), attributes);
        let noisy = registry.instrument(descriptor("noisy", InstrumentKind::Counter), None);
        assert!(!noisy.is_enabled());
        let gauge = registry.instrument(descriptor("temperature", InstrumentKind::Gauge), None);
        gauge.record(Number::Int(20), AttributeSet::new(vec![("room".into(), AttributeValue::Str("a".into()))]));
        let scopes = registry.collect(1);
        let metrics = &scopes[0].metrics;
        assert_eq!(metrics.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["renamed", "temperature"]);
        assert_eq!(metrics[0].shape, Shape::Histogram { boundaries: Arc::from([1.0, 2.0]), record_min_max: false });
        assert_eq!(metrics[0].points[0].attributes.pairs(), [("route".to_owned(), AttributeValue::Str("/".into()))]);
        let Aggregator::Histogram(state) = &metrics[0].points[0].value else { panic!() };
        assert_eq!(state.counts, [0, 1, 0]);
        // A limit of one leaves room for the overflow series only.
        assert_eq!(metrics[1].points[0].attributes, AttributeSet::overflow());
    }

    #[test]
    fn observers_are_called_at_each_collection() {
        let registry = MeterRegistry::new(MeterSettings::default(), Vec::new());
        let observer: Observer = Box::new(|| vec![(Number::Int(3), AttributeSet::default())]);
        registry.instrument(descriptor("queue", InstrumentKind::ObservableGauge), Some(observer));
        let second: Observer = Box::new(|| vec![(Number::Int(4), AttributeSet::new(vec![("q".into(), AttributeValue::Str("b".into()))]))]);
        registry.instrument(descriptor("queue", InstrumentKind::ObservableGauge), Some(second));
        let scopes = registry.collect(1);
        assert_eq!(scopes[0].metrics[0].points.len(), 2);
        assert_eq!(scopes[0].scope.name, "shop");
    }

    #[test]
    fn the_reader_collects_attached_registries_only() {
        let (mut reader, meters) = MeterReader::new(Duration::from_secs(60));
        assert!(reader.deadline() > Instant::now());
        let registry = Arc::new(MeterRegistry::new(MeterSettings::default(), Vec::new()));
        registry.instrument(descriptor("c", InstrumentKind::Counter), None).record(Number::Int(1), AttributeSet::default());
        assert!(reader.collect().is_empty());
        meters.attach(registry.clone());
        assert_eq!(reader.collect().len(), 1);
        meters.detach(&registry);
        assert!(reader.collect().is_empty());
    }
}
