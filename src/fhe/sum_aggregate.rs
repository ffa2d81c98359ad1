//! The `fhe_vector_sum` aggregate: transition, combine, final, and the state's text input and
//! output (docs/fhe.md, docs/formats.md).
//!
//! The running sum is an `fhe_sum_state`, a varlena type (the serialized `Sum`: the encrypted
//! total and the fingerprints of what was added) rather than `internal`, so that Citus sums each
//! shard on its worker and combines one state per shard on the coordinator. Inside an aggregate
//! the state is a read-write expanded object updated in place (`pg::expanded`); it is flattened
//! only when it leaves the aggregate.

use crate::pg::aggregate::Aggregate;
use crate::pg::c_functions;
use crate::pg::errors::{fhe_error, raise};
use crate::pg::expanded::{self, FlatForm};
use crate::pg::varlena::{arg_bytes, OwnedVarlena};
use encml_fhe::sum::Sum;
use pgrx::fcinfo::{pg_arg_is_null, pg_return_null};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};

impl FlatForm for Sum {
    fn to_bytes(&self) -> Vec<u8> {
        self.serialize()
    }
    fn methods() -> &'static pg_sys::ExpandedObjectMethods {
        static METHODS: pg_sys::ExpandedObjectMethods = expanded::methods::<Sum>();
        &METHODS
    }
}

const FHE_VECTOR_SUM: Aggregate = Aggregate {
    name: "fhe_vector_sum",
    window_ok: true,
};

/// A state that arrived flat (from a tuple: a parallel worker's or a Citus shard's).
///
/// # Safety
/// As for `arg_bytes`: argument `n` is a non-NULL `fhe_sum_state`.
unsafe fn parse_state(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> Sum {
    // SAFETY: as the caller guarantees; the bytes are copied into the parsed Sum.
    unsafe { Sum::deserialize(arg_bytes(fcinfo, n)).unwrap_or_else(|e| fhe_error(e)) }
}

/// The running sum in argument 0 and its datum: the aggregate's own read-write expanded object,
/// or a new one in the aggregate context (first row, or a state that arrived flat).
///
/// # Safety
/// `fcinfo` must be the call of an fhe_vector_sum transition or combine function, argument 0
/// its `fhe_sum_state`. The result must not outlive the aggregate nor be held beside another
/// reference to the same object.
unsafe fn running_sum<'a>(fcinfo: pg_sys::FunctionCallInfo) -> (pg_sys::Datum, &'a mut Sum) {
    // SAFETY: fcinfo is valid (the contract) and FHE_VECTOR_SUM.context refuses calls outside
    // an aggregate. A read-write expanded `fhe_sum_state` is only ever made by `new_in::<Sum>`
    // (it is the type's only expanded form), so value_mut reads a Sum; a new object lives in a
    // child of the aggregate context, which outlives the call. Argument 0 is read only after
    // the NULL check.
    unsafe {
        let ctx = FHE_VECTOR_SUM.context(fcinfo);
        let d = pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 0);
        let d = if pg_arg_is_null(fcinfo, 0) {
            expanded::new_in(ctx, Sum::default())
        } else if expanded::is_read_write(d) {
            d
        } else {
            expanded::new_in(ctx, parse_state(fcinfo, 0))
        };
        (d, expanded::value_mut::<Sum>(d))
    }
}

/// # Safety
/// Only as the C function `encml_fhe_vector_sum_trans` (`c_functions!`): `fcinfo` is the
/// call's, (fhe_sum_state, fhe_vector) as sql/schema/fhe.sql declares.
unsafe fn sum_trans(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract), an fhe_vector_sum transition as
    // running_sum needs; argument 1, an fhe_vector varlena, is read only when not NULL.
    unsafe {
        let (d, sum) = running_sum(fcinfo);
        if !pg_arg_is_null(fcinfo, 1) {
            sum.add_serialized(arg_bytes(fcinfo, 1))
                .unwrap_or_else(|e| fhe_error(e));
        }
        d
    }
}

