//! The dp aggregates without privacy units (dp_count_rows, dp_sum, dp_avg in their (epsilon)
//! and (epsilon, delta) forms) keep their exact state in `encml.dp_state`, a fixed-size type
//! (`encml_dp::flat`), instead of `internal`:
//! - Citus then computes a partial state on each shard (`worker_partial_agg`), sends it as text
//!   and combines the states on the coordinator (`coord_combine_agg`), where the final function
//!   records the charge and adds the noise once; only one state per shard crosses the network.
//! - Postgres's parallel query passes the state between processes as bytes.
//!
//! The state is exact; its text form, the only one that leaves the backend (Citus sends it from
//! the shards, and anyone may call `worker_partial_agg` over rows they can read), is sealed
//! under a key every node derives from the master key (`encml_core::dp_seal`). Only the
//! extension's own aggregates take states (`privacy::own`, checked when the query starts), and
//! `coord_combine_agg` only the states that Citus's own plan brings (`privacy::start`).
//!
//! Every state starts as the empty state (`INITCOND`), so a shard without rows still sends one,
//! and its output function fills in the call's parameters there (see `fill_from_shard_call`):
//! the coordinator then releases an empty input with noise and a charge, like a single node.

use super::dp_aggregates::{agg_context, param_args, release_state, ParamArgs};
use crate::pg::c_functions;
use crate::pg::errors::dp_error;
use crate::pg::errors::{raise, raise_full};
use crate::privacy::own;
use crate::privacy::params::{params_at, params_for, required, RowArgs, WrappedCallArgs};
use crate::privacy::start;
use encml_dp::flat::{self, Flat};
use encml_dp::state::{self, Num, State};
use encml_dp::DpError;
use pgrx::datum::IntoDatum;
use pgrx::fcinfo::{pg_arg_is_null, pg_getarg, pg_getarg_datum_raw, pg_return_null};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use std::ffi::{CStr, CString};

/// The state in argument `n`, checked to hold values of type `T`. Transition and combine
/// functions update argument 0 in place: it is the aggregate's own copy in its memory context
/// (they check that they run inside an aggregate first).
///
/// # Safety
/// Argument `n` of the valid `fcinfo` must be a non-NULL `dp_state` (96 bytes, the type's
/// INTERNALLENGTH) that may be written, not otherwise borrowed while the result lives.
unsafe fn flat_at<'a, T: Num>(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> &'a mut Flat {
    // SAFETY: as the caller guarantees, the datum points to flat::LEN (= 96) bytes of a
    // dp_state (a fixed-length type, never toasted); [u8; LEN] has alignment 1 as the type's
    // `ALIGNMENT = char` gives; pgrx bounds-checks `n` against nargs.
    unsafe {
        let bytes = pg_getarg_datum_raw(fcinfo, n).cast_mut_ptr::<[u8; flat::LEN]>();
        Flat::view::<T>(&mut *bytes).unwrap_or_else(|e| dp_error(e))
    }
}

/// Whether the function is called by an Agg node (what `AggCheckCallContext` reports as a plain
/// aggregate), read without a call into Postgres.
///
/// # Safety
/// `fcinfo` must be a valid FunctionCallInfo.
pub(super) unsafe fn in_agg_node(fcinfo: pg_sys::FunctionCallInfo) -> bool {
    // SAFETY: fcinfo is valid (the contract); its context is NULL or a Node, whose tag is read
    // only after the NULL check.
    unsafe {
        let ctx = (*fcinfo).context;
        !ctx.is_null() && (*ctx).type_ == pg_sys::NodeTag::T_AggState
    }
}

/// The raw parameter arguments as the state caches them (no allocation: this runs per row).
struct Cache {
    args: [[u8; 8]; flat::CACHED_ARGS],
    len: usize,
}

impl Cache {
    fn of(args: &ParamArgs) -> Option<Cache> {
        (args.len <= flat::CACHED_ARGS).then(|| {
            let mut c = Cache {
                args: [[0; 8]; flat::CACHED_ARGS],
                len: args.len,
            };
            for i in 0..args.len {
                c.args[i] = args.datums[i].to_le_bytes();
            }
            c
        })
    }

    fn as_slice(&self) -> &[[u8; 8]] {
        &self.args[..self.len]
    }
}

