//! Support for hand-written aggregates with an `internal` state: the state is a Rust value
//! allocated in the aggregate memory context and dropped when that context goes away.

use crate::pg::errors::raise;
use pgrx::fcinfo::{pg_arg_is_null, pg_getarg_datum_raw, pg_return_null};
use pgrx::{pg_sys, PgMemoryContexts, PgSqlErrorCode};

/// The aggregate memory context (where an `internal` state must live), refusing calls from
/// outside an aggregate — a support function called directly with a forged `internal` would
/// crash — and, unless `window_ok`, use as a window function.
pub unsafe fn context(
    fcinfo: pg_sys::FunctionCallInfo,
    what: &str,
    window_ok: bool,
) -> pg_sys::MemoryContext {
    let mut ctx: pg_sys::MemoryContext = std::ptr::null_mut();
    match unsafe { pg_sys::AggCheckCallContext(fcinfo, &mut ctx) } as u32 {
        0 => raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{what} support functions can only be called by their aggregates"),
        ),
        pg_sys::AGG_CONTEXT_WINDOW if !window_ok => raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{what} cannot be used as window functions"),
        ),
        _ => ctx,
    }
}

/// One aggregate whose support functions keep a state of type `T` (see `state`, `combine`).
pub struct Aggregate {
    pub name: &'static str,
    pub window_ok: bool,
}

/// The state in argument `n`, made by `Aggregate::new_state`.
pub unsafe fn state_at<'a, T>(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> &'a mut T {
    unsafe { &mut *(pg_getarg_datum_raw(fcinfo, n).value() as *mut T) }
}

impl Aggregate {
    /// Checks the call (see `context`) and returns the aggregate context.
    pub unsafe fn context(&self, fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::MemoryContext {
        unsafe { context(fcinfo, self.name, self.window_ok) }
    }

    /// `value` as a new state in the aggregate context.
    pub unsafe fn new_state<T>(&self, fcinfo: pg_sys::FunctionCallInfo, value: T) -> pg_sys::Datum {
        unsafe {
            let ctx = self.context(fcinfo);
            pg_sys::Datum::from(PgMemoryContexts::For(ctx).leak_and_drop_on_delete(value))
        }
    }

    /// The transition state in argument 0, made with `T::default()` on the first row.
    pub unsafe fn state<T: Default>(&self, fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
        unsafe {
            if pg_arg_is_null(fcinfo, 0) {
                self.new_state(fcinfo, T::default())
            } else {
                pg_getarg_datum_raw(fcinfo, 0)
            }
        }
    }

    /// A transition function over one varlena argument: the state (made on the first row) and,
    /// unless the row's value is NULL (skipped), `add` with the value's bytes.
    pub unsafe fn add_bytes<T: Default>(
        &self,
        fcinfo: pg_sys::FunctionCallInfo,
        add: impl FnOnce(&mut T, &[u8]),
    ) -> pg_sys::Datum {
        unsafe {
            let state = self.state::<T>(fcinfo);
            if !pg_arg_is_null(fcinfo, 1) {
                let bytes = <crate::pg::varlena::VarlenaBytes as pgrx::datum::FromDatum>::from_polymorphic_datum(
                    pg_getarg_datum_raw(fcinfo, 1),
                    false,
                    pg_sys::InvalidOid,
                )
                .expect("a value");
                add(&mut *(state.value() as *mut T), bytes.0);
            }
            state
        }
    }

    /// A combine function: a NULL state stands aside; otherwise the second state is merged into
    /// the first (both live in the aggregate context, so either can stand for the pair).
    pub unsafe fn combine<T: Default>(
        &self,
        fcinfo: pg_sys::FunctionCallInfo,
        merge: impl FnOnce(&mut T, T),
    ) -> pg_sys::Datum {
        unsafe {
            self.context(fcinfo);
            match (pg_arg_is_null(fcinfo, 0), pg_arg_is_null(fcinfo, 1)) {
                (true, true) => pg_return_null(fcinfo),
                (false, true) => pg_getarg_datum_raw(fcinfo, 0),
                (true, false) => pg_getarg_datum_raw(fcinfo, 1),
                (false, false) => {
                    let other = std::mem::take(state_at::<T>(fcinfo, 1));
                    merge(state_at::<T>(fcinfo, 0), other);
                    pg_getarg_datum_raw(fcinfo, 0)
                }
            }
        }
    }
}
