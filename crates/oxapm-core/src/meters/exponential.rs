//! The base-2 exponential histogram of the OpenTelemetry data model: bucket `index` at `scale`
//! holds the values in (base^index, base^(index+1)] with base = 2^(2^-scale). It starts at
//! `max_scale` and lowers the scale (merging neighbouring buckets) whenever the values recorded
//! would need more than `max_size` buckets on one side of zero.

pub const DEFAULT_MAX_SIZE: usize = 160;
pub const DEFAULT_MAX_SCALE: i32 = 20;
/// The lowest scale: base 2^(2^10), where every finite double fits in a few buckets.
const MIN_SCALE: i32 = -10;

/// Consecutive buckets from `offset`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Buckets {
    pub offset: i32,
    pub counts: Vec<u64>,
}

impl Buckets {
    fn last_index(&self) -> i32 {
        self.offset + self.counts.len() as i32 - 1
    }

    fn add(&mut self, index: i32) {
        if self.counts.is_empty() {
            self.offset = index;
            self.counts.push(1);
            return;
        }
        if index < self.offset {
            let grow = (self.offset - index) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = index;
        } else if index > self.last_index() {
            self.counts.resize((index - self.offset) as usize + 1, 0);
        }
        self.counts[(index - self.offset) as usize] += 1;
    }

