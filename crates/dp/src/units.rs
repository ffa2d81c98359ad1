//! Contribution bounding per privacy unit, shared by the aggregate states (`state`, `bounded`):
//! each unit's first `max_rows` clamped values, by a 64-bit hash of the unit (two units that
//! collide share one cap, which only lowers what they contribute), merged across partial states
//! under the same cap, and their binary form.

use crate::DpError;
use std::collections::HashMap;

/// Each unit's kept values, by the unit's hash.
pub type Kept<T> = HashMap<u64, Vec<T>>;

/// Keeps `value` for `unit` unless the unit already has `max_rows` values.
pub fn keep<T>(units: &mut Option<Kept<T>>, unit: u64, value: T, max_rows: i64) {
    let kept = units
        .get_or_insert_with(HashMap::new)
        .entry(unit)
        .or_default();
    if (kept.len() as i64) < max_rows {
        kept.push(value);
    }
}

/// Adds a partial state's kept values, each unit still capped at `cap`.
pub fn merge<T>(mine: &mut Option<Kept<T>>, theirs: Option<Kept<T>>, cap: usize) {
    if let Some(theirs) = theirs {
        let mine = mine.get_or_insert_with(HashMap::new);
        for (u, vals) in theirs {
            let kept = mine.entry(u).or_default();
            kept.extend(vals.into_iter().take(cap.saturating_sub(kept.len())));
        }
    }
}

/// Appends the units: a flag, then the number of units and each unit's hash, count and values.
pub fn encode<T: Copy>(units: &Option<Kept<T>>, out: &mut Vec<u8>, to_le: impl Fn(T) -> [u8; 8]) {
    match units {
        None => out.push(0),
        Some(units) => {
            out.push(1);
            out.extend((units.len() as u64).to_le_bytes());
            for (u, vals) in units {
                out.extend(u.to_le_bytes());
                out.extend((vals.len() as u32).to_le_bytes());
                for v in vals {
                    out.extend(to_le(*v));
                }
            }
        }
    }
}

/// Reads what `encode` wrote.
pub fn decode<T>(
    r: &mut Reader<'_>,
    from_le: impl Fn([u8; 8]) -> T,
) -> Result<Option<Kept<T>>, DpError> {
    match r.take::<1>()?[0] {
        0 => Ok(None),
        1 => {
            let n = u64::from_le_bytes(r.take()?);
            let mut units = HashMap::with_capacity(n.min(1 << 20) as usize);
            for _ in 0..n {
                let u = u64::from_le_bytes(r.take()?);
                let len = u32::from_le_bytes(r.take()?);
                let mut vals = Vec::with_capacity(len.min(1 << 16) as usize);
                for _ in 0..len {
                    vals.push(from_le(r.take()?));
                }
                units.insert(u, vals);
            }
            Ok(Some(units))
        }
        _ => Err(DpError::CorruptState("bad unit flag")),
    }
}

/// Reads a serialized state front to back, refusing truncation.
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    pub fn take<const N: usize>(&mut self) -> Result<[u8; N], DpError> {
        Ok(self.slice(N)?.try_into().expect("N bytes"))
    }

    pub fn slice(&mut self, n: usize) -> Result<&'a [u8], DpError> {
        if self.0.len() < n {
            return Err(DpError::CorruptState("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    /// Whether every byte was read.
    pub fn done(&self) -> bool {
        self.0.is_empty()
    }
}
