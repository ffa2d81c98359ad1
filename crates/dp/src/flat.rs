//! The fixed-size state of the dp aggregates without privacy units (the SQL type
//! `encml.dp_state`): parameters, row count and exact sum in 96 bytes, no pointers.
//!
//! Why a second form of [`State`]: Citus combines partial states from its shards only for
//! aggregates whose state type is a real type with text input and output (not `internal`), and
//! Postgres's parallel query copies such states as plain bytes. Without privacy units a state
//! needs no more than this, so these aggregates add up on each shard and send one state each.
//!
//! Layout (all little-endian, alignment 1, docs/formats.md):
//! ```text
//!  0  u8       version (2)
//!  1  u8       value type: 'f' float8, 'i' bigint
//!  2  u8       flags: 1 = parameters set, 2 = delta set
//!  3  u8       reserved (0)
//!  4  u32      number of cached raw parameter arguments (0 outside one backend's aggregate)
//!  8  f64      epsilon
//! 16  f64      delta
//! 24  [8]      lower bound (the value type)
//! 32  [8]      upper bound
//! 40  [u64;4]  cached raw parameter arguments (a fast path: a row with the same arguments
//!              skips re-validating them)
//! 72  i64      rows counted
//! 80  [16]     exact sum, i128: the sum for bigint; for float8 in units of
//!              max(|lower|, |upper|) / 2^62 (`state::FixedAcc`)
//! ```

use crate::params::Params;
use crate::state::{Num, State};
use crate::DpError;

/// 2: float sums in fixed point (`state::FixedAcc`).
pub const VERSION: u8 = 2;
const HAS_PARAMS: u8 = 1;
const HAS_DELTA: u8 = 2;
/// How many raw parameter arguments the cache holds (bounds, epsilon, delta).
pub const CACHED_ARGS: usize = 4;

/// One state, exactly as stored in an `encml.dp_state` value. Every bit pattern is a valid
/// `Flat` (only bytes and byte arrays), so it may be viewed in place over any 96 bytes; the
/// contents are validated when read as a [`State`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Flat {
    version: u8,
    tag: u8,
    flags: u8,
    reserved: u8,
    cached_len: [u8; 4],
    epsilon: [u8; 8],
    delta: [u8; 8],
    lower: [u8; 8],
    upper: [u8; 8],
    cached: [[u8; 8]; CACHED_ARGS],
    count: [u8; 8],
    sum: [u8; 16],
}

pub const LEN: usize = std::mem::size_of::<Flat>();
const _: () = assert!(LEN == 96 && std::mem::align_of::<Flat>() == 1);

impl Flat {
    /// An empty state (no rows, no parameters yet) for values of type `T`.
    pub fn empty<T: Num>() -> Flat {
        Flat {
            version: VERSION,
            tag: T::TAG,
            flags: 0,
            reserved: 0,
            cached_len: [0; 4],
            epsilon: [0; 8],
            delta: [0; 8],
            lower: [0; 8],
            upper: [0; 8],
            cached: [[0; 8]; CACHED_ARGS],
            count: [0; 8],
            sum: [0; 16],
        }
    }

    /// Views `bytes` as a state of type `T`, checking the version and the value type.
    pub fn view<T: Num>(bytes: &mut [u8; LEN]) -> Result<&mut Flat, DpError> {
        // (Flat is Pod: size LEN, alignment 1, every bit pattern valid; checked by bytemuck.)
        let flat: &mut Flat = bytemuck::must_cast_mut(bytes);
        flat.check::<T>()?;
        Ok(flat)
    }

    pub fn as_bytes(&self) -> &[u8; LEN] {
        bytemuck::must_cast_ref(self)
    }

    fn check<T: Num>(&self) -> Result<(), DpError> {
        if self.version != VERSION || self.reserved != 0 {
            return Err(DpError::CorruptState("unknown dp_state version"));
        }
        if self.tag != T::TAG {
            return Err(DpError::CorruptState("dp_state of another value type"));
        }
        if self.flags & !(HAS_PARAMS | HAS_DELTA) != 0 {
            return Err(DpError::CorruptState("bad dp_state flags"));
        }
        Ok(())
    }

    /// The value type of a state: `b'f'` or `b'i'`.
    pub fn tag(&self) -> u8 {
        self.tag
    }

    pub fn has_params(&self) -> bool {
        self.flags & HAS_PARAMS != 0
    }

