//! Zero-concentrated DP (zCDP, Bun and Steinke 2016) accounting: what a release costs in ρ,
//! which adds up across releases, and the (ε, δ) a total ρ amounts to. Every number comes from
//! OpenDP's privacy maps and its conversion from zCDP to approximate DP (the tight bound of
//! Canonne, Kamath and Steinke 2020), never from a formula written here.

use crate::mechanism::{gaussian_sigma, memo};
use crate::DpError;
use opendp::combinators::{make_pureDP_to_zCDP, ConcentratedMeasure};
use opendp::domains::AtomDomain;
use opendp::measurements::{make_gaussian, make_laplace};
use opendp::measures::ZeroConcentratedDivergence;
use opendp::metrics::AbsoluteDistance;

/// ρ of a pure ε-DP release (ε²/2, by OpenDP's cast from pure DP to zCDP).
pub fn rho_of_pure(epsilon: f64) -> Result<f64, DpError> {
    check_epsilon(epsilon)?;
    // A Laplace measurement of scale 1 at sensitivity ε spends exactly ε.
    let m = make_pureDP_to_zCDP(make_laplace(
        AtomDomain::<f64>::new_non_nan(),
        AbsoluteDistance::<f64>::default(),
        1.0,
        None,
    )?)?;
    Ok(m.map(&epsilon)?)
}

/// ρ of the Gaussian release that the dp aggregates make for (ε, δ): the σ they calibrate for
/// (ε, δ) at sensitivity 1 (`mechanism::gaussian_sigma`; ρ does not depend on the sensitivity),
/// mapped by OpenDP's Gaussian measurement.
pub fn rho_of_gaussian(epsilon: f64, delta: f64) -> Result<f64, DpError> {
    check_epsilon(epsilon)?;
    if !(delta > 0.0 && delta < 1.0) {
        return Err(DpError::InvalidParameter(format!(
            "delta must be in (0, 1), not {delta}"
        )));
    }
    let sigma = gaussian_sigma(1.0, epsilon, delta)?;
    let m = make_gaussian(
        AtomDomain::<f64>::new_non_nan(),
        AbsoluteDistance::<f64>::default(),
        sigma,
        None,
    )?;
    Ok(m.map(&1.0)?)
}

/// The ε that a total of `rho` amounts to at `delta` (OpenDP's zCDP-to-approximate-DP profile).
pub fn epsilon_of(rho: f64, delta: f64) -> Result<f64, DpError> {
    if !(rho.is_finite() && rho >= 0.0 && delta > 0.0 && delta < 1.0) {
        return Err(DpError::InvalidParameter(format!(
            "rho must be finite and non-negative and delta in (0, 1), not {rho} and {delta}"
        )));
    }
    if rho == 0.0 {
        return Ok(0.0);
    }
    Ok(ZeroConcentratedDivergence::convert(rho)?.epsilon(delta)?)
}