/// # Safety
/// Only as the C function `encml_fhe_vector_sum_combine` (`c_functions!`): `fcinfo` is the
/// call's, two `fhe_sum_state` arguments.
unsafe fn sum_combine(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract), checked to run in an aggregate. Argument
    // 1 is read only when not NULL; as a read-write expanded object it is a Sum made by
    // new_in (the type's only expanded form), which the R/W pointer lets us empty; it is a
    // different object from argument 0, so its reference is gone before running_sum's.
    unsafe {
        FHE_VECTOR_SUM.context(fcinfo);
        if pg_arg_is_null(fcinfo, 1) {
            return if pg_arg_is_null(fcinfo, 0) {
                pg_return_null(fcinfo)
            } else {
                pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 0)
            };
        }
        let other = pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 1);
        let other = if expanded::is_read_write(other) {
            std::mem::take(expanded::value_mut::<Sum>(other))
        } else {
            parse_state(fcinfo, 1)
        };
        let (d, sum) = running_sum(fcinfo);
        sum.merge(other).unwrap_or_else(|e| fhe_error(e));
        d
    }
}

/// # Safety
/// Only as the C function `encml_fhe_vector_sum_final` (`c_functions!`): `fcinfo` is the
/// call's, one `fhe_sum_state` argument.
unsafe fn sum_final(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract), checked to run in an aggregate; argument
    // 0 is read only when not NULL, and a read-write expanded one is a Sum made by new_in in a
    // child of the aggregate context (value_mut only drops its cached flat form; the Sum is
    // read). A flat or read-only one is parsed into an owned Sum.
    unsafe {
        FHE_VECTOR_SUM.context(fcinfo);
        if pg_arg_is_null(fcinfo, 0) {
            return pg_return_null(fcinfo);
        }
        let d = pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 0);
        let parsed;
        let sum = if expanded::is_read_write(d) {
            &*expanded::value_mut::<Sum>(d)
        } else {
            parsed = parse_state(fcinfo, 0);
            &parsed
        };
        match sum.total() {
            Some(t) => OwnedVarlena::from_slice(&t.to_bytes()).into_datum(),
            None => pg_return_null(fcinfo),
        }
    }
}

/// Text form: "es1:" and the serialized state in hex (Citus sends states between nodes as text).
///
/// # Safety
/// Only as the C function `encml_fhe_sum_state_out` (`c_functions!`), the type's output
/// function: `fcinfo` is the call's.
unsafe fn state_out(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract); the function is STRICT, so argument 0 is
    // a non-NULL fhe_sum_state (an expanded one is flattened by arg_bytes). pstrdup copies
    // `text`, alive until the end of the block, into the current memory context, where an
    // output function returns its string.
    unsafe {
        let bytes = arg_bytes(fcinfo, 0);
        let mut text = String::with_capacity(5 + 2 * bytes.len());
        text.push_str("es1:");
        for b in bytes {
            text.push_str(&format!("{b:02x}"));
        }
        let text = std::ffi::CString::new(text).expect("hex has no NUL");
        pg_sys::Datum::from(pg_sys::pstrdup(text.as_ptr()))
    }
}

/// # Safety
/// Only as the C function `encml_fhe_sum_state_in` (`c_functions!`), the type's input
/// function: `fcinfo` is the call's.
unsafe fn state_in(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract); the function is STRICT with a cstring
    // argument, so argument 0 is a NUL-terminated string valid for the call.
    unsafe {
        let text =
            std::ffi::CStr::from_ptr(pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 0).cast_mut_ptr());
        let bad = || -> ! {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
                "not an fhe_sum_state",
            )
        };
        let hex = text
            .to_bytes()
            .strip_prefix(b"es1:")
            .filter(|h| h.len() % 2 == 0)
            .unwrap_or_else(|| bad());
        let bytes: Vec<u8> = hex
            .chunks_exact(2)
            .map(|p| {
                std::str::from_utf8(p)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                    .unwrap_or_else(|| bad())
            })
            .collect();
        if let Err(e) = Sum::deserialize(&bytes) {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
                format!("invalid input syntax for type fhe_sum_state: {e}"),
            );
        }
        OwnedVarlena::from_slice(&bytes).into_datum()
    }
}

c_functions! {
    /// fhe_vector_sum(fhe_vector): adds one vector (NULLs are skipped)
    encml_fhe_vector_sum_trans, pg_finfo_encml_fhe_vector_sum_trans => sum_trans;
    encml_fhe_vector_sum_combine, pg_finfo_encml_fhe_vector_sum_combine => sum_combine;
    encml_fhe_vector_sum_final, pg_finfo_encml_fhe_vector_sum_final => sum_final;
    encml_fhe_sum_state_in, pg_finfo_encml_fhe_sum_state_in => state_in;
    encml_fhe_sum_state_out, pg_finfo_encml_fhe_sum_state_out => state_out;
}
