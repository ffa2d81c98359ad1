//! Differential-privacy aggregate states (encml-dp): the text form `flat::Flat::from_text`
//! (what `encml.dp_state`'s input function takes), the 96-byte form `Flat::view`/`state`/
//! `merge`/`add_under_fixed_params`, the `internal` states' `state::State::deserialize` (the
//! parallel-aggregate deserial functions), and the releases on what they hold.
//!
//! Checks: an accepted text is the canonical text of its state (hex case aside); a
//! deserialized state serializes to one that deserializes to the same state; merging and
//! releasing a valid state gives a value or an error.

use encml_dp::flat::{self, Flat};
use encml_dp::state::{self, Num, State};
use std::collections::BTreeMap;

pub fn init() {}

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(f) = Flat::from_text(&text) {
        assert!(
            f.to_text().eq_ignore_ascii_case(&text),
            "an accepted dp_state text is canonical: {text:?} -> {:?}",
            f.to_text()
        );
        assert!(f.cached_args().is_empty());
    }

    let (raw, rest) = crate::take::<{ flat::LEN }>(data);
    flat_ops::<f64>(raw, rest, release_f64);
    flat_ops::<i64>(raw, rest, release_i64);
    deserialized::<f64>(data, release_f64);
    deserialized::<i64>(data, release_i64);
}

fn release_f64(s: &State<f64>) {
    let _ = state::release_count(s);
    let _ = state::release_sum_f64(s);
    let _ = state::release_avg(s);
}

fn release_i64(s: &State<i64>) {
    let _ = state::release_count(s);
    let _ = state::release_sum_i64(s);
}

/// Units by their bits (a NaN equals itself here).
fn units_bits<T: Num>(s: &State<T>) -> Option<BTreeMap<u64, Vec<[u8; 8]>>> {
    s.units.as_ref().map(|u| {
        u.iter()
            .map(|(k, v)| (*k, v.iter().map(|x| x.to_le()).collect()))
            .collect()
    })
}

fn value<T: Num>(rest: &[u8]) -> T {
    T::from_le(crate::take::<8>(rest).0)
}

fn flat_ops<T: Num>(mut raw: [u8; flat::LEN], rest: &[u8], release: fn(&State<T>)) {
    let Ok(f) = Flat::view::<T>(&mut raw) else {
        return;
    };
    let copy = *f;
    let Ok(s) = f.state::<T>() else {
        return;
    };
    assert_eq!(s.params.is_some(), f.has_params());
    let mut g = Flat::empty::<T>();
    g.set_state(&s).expect("a flat state has no units");
    let t = g.state::<T>().expect("a stored state reads back");
    assert_eq!((t.params, t.count, t.sum), (s.params, s.count, s.sum));
    release(&s);
    let _ = f.merge::<T>(&copy);
    let _ = f.add_under_fixed_params::<T>(value(rest));
    let _ = f.state::<T>().map(|s| s.totals());
    let _ = f.cached_args();
    let _ = f.cached_args_equal(&[1, 2]);
    let t = f.to_text();
    let back = Flat::from_text(&t);
    if let Ok(b) = back {
        assert_eq!(b.to_text(), t);
    }
}

fn deserialized<T: Num>(data: &[u8], release: fn(&State<T>)) {
    let Ok(s) = State::<T>::deserialize(data) else {
        return;
    };
    let bytes = s.serialize();
    let t = State::<T>::deserialize(&bytes).expect("a serialized state deserializes");
    assert_eq!((t.params, t.count, t.sum), (s.params, s.count, s.sum));
    assert_eq!(units_bits(&t), units_bits(&s));
    if s.params.is_some() {
        let _ = s.totals();
        release(&s);
        let mut m = s.clone();
        if m.merge(t).is_ok() {
            release(&m);
        }
    }
}