/// Adds one row; parameters as in `dp_aggregates::transition` (without a privacy unit).
///
/// # Safety
/// `fcinfo` must be the call of one of this module's transition functions for `T`, with the
/// arguments its SQL declaration in sql/schema/dp.sql gives.
unsafe fn transition<T: Num>(
    fcinfo: pg_sys::FunctionCallInfo,
    value: Option<T>,
    params_from: usize,
    epsilon_at: usize,
    bounds: impl FnOnce() -> (T, T),
) -> pg_sys::Datum {
    // SAFETY: fcinfo is the transition call's (the contract). Argument 0 is written in place
    // only after it is checked not NULL and the call is known to come from an Agg node (the
    // node tag on every row, AggCheckCallContext on a group's first row); there it is the
    // aggregate's own transition value, copied into the aggregate context by nodeAgg.c, which
    // a transition function may modify.
    unsafe {
        // Argument 0 is updated in place, which only an aggregate's own transition value may
        // be. The full check (a guarded call into Postgres, which also refuses window use) runs
        // on each group's first row, which always finds the empty INITCOND state; later rows
        // only read the call context's node tag (the guard per row cost 40% of dp_sum).
        if !in_agg_node(fcinfo) {
            agg_context(fcinfo);
        }
        // Only inside our own aggregates (someone else's could return the exact state): checked
        // for the whole query when it started (`start`), or nothing runs.
        start::require_preloaded();
        let state = pg_getarg_datum_raw(fcinfo, 0);
        if pg_arg_is_null(fcinfo, 0) {
            raise(
                PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                "dp state must not be NULL",
            );
        }
        let flat = flat_at::<T>(fcinfo, 0);
        if !flat.has_params() {
            agg_context(fcinfo);
        }
        let Some(value) = value else {
            return state;
        };
        let args = param_args(fcinfo, params_from, None);
        let unchanged = flat.has_params()
            && args
                .as_ref()
                .is_some_and(|a| a.len > 0 && flat.cached_args_equal(&a.datums[..a.len]));
        let added = if unchanged {
            flat.add_under_fixed_params(value)
        } else {
            let (lower, upper) = bounds();
            let params = params_at::<T>(&RowArgs::new(fcinfo), epsilon_at, lower, upper);
            let cache = args.as_ref().and_then(Cache::of);
            flat.set_cached_args(cache.as_ref().map_or(&[][..], Cache::as_slice));
            flat.add(params, value)
        };
        added.unwrap_or_else(|e| dp_error(e));
        state
    }
}

/// # Safety
/// Only as the C function `encml_dp_state_count_rows_trans` (`c_functions!`): `fcinfo` is the
/// call's, its arguments as the SQL declarations in sql/schema/dp.sql give them.
unsafe fn count_rows_trans(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract), a transition call as `transition` needs.
    unsafe { transition::<i64>(fcinfo, Some(0), 1, 1, || (0, 0)) }
}

/// # Safety
/// Only as the C functions `encml_dp_state_sum_f64_trans` (`T` = f64) and
/// `encml_dp_state_sum_i64_trans` (`T` = i64) (`c_functions!`): `fcinfo` is the call's, its
/// arguments as sql/schema/dp.sql declares them (the value and the bounds of type `T`).
unsafe fn sum_trans<T: Num + pgrx::datum::FromDatum>(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract); arguments 1 to 3 are of type `T` as its
    // SQL declarations say.
    unsafe {
        transition::<T>(fcinfo, pg_getarg::<T>(fcinfo, 1), 2, 4, || {
            let args = RowArgs::new(fcinfo);
            (required(&args, 2, "lower"), required(&args, 3, "upper"))
        })
    }
}

/// Merges the state in argument 1 into argument 0.
///
/// # Safety
/// Only as the C functions `encml_dp_state_f64_combine` / `encml_dp_state_i64_combine`
/// (`c_functions!`), `T` matching: `fcinfo` is the call's.
unsafe fn combine<T: Num>(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract). agg_context refuses calls outside an
    // aggregate, so argument 0 is the aggregate's own transition value, which may be updated
    // in place; both arguments are dp_state values (96 bytes), read only after the NULL
    // checks, and argument 1 is copied out before argument 0 is borrowed.
    unsafe {
        agg_context(fcinfo);
        own::require(fcinfo);
        match (pg_arg_is_null(fcinfo, 0), pg_arg_is_null(fcinfo, 1)) {
            (true, true) => pg_return_null(fcinfo),
            (false, true) => pg_getarg_datum_raw(fcinfo, 0),
            (true, false) => pg_getarg_datum_raw(fcinfo, 1),
            (false, false) => {
                let other = *flat_at::<T>(fcinfo, 1);
                flat_at::<T>(fcinfo, 0)
                    .merge::<T>(&other)
                    .unwrap_or_else(|e| dp_error(e));
                pg_getarg_datum_raw(fcinfo, 0)
            }
        }
    }
}

