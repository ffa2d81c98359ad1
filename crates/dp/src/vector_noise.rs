//! Discrete Gaussian noise for a vector of integers under an L2 sensitivity: what
//! `fhe_close_round(round, dp_epsilon, dp_delta)` adds to an encrypted round sum (docs/fhe.md,
//! "Differentially private round sums"). The sum is of fixed-point integers, so the noise is
//! integer too, drawn by OpenDP's exact discrete Gaussian sampler over the whole vector at once,
//! and the calibration is checked with that vector measurement's own privacy map.

use crate::mechanism::{gaussian_sigma, Loss};
use crate::DpError;
use opendp::combinators::make_zCDP_to_approxDP;
use opendp::core::Measurement;
use opendp::domains::{AtomDomain, VectorDomain};
use opendp::measurements::make_gaussian;
use opendp::measures::ZeroConcentratedDivergence;
use opendp::metrics::L2Distance;

/// log2 of the probability, over the whole vector, that some coordinate's noise exceeds
/// `tail_bound`: the chance that the noise wraps an encrypted sum the headroom check admitted.
pub const TAIL_LOG2: f64 = -40.0;

type VectorGaussian = Measurement<
    VectorDomain<AtomDomain<i64>>,
    L2Distance<f64>,
    ZeroConcentratedDivergence,
    Vec<i64>,
>;

fn measurement(sigma: f64) -> Result<VectorGaussian, DpError> {
    Ok(make_gaussian(
        VectorDomain::new(AtomDomain::<i64>::default()),
        L2Distance::<f64>::default(),
        sigma,
        None,
    )?)
}

/// The delta the vector measurement with `sigma` spends at `epsilon` for `l2_sensitivity`.
fn delta_spent(sigma: f64, l2_sensitivity: f64, epsilon: f64) -> Result<f64, DpError> {
    let profile = make_zCDP_to_approxDP(measurement(sigma)?)?.map(&l2_sensitivity)?;
    Ok(profile.delta(epsilon)?)
}

/// The smallest sigma (found as for scalars, `gaussian_sigma`) that makes the vector
/// measurement (epsilon, delta)-DP at `l2_sensitivity`, widened until its own map agrees.
pub fn vector_sigma(l2_sensitivity: f64, loss: Loss) -> Result<f64, DpError> {
    loss.check()?;
    let Some(delta) = loss.delta else {
        return Err(DpError::InvalidParameter(
            "the Gaussian mechanism needs a delta".into(),
        ));
    };
    if !(l2_sensitivity.is_finite() && l2_sensitivity > 0.0) {
        return Err(DpError::InvalidParameter(format!(
            "the sensitivity must be positive and finite, not {l2_sensitivity}"
        )));
    }
    let mut sigma = gaussian_sigma(l2_sensitivity, loss.epsilon, delta)?;
    for _ in 0..64 {
        if delta_spent(sigma, l2_sensitivity, loss.epsilon)? <= delta {
            return Ok(sigma);
        }
        sigma *= 1.0 + 1e-9;
    }
    Err(DpError::InvalidParameter(format!(
        "no Gaussian sigma gives ({}, {delta})-DP at L2 sensitivity {l2_sensitivity}",
        loss.epsilon
    )))
}

/// A bound every coordinate of `dim` draws with `sigma` stays within, but with probability at
/// most 2^TAIL_LOG2: the discrete Gaussian is sigma²-subgaussian (Canonne, Kamath, Steinke
/// 2020), so P(|z| ≥ t) ≤ 2·exp(−t²/2σ²), and a union bound over the coordinates.
pub fn tail_bound(sigma: f64, dim: usize) -> f64 {
    let failures = 2.0 * dim.max(1) as f64 / TAIL_LOG2.exp2();
    sigma * (2.0 * failures.ln()).sqrt()
}

/// `dim` independent draws of the discrete Gaussian with `sigma`, from OpenDP's generator
/// (seeded from the operating system in each process).
pub fn sample(dim: usize, sigma: f64) -> Result<Vec<i64>, DpError> {
    Ok(measurement(sigma)?.invoke(&vec![0i64; dim])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigma_is_that_of_the_scalar_gaussian_at_the_l2_sensitivity() {
        let l2 = 128.0 * (1000f64).sqrt();
        let sigma = vector_sigma(l2, Loss::gaussian(1.0, 1e-6)).unwrap();
        let scalar = gaussian_sigma(l2, 1.0, 1e-6).unwrap();
        assert!((sigma / scalar - 1.0).abs() < 1e-6, "{sigma} vs {scalar}");
        assert!(delta_spent(sigma, l2, 1.0).unwrap() <= 1e-6);
        // Tighter than the classic bound, which holds for epsilon < 1 only.
        let classic = l2 * (2.0 * (1.25f64 / 1e-6).ln()).sqrt();
        assert!(sigma < classic, "{sigma} vs {classic}");
    }

    #[test]
    fn draws_have_the_calibrated_variance() {
        let sigma = 1000.0;
        let z = sample(20_000, sigma).unwrap();
        let n = z.len() as f64;
        let mean = z.iter().map(|x| *x as f64).sum::<f64>() / n;
        let var = z.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
        // Standard errors: mean sigma/141 = 7; variance sqrt(2/n) = 1%.
        assert!(mean.abs() < 6.0 * sigma / n.sqrt(), "mean {mean}");
        assert!((var / (sigma * sigma) - 1.0).abs() < 0.06, "variance {var}");
        let within = z.iter().filter(|x| (**x as f64).abs() <= sigma).count() as f64 / n;
        assert!((within - 0.6827).abs() < 0.02, "within one sigma: {within}");
        assert!(z
            .iter()
            .all(|x| (*x as f64).abs() < tail_bound(sigma, z.len())));
    }

    #[test]
    fn the_tail_bound_grows_with_the_dimension() {
        // sqrt(2 ln(2·2^40)) = 7.54; at 10^5 coordinates sqrt(2 ln(2·10^5·2^40)) = 8.94.
        assert!(
            (tail_bound(1.0, 1) - 7.54).abs() < 0.01,
            "{}",
            tail_bound(1.0, 1)
        );
        assert!(
            (tail_bound(1.0, 100_000) - 8.94).abs() < 0.01,
            "{}",
            tail_bound(1.0, 100_000)
        );
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(vector_sigma(
            1.0,
            Loss {
                epsilon: 1.0,
                delta: None
            }
        )
        .is_err());
        assert!(vector_sigma(0.0, Loss::gaussian(1.0, 1e-6)).is_err());
        assert!(vector_sigma(f64::INFINITY, Loss::gaussian(1.0, 1e-6)).is_err());
        assert!(vector_sigma(1.0, Loss::gaussian(0.0, 1e-6)).is_err());
        assert!(vector_sigma(1.0, Loss::gaussian(1.0, 1.0)).is_err());
    }
}