/// The largest ρ that stays within (ε, δ): the zCDP budget of a ledger stated in (ε, δ).
pub fn rho_budget(epsilon: f64, delta: f64) -> Result<f64, DpError> {
    check_epsilon(epsilon)?;
    if !(delta > 0.0 && delta < 1.0) {
        return Err(DpError::InvalidParameter(format!(
            "a zCDP budget needs delta in (0, 1), not {delta}"
        )));
    }
    memo(4, epsilon, delta, 0.0, || {
        let within = |rho: f64| -> bool {
            ZeroConcentratedDivergence::convert(rho)
                .and_then(|p| p.delta(epsilon))
                .map(|d| d <= delta)
                .unwrap_or(false)
        };
        // More ρ means more δ at a fixed ε: bisect between 0 and a ρ outside (ε² · 10 + 1
        // converts to more than ε for any δ used in practice), keeping the lower end within.
        let (mut lo, mut hi) = (0.0f64, epsilon * epsilon * 10.0 + 1.0);
        if within(hi) {
            return Err(DpError::InvalidParameter(format!(
                "no zCDP budget found for epsilon {epsilon} and delta {delta}"
            )));
        }
        for _ in 0..200 {
            let mid = lo / 2.0 + hi / 2.0;
            if mid <= lo || mid >= hi {
                break;
            }
            if within(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    })
}

/// What a release costs under each accounting a budget may keep: (ε, δ) for basic composition,
/// and (ρ, δ) for approximate zCDP (ρ adds up; δ adds up separately, for mechanisms that are
/// not zCDP, such as a noisy threshold).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    pub epsilon: f64,
    pub delta: f64,
    pub rho: f64,
    pub rho_delta: f64,
}

impl Cost {
    /// `self` repeated `times` times (a grouped query charged once per public key).
    pub fn times(self, times: f64) -> Cost {
        Cost {
            epsilon: self.epsilon * times,
            delta: self.delta * times,
            rho: self.rho * times,
            rho_delta: self.rho_delta * times,
        }
    }

    pub fn plus(self, other: Cost) -> Cost {
        Cost {
            epsilon: self.epsilon + other.epsilon,
            delta: self.delta + other.delta,
            rho: self.rho + other.rho,
            rho_delta: self.rho_delta + other.rho_delta,
        }
    }
}

/// The cost of a release made of `parts` noisy answers, each with `1/parts` of ε and δ (a sum:
/// 1; an average: 2; a variance: 3; k percentiles: k): Gaussian parts when δ > 0 (ρ of the σ
/// calibrated for their share), Laplace or exponential-mechanism parts otherwise (ε²/2 each).
pub fn cost_of_parts(parts: u32, epsilon: f64, delta: f64) -> Result<Cost, DpError> {
    let k = parts.max(1) as f64;
    let each = if delta > 0.0 {
        rho_of_gaussian(epsilon / k, delta / k)?
    } else {
        rho_of_pure(epsilon / k)?
    };
    Ok(Cost {
        epsilon,
        delta,
        rho: each * k,
        rho_delta: 0.0,
    })
}

/// The cost of a noisy threshold (partition selection): (ε, δ)-DP, not zCDP, so under zCDP its
/// ε counts as ε²/2 and its δ is spent as such.
pub fn cost_of_threshold(epsilon: f64, delta: f64) -> Result<Cost, DpError> {
    Ok(Cost {
        epsilon,
        delta,
        rho: rho_of_pure(epsilon)?,
        rho_delta: delta,
    })
}

fn check_epsilon(epsilon: f64) -> Result<(), DpError> {
    if epsilon.is_finite() && epsilon > 0.0 {
        Ok(())
    } else {
        Err(DpError::InvalidParameter(format!(
            "epsilon must be positive and finite, not {epsilon}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pure_releases_cost_half_epsilon_squared() {
        for eps in [0.1, 0.5, 1.0, 3.0] {
            let rho = rho_of_pure(eps).unwrap();
            assert!(
                (rho - eps * eps / 2.0).abs() <= 1e-12 * eps * eps,
                "{eps}: {rho}"
            );
        }
        assert!(rho_of_pure(0.0).is_err());
    }

    #[test]
    fn gaussian_rho_matches_sigma() {
        // ρ = Δ² / (2σ²) for the σ the aggregates use.
        let (eps, delta) = (1.0, 1e-6);
        let sigma = gaussian_sigma(1.0, eps, delta).unwrap();
        let rho = rho_of_gaussian(eps, delta).unwrap();
        assert!((rho - 1.0 / (2.0 * sigma * sigma)).abs() < 1e-9 * rho);
        // That ρ alone converts back to at most ε at δ.
        assert!(epsilon_of(rho, delta).unwrap() <= eps * (1.0 + 1e-9));
        assert!(rho_of_gaussian(1.0, 0.0).is_err());
    }

    #[test]
    fn composition_under_zcdp_beats_adding_epsilons() {
        // Ten Gaussian releases of (0.5, 1e-7) each: basic composition says (5, 1e-6); zCDP adds
        // their ρ and converts once.
        let rho: f64 = (0..10).map(|_| rho_of_gaussian(0.5, 1e-7).unwrap()).sum();
        let eps = epsilon_of(rho, 1e-6).unwrap();
        assert!(eps < 5.0, "zCDP total epsilon {eps}");
        assert!(eps > 0.5);
    }

    #[test]
    fn costs_split_by_parts_and_thresholds_keep_their_delta() {
        // A variance at (1.0, 0): three Laplace parts of 1/3 each: 3 · (1/3)²/2 = 1/6.
        let v = cost_of_parts(3, 1.0, 0.0).unwrap();
        assert!((v.rho - 1.0 / 6.0).abs() < 1e-12 && v.rho_delta == 0.0);
        // A Gaussian average at (1.0, 1e-6): two parts of (0.5, 5e-7).
        let a = cost_of_parts(2, 1.0, 1e-6).unwrap();
        assert!((a.rho - 2.0 * rho_of_gaussian(0.5, 5e-7).unwrap()).abs() < 1e-15);
        let t = cost_of_threshold(0.5, 1e-6).unwrap();
        assert_eq!((t.rho, t.rho_delta), (0.125, 1e-6));
        let both = a.plus(t).times(2.0);
        assert!((both.rho - 2.0 * (a.rho + 0.125)).abs() < 1e-15);
        assert_eq!(both.epsilon, 3.0);
    }

    #[test]
    fn the_budget_is_the_largest_rho_within_epsilon_and_delta() {
        for (eps, delta) in [(1.0, 1e-6), (3.0, 1e-5), (0.2, 1e-9)] {
            let rho = rho_budget(eps, delta).unwrap();
            let d = ZeroConcentratedDivergence::convert(rho)
                .unwrap()
                .delta(eps)
                .unwrap();
            assert!(d <= delta, "delta {d} at rho {rho}");
            let d_more = ZeroConcentratedDivergence::convert(rho * 1.001)
                .unwrap()
                .delta(eps)
                .unwrap();
            assert!(d_more > delta, "rho {rho} is not the largest");
            // And the conversion agrees: that ρ is ε at δ.
            assert!((epsilon_of(rho, delta).unwrap() - eps).abs() < 1e-3 * eps);
        }
        assert!(rho_budget(1.0, 0.0).is_err());
    }
}
