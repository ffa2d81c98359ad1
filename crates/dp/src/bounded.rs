//! The state of the float aggregates beyond count and sum (quantiles, variance): the exact
//! summary of one group (`Exact`: a quantile histogram, moments), with contribution bounding per
//! privacy unit as `state::State` does it (each unit's first `max_rows` clamped values, by a hash
//! of the unit; the summary is built from them at the end), mergeable and serializable.
//! Noise is added only by the `release_*` functions, once, from the final state.

use crate::mechanism::Loss;
use crate::moments::{self, Moments};
use crate::params::Params;
use crate::quantile::{self, Histogram};
use crate::units::{self, Kept, Reader};
use crate::DpError;

/// An exact summary of clamped values.
pub trait Exact: Default + Clone + std::fmt::Debug + PartialEq {
    /// What adding a value needs from the parameters, computed once per state.
    type Context: Clone + std::fmt::Debug;
    const TAG: u8;
    fn context(lower: f64, upper: f64) -> Result<Self::Context, DpError>;
    /// Adds a value already clamped to the bounds.
    fn add(&mut self, value: f64, context: &Self::Context);
    fn merge(&mut self, other: &Self);
    fn encode(&self) -> Vec<u8>;
    fn decode(bytes: &[u8]) -> Result<Self, DpError>;
}

impl Exact for Histogram {
    /// The candidate grid.
    type Context = std::sync::Arc<Vec<f64>>;
    const TAG: u8 = b'q';
    fn context(lower: f64, upper: f64) -> Result<Self::Context, DpError> {
        quantile::candidates(lower, upper).map(std::sync::Arc::new)
    }
    fn add(&mut self, value: f64, candidates: &Self::Context) {
        Histogram::add(self, quantile::slot(candidates, value));
    }
    fn merge(&mut self, other: &Self) {
        Histogram::merge(self, other);
    }
    fn encode(&self) -> Vec<u8> {
        self.serialize()
    }
    fn decode(bytes: &[u8]) -> Result<Self, DpError> {
        Histogram::deserialize(bytes)
    }
}

impl Exact for Moments {
    /// The midpoint and half-width of the bounds.
    type Context = (f64, f64);
    const TAG: u8 = b'm';
    fn context(lower: f64, upper: f64) -> Result<Self::Context, DpError> {
        moments::centre(lower, upper)
    }
    fn add(&mut self, value: f64, (mid, half): &Self::Context) {
        self.add_centred((value - mid).clamp(-half, *half), *half);
    }
    fn merge(&mut self, other: &Self) {
        Moments::merge(self, other);
    }
    fn encode(&self) -> Vec<u8> {
        self.serialize()
    }
    fn decode(bytes: &[u8]) -> Result<Self, DpError> {
        Moments::deserialize(bytes)
    }
}

/// One group's exact state.
#[derive(Debug, Clone)]
pub struct Bounded<A: Exact> {
    pub params: Option<Params<f64>>,
    /// The percentiles asked for (quantile aggregates; empty otherwise), fixed like the
    /// parameters.
    pub alphas: Vec<f64>,
    /// Without privacy units: the summary of every row.
    pub exact: A,
    /// With privacy units: each unit's first `max_rows` clamped values.
    pub units: Option<Kept<f64>>,
    /// Rows summarized in `exact` (to refuse mixing rows with and without a unit).
    pub rows: u64,
    context: Option<A::Context>,
}

impl<A: Exact> Default for Bounded<A> {
    fn default() -> Self {
        Bounded {
            params: None,
            alphas: Vec::new(),
            exact: A::default(),
            units: None,
            rows: 0,
            context: None,
        }
    }
}

/// 1: the first format.
const VERSION: u8 = 1;

impl<A: Exact> Bounded<A> {
    /// A state without rows under `params` and `alphas` (validated): what an empty group
    /// releases.
    pub fn empty(params: Params<f64>, alphas: &[f64]) -> Result<Self, DpError> {
        check_alphas(alphas)?;
        Ok(Bounded {
            params: Some(params),
            alphas: alphas.to_vec(),
            context: Some(A::context(params.lower, params.upper)?),
            ..Bounded::default()
        })
    }

