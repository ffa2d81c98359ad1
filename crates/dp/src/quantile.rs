//! Private quantiles over a fixed candidate grid: the state is a histogram of where each
//! (clamped) value falls among the candidates, mergeable across parallel workers and shards; the
//! release scores every candidate as OpenDP's `make_quantile_score_candidates` does (Smith 2011:
//! how far its rank is from the wanted one) and selects one with OpenDP's `make_noisy_max`
//! (permute-and-flip under pure DP, McKenna and Sheldon 2020), calibrated by its own privacy map.
//!
//! The grid: `CANDIDATES` points evenly spaced over `[lower, upper]`, both included
//! (`lower + i · (upper − lower) / (CANDIDATES − 1)`); the answer is always one of them, so it is
//! at best within half a step of the true quantile. The histogram has `2 · CANDIDATES + 1` slots
//! (below the first candidate, equal to each candidate, between two, above the last): 16 KiB.

use crate::mechanism::memo;
use crate::DpError;
use opendp::domains::{AtomDomain, VectorDomain};
use opendp::measurements::make_noisy_max;
use opendp::measures::MaxDivergence;
use opendp::metrics::LInfDistance;

/// Points of the candidate grid.
pub const CANDIDATES: usize = 1024;

/// The histogram's slots: `2 · CANDIDATES + 1`.
pub const SLOTS: usize = 2 * CANDIDATES + 1;

/// The denominator of α (the quantile, as OpenDP integerizes it when the data's size is
/// unknown): α is rounded to a multiple of 1/10000.
const ALPHA_DEN: u64 = 10_000;

/// Format of `Histogram::serialize`.
const VERSION: u8 = 1;

/// The candidates for bounds `[lower, upper]` (finite, lower < upper): strictly increasing.
pub fn candidates(lower: f64, upper: f64) -> Result<Vec<f64>, DpError> {
    if !(lower.is_finite() && upper.is_finite() && lower < upper) {
        return Err(DpError::InvalidParameter(format!(
            "quantile bounds must be finite with lower < upper, not [{lower}, {upper}]"
        )));
    }
    let step = (upper - lower) / (CANDIDATES - 1) as f64;
    let mut out: Vec<f64> = (0..CANDIDATES).map(|i| lower + i as f64 * step).collect();
    out[CANDIDATES - 1] = upper;
    // Bounds so close that the step rounds to nothing would repeat a candidate.
    if out.windows(2).any(|w| w[0] >= w[1]) {
        return Err(DpError::InvalidParameter(format!(
            "quantile bounds [{lower}, {upper}] are too close for {CANDIDATES} distinct candidates"
        )));
    }
    Ok(out)
}

/// Where `value` (finite, already clamped to the bounds) falls: slot `2i` is strictly between
/// candidate `i − 1` and candidate `i` (slot 0: below the first), slot `2i + 1` is equal to
/// candidate `i`, slot `2 · CANDIDATES`: above the last.
pub fn slot(candidates: &[f64], value: f64) -> usize {
    let below = candidates.partition_point(|c| *c < value);
    if below < candidates.len() && candidates[below] == value {
        2 * below + 1
    } else {
        2 * below
    }
}

/// How many values fell in each slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    pub slots: Vec<u64>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            slots: vec![0; SLOTS],
        }
    }
}

impl Histogram {
    pub fn add(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            *s = s.saturating_add(1);
        }
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.slots.iter_mut().zip(&other.slots) {
            *a = a.saturating_add(*b);
        }
    }

    /// Values counted.
    pub fn total(&self) -> u64 {
        self.slots.iter().fold(0u64, |a, b| a.saturating_add(*b))
    }

    /// Version, then the slots as little-endian u64 (only the non-zero ones, as (index, count)
    /// pairs, when that is shorter: most of the grid is empty for narrow data).
    pub fn serialize(&self) -> Vec<u8> {
        let nonzero = self.slots.iter().filter(|c| **c > 0).count();
        let mut out = vec![b'Q', VERSION];
        if nonzero * 12 < SLOTS * 8 {
            out.push(1);
            out.extend((nonzero as u32).to_le_bytes());
            for (i, c) in self.slots.iter().enumerate().filter(|(_, c)| **c > 0) {
                out.extend((i as u32).to_le_bytes());
                out.extend(c.to_le_bytes());
            }
        } else {
            out.push(0);
            for c in &self.slots {
                out.extend(c.to_le_bytes());
            }
        }
        out
    }

    pub fn deserialize(bytes: &[u8]) -> Result<Self, DpError> {
        let corrupt = DpError::CorruptState;
        let (head, rest) = bytes
            .split_at_checked(3)
            .ok_or(corrupt("quantile state too short"))?;
        if head[0] != b'Q' || head[1] != VERSION {
            return Err(corrupt("unknown quantile state format or version"));
        }
        let mut h = Histogram::default();
        match head[2] {
            0 => {
                if rest.len() != SLOTS * 8 {
                    return Err(corrupt("quantile state of the wrong size"));
                }
                for (slot, chunk) in h.slots.iter_mut().zip(rest.chunks_exact(8)) {
                    *slot = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
                }
            }
            1 => {
                let (n, pairs) = rest
                    .split_at_checked(4)
                    .ok_or(corrupt("quantile state too short"))?;
                let n = u32::from_le_bytes(n.try_into().expect("4 bytes")) as usize;
                if pairs.len() != n.saturating_mul(12) {
                    return Err(corrupt("quantile state of the wrong size"));
                }
                for pair in pairs.chunks_exact(12) {
                    let i = u32::from_le_bytes(pair[..4].try_into().expect("4 bytes")) as usize;
                    let c = u64::from_le_bytes(pair[4..].try_into().expect("8 bytes"));
                    *h.slots
                        .get_mut(i)
                        .ok_or(corrupt("quantile slot out of range"))? = c;
                }
            }
            _ => return Err(corrupt("bad quantile state flag")),
        }
        Ok(h)
    }
}

