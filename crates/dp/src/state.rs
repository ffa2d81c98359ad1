//! Aggregate states: the exact count and sum of one group, with contribution bounding per
//! privacy unit, mergeable (parallel aggregation) and serializable (to pass between processes).
//! Noise is added only by the `release_*` functions, once, from the final state.

use crate::mechanism::{noisy_f64, noisy_i64};
use crate::params::Params;
use crate::units::{self, Reader};
use crate::DpError;
use std::collections::HashMap;

/// The value types a DP aggregate sums: float8 and bigint.
pub trait Num: Copy + PartialOrd + std::fmt::Debug {
    /// Exact running sum of clamped values.
    type Acc: Copy + Default + std::fmt::Debug + PartialEq;
    const TAG: u8;
    fn is_finite(self) -> bool;
    /// NaN: a float that is no number, ignored like NULL (an error would answer a question
    /// about the data for free).
    fn is_nan(self) -> bool;
    fn clamp_to(self, lower: Self, upper: Self) -> Self;
    /// Adds a value already clamped to bounds of magnitude `magnitude`.
    fn add(acc: &mut Self::Acc, v: Self, magnitude: Self);
    fn merge(acc: &mut Self::Acc, other: Self::Acc);
    fn to_le(self) -> [u8; 8];
    fn from_le(b: [u8; 8]) -> Self;
    fn acc_to_le(acc: Self::Acc) -> [u8; 16];
    fn acc_from_le(b: [u8; 16]) -> Self::Acc;
    /// The most one value changes a sum: max(|lower|, |upper|).
    fn magnitude(lower: Self, upper: Self) -> Self;
}

/// A float sum in fixed point relative to the bounds' magnitude M = max(|lower|, |upper|):
/// each clamped value v adds trunc(v · 2^k) to an i128, where 2^k is the power of two that puts
/// M just below 2^62 (k = 61 − the exponent of M). Scaling by a power of two is exact, so the
/// only error is the truncation (less than 2^-k ≤ M · 2^-61 per value, far below the noise of
/// scale M / ε); the sum is exact in its own terms and associative (the same in any order of
/// rows, workers and shards), and cannot overflow (2^65 rows of 2^62 fit).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FixedAcc(pub i128);