    /// The same counts at a scale `change` lower: each bucket goes to index >> change.
    fn downscale(&mut self, change: u32) {
        if change == 0 || self.counts.is_empty() {
            return;
        }
        let offset = self.offset >> change;
        let mut counts = vec![0; ((self.last_index() >> change) - offset) as usize + 1];
        for (i, count) in self.counts.iter().enumerate() {
            counts[(((self.offset + i as i32) >> change) - offset) as usize] += count;
        }
        self.offset = offset;
        self.counts = counts;
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExponentialHistogram {
    pub scale: i32,
    pub zero_count: u64,
    pub positive: Buckets,
    pub negative: Buckets,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    max_size: usize,
}

impl ExponentialHistogram {
    pub fn new(max_size: usize, max_scale: i32) -> ExponentialHistogram {
        ExponentialHistogram {
            scale: max_scale.clamp(MIN_SCALE, DEFAULT_MAX_SCALE),
            zero_count: 0,
            positive: Buckets::default(),
            negative: Buckets::default(),
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            max_size: max_size.max(2),
        }
    }

    /// Non-finite values are not recorded (they have no bucket).
    pub fn record(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if value == 0.0 {
            self.zero_count += 1;
            return;
        }
        let mut index = bucket_index(value.abs(), self.scale);
        let buckets = if value > 0.0 { &self.positive } else { &self.negative };
        let change = scale_change(buckets, index, self.max_size);
        if change > 0 {
            self.scale -= change as i32;
            self.positive.downscale(change);
            self.negative.downscale(change);
            index >>= change;
        }
        let buckets = if value > 0.0 { &mut self.positive } else { &mut self.negative };
        buckets.add(index);
    }
}

/// How much lower the scale must go for `buckets` and `index` to fit in `max_size` buckets.
fn scale_change(buckets: &Buckets, index: i32, max_size: usize) -> u32 {
    if buckets.counts.is_empty() {
        return 0;
    }
    let (mut low, mut high) = (buckets.offset.min(index), buckets.last_index().max(index));
    let mut change = 0;
    while (high - low) as usize + 1 > max_size {
        low >>= 1;
        high >>= 1;
        change += 1;
    }
    change
}

/// The bucket of a positive finite `value` at `scale`: ceil(log2(value) * 2^scale) - 1. Exact
/// powers of two, which the logarithm may miss by a rounding, and all scales <= 0 are computed
/// from the exponent of the double.
pub fn bucket_index(value: f64, scale: i32) -> i32 {
    let (exponent, exact_power) = exponent_of(value);
    if scale <= 0 {
        let exponent = if exact_power { exponent - 1 } else { exponent };
        return exponent >> -scale;
    }
    if exact_power {
        return (exponent << scale) - 1;
    }
    let scale_factor = f64::from(1u32 << scale) / std::f64::consts::LN_2;
    (value.ln() * scale_factor).ceil() as i32 - 1
}

/// `e` and whether `value` is exactly 2^e, where 2^e <= value < 2^(e+1).
fn exponent_of(value: f64) -> (i32, bool) {
    let bits = value.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let mantissa = bits & ((1u64 << 52) - 1);
    if biased == 0 {
        // Subnormal: the mantissa's own leading bit says the exponent.
        let leading = 63 - mantissa.leading_zeros() as i32;
        return (leading - 1074, mantissa.is_power_of_two());
    }
    (biased - 1023, mantissa == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_indexes_at_scales_above_and_below_zero() {
        // Scale 0: buckets (1,2], (2,4], ...; 1 itself is in (0.5, 1], index -1.
        assert_eq!([1.0, 2.0, 3.0, 4.0, 5.0].map(|v| bucket_index(v, 0)), [-1, 0, 1, 1, 2]);
        // Scale 1: base sqrt(2); 1.5 is in (1.414, 2], 2 closes it, 3 is in (2.83, 4].
        assert_eq!([1.5, 2.0, 3.0, 4.0].map(|v| bucket_index(v, 1)), [1, 1, 3, 3]);
        // Scale -1: base 4; (1,4] is index 0, (4,16] index 1.
        assert_eq!([1.0, 4.0, 5.0, 16.0, 17.0].map(|v| bucket_index(v, -1)), [-1, 0, 1, 1, 2]);
        // Scale 20 at an exact power of two, and just above it.
        assert_eq!(bucket_index(2.0, 20), (1 << 20) - 1);
        assert_eq!(bucket_index(2.0 + 1e-9, 20), 1 << 20);
        assert_eq!(bucket_index(f64::MIN_POSITIVE / 4.0, 0), -1025);
    }

    #[test]
    fn values_that_need_more_buckets_lower_the_scale() {
        let mut histogram = ExponentialHistogram::new(4, 20);
        for value in [1.0, 2.0, 4.0, 8.0, 16.0] {
            histogram.record(value);
        }
        // At scale 0 the indexes are -1..=3 (5 buckets); at -1, (1/4,1], (1,4], (4,16].
        assert_eq!(histogram.scale, -1);
        assert_eq!(histogram.positive, Buckets { offset: -1, counts: vec![1, 2, 2] });
        assert_eq!((histogram.count, histogram.sum, histogram.min, histogram.max), (5, 31.0, 1.0, 16.0));
    }

    #[test]
    fn one_value_stays_at_the_max_scale_and_signs_share_the_scale() {
        let mut histogram = ExponentialHistogram::new(160, 20);
        histogram.record(3.0);
        assert_eq!((histogram.scale, histogram.positive.counts.len()), (20, 1));
        histogram.record(0.0);
        histogram.record(-3.0);
        histogram.record(-300.0);
        assert!(histogram.scale < 20);
        assert_eq!(histogram.negative.counts.iter().sum::<u64>(), 2);
        assert_eq!(histogram.positive.offset, bucket_index(3.0, histogram.scale));
        assert_eq!((histogram.zero_count, histogram.count), (1, 4));
        assert!(histogram.negative.counts.len() <= 160);
    }

    #[test]
    fn the_widest_range_fits_at_the_lowest_scale() {
        let mut histogram = ExponentialHistogram::new(4, 20);
        histogram.record(f64::MAX);
        histogram.record(f64::MIN_POSITIVE);
        assert!(histogram.scale >= MIN_SCALE, "{}", histogram.scale);
        assert!(histogram.positive.counts.len() <= 4);
        histogram.record(f64::INFINITY);
        assert_eq!(histogram.count, 2);
    }
}
