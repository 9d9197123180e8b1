//! W3C Baggage: `baggage: key=value;property,...` with percent-encoded values.
//!
//! Properties are dropped: OpenTelemetry's baggage holds plain key-value entries. Limits follow
//! the W3C: 180 entries, 4096 bytes per entry, 8192 bytes in all; a bad or oversized entry is
//! skipped on its own, and entries past a limit are dropped. A `+` is a plus sign, as the W3C
//! says (Python's upstream propagator, alone, reads it as a space).

use super::encoding::{is_token, percent_decode, percent_encode};
use super::{is_blank, set_entry, Headers};

pub(super) const HEADER: &str = "baggage";
const MAX_ENTRIES: usize = 180;
const MAX_ENTRY_BYTES: usize = 4096;
const MAX_BYTES: usize = 8192;

pub(super) fn extract(headers: &Headers) -> Vec<(String, String)> {
    let mut baggage = Vec::new();
    let Some(list) = headers.joined(HEADER) else { return baggage };
    let mut budget = Budget::default();
    for member in list.split(',').map(|m| m.trim_matches(is_blank)) {
        let Some((key, value)) = parse_member(member) else { continue };
        match budget.fit(member) {
            Fit::Yes => set_entry(&mut baggage, key, percent_decode(value)),
            Fit::TooLong => continue,
            Fit::Full => break,
        }
    }
    baggage
}

/// `key OWS = OWS value *(OWS ; OWS property)`, the value still encoded.
fn parse_member(member: &str) -> Option<(&str, &str)> {
    let entry = member.split(';').next()?;
    let (key, value) = entry.split_once('=')?;
    let (key, value) = (key.trim_matches(is_blank), value.trim_matches(is_blank));
    (is_token(key) && value.bytes().all(is_baggage_octet)).then_some((key, value))
}

/// Printable ASCII but space, `"`, `,`, `;` and `\`.
fn is_baggage_octet(c: u8) -> bool {
    matches!(c, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

/// Entries whose key is no token cannot be written and are left out.
pub(super) fn inject(baggage: &[(String, String)], out: &mut Vec<(String, String)>) {
    let mut budget = Budget::default();
    let mut list = String::new();
    for (key, value) in baggage.iter().filter(|(key, _)| is_token(key)) {
        let member = format!("{key}={}", percent_encode(value));
        match budget.fit(&member) {
            Fit::Yes => {
                if !list.is_empty() {
                    list.push(',');
                }
                list.push_str(&member);
            }
            Fit::TooLong => continue,
            Fit::Full => break,
        }
    }
    if !list.is_empty() {
        out.push((HEADER.to_owned(), list));
    }
}

/// The W3C limits, spent by each entry read or written.
#[derive(Default)]
struct Budget {
    entries: usize,
    bytes: usize,
}

enum Fit {
    Yes,
    TooLong,
    Full,
}

impl Budget {
    fn fit(&mut self, member: &str) -> Fit {
        if member.len() > MAX_ENTRY_BYTES {
            return Fit::TooLong;
        }
        let bytes = self.bytes + usize::from(self.entries > 0) + member.len();
        if self.entries == MAX_ENTRIES || bytes > MAX_BYTES {
            return Fit::Full;
        }
        self.entries += 1;
        self.bytes = bytes;
        Fit::Yes
    }
}

#[cfg(test)]
mod tests {
    use super::super::{extract, inject, Format, Propagated};

    fn baggage_of(header: &str) -> Vec<(String, String)> {
        extract(Format::Baggage, &[("baggage", header)]).baggage
    }

    fn entries(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn reads_the_w3c_examples() {
        assert_eq!(
            baggage_of("key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue"),
            entries(&[("key1", "value1"), ("key2", "value2"), ("key3", "value3")])
        );
        assert_eq!(
            baggage_of("userId=alice,serverNode=DF%2028,isProduction=false"),
            entries(&[("userId", "alice"), ("serverNode", "DF 28"), ("isProduction", "false")])
        );
        assert_eq!(baggage_of("key1=value1,key2=value2").len(), 2);
    }

    #[test]
    fn values_are_percent_decoded_and_plus_is_a_plus() {
        assert_eq!(baggage_of("a=%E2%82%AC%2C%3B,b=1+1,c=100%,d="), entries(&[("a", "€,;"), ("b", "1+1"), ("c", "100%"), ("d", "")]));
    }

    #[test]
    fn bad_entries_are_skipped_one_by_one() {
        let header = "good=1,no-equals,=novalue,bad key=2,k=bad value,k2=\"quoted\",k3=back\\slash,é=3,,  ,last=2";
        assert_eq!(baggage_of(header), entries(&[("good", "1"), ("last", "2")]));
    }

    #[test]
    fn repeated_headers_form_one_list_and_a_later_key_wins() {
        let extracted = extract(Format::Baggage, &[("baggage", "a=1,b=2"), ("Baggage", "a=3")]);
        assert_eq!(extracted.baggage, entries(&[("a", "3"), ("b", "2")]));
    }

    #[test]
    fn limits_skip_long_entries_and_drop_the_rest() {
        let long = format!("long={}", "x".repeat(4096));
        assert_eq!(baggage_of(&format!("a=1,{long},b=2")), entries(&[("a", "1"), ("b", "2")]));

        let many: Vec<String> = (0..200).map(|i| format!("k{i}=v")).collect();
        let read = baggage_of(&many.join(","));
        assert_eq!(read.len(), 180);
        assert_eq!(read[179].0, "k179");

        let big = "v".repeat(4000);
        let three: Vec<String> = (0..3).map(|i| format!("k{i}={big}")).collect();
        assert_eq!(baggage_of(&three.join(",")).len(), 2, "8192 bytes in all");
    }

    #[test]
    fn writes_encoded_values_within_the_limits() {
        let propagated = Propagated { span: None, baggage: entries(&[("userId", "alice"), ("bad key", "x"), ("note", "a b+c,€")]) };
        assert_eq!(inject(Format::Baggage, &propagated), [("baggage".to_owned(), "userId=alice,note=a%20b%2Bc%2C%E2%82%AC".to_owned())]);

        let many = Propagated { span: None, baggage: (0..200).map(|i| (format!("k{i}"), "v".repeat(100))).collect() };
        let (_, list) = &inject(Format::Baggage, &many)[0];
        assert!(list.len() <= 8192);
        assert_eq!(list.split(',').count(), 78);
        assert_eq!(inject(Format::Baggage, &Propagated::default()), []);
    }

    #[test]
    fn round_trips() {
        let propagated = Propagated { span: None, baggage: entries(&[("k", "v"), ("unicode", "ünï cødé ✓"), ("empty", ""), ("tricky", "%20=;,\"\\")]) };
        assert_eq!(extract(Format::Baggage, &inject(Format::Baggage, &propagated)), propagated);
    }
}