    /// Adds one row: `value` clamped to the bounds, under `unit` if contributions are bounded
    /// per privacy unit; the parameters and percentiles must be those of the first row.
    pub fn add(
        &mut self,
        params: Params<f64>,
        alphas: &[f64],
        value: f64,
        unit: Option<u64>,
    ) -> Result<(), DpError> {
        Params::fix(&mut self.params, params)?;
        if self.context.is_none() {
            check_alphas(alphas)?;
            self.alphas = alphas.to_vec();
            self.context = Some(A::context(params.lower, params.upper)?);
        } else if !same_alphas(&self.alphas, alphas) {
            return Err(DpError::ParameterChanged("the percentiles"));
        }
        self.add_under_fixed_params(value, unit)
    }

    /// `add` for a row whose parameters the caller knows to equal the fixed ones.
    pub fn add_under_fixed_params(&mut self, value: f64, unit: Option<u64>) -> Result<(), DpError> {
        let (Some(params), Some(context)) = (self.params, self.context.as_ref()) else {
            return Err(DpError::InvalidParameter("no parameters fixed yet".into()));
        };
        // Total on every input: NaN is ignored like NULL, infinities are clamped.
        if value.is_nan() {
            return Ok(());
        }
        let v = value.clamp(params.lower, params.upper);
        match unit {
            None => {
                if self.units.is_some() {
                    return Err(DpError::ParameterChanged("the privacy unit (NULL or not)"));
                }
                self.rows = self.rows.saturating_add(1);
                self.exact.add(v, context);
            }
            Some(u) => {
                if self.rows > 0 {
                    return Err(DpError::ParameterChanged("the privacy unit (NULL or not)"));
                }
                units::keep(&mut self.units, u, v, params.max_rows);
            }
        }
        Ok(())
    }

    /// Merges a partial state of the same group (parallel aggregation, Citus shards).
    pub fn merge(&mut self, other: Bounded<A>) -> Result<(), DpError> {
        match (&self.params, other.params) {
            (_, None) => return Ok(()),
            (None, Some(_)) => {
                *self = other;
                return Ok(());
            }
            (Some(a), Some(b)) => a.same_as(&b)?,
        }
        if !same_alphas(&self.alphas, &other.alphas) {
            return Err(DpError::ParameterChanged("the percentiles"));
        }
        if (self.rows > 0 && other.units.is_some()) || (other.rows > 0 && self.units.is_some()) {
            return Err(DpError::ParameterChanged("the privacy unit (NULL or not)"));
        }
        let cap = self.params.map(|p| p.max_rows).unwrap_or(1) as usize;
        self.rows = self.rows.saturating_add(other.rows);
        self.exact.merge(&other.exact);
        units::merge(&mut self.units, other.units, cap);
        Ok(())
    }

    /// The state as one of `groups` groups a privacy unit may contribute to releases it: its
    /// totals, under the parameters `Params::per_group` gives.
    pub fn per_group(&self, groups: u32) -> Result<Self, DpError> {
        Ok(Bounded {
            params: self.params.map(|p| p.per_group(groups)),
            alphas: self.alphas.clone(),
            exact: self.totals()?,
            units: None,
            rows: self.rows,
            context: self.context.clone(),
        })
    }

    /// The summary of the bounded rows: built from the units' kept values when units are used.
    pub fn totals(&self) -> Result<A, DpError> {
        match &self.units {
            None => Ok(self.exact.clone()),
            Some(units) => {
                let p = self.params.expect("units are kept only under parameters");
                let context = match &self.context {
                    Some(c) => c.clone(),
                    None => A::context(p.lower, p.upper)?,
                };
                let mut exact = A::default();
                for v in units.values().flatten() {
                    exact.add(*v, &context);
                }
                Ok(exact)
            }
        }
    }

