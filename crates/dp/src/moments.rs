//! Private variance and standard deviation: the exact count, sum and sum of squares of values
//! clamped to `[lower, upper]` and centred on its midpoint (so that each value's contribution is
//! at most the half-width `h`, and its square at most `h²`), mergeable across workers and
//! shards; the release adds noise to each with a third of the loss (basic composition) and
//! computes `Q/N − (S/N)²`, clamped to `[0, h²]` (post-processing).

use crate::mechanism::{noisy_f64, noisy_i64, Loss};
use crate::state::{FixedAcc, Num};
use crate::DpError;

/// The exact moments of one group (no privacy units: the caller keeps units' values and adds
/// the kept ones).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    pub count: i64,
    /// Σ y, y = clamp(x) − midpoint, in fixed point relative to the half-width.
    pub sum: FixedAcc,
    /// Σ y², relative to the half-width squared.
    pub sum_of_squares: FixedAcc,
}

/// Format of `Moments::serialize`.
const VERSION: u8 = 1;

/// The midpoint and half-width of `[lower, upper]` (finite, lower <= upper).
pub fn centre(lower: f64, upper: f64) -> Result<(f64, f64), DpError> {
    if !(lower.is_finite() && upper.is_finite() && lower <= upper) {
        return Err(DpError::InvalidParameter(format!(
            "bounds must be finite with lower <= upper, not [{lower}, {upper}]"
        )));
    }
    let mid = lower / 2.0 + upper / 2.0;
    let half = (upper / 2.0 - lower / 2.0).max(0.0);
    if !(half * half).is_finite() {
        return Err(DpError::InvalidParameter(format!(
            "bounds [{lower}, {upper}] are too wide for a variance (their half-width squared overflows)"
        )));
    }
    Ok((mid, half))
}

impl Moments {
    /// Adds a value (NaN ignored like NULL; others clamped to the bounds).
    pub fn add(&mut self, value: f64, lower: f64, upper: f64) -> Result<(), DpError> {
        if value.is_nan() {
            return Ok(());
        }
        let (mid, half) = centre(lower, upper)?;
        self.add_centred((value.clamp(lower, upper) - mid).clamp(-half, half), half);
        Ok(())
    }

    /// Adds `y`, a value minus the midpoint, within `[-half, half]`.
    pub fn add_centred(&mut self, y: f64, half: f64) {
        self.count = self.count.saturating_add(1);
        <f64 as Num>::add(&mut self.sum, y, half);
        <f64 as Num>::add(&mut self.sum_of_squares, y * y, half * half);
    }

    pub fn merge(&mut self, other: &Moments) {
        self.count = self.count.saturating_add(other.count);
        <f64 as Num>::merge(&mut self.sum, other.sum);
        <f64 as Num>::merge(&mut self.sum_of_squares, other.sum_of_squares);
    }

    pub fn serialize(&self) -> Vec<u8> {
        let mut out = vec![b'M', VERSION];
        out.extend(self.count.to_le_bytes());
        out.extend(self.sum.0.to_le_bytes());
        out.extend(self.sum_of_squares.0.to_le_bytes());
        out
    }

    pub fn deserialize(bytes: &[u8]) -> Result<Self, DpError> {
        if bytes.len() != 2 + 8 + 16 + 16 || bytes[0] != b'M' || bytes[1] != VERSION {
            return Err(DpError::CorruptState(
                "unknown variance state format, version or size",
            ));
        }
        let count = i64::from_le_bytes(bytes[2..10].try_into().expect("8 bytes"));
        let sum = i128::from_le_bytes(bytes[10..26].try_into().expect("16 bytes"));
        let sum_of_squares = i128::from_le_bytes(bytes[26..42].try_into().expect("16 bytes"));
        Ok(Moments {
            count,
            sum: FixedAcc(sum),
            sum_of_squares: FixedAcc(sum_of_squares),
        })
    }

    /// The population variance, released under `loss` when one privacy unit contributes at most
    /// `max_rows` values: the count, the sum and the sum of squares each get a third of ε (and
    /// of δ), with sensitivities `max_rows`, `max_rows · h` and `max_rows · h²`.
    pub fn release_variance(
        &self,
        lower: f64,
        upper: f64,
        loss: Loss,
        max_rows: i64,
    ) -> Result<f64, DpError> {
        loss.check()?;
        let (_, half) = centre(lower, upper)?;
        if half == 0.0 {
            return Ok(0.0); // every value is the one bound: nothing varies, nothing to hide
        }
        let third = Loss {
            epsilon: loss.epsilon / 3.0,
            delta: loss.delta.map(|d| d / 3.0),
        };
        let rows = max_rows.max(1);
        let n = noisy_i64(self.count, rows, third)?.max(1) as f64;
        let s = noisy_f64(self.sum.value(half), rows as f64 * half, third)?;
        let q = noisy_f64(
            self.sum_of_squares.value(half * half),
            rows as f64 * half * half,
            third,
        )?;
        let mean = s / n;
        Ok((q / n - mean * mean).clamp(0.0, half * half))
    }