/// The final functions: the charge and the noise (`dp_aggregates::release_state`).
///
/// # Safety
/// Only as one of the dp_state final C functions (`c_functions!`), `T` matching the
/// aggregate's transition functions: `fcinfo` is the call's.
unsafe fn finish<T: Num + Default + pgrx::datum::FromDatum, R: IntoDatum>(
    fcinfo: pg_sys::FunctionCallInfo,
    release: impl FnOnce(&State<T>) -> Result<Option<R>, DpError>,
) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract); agg_context and own::require refuse any
    // caller but our own aggregate, whose argument 0, when not NULL, is its dp_state (the view
    // is only read, and checked to hold values of type `T`).
    unsafe {
        agg_context(fcinfo);
        own::require(fcinfo);
        let counted = (!pg_arg_is_null(fcinfo, 0))
            .then(|| flat_at::<T>(fcinfo, 0).state::<T>())
            .map(|r| r.unwrap_or_else(|e| dp_error(e)));
        release_state(fcinfo, counted.as_ref(), release)
    }
}

/// # Safety
/// Only as the C function `encml_dp_state_in` (`c_functions!`), the type's input function:
/// `fcinfo` is the call's.
unsafe fn state_in(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract). The function is STRICT and its argument a
    // cstring, so argument 0 is a NUL-terminated string valid for the call. The result is
    // palloc'd (flat::LEN bytes, all written) in the caller's current memory context, where
    // an input function returns its value.
    unsafe {
        let text = CStr::from_ptr(pg_getarg_datum_raw(fcinfo, 0).cast_mut_ptr());
        // Only the empty initial states (INITCOND) and sealed states (from state_out): an exact
        // state typed in would come back sealed from state_out, and a sealed state is trusted
        // where the shards' partial states are combined.
        let flat = match text.to_str() {
            Ok("dp1:f") => Flat::empty::<f64>(),
            Ok("dp1:i") => Flat::empty::<i64>(),
            Ok(t) if encml_core::dp_seal::is_sealed(t) => open_sealed(t),
            _ => raise_full(
                PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
                "invalid input syntax for type dp_state",
                Some("A dp_state in text is 'dp1:f', 'dp1:i' (the empty states) or a state sealed by the server.".into()),
                None,
            ),
        };
        let out = pg_sys::palloc(flat::LEN) as *mut u8;
        std::ptr::copy_nonoverlapping(flat.as_bytes().as_ptr(), out, flat::LEN);
        pg_sys::Datum::from(out)
    }
}

/// # Safety
/// Only as the C function `encml_dp_state_out` (`c_functions!`), the type's output function:
/// `fcinfo` is the call's.
unsafe fn state_out(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract). The function is STRICT, so argument 0 is
    // a dp_state of flat::LEN bytes, copied before it is viewed (the original is not written).
    // pstrdup copies `text` (alive until the end of the block) into the current memory
    // context, where an output function returns its string.
    unsafe {
        let bytes = pg_getarg_datum_raw(fcinfo, 0).cast_mut_ptr::<[u8; flat::LEN]>();
        let mut flat = *bytes;
        let view = match flat[1] {
            b'f' => Flat::view::<f64>(&mut flat),
            _ => Flat::view::<i64>(&mut flat),
        }
        .unwrap_or_else(|e| dp_error(e));
        if !view.has_params() {
            fill_from_shard_call(fcinfo, view);
        }
        // Sealed: the text form is what leaves the backend (Citus sends it from the shards,
        // and anyone may call worker_partial_agg over rows they can read); the exact state
        // never does.
        let masters = crate::keys::provider::master_keys();
        let mut nonce = [0u8; 12];
        crate::pg::random::fill(&mut nonce);
        let sealed = encml_core::dp_seal::seal(&masters[0], &nonce, view.as_bytes());
        let text = CString::new(sealed).expect("hex has no NUL");
        pg_sys::Datum::from(pg_sys::pstrdup(text.as_ptr()))
    }
}

/// The state in a sealed text (`encml_core::dp_seal`), opened with any configured master key.
fn open_sealed(text: &str) -> Flat {
    let masters = crate::keys::provider::master_keys();
    let plain = encml_core::dp_seal::open(&masters, text, flat::LEN).unwrap_or_else(|e| match e {
        encml_core::Error::UnknownMasterKey { fingerprint } => raise_full(
            PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
            format!(
                "the dp state is sealed under master key {fingerprint}, which the master key provider does not offer"
            ),
            None,
            Some("Every node of a Citus cluster needs the same master keys (docs/citus.md).".into()),
        ),
        // Not sealed by a server with these master keys (or altered): invalid input.
        _ => raise(
            PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
            "invalid input syntax for type dp_state: the seal does not verify",
        ),
    });
    let mut bytes: [u8; flat::LEN] = plain.try_into().expect("open checks the length");
    let view = match bytes[1] {
        b'f' => Flat::view::<f64>(&mut bytes),
        _ => Flat::view::<i64>(&mut bytes),
    };
    *view.unwrap_or_else(|_| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
            "invalid input syntax for type dp_state",
        )
    })
}