    /// The state as a [`State`] (parameters validated).
    pub fn state<T: Num>(&self) -> Result<State<T>, DpError> {
        self.check::<T>()?;
        let params = if self.has_params() {
            let delta = (self.flags & HAS_DELTA != 0).then(|| f64::from_le_bytes(self.delta));
            Some(Params::new(
                f64::from_le_bytes(self.epsilon),
                delta,
                T::from_le(self.lower),
                T::from_le(self.upper),
                1,
            )?)
        } else {
            None
        };
        Ok(State {
            params,
            count: i64::from_le_bytes(self.count),
            sum: T::acc_from_le(self.sum),
            units: None,
        })
    }

    /// Stores `state`, which must not bound contributions per privacy unit.
    pub fn set_state<T: Num>(&mut self, state: &State<T>) -> Result<(), DpError> {
        if state.units.is_some() || state.params.is_some_and(|p| p.max_rows != 1) {
            return Err(DpError::InvalidParameter(
                "a dp_state holds no privacy units".into(),
            ));
        }
        let cached = (self.cached_len, self.cached);
        *self = Flat::empty::<T>();
        (self.cached_len, self.cached) = cached;
        if let Some(p) = state.params {
            self.flags = HAS_PARAMS;
            self.epsilon = p.loss.epsilon.to_le_bytes();
            if let Some(d) = p.loss.delta {
                self.flags |= HAS_DELTA;
                self.delta = d.to_le_bytes();
            }
            self.lower = p.lower.to_le();
            self.upper = p.upper.to_le();
        }
        self.count = state.count.to_le_bytes();
        self.sum = T::acc_to_le(state.sum);
        Ok(())
    }

    /// Adds one row (`value` clamped to the fixed bounds): the per-row path once the caller knows
    /// the row's parameters equal the fixed ones.
    #[inline]
    pub fn add_under_fixed_params<T: Num>(&mut self, value: T) -> Result<(), DpError> {
        if !self.has_params() {
            return Err(DpError::InvalidParameter("no parameters fixed yet".into()));
        }
        if value.is_nan() {
            return Ok(()); // ignored like NULL (see `State::add_under_fixed_params`)
        }
        let (lower, upper) = (T::from_le(self.lower), T::from_le(self.upper));
        let v = value.clamp_to(lower, upper);
        let mut sum = T::acc_from_le(self.sum);
        T::add(&mut sum, v, T::magnitude(lower, upper));
        self.sum = T::acc_to_le(sum);
        self.count = i64::from_le_bytes(self.count)
            .saturating_add(1)
            .to_le_bytes();
        Ok(())
    }

    /// Adds one row under `params` (fixing them on the first row, checking them on later ones).
    pub fn add<T: Num>(&mut self, params: Params<T>, value: T) -> Result<(), DpError> {
        let mut s = self.state::<T>()?;
        s.add(params, value, None)?;
        self.set_state(&s)
    }

    /// Merges another partial state of the same group.
    pub fn merge<T: Num>(&mut self, other: &Flat) -> Result<(), DpError> {
        let mut s = self.state::<T>()?;
        s.merge(other.state::<T>()?)?;
        self.set_state(&s)
    }

    /// The raw parameter arguments the parameters were last checked against, if cached.
    pub fn cached_args(&self) -> &[[u8; 8]] {
        let n = (u32::from_le_bytes(self.cached_len) as usize).min(CACHED_ARGS);
        &self.cached[..n]
    }

    /// Whether the cache holds exactly `args` (raw datums), compared word by word: this runs
    /// for every row.
    #[inline]
    pub fn cached_args_equal(&self, args: &[usize]) -> bool {
        let n = u32::from_le_bytes(self.cached_len) as usize;
        n == args.len()
            && n <= CACHED_ARGS
            && (0..n).all(|i| u64::from_le_bytes(self.cached[i]) == args[i] as u64)
    }

    pub fn set_cached_args(&mut self, args: &[[u8; 8]]) {
        let n = args.len().min(CACHED_ARGS);
        self.cached_len = (n as u32).to_le_bytes();
        self.cached = [[0; 8]; CACHED_ARGS];
        self.cached[..n].copy_from_slice(&args[..n]);
    }

