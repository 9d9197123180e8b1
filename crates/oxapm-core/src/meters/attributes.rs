//! The attribute set that names a series: sorted by key, one value per key, comparable and
//! hashable (floats by their bits) so it can key a map.

use crate::model::AttributeValue;
use std::hash::{Hash, Hasher};

/// What the overflow series carries: measurements of attribute sets past the cardinality limit.
pub const OVERFLOW_KEY: &str = "otel.metric.overflow";

#[derive(Clone, Debug, Default)]
pub struct AttributeSet(Vec<(String, AttributeValue)>);

impl AttributeSet {
    /// From pairs in any order; of a key given twice, the last value wins (as a dict would).
    pub fn new(mut pairs: Vec<(String, AttributeValue)>) -> AttributeSet {
        if pairs.len() > 1 {
            // Stable: equal keys keep their order, so the last one given is the last one here.
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            let mut deduped: Vec<(String, AttributeValue)> = Vec::with_capacity(pairs.len());
            for pair in pairs {
                match deduped.last_mut() {
                    Some(last) if last.0 == pair.0 => *last = pair,
                    _ => deduped.push(pair),
                }
            }
            pairs = deduped;
        }
        AttributeSet(pairs)
    }

    pub fn overflow() -> AttributeSet {
        AttributeSet(vec![(OVERFLOW_KEY.to_owned(), AttributeValue::Bool(true))])
    }

    pub fn pairs(&self) -> &[(String, AttributeValue)] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Only the keys a view allows.
    pub fn only(&self, keys: &[String]) -> AttributeSet {
        AttributeSet(self.0.iter().filter(|(key, _)| keys.contains(key)).cloned().collect())
    }
}

impl PartialEq for AttributeSet {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && self.0.iter().zip(&other.0).all(|(a, b)| a.0 == b.0 && same_value(&a.1, &b.1))
    }
}

impl Eq for AttributeSet {}

impl Hash for AttributeSet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for (key, value) in &self.0 {
            key.hash(state);
            hash_value(value, state);
        }
    }
}

/// Equality by bits for floats, so that a NaN finds its own series again.
fn same_value(a: &AttributeValue, b: &AttributeValue) -> bool {
    match (a, b) {
        (AttributeValue::Float(x), AttributeValue::Float(y)) => x.to_bits() == y.to_bits(),
        (AttributeValue::FloatArray(x), AttributeValue::FloatArray(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| x.to_bits() == y.to_bits()),
        _ => a == b,
    }
}

fn hash_value<H: Hasher>(value: &AttributeValue, state: &mut H) {
    std::mem::discriminant(value).hash(state);
    match value {
        AttributeValue::Str(s) => s.hash(state),
        AttributeValue::Bool(b) => b.hash(state),
        AttributeValue::Int(i) => i.hash(state),
        AttributeValue::Float(f) => f.to_bits().hash(state),
        AttributeValue::StrArray(v) => v.hash(state),
        AttributeValue::BoolArray(v) => v.hash(state),
        AttributeValue::IntArray(v) => v.hash(state),
        AttributeValue::FloatArray(v) => v.iter().for_each(|f| f.to_bits().hash(state)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn set(pairs: &[(&str, AttributeValue)]) -> AttributeSet {
        AttributeSet::new(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    #[test]
    fn order_does_not_matter_and_the_last_value_wins() {
        let a = set(&[("b", AttributeValue::Int(1)), ("a", AttributeValue::Str("x".into())), ("b", AttributeValue::Int(2))]);
        let b = set(&[("a", AttributeValue::Str("x".into())), ("b", AttributeValue::Int(2))]);
        assert_eq!(a, b);
        assert_eq!(HashSet::from([a.clone(), b]).len(), 1);
        let nan = set(&[("f", AttributeValue::Float(f64::NAN))]);
        assert_eq!(nan, nan.clone());
        assert_eq!(a.only(&["b".to_owned()]).pairs(), [("b".to_owned(), AttributeValue::Int(2))]);
    }
}