/// Gives an empty state the parameters of its call when Citus is sending it from a shard:
/// `worker_partial_agg(aggregate, ROW(value, lower, upper, epsilon, ...))` prints its state
/// with this output function from inside its own final function, whose aggregate call holds
/// the parameters. A shard with rows sends them with its state anyway; without this an input
/// without rows would reach the coordinator with no parameters to add noise with.
///
/// # Safety
/// `fcinfo` must be a valid FunctionCallInfo.
unsafe fn fill_from_shard_call(fcinfo: pg_sys::FunctionCallInfo, flat: &mut Flat) {
    // SAFETY: fcinfo is valid (the contract). Its context is cast to AggState only after its
    // tag says so; AggGetAggref checks the call context itself, and the Aggref it returns
    // (checked not NULL) belongs to the running plan, alive for the call, as own_call and
    // WrappedCallArgs::of require.
    unsafe {
        let ctx = (*fcinfo).context;
        if ctx.is_null() || (*ctx).type_ != pg_sys::NodeTag::T_AggState {
            return;
        }
        let aggref = pg_sys::AggGetAggref(fcinfo);
        if aggref.is_null() {
            return;
        }
        // Only Citus's wrapper around our own aggregates (recognised by catalog membership).
        let Some(own_call) = own::own_call(aggref) else {
            return;
        };
        if own_call.via != own::Via::CitusPartial {
            return;
        }
        let Some(args) = WrappedCallArgs::of(ctx as *mut pg_sys::AggState, aggref) else {
            return;
        };
        let filled = match flat.tag() {
            b'f' => flat.set_state(&State::<f64> {
                params: Some(params_for(own_call.kind, &args)),
                ..State::default()
            }),
            _ => flat.set_state(&State::<i64> {
                params: Some(params_for(own_call.kind, &args)),
                ..State::default()
            }),
        };
        filled.unwrap_or_else(|e| dp_error(e));
    }
}

c_functions! {
    encml_dp_state_in, pg_finfo_encml_dp_state_in => state_in;
    encml_dp_state_out, pg_finfo_encml_dp_state_out => state_out;
    /// dp_count_rows(epsilon [, delta])
    encml_dp_state_count_rows_trans, pg_finfo_encml_dp_state_count_rows_trans => count_rows_trans;
    /// dp_sum(float8, lower, upper, epsilon [, delta]); also dp_avg
    encml_dp_state_sum_f64_trans, pg_finfo_encml_dp_state_sum_f64_trans => sum_trans::<f64>;
    /// dp_sum(bigint, lower bigint, upper bigint, epsilon [, delta])
    encml_dp_state_sum_i64_trans, pg_finfo_encml_dp_state_sum_i64_trans => sum_trans::<i64>;
    encml_dp_state_f64_combine, pg_finfo_encml_dp_state_f64_combine => combine::<f64>;
    encml_dp_state_i64_combine, pg_finfo_encml_dp_state_i64_combine => combine::<i64>;
    encml_dp_state_count_final, pg_finfo_encml_dp_state_count_final =>
        // SAFETY: `f` is the FunctionCallInfo Postgres passed to this C function, the final
        // function of dp_count_rows (finish checks the aggregate); its states hold i64.
        |f| unsafe { finish::<i64, i64>(f, state::release_count) };
    encml_dp_state_sum_f64_final, pg_finfo_encml_dp_state_sum_f64_final =>
        // SAFETY: as above, `f` is this C function's call; its states hold f64.
        |f| unsafe { finish::<f64, f64>(f, state::release_sum_f64) };
    encml_dp_state_sum_i64_final, pg_finfo_encml_dp_state_sum_i64_final =>
        // SAFETY: as above, `f` is this C function's call; its states hold i64.
        |f| unsafe { finish::<i64, i64>(f, state::release_sum_i64) };
    encml_dp_state_avg_final, pg_finfo_encml_dp_state_avg_final =>
        // SAFETY: as above, `f` is this C function's call; its states hold f64.
        |f| unsafe { finish::<f64, f64>(f, state::release_avg) };
}