/// α as OpenDP's scoring takes it for data of unknown size: its exact fraction when the
/// denominator (a power of two, α being a float) is below 10000 (0, 1/4, 1/2, 1), otherwise
/// rounded to a multiple of 1/10000.
fn alpha_parts(alpha: f64) -> Result<(u64, u64), DpError> {
    if !(0.0..=1.0).contains(&alpha) {
        return Err(DpError::InvalidParameter(format!(
            "the percentile must be in [0, 1], not {alpha}"
        )));
    }
    for k in 0..=13 {
        let den = 1u64 << k;
        let scaled = alpha * den as f64;
        if scaled.fract() == 0.0 {
            return Ok((scaled as u64, den));
        }
    }
    Ok(((alpha * ALPHA_DEN as f64).round() as u64, ALPHA_DEN))
}

/// The score of each candidate (lower is better), as OpenDP's `score_candidates` computes it
/// from the data: `|(α_den − α_num) · min(#(x < c), limit) − α_num · min(#(x > c), limit)|`,
/// here from the histogram.
pub fn scores(hist: &Histogram, alpha: f64) -> Result<Vec<u64>, DpError> {
    let (num, den) = alpha_parts(alpha)?;
    let limit = u64::MAX / den;
    let n = hist.total();
    let mut below = 0u64; // values strictly below the current candidate
    let mut out = Vec::with_capacity(CANDIDATES);
    for i in 0..CANDIDATES {
        below = below.saturating_add(hist.slots[2 * i]);
        let equal = hist.slots[2 * i + 1];
        let above = n.saturating_sub(below).saturating_sub(equal);
        let (lt, gt) = (below.min(limit), above.min(limit));
        out.push(((den - num) * lt).abs_diff(num * gt));
        below = below.saturating_add(equal);
    }
    Ok(out)
}

/// The score's sensitivity when one privacy unit adds or removes up to `max_rows` rows
/// (OpenDP's stability map for an unknown data size: `d_in · max(α_num, α_den − α_num)`).
fn score_sensitivity(alpha: f64, max_rows: i64) -> Result<u64, DpError> {
    let (num, den) = alpha_parts(alpha)?;
    (max_rows.max(1) as u64)
        .checked_mul(num.max(den - num))
        .ok_or_else(|| DpError::InvalidParameter("max_rows_per_unit is too large".into()))
}

/// OpenDP's noisy max over a score vector, pure DP.
type NoisyMax = opendp::core::Measurement<
    VectorDomain<AtomDomain<u64>>,
    LInfDistance<u64>,
    MaxDivergence,
    usize,
>;

/// Noisy max reporting the lowest score (`negate`: lower scores are better).
fn noisy_min(scale: f64) -> Result<NoisyMax, DpError> {
    Ok(make_noisy_max(
        VectorDomain::new(AtomDomain::<u64>::default()),
        LInfDistance::<u64>::default(),
        MaxDivergence,
        scale,
        true,
    )?)
}

/// The noise scale for which noisy max over scores of that sensitivity is `epsilon`-DP, checked
/// with OpenDP's privacy map (widened by the smallest step that makes it agree).
fn noisy_max_scale(sensitivity: u64, epsilon: f64) -> Result<f64, DpError> {
    memo(3, sensitivity as f64, epsilon, 0.0, || {
        let mut scale = sensitivity as f64 / epsilon;
        for _ in 0..64 {
            let spent = noisy_min(scale)?.map(&sensitivity)?;
            if spent <= epsilon {
                return Ok(scale);
            }
            scale *= (spent / epsilon).max(1.0 + 1e-12);
        }
        Err(DpError::InvalidParameter(format!(
            "no noisy-max scale gives epsilon {epsilon}"
        )))
    })
}