    /// The population standard deviation: the square root of `release_variance` (the same loss).
    pub fn release_stddev(
        &self,
        lower: f64,
        upper: f64,
        loss: Loss,
        max_rows: i64,
    ) -> Result<f64, DpError> {
        Ok(self.release_variance(lower, upper, loss, max_rows)?.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments_of(values: &[f64], lower: f64, upper: f64) -> Moments {
        let mut m = Moments::default();
        for v in values {
            m.add(*v, lower, upper).unwrap();
        }
        m
    }

    fn pure(epsilon: f64) -> Loss {
        Loss {
            epsilon,
            delta: None,
        }
    }

    #[test]
    fn exact_moments_are_exact() {
        let values: Vec<f64> = (0..1000).map(|i| (i % 10) as f64).collect();
        let m = moments_of(&values, 0.0, 10.0);
        assert_eq!(m.count, 1000);
        // Centred on 5: y in -5..4, mean -0.5, mean square 8.5.
        assert!((m.sum.value(5.0) - -500.0).abs() < 1e-9);
        assert!((m.sum_of_squares.value(25.0) - 8500.0).abs() < 1e-9);
        let mut halves = moments_of(&values[..300], 0.0, 10.0);
        halves.merge(&moments_of(&values[300..], 0.0, 10.0));
        assert_eq!(halves, m);
        assert_eq!(Moments::deserialize(&m.serialize()).unwrap(), m);
        assert!(Moments::deserialize(&m.serialize()[..41]).is_err());
        // NaN is ignored, infinities clamped.
        let mut n = Moments::default();
        n.add(f64::NAN, 0.0, 10.0).unwrap();
        n.add(f64::INFINITY, 0.0, 10.0).unwrap();
        assert_eq!(n.count, 1);
        assert!((n.sum_of_squares.value(25.0) - 25.0).abs() < 1e-12);
    }

    /// Many releases of the variance of a known data set: their mean is the true variance within
    /// a few standard errors (the estimator is a ratio, unbiased as n grows), and the standard
    /// deviation too.
    #[test]
    fn variance_is_unbiased_within_tolerance() {
        // 10000 values uniform over 0..=100: population variance (101² − 1) / 12 = 850.
        let values: Vec<f64> = (0..10_000).map(|i| (i % 101) as f64).collect();
        let truth = 850.0;
        let m = moments_of(&values, 0.0, 100.0);
        let runs = 2000;
        let got: Vec<f64> = (0..runs)
            .map(|_| m.release_variance(0.0, 100.0, pure(1.0), 1).unwrap())
            .collect();
        let mean = got.iter().sum::<f64>() / runs as f64;
        let sd = (got.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (runs - 1) as f64).sqrt();
        let se = sd / (runs as f64).sqrt();
        assert!(
            (mean - truth).abs() < 6.0 * se + 0.5,
            "mean {mean}, truth {truth}, standard error {se}"
        );
        let sds: Vec<f64> = (0..runs)
            .map(|_| m.release_stddev(0.0, 100.0, pure(1.0), 1).unwrap())
            .collect();
        let sd_mean = sds.iter().sum::<f64>() / runs as f64;
        assert!(
            (sd_mean - truth.sqrt()).abs() < 0.2,
            "stddev mean {sd_mean}"
        );
    }

    #[test]
    fn releases_stay_in_range_and_refuse_bad_parameters() {
        let m = moments_of(&[1.0, 2.0], 0.0, 4.0);
        for _ in 0..200 {
            let v = m.release_variance(0.0, 4.0, pure(0.1), 3).unwrap();
            assert!((0.0..=4.0).contains(&v));
        }
        assert_eq!(
            moments_of(&[3.0], 3.0, 3.0)
                .release_variance(3.0, 3.0, pure(1.0), 1)
                .unwrap(),
            0.0
        );
        assert!(m.release_variance(0.0, 4.0, pure(0.0), 1).is_err());
        assert!(m.release_variance(4.0, 0.0, pure(1.0), 1).is_err());
        assert!(Moments::default().add(1.0, -f64::MAX, f64::MAX).is_err());
        let gaussian = Loss::gaussian(1.0, 1e-6);
        assert!(m.release_variance(0.0, 4.0, gaussian, 1).is_ok());
    }
}
