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

    /// The loss split evenly in `parts` (for an average: a sum and a count).
    pub fn split(&self, parts: u32) -> Loss {
        Loss {
            epsilon: self.loss.epsilon / parts as f64,
            delta: self.loss.delta.map(|d| d / parts as f64),
        }
    }
}
