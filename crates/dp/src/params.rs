//! The parameters of one aggregate call, fixed by its first row and checked on every other.

use crate::mechanism::Loss;
use crate::state::Num;
use crate::DpError;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params<T> {
    pub loss: Loss,
    /// Values are clamped to [lower, upper]; the sensitivity follows from them.
    pub lower: T,
    pub upper: T,
    /// The most rows one privacy unit contributes (1 when each row is its own unit).
    pub max_rows: i64,
}

impl<T: Num> Params<T> {
    pub fn new(
        epsilon: f64,
        delta: Option<f64>,
        lower: T,
        upper: T,
        max_rows: i64,
    ) -> Result<Self, DpError> {
        let loss = Loss { epsilon, delta };
        loss.check()?;
        if !lower.is_finite() || !upper.is_finite() || lower > upper {
            return Err(DpError::InvalidParameter(format!(
                "bounds must be finite with lower <= upper, not [{lower:?}, {upper:?}]"
            )));
        }
        if max_rows < 1 {
            return Err(DpError::InvalidParameter(format!(
                "max_rows_per_unit must be at least 1, not {max_rows}"
            )));
        }
        Ok(Params {
            loss,
            lower,
            upper,
            max_rows,
        })
    }

    /// Sets `slot` from the first row and checks every later row against it.
    pub fn fix(slot: &mut Option<Self>, new: Self) -> Result<(), DpError> {
        match slot {
            None => {
                *slot = Some(new);
                Ok(())
            }
            Some(old) => old.same_as(&new),
        }
    }

    pub fn same_as(&self, other: &Self) -> Result<(), DpError> {
        if self.loss.epsilon.to_bits() != other.loss.epsilon.to_bits() {
            return Err(DpError::ParameterChanged("epsilon"));
        }
        if self.loss.delta.map(f64::to_bits) != other.loss.delta.map(f64::to_bits) {
            return Err(DpError::ParameterChanged("delta"));
        }
        if self.lower != other.lower || self.upper != other.upper {
            return Err(DpError::ParameterChanged("the bounds"));
        }
        if self.max_rows != other.max_rows {
            return Err(DpError::ParameterChanged("max_rows_per_unit"));
        }
        Ok(())
    }

    /// The parameters as bytes, equal exactly when `same_as` holds: what a query's executor
    /// start fixed, compared with what a group's rows fixed.
    pub fn key(&self) -> [u8; 40] {
        let mut k = [0u8; 40];
        k[..8].copy_from_slice(&self.loss.epsilon.to_bits().to_le_bytes());
        k[8..16].copy_from_slice(&self.loss.delta.unwrap_or(f64::NAN).to_bits().to_le_bytes());
        k[16..24].copy_from_slice(&self.lower.to_le());
        k[24..32].copy_from_slice(&self.upper.to_le());
        k[32..].copy_from_slice(&self.max_rows.to_le_bytes());
        k
    }

    /// The parameters of a `key` (validated as `new` validates them).
    pub fn from_key(key: &[u8; 40]) -> Result<Self, DpError> {
        let f = |r: std::ops::Range<usize>| -> [u8; 8] { key[r].try_into().expect("8 bytes") };
        let delta = f64::from_bits(u64::from_le_bytes(f(8..16)));
        Params::new(
            f64::from_bits(u64::from_le_bytes(f(0..8))),
            (!delta.is_nan()).then_some(delta),
            T::from_le(f(16..24)),
            T::from_le(f(24..32)),
            i64::from_le_bytes(f(32..40)),
        )
    }

    /// The parameters of one of `groups` groups a privacy unit may contribute to: the loss
    /// split evenly between them (basic composition: the unit's groups together lose at most
    /// the whole), the rest unchanged.
    pub fn per_group(&self, groups: u32) -> Self {
        Params {
            loss: self.split(groups.max(1)),
            ..*self
        }
    }

    /// The loss split evenly in `parts` (for an average: a sum and a count).
    pub fn split(&self, parts: u32) -> Loss {
        Loss {
            epsilon: self.loss.epsilon / parts as f64,
            delta: self.loss.delta.map(|d| d / parts as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_equal_exactly_when_the_parameters_are() {
        let a = Params::new(1.0, None, 0.0f64, 10.0, 1).unwrap();
        let b = Params::new(1.0, None, 0.0f64, 10.0, 1).unwrap();
        assert_eq!(a.key(), b.key());
        assert_eq!(Params::<f64>::from_key(&a.key()), Ok(a));
        let g = Params::new(0.5, Some(1e-6), -3i64, 9, 4).unwrap();
        assert_eq!(Params::<i64>::from_key(&g.key()), Ok(g));
        for other in [
            Params::new(1.5, None, 0.0f64, 10.0, 1).unwrap(),
            Params::new(1.0, Some(1e-6), 0.0f64, 10.0, 1).unwrap(),
            Params::new(1.0, None, -1.0f64, 10.0, 1).unwrap(),
            Params::new(1.0, None, 0.0f64, 11.0, 1).unwrap(),
            Params::new(1.0, None, 0.0f64, 10.0, 2).unwrap(),
        ] {
            assert_ne!(a.key(), other.key());
            assert!(a.same_as(&other).is_err());
        }
    }
}