/// The `alpha`-quantile of the values the histogram counts, released under `epsilon`-DP when
/// one privacy unit contributes at most `max_rows` of them: one of `candidates`.
pub fn release(
    hist: &Histogram,
    candidates: &[f64],
    alpha: f64,
    epsilon: f64,
    max_rows: i64,
) -> Result<f64, DpError> {
    if !(epsilon.is_finite() && epsilon > 0.0) {
        return Err(DpError::InvalidParameter(format!(
            "epsilon must be positive and finite, not {epsilon}"
        )));
    }
    let scores = scores(hist, alpha)?;
    let scale = noisy_max_scale(score_sensitivity(alpha, max_rows)?, epsilon)?;
    let index = noisy_min(scale)?.invoke(&scores)?;
    candidates
        .get(index)
        .copied()
        .ok_or_else(|| DpError::OpenDp("noisy max chose no candidate".into()))
}

/// Several quantiles of one histogram, `epsilon` split evenly between them (basic composition).
pub fn release_many(
    hist: &Histogram,
    candidates: &[f64],
    alphas: &[f64],
    epsilon: f64,
    max_rows: i64,
) -> Result<Vec<f64>, DpError> {
    if alphas.is_empty() {
        return Err(DpError::InvalidParameter(
            "at least one percentile is needed".into(),
        ));
    }
    let each = epsilon / alphas.len() as f64;
    alphas
        .iter()
        .map(|a| release(hist, candidates, *a, each, max_rows))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opendp::metrics::SymmetricDistance;
    use opendp::transformations::make_quantile_score_candidates;

    fn histogram_of(values: &[f64], candidates: &[f64]) -> Histogram {
        let mut h = Histogram::default();
        for v in values {
            h.add(slot(candidates, *v));
        }
        h
    }

    #[test]
    fn scores_equal_opendps_own_scoring_of_the_data() {
        let candidates = candidates(0.0, 100.0).unwrap();
        // Values on candidates, between them, at both ends, repeated.
        let mut values: Vec<f64> = (0..500).map(|i| (i % 97) as f64 * 1.03).collect();
        values.extend([
            0.0,
            100.0,
            100.0,
            candidates[10],
            candidates[10],
            candidates[511],
        ]);
        for alpha in [0.0, 0.1, 0.25, 0.5, 0.9, 1.0] {
            let ours = scores(&histogram_of(&values, &candidates), alpha).unwrap();
            let theirs = make_quantile_score_candidates(
                VectorDomain::new(AtomDomain::<f64>::new_non_nan()),
                SymmetricDistance,
                candidates.clone(),
                alpha,
            )
            .unwrap()
            .invoke(&values)
            .unwrap();
            assert_eq!(ours, theirs, "alpha {alpha}");
        }
    }

    #[test]
    fn the_grid_is_strictly_increasing_and_ends_at_the_bounds() {
        let c = candidates(-3.5, 7.25).unwrap();
        assert_eq!(c.len(), CANDIDATES);
        assert_eq!((c[0], c[CANDIDATES - 1]), (-3.5, 7.25));
        assert!(c.windows(2).all(|w| w[0] < w[1]));
        assert!(candidates(1.0, 1.0).is_err());
        assert!(candidates(2.0, 1.0).is_err());
        assert!(candidates(0.0, f64::INFINITY).is_err());
        assert!(candidates(1.0, 1.0 + 1e-15).is_err());
    }

    #[test]
    fn slots_tell_equal_from_between() {
        let c = candidates(0.0, 1023.0).unwrap(); // step 1
        assert_eq!(slot(&c, 0.0), 1);
        assert_eq!(slot(&c, 0.5), 2);
        assert_eq!(slot(&c, 1.0), 3);
        assert_eq!(slot(&c, 1023.0), 2 * 1023 + 1);
        assert_eq!(slot(&c, -1.0), 0);
        assert_eq!(slot(&c, 2000.0), 2 * CANDIDATES);
    }

    #[test]
    fn histograms_merge_and_round_trip_in_both_forms() {
        let c = candidates(0.0, 10.0).unwrap();
        let a = histogram_of(&[1.0, 2.0, 2.0, 9.5], &c);
        let b = histogram_of(&[2.0, 3.0], &c);
        let mut m = a.clone();
        m.merge(&b);
        assert_eq!(m.total(), 6);
        assert_eq!(m, histogram_of(&[1.0, 2.0, 2.0, 9.5, 2.0, 3.0], &c));
        let sparse = m.serialize();
        assert_eq!(Histogram::deserialize(&sparse).unwrap(), m);
        let dense = Histogram {
            slots: (0..SLOTS as u64).collect(),
        };
        let bytes = dense.serialize();
        assert_eq!(bytes[2], 0);
        assert_eq!(Histogram::deserialize(&bytes).unwrap(), dense);
        for bad in [
            &b"Q"[..],
            &b"Q\x02\x00"[..],
            &sparse[..sparse.len() - 1],
            &bytes[..100],
        ] {
            assert!(Histogram::deserialize(bad).is_err());
        }
        let mut out_of_range = vec![b'Q', VERSION, 1];
        out_of_range.extend(1u32.to_le_bytes());
        out_of_range.extend((SLOTS as u32).to_le_bytes());
        out_of_range.extend(1u64.to_le_bytes());
        assert!(Histogram::deserialize(&out_of_range).is_err());
    }

    #[test]
    fn the_scale_never_spends_more_than_asked() {
        for (sens, eps) in [(5000u64, 0.1), (10_000, 1.0), (50_000, 0.37)] {
            let scale = noisy_max_scale(sens, eps).unwrap();
            // Scores move both ways when a row comes or goes (not monotonic): twice the
            // sensitivity over the scale, by OpenDP's map.
            assert!(scale >= 2.0 * sens as f64 / eps);
            assert!(scale <= 2.0 * sens as f64 / eps * 1.0001);
        }
    }

    /// The error in rank of the released median, over many releases, against the exponential
    /// mechanism's utility theorem (permute-and-flip is at least as accurate): the chosen
    /// candidate's score exceeds the best by more than `2Δ/ε · (ln|R| + t)` with probability at
    /// most `e^-t`.
    #[test]
    fn median_error_follows_the_mechanism_s_theory() {
        let c = candidates(0.0, 1000.0).unwrap();
        // 2001 values, uniform over [0, 1000]: the median is 500.
        let values: Vec<f64> = (0..=2000).map(|i| i as f64 / 2.0).collect();
        let h = histogram_of(&values, &c);
        let eps = 1.0;
        let s = scores(&h, 0.5).unwrap();
        let best = *s.iter().min().unwrap();
        let sens = score_sensitivity(0.5, 1).unwrap() as f64;
        let runs = 2000;
        let t = 2.0;
        let bound = 2.0 * sens / eps * ((CANDIDATES as f64).ln() + t);
        let mut beyond = 0;
        let mut abs_err = Vec::new();
        for _ in 0..runs {
            let q = release(&h, &c, 0.5, eps, 1).unwrap();
            let idx = c.iter().position(|x| *x == q).unwrap();
            if (s[idx] - best) as f64 > bound {
                beyond += 1;
            }
            abs_err.push((q - 500.0).abs());
        }
        // e^-2 = 0.135 is the theorem's bound; permute-and-flip does far better.
        assert!(
            (beyond as f64) / (runs as f64) <= (-t).exp(),
            "{beyond} of {runs} beyond the bound"
        );
        abs_err.sort_by(|a, b| a.partial_cmp(b).unwrap());
        // With 2001 values and ε = 1 the median is found within a few grid steps (~1 each).
        assert!(
            abs_err[runs / 2] < 5.0,
            "median error {}",
            abs_err[runs / 2]
        );
        assert!(
            abs_err[runs * 99 / 100] < 25.0,
            "99th percentile error {}",
            abs_err[runs * 99 / 100]
        );
    }

    #[test]
    fn quantiles_of_a_skewed_distribution_land_near_the_truth() {
        let c = candidates(0.0, 100.0).unwrap();
        // Exponential-like: value k (0..100) appears about 1000 · 0.95^k times.
        let mut values = Vec::new();
        for k in 0..100 {
            for _ in 0..((1000.0 * 0.95f64.powi(k)) as usize) {
                values.push(k as f64);
            }
        }
        values.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let h = histogram_of(&values, &c);
        let got = release_many(&h, &c, &[0.1, 0.5, 0.9], 3.0, 1).unwrap();
        for (p, q) in [0.1, 0.5, 0.9].iter().zip(&got) {
            let truth = values[((values.len() - 1) as f64 * p) as usize];
            assert!((q - truth).abs() <= 2.0, "p {p}: {q} against {truth}");
        }
        assert!(release_many(&h, &c, &[], 1.0, 1).is_err());
        assert!(release(&h, &c, 1.5, 1.0, 1).is_err());
        assert!(release(&h, &c, 0.5, 0.0, 1).is_err());
    }

    #[test]
    fn an_empty_histogram_still_releases_a_candidate() {
        let c = candidates(-1.0, 1.0).unwrap();
        let q = release(&Histogram::default(), &c, 0.5, 1.0, 1).unwrap();
        assert!(c.contains(&q));
    }
}