    pub fn serialize(&self) -> Vec<u8> {
        let mut out = vec![b'B', VERSION, A::TAG];
        match &self.params {
            None => out.push(0),
            Some(p) => {
                out.push(1);
                out.extend(p.key());
            }
        }
        out.extend((self.alphas.len() as u32).to_le_bytes());
        for a in &self.alphas {
            out.extend(a.to_le_bytes());
        }
        out.extend(self.rows.to_le_bytes());
        let exact = self.exact.encode();
        out.extend((exact.len() as u32).to_le_bytes());
        out.extend(exact);
        units::encode(&self.units, &mut out, f64::to_le_bytes);
        out
    }

    pub fn deserialize(bytes: &[u8]) -> Result<Self, DpError> {
        let mut r = Reader(bytes);
        if r.take::<3>()? != [b'B', VERSION, A::TAG] {
            return Err(DpError::CorruptState("unknown format or version"));
        }
        let params = match r.take::<1>()?[0] {
            0 => None,
            1 => Some(Params::<f64>::from_key(&r.take::<40>()?)?),
            _ => return Err(DpError::CorruptState("bad parameter flag")),
        };
        let n = u32::from_le_bytes(r.take()?) as usize;
        if n > 1024 {
            return Err(DpError::CorruptState("too many percentiles"));
        }
        let alphas: Vec<f64> = (0..n)
            .map(|_| r.take().map(f64::from_le_bytes))
            .collect::<Result<_, _>>()?;
        check_alphas(&alphas)?;
        let rows = u64::from_le_bytes(r.take()?);
        let len = u32::from_le_bytes(r.take()?) as usize;
        let exact = A::decode(r.slice(len)?)?;
        let units = units::decode(&mut r, f64::from_le_bytes)?;
        if !r.done() {
            return Err(DpError::CorruptState("trailing bytes"));
        }
        let context = match params {
            Some(p) => Some(A::context(p.lower, p.upper)?),
            None => None,
        };
        Ok(Bounded {
            params,
            alphas,
            exact,
            units,
            rows,
            context,
        })
    }
}

/// Percentiles in [0, 1], finite (NaN is not one).
pub fn check_alphas(alphas: &[f64]) -> Result<(), DpError> {
    match alphas.iter().find(|a| !(0.0..=1.0).contains(*a)) {
        Some(a) => Err(DpError::InvalidParameter(format!(
            "percentiles must be in [0, 1], not {a}"
        ))),
        None => Ok(()),
    }
}

