//! Views: which instruments they select (by name, with `*` wildcards, case-insensitively; by
//! kind, unit and meter) and what the selected instruments' streams become (another name or
//! description, fewer attributes, another aggregation, another cardinality limit).

use super::aggregation::Aggregation;
use super::points::MeterScope;
use super::InstrumentKind;
use crate::wildcard::Wildcard;

#[derive(Debug, Default)]
pub struct View {
    pub selector: Selector,
    /// What the stream becomes; `None` keeps the instrument's.
    pub name: Option<String>,
    pub description: Option<String>,
    /// Only these attribute keys are kept.
    pub attribute_keys: Option<Vec<String>>,
    pub aggregation: Aggregation,
    pub cardinality_limit: Option<usize>,
}

/// Every criterion given must match.
#[derive(Debug, Default)]
pub struct Selector {
    pub instrument_name: Option<Wildcard>,
    pub instrument_kind: Option<InstrumentKind>,
    pub instrument_unit: Option<String>,
    pub meter_name: Option<String>,
    pub meter_version: Option<String>,
    pub meter_schema_url: Option<String>,
}

impl Selector {
    pub fn matches(&self, name: &str, kind: InstrumentKind, unit: &str, scope: &MeterScope) -> bool {
        self.instrument_name.as_ref().is_none_or(|pattern| pattern.matches(name))
            && self.instrument_kind.is_none_or(|k| k == kind)
            && self.instrument_unit.as_ref().is_none_or(|u| u == unit)
            && self.meter_name.as_ref().is_none_or(|n| *n == scope.name)
            && self.meter_version.as_ref().is_none_or(|v| Some(v) == scope.version.as_ref())
            && self.meter_schema_url.as_ref().is_none_or(|s| Some(s) == scope.schema_url.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_given_criterion_must_match() {
        let scope = MeterScope { name: "shop".into(), version: Some("1.0".into()), ..Default::default() };
        let selector = Selector { instrument_name: Some(Wildcard::new("http.*")), instrument_kind: Some(InstrumentKind::Counter), ..Default::default() };
        assert!(selector.matches("HTTP.requests", InstrumentKind::Counter, "1", &scope));
        assert!(!selector.matches("http.requests", InstrumentKind::Histogram, "1", &scope));
        assert!(!selector.matches("db.calls", InstrumentKind::Counter, "1", &scope));
        let by_meter = Selector { meter_name: Some("shop".into()), meter_version: Some("2.0".into()), ..Default::default() };
        assert!(!by_meter.matches("x", InstrumentKind::Counter, "", &scope));
        assert!(Selector::default().matches("x", InstrumentKind::Gauge, "", &scope));
    }
}