/// k for bounds of magnitude `magnitude` (> 0): 61 minus its binary exponent, at most 1023 (for
/// magnitudes below 2^-962, which lose precision rather than overflow).
fn fixed_exponent(magnitude: f64) -> i32 {
    let exponent = ((magnitude.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    (61 - exponent).min(1023)
}

/// 2^k for k in [-1022, 1023], built from its bits (no call, no division: this runs per row).
fn power_of_two(k: i32) -> f64 {
    f64::from_bits(((k + 1023) as u64) << 52)
}

impl FixedAcc {
    /// The sum for bounds of magnitude `magnitude`, saturated at the largest finite float.
    pub fn value(self, magnitude: f64) -> f64 {
        if magnitude <= 0.0 {
            return 0.0;
        }
        let k = fixed_exponent(magnitude);
        // Two steps: 2^-k alone may be below the smallest normal float.
        ((self.0 as f64) * power_of_two(-k / 2) * power_of_two(-(k - k / 2)))
            .clamp(f64::MIN, f64::MAX)
    }
}

impl Num for f64 {
    type Acc = FixedAcc;
    const TAG: u8 = b'f';
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    fn clamp_to(self, lower: f64, upper: f64) -> f64 {
        self.clamp(lower, upper)
    }
    fn add(acc: &mut FixedAcc, v: f64, magnitude: f64) {
        if magnitude > 0.0 {
            // |v| <= magnitude < 2^(61 - k + 1), so |v · 2^k| < 2^62 fits an i64; the cast
            // truncates and is one instruction, where rounding and an i128 cast are library
            // calls (this runs once per row).
            let q = (v * power_of_two(fixed_exponent(magnitude))) as i64;
            acc.0 = acc.0.saturating_add(q as i128);
        }
    }
    fn merge(acc: &mut FixedAcc, other: FixedAcc) {
        acc.0 = acc.0.saturating_add(other.0);
    }
    fn to_le(self) -> [u8; 8] {
        self.to_le_bytes()
    }
    fn from_le(b: [u8; 8]) -> f64 {
        f64::from_le_bytes(b)
    }
    fn acc_to_le(acc: FixedAcc) -> [u8; 16] {
        acc.0.to_le_bytes()
    }
    fn acc_from_le(b: [u8; 16]) -> FixedAcc {
        FixedAcc(i128::from_le_bytes(b))
    }
    fn magnitude(lower: f64, upper: f64) -> f64 {
        lower.abs().max(upper.abs())
    }
}

impl Num for i64 {
    type Acc = i128;
    const TAG: u8 = b'i';
    fn is_finite(self) -> bool {
        true
    }
    fn is_nan(self) -> bool {
        false
    }
    fn clamp_to(self, lower: i64, upper: i64) -> i64 {
        self.clamp(lower, upper)
    }
    fn add(acc: &mut i128, v: i64, _magnitude: i64) {
        *acc = acc.saturating_add(v as i128);
    }
    fn merge(acc: &mut i128, other: i128) {
        *acc = acc.saturating_add(other);
    }
    fn to_le(self) -> [u8; 8] {
        self.to_le_bytes()
    }
    fn from_le(b: [u8; 8]) -> i64 {
        i64::from_le_bytes(b)
    }
    fn acc_to_le(acc: i128) -> [u8; 16] {
        acc.to_le_bytes()
    }
    fn acc_from_le(b: [u8; 16]) -> i128 {
        i128::from_le_bytes(b)
    }
    fn magnitude(lower: i64, upper: i64) -> i64 {
        lower
            .unsigned_abs()
            .max(upper.unsigned_abs())
            .min(i64::MAX as u64) as i64
    }
}

/// One group's exact state.
#[derive(Debug, Clone)]
pub struct State<T: Num> {
    pub params: Option<Params<T>>,
    /// Rows counted (without privacy units).
    pub count: i64,
    pub sum: T::Acc,
    /// With privacy units: each unit's first `max_rows` clamped values, by a hash of the unit.
    /// Two units colliding share one cap, which only lowers what they contribute.
    pub units: Option<HashMap<u64, Vec<T>>>,
}

impl<T: Num> Default for State<T> {
    fn default() -> Self {
        State {
            params: None,
            count: 0,
            sum: T::Acc::default(),
            units: None,
        }
    }
}

/// 2: float sums in fixed point (`FixedAcc`); 1 kept a compensated float pair.
const VERSION: u8 = 2;

impl<T: Num> State<T> {
    /// Adds one row: `value` (None for a row that only counts) clamped to the bounds, under
    /// `unit` if the aggregate bounds contributions per privacy unit.
    pub fn add(&mut self, params: Params<T>, value: T, unit: Option<u64>) -> Result<(), DpError> {
        Params::fix(&mut self.params, params)?;
        self.add_under_fixed_params(value, unit)
    }

    /// `add` for a row whose parameters the caller knows to equal the fixed ones (the hot path
    /// of a transition function that compared the raw arguments).
    pub fn add_under_fixed_params(&mut self, value: T, unit: Option<u64>) -> Result<(), DpError> {
        let Some(params) = self.params else {
            return Err(DpError::InvalidParameter("no parameters fixed yet".into()));
        };
        // Total on every input: NaN is ignored like NULL, infinities are clamped like any
        // value beyond the bounds (an error here would be an answer about the data).
        if value.is_nan() {
            return Ok(());
        }
        let v = value.clamp_to(params.lower, params.upper);
        let magnitude = T::magnitude(params.lower, params.upper);
        match unit {
            None => {
                if self.units.is_some() {
                    return Err(DpError::ParameterChanged("the privacy unit (NULL or not)"));
                }
                self.count = self.count.saturating_add(1);
                T::add(&mut self.sum, v, magnitude);
            }
            Some(u) => {
                if self.count > 0 {
                    return Err(DpError::ParameterChanged("the privacy unit (NULL or not)"));
                }
                units::keep(&mut self.units, u, v, params.max_rows);
            }
        }
        Ok(())
    }

    /// Merges a partial state of the same group (parallel aggregation).
    pub fn merge(&mut self, other: State<T>) -> Result<(), DpError> {
        match (&self.params, other.params) {
            (_, None) => return Ok(()),
            (None, Some(_)) => {
                *self = other;
                return Ok(());
            }
            (Some(a), Some(b)) => a.same_as(&b)?,
        }
        let cap = self.params.map(|p| p.max_rows).unwrap_or(1) as usize;
        self.count = self.count.saturating_add(other.count);
        T::merge(&mut self.sum, other.sum);
        units::merge(&mut self.units, other.units, cap);
        Ok(())
    }

    /// The state as one of `groups` groups a privacy unit may contribute to releases it: its
    /// totals, under the parameters `Params::per_group` gives (the release functions then add
    /// the noise of that share of the loss).
    pub fn per_group(&self, groups: u32) -> Self {
        let (count, sum) = self.totals();
        State {
            params: self.params.map(|p| p.per_group(groups)),
            count,
            sum,
            units: None,
        }
    }

    /// The bounded count and sum: per-unit contributions capped when units are used.
    pub fn totals(&self) -> (i64, T::Acc) {
        match &self.units {
            None => (self.count, self.sum),
            Some(units) => {
                let magnitude = self
                    .params
                    .map(|p| T::magnitude(p.lower, p.upper))
                    .expect("units are kept only under parameters");
                let mut sum = T::Acc::default();
                let mut count = 0i64;
                for v in units.values().flatten() {
                    T::add(&mut sum, *v, magnitude);
                    count += 1;
                }
                (count, sum)
            }
        }
    }

    pub fn serialize(&self) -> Vec<u8> {
        let mut out = vec![b'D', b'P', VERSION, T::TAG];
        match &self.params {
            None => out.push(0),
            Some(p) => {
                out.push(1);
                out.extend(p.loss.epsilon.to_le_bytes());
                out.extend(p.loss.delta.unwrap_or(f64::NAN).to_le_bytes());
                out.extend(p.lower.to_le());
                out.extend(p.upper.to_le());
                out.extend(p.max_rows.to_le_bytes());
            }
        }
        out.extend(self.count.to_le_bytes());
        out.extend(T::acc_to_le(self.sum));
        units::encode(&self.units, &mut out, T::to_le);
        out
    }

    pub fn deserialize(bytes: &[u8]) -> Result<Self, DpError> {
        let mut r = Reader(bytes);
        if r.take::<4>()? != [b'D', b'P', VERSION, T::TAG] {
            return Err(DpError::CorruptState("unknown format or version"));
        }
        let params = match r.take::<1>()?[0] {
            0 => None,
            1 => {
                let epsilon = f64::from_le_bytes(r.take()?);
                let delta = f64::from_le_bytes(r.take()?);
                let lower = T::from_le(r.take()?);
                let upper = T::from_le(r.take()?);
                let max_rows = i64::from_le_bytes(r.take()?);
                let delta = (!delta.is_nan()).then_some(delta);
                Some(Params::new(epsilon, delta, lower, upper, max_rows)?)
            }
            _ => return Err(DpError::CorruptState("bad parameter flag")),
        };
        let count = i64::from_le_bytes(r.take()?);
        let sum = T::acc_from_le(r.take()?);
        let units = units::decode(&mut r, T::from_le)?;
        if !r.done() {
            return Err(DpError::CorruptState("trailing bytes"));
        }
        Ok(State {
            params,
            count,
            sum,
            units,
        })
    }
}

/// Noisy count of the group's (bounded) rows: sensitivity max_rows.
pub fn release_count<T: Num>(state: &State<T>) -> Result<Option<i64>, DpError> {
    let Some(p) = state.params else {
        return Ok(None);
    };
    let (count, _) = state.totals();
    noisy_i64(count, p.max_rows, p.loss).map(Some)
}

/// Noisy float sum: sensitivity max(|lower|, |upper|) * max_rows.
pub fn release_sum_f64(state: &State<f64>) -> Result<Option<f64>, DpError> {
    let Some(p) = state.params else {
        return Ok(None);
    };
    let (_, sum) = state.totals();
    let magnitude = f64::magnitude(p.lower, p.upper);
    let sensitivity = magnitude * p.max_rows as f64;
    noisy_f64(sum.value(magnitude), sensitivity, p.loss).map(Some)
}

/// Noisy bigint sum: sensitivity max(|lower|, |upper|) * max_rows.
pub fn release_sum_i64(state: &State<i64>) -> Result<Option<i64>, DpError> {
    let Some(p) = state.params else {
        return Ok(None);
    };
    let (_, sum) = state.totals();
    // Saturated: the noisy answer of a sum beyond bigint is the largest bigint.
    let sum = sum.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
    let sensitivity = i64::magnitude(p.lower, p.upper)
        .checked_mul(p.max_rows)
        .ok_or_else(|| {
            DpError::InvalidParameter("bounds times max_rows_per_unit overflow bigint".into())
        })?;
    noisy_i64(sum, sensitivity, p.loss).map(Some)
}

/// Noisy average: a noisy sum and a noisy count, each with half the privacy loss, divided and
/// clamped to the bounds (post-processing costs no privacy). A noisy count below 1 counts as 1.
pub fn release_avg(state: &State<f64>) -> Result<Option<f64>, DpError> {
    let Some(p) = state.params else {
        return Ok(None);
    };
    let (count, sum) = state.totals();
    let half = p.split(2);
    let magnitude = f64::magnitude(p.lower, p.upper);
    let sensitivity = magnitude * p.max_rows as f64;
    let noisy_sum = noisy_f64(sum.value(magnitude), sensitivity, half)?;
    let noisy_count = noisy_i64(count, p.max_rows, half)?.max(1);
    Ok(Some(
        (noisy_sum / noisy_count as f64).clamp(p.lower, p.upper),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(lower: f64, upper: f64, max_rows: i64) -> Params<f64> {
        Params::new(1.0, None, lower, upper, max_rows).unwrap()
    }

    #[test]
    fn values_are_clamped_to_the_bounds() {
        let mut s = State::<f64>::default();
        for v in [-100.0, 5.0, 100.0] {
            s.add(params(0.0, 10.0, 1), v, None).unwrap();
        }
        let (count, sum) = s.totals();
        assert_eq!(count, 3);
        assert!((sum.value(10.0) - 15.0).abs() < 1e-12);
    }

    #[test]
    fn a_unit_contributes_at_most_max_rows() {
        let mut s = State::<f64>::default();
        for _ in 0..1000 {
            s.add(params(0.0, 10.0, 2), 10.0, Some(7)).unwrap(); // one person, repeated rows
        }
        s.add(params(0.0, 10.0, 2), 1.0, Some(8)).unwrap();
        let (count, sum) = s.totals();
        assert_eq!(count, 3);
        assert!((sum.value(10.0) - 21.0).abs() < 1e-12);
    }

    #[test]
    fn merge_keeps_the_cap_across_partial_states() {
        let p = params(0.0, 10.0, 3);
        let mut a = State::<f64>::default();
        let mut b = State::<f64>::default();
        for _ in 0..2 {
            a.add(p, 1.0, Some(1)).unwrap();
            b.add(p, 1.0, Some(1)).unwrap();
        }
        b.add(p, 4.0, Some(2)).unwrap();
        a.merge(b).unwrap();
        let (count, sum) = a.totals();
        assert_eq!(count, 4);
        assert!((sum.value(10.0) - 7.0).abs() < 1e-12);
    }

    #[test]
    fn parameters_must_stay_constant() {
        let mut s = State::<f64>::default();
        s.add(params(0.0, 10.0, 1), 1.0, None).unwrap();
        assert_eq!(
            s.add(params(0.0, 11.0, 1), 1.0, None),
            Err(DpError::ParameterChanged("the bounds"))
        );
        let other = Params::new(2.0, None, 0.0, 10.0, 1).unwrap();
        assert_eq!(
            s.add(other, 1.0, None),
            Err(DpError::ParameterChanged("epsilon"))
        );
        assert!(Params::<f64>::new(1.0, None, 5.0, 1.0, 1).is_err());
        assert!(Params::<f64>::new(1.0, None, f64::NEG_INFINITY, 1.0, 1).is_err());
        assert!(Params::<f64>::new(f64::NAN, None, 0.0, 1.0, 1).is_err());
    }

    #[test]
    fn serialize_round_trips_and_refuses_damage() {
        let p = Params::new(0.5, Some(1e-6), -3i64, 9, 2).unwrap();
        let mut s = State::<i64>::default();
        for (v, u) in [(5, 1), (7, 1), (100, 2), (-8, 3)] {
            s.add(p, v, Some(u)).unwrap();
        }
        let bytes = s.serialize();
        let back = State::<i64>::deserialize(&bytes).unwrap();
        assert_eq!(back.totals(), s.totals());
        assert_eq!(back.params, s.params);
        assert!(State::<i64>::deserialize(&bytes[..bytes.len() - 1]).is_err());
        assert!(State::<f64>::deserialize(&bytes).is_err()); // other value type
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(State::<i64>::deserialize(&extra).is_err());
    }

    #[test]
    fn an_empty_group_releases_nothing() {
        assert_eq!(release_count(&State::<i64>::default()), Ok(None));
        assert_eq!(release_sum_f64(&State::default()), Ok(None));
    }

    #[test]
    fn bigint_sum_noise_has_the_right_scale() {
        let p = Params::new(1.0, None, 0i64, 20, 1).unwrap();
        let mut s = State::<i64>::default();
        for v in 0..100 {
            s.add(p, v % 30, None).unwrap(); // values above 20 count as 20
        }
        let exact: i64 = (0..100).map(|v: i64| (v % 30).min(20)).sum();
        let xs: Vec<f64> = (0..3000)
            .map(|_| (release_sum_i64(&s).unwrap().unwrap() - exact) as f64)
            .collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
        // Six standard errors of the mean (sqrt(800 / 3000) = 0.52).
        assert!(mean.abs() < 3.1, "mean {mean}");
        assert!(
            (var / 800.0 - 1.0).abs() < 0.2,
            "variance {var}, expected 800"
        );
    }

    #[test]
    fn average_is_near_the_true_average_and_within_bounds() {
        let p = params(0.0, 10.0, 1);
        let mut s = State::<f64>::default();
        for i in 0..10_000 {
            s.add(p, (i % 11) as f64, None).unwrap(); // 0..=10, mean 5
        }
        let avg = release_avg(&s).unwrap().unwrap();
        assert!((0.0..=10.0).contains(&avg));
        assert!((avg - 5.0).abs() < 0.1, "avg {avg}");
    }

    #[test]
    fn every_input_is_accepted_nan_ignored_infinities_clamped() {
        let p = params(-1.0, 10.0, 1);
        let mut s = State::<f64>::default();
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 2.0] {
            s.add(p, v, None).unwrap();
        }
        let (count, sum) = s.totals();
        assert_eq!(count, 3); // NaN not counted
        assert!((sum.value(10.0) - 11.0).abs() < 1e-12); // 10 - 1 + 2
        assert!(release_sum_f64(&s).unwrap().unwrap().is_finite());
        assert!(release_avg(&s).unwrap().unwrap().is_finite());
    }

    #[test]
    fn float_sums_are_exact_and_the_same_in_any_order() {
        let p = params(-1e300, 1e300, 1);
        let values = [1e300, 1.0, -1e300, 3.5, 1e-300, -2.25];
        let mut forward = State::<f64>::default();
        for v in values {
            forward.add(p, v, None).unwrap();
        }
        let mut backward = State::<f64>::default();
        for v in values.iter().rev() {
            backward.add(p, *v, None).unwrap();
        }
        let mut halves = State::<f64>::default();
        let mut other = State::<f64>::default();
        for v in &values[..3] {
            halves.add(p, *v, None).unwrap();
        }
        for v in &values[3..] {
            other.add(p, *v, None).unwrap();
        }
        halves.merge(other).unwrap();
        assert_eq!(forward.totals().1, backward.totals().1);
        assert_eq!(forward.totals().1, halves.totals().1);
        // Sums of the largest values saturate instead of overflowing to infinity.
        let big = params(0.0, f64::MAX, 1);
        let mut s = State::<f64>::default();
        for _ in 0..4 {
            s.add(big, f64::MAX, None).unwrap();
        }
        assert_eq!(s.totals().1.value(f64::MAX), f64::MAX);
    }

    #[test]
    fn bigint_sums_beyond_bigint_saturate() {
        let p = Params::new(1.0, None, 0i64, i64::MAX, 1).unwrap();
        let mut s = State::<i64>::default();
        for _ in 0..4 {
            s.add(p, i64::MAX, None).unwrap();
        }
        assert!(release_sum_i64(&s).is_ok());
    }

    #[test]
    fn a_group_of_k_releases_its_bounded_totals_with_a_kth_of_the_loss() {
        let p = Params::new(1.5, Some(3e-6), 0.0f64, 10.0, 2).unwrap();
        let mut s = State::<f64>::default();
        for (unit, v) in [(1u64, 4.0), (1, 5.0), (1, 6.0), (2, 7.0)] {
            s.add(p, v, Some(unit)).unwrap();
        }
        let share = s.per_group(3);
        assert_eq!(share.totals().0, 3, "unit 1 keeps its first two rows");
        assert_eq!(share.totals().0, s.totals().0);
        let q = share.params.unwrap();
        assert_eq!(q.loss.epsilon, 0.5);
        assert_eq!(q.loss.delta, Some(1e-6));
        assert_eq!((q.lower, q.upper, q.max_rows), (0.0, 10.0, 2));
        assert!(share.units.is_none());
        // One group: the parameters as charged.
        assert_eq!(s.per_group(1).params, s.params);
    }
}