/// The same percentiles, bit for bit.
pub fn same_alphas(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// The pure ε-DP loss a quantile release uses: the exponential mechanism has no δ to spend.
fn pure_loss(loss: Loss) -> Result<f64, DpError> {
    match loss.delta {
        Some(d) if d > 0.0 => Err(DpError::InvalidParameter(
            "dp_percentile is pure epsilon-DP: its delta must be 0".into(),
        )),
        _ => Ok(loss.epsilon),
    }
}

/// The noisy percentiles of the group (ε split evenly between them): each one of the grid's
/// candidates (`quantile`).
pub fn release_percentiles(state: &Bounded<Histogram>) -> Result<Option<Vec<f64>>, DpError> {
    let Some(p) = state.params else {
        return Ok(None);
    };
    let epsilon = pure_loss(p.loss)?;
    let candidates = quantile::candidates(p.lower, p.upper)?;
    quantile::release_many(
        &state.totals()?,
        &candidates,
        &state.alphas,
        epsilon,
        p.max_rows,
    )
    .map(Some)
}

/// The noisy population variance (`moments`).
pub fn release_var_pop(state: &Bounded<Moments>) -> Result<Option<f64>, DpError> {
    let Some(p) = state.params else {
        return Ok(None);
    };
    state
        .totals()?
        .release_variance(p.lower, p.upper, p.loss, p.max_rows)
        .map(Some)
}

/// The noisy population standard deviation (`moments`).
pub fn release_stddev_pop(state: &Bounded<Moments>) -> Result<Option<f64>, DpError> {
    Ok(release_var_pop(state)?.map(f64::sqrt))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(max_rows: i64) -> Params<f64> {
        Params::new(1.0, None, 0.0, 100.0, max_rows).unwrap()
    }

    #[test]
    fn a_unit_contributes_at_most_max_rows_to_a_histogram() {
        let mut s = Bounded::<Histogram>::default();
        for _ in 0..1000 {
            s.add(params(2), &[0.5], 90.0, Some(7)).unwrap();
        }
        s.add(params(2), &[0.5], 10.0, Some(8)).unwrap();
        assert_eq!(s.totals().unwrap().total(), 3);
        // Parameters and percentiles are fixed by the first row.
        assert!(s.add(params(3), &[0.5], 1.0, Some(9)).is_err());
        assert!(s.add(params(2), &[0.4], 1.0, Some(9)).is_err());
        assert!(s.add(params(2), &[0.5], 1.0, None).is_err());
    }

    #[test]
    fn merge_keeps_the_cap_and_round_trips() {
        let p = params(3);
        let mut a = Bounded::<Moments>::default();
        let mut b = Bounded::<Moments>::default();
        for _ in 0..2 {
            a.add(p, &[], 1.0, Some(1)).unwrap();
            b.add(p, &[], 1.0, Some(1)).unwrap();
        }
        b.add(p, &[], 40.0, Some(2)).unwrap();
        let b2 = Bounded::<Moments>::deserialize(&b.serialize()).unwrap();
        a.merge(b2).unwrap();
        assert_eq!(a.totals().unwrap().count, 4); // unit 1 capped at 3, unit 2 once
        let again = Bounded::<Moments>::deserialize(&a.serialize()).unwrap();
        assert_eq!(again.totals().unwrap(), a.totals().unwrap());
        let mut h = Bounded::<Histogram>::default();
        for v in [1.0, 50.0, 99.0] {
            h.add(p, &[0.1, 0.9], v, None).unwrap();
        }
        let h2 = Bounded::<Histogram>::deserialize(&h.serialize()).unwrap();
        assert_eq!(h2.totals().unwrap(), h.totals().unwrap());
        assert_eq!(h2.alphas, vec![0.1, 0.9]);
        // A histogram state is not a moments state, and damaged bytes are refused.
        assert!(Bounded::<Moments>::deserialize(&h.serialize()).is_err());
        let bytes = h.serialize();
        for cut in [0, 3, 10, bytes.len() - 1] {
            assert!(Bounded::<Histogram>::deserialize(&bytes[..cut]).is_err());
        }
        let mut mixed = Bounded::<Histogram>::default();
        mixed.add(p, &[0.1, 0.9], 1.0, Some(3)).unwrap();
        assert!(mixed.merge(h).is_err());
    }

    #[test]
    fn releases_follow_the_parameters() {
        let mut s = Bounded::<Histogram>::default();
        for i in 0..1000 {
            s.add(params(1), &[0.25, 0.75], (i % 100) as f64, None)
                .unwrap();
        }
        let q = release_percentiles(&s).unwrap().unwrap();
        assert_eq!(q.len(), 2);
        assert!(q[0] < q[1], "{q:?}");
        let gaussian = Params::new(1.0, Some(1e-6), 0.0, 100.0, 1).unwrap();
        let mut g = Bounded::<Histogram>::default();
        g.add(gaussian, &[0.5], 1.0, None).unwrap();
        assert!(release_percentiles(&g).is_err());
        assert!(check_alphas(&[0.5, 1.5]).is_err());
        assert!(check_alphas(&[f64::NAN]).is_err());
        let mut m = Bounded::<Moments>::default();
        for i in 0..1000 {
            m.add(params(1), &[], (i % 100) as f64, None).unwrap();
        }
        let v = release_var_pop(&m).unwrap().unwrap();
        assert!((0.0..=2500.0).contains(&v));
        assert_eq!(release_var_pop(&Bounded::default()).unwrap(), None);
    }
}