    /// The text form (`dp_state` output): "dp1:" and the 96 bytes in hex, without the argument
    /// cache, which means something only inside one aggregate.
    pub fn to_text(&self) -> String {
        let mut f = *self;
        f.set_cached_args(&[]);
        let mut s = String::with_capacity(4 + 2 * LEN);
        s.push_str("dp1:");
        for b in f.as_bytes() {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// Parses the text form and validates it as a state of either value type.
    pub fn from_text(text: &str) -> Result<Flat, DpError> {
        let hex = text
            .strip_prefix("dp1:")
            // Hex digits only: from_str_radix also takes a sign ("+2"), which made one state
            // readable from several texts (found by fuzzing).
            .filter(|h| h.len() == 2 * LEN && h.bytes().all(|c| c.is_ascii_hexdigit()))
            .ok_or(DpError::CorruptState("not a dp_state"))?;
        let mut bytes = [0u8; LEN];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| DpError::CorruptState("not a dp_state"))?;
        }
        let flat: Flat = bytemuck::must_cast(bytes);
        match flat.tag {
            b'f' => flat.state::<f64>().map(|_| ())?,
            _ => flat.state::<i64>().map(|_| ())?,
        }
        if !flat.cached_args().is_empty() {
            return Err(DpError::CorruptState("a dp_state in text carries no cache"));
        }
        Ok(flat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::release_sum_i64;

    fn p<T: Num>(lower: T, upper: T) -> Params<T> {
        Params::new(0.5, Some(1e-6), lower, upper, 1).unwrap()
    }

    #[test]
    fn adds_like_the_general_state() {
        let mut flat = Flat::empty::<f64>();
        let mut state = State::<f64>::default();
        for v in [-5.0, 0.25, 3.0, 100.0, 0.1] {
            if flat.has_params() {
                flat.add_under_fixed_params(v).unwrap();
            } else {
                flat.add(p(0.0, 10.0), v).unwrap();
            }
            state.add(p(0.0, 10.0), v, None).unwrap();
        }
        let back = flat.state::<f64>().unwrap();
        assert_eq!(back.params, state.params);
        assert_eq!(back.count, 5);
        assert_eq!(back.sum, state.sum);
    }

    #[test]
    fn merge_checks_parameters_and_adds_exactly() {
        let mut a = Flat::empty::<i64>();
        let mut b = Flat::empty::<i64>();
        a.add(p(0i64, 100), 7).unwrap();
        b.add(p(0i64, 100), i64::MAX).unwrap(); // clamped to 100
        let empty = Flat::empty::<i64>();
        a.merge::<i64>(&empty).unwrap();
        a.merge::<i64>(&b).unwrap();
        let s = a.state::<i64>().unwrap();
        assert_eq!((s.count, s.sum), (2, 107));
        assert!(release_sum_i64(&s).unwrap().is_some());
        let mut c = Flat::empty::<i64>();
        c.add(Params::new(1.0, None, 0i64, 100, 1).unwrap(), 1)
            .unwrap();
        assert_eq!(
            a.merge::<i64>(&c),
            Err(DpError::ParameterChanged("epsilon"))
        );
        // An empty state takes the other's parameters.
        let mut e = Flat::empty::<i64>();
        e.merge::<i64>(&c).unwrap();
        assert!(e.has_params());
    }

    #[test]
    fn text_round_trips_and_refuses_damage() {
        let mut f = Flat::empty::<f64>();
        f.add(p(-1.0, 1.0), 0.5).unwrap();
        f.set_cached_args(&[[1; 8]]);
        let text = f.to_text();
        let back = Flat::from_text(&text).unwrap();
        assert_eq!(back.state::<f64>().unwrap().sum.value(1.0), 0.5);
        assert!(back.cached_args().is_empty());
        assert!(Flat::from_text(&text[..text.len() - 2]).is_err());
        assert!(Flat::from_text(&text.replacen("dp1:02", "dp1:01", 1)).is_err()); // version 1
        assert!(Flat::from_text(&text.replacen("dp1:0266", "dp1:0269", 1)).is_ok()); // 'i'
        assert!(Flat::from_text(&text.replacen("dp1:026603", "dp1:02660b", 1)).is_err());
        // Parameters are validated: epsilon 0 is refused.
        let mut bad = back;
        bad.epsilon = 0f64.to_le_bytes();
        assert!(Flat::from_text(&bad.to_text()).is_err());
        assert!(Flat::from_text("dp1:zz").is_err());
        // Found by fuzzing: a sign inside a hex pair parsed ("+2" as 0x02).
        assert!(Flat::from_text(&text.replacen("dp1:02", "dp1:+2", 1)).is_err());
    }

    #[test]
    fn view_refuses_another_value_type() {
        let mut bytes = *Flat::empty::<f64>().as_bytes();
        assert!(Flat::view::<i64>(&mut bytes).is_err());
        assert!(Flat::view::<f64>(&mut bytes).is_ok());
    }
}
