//! Support for hand-written aggregates with an `internal` state: the state is a Rust value
//! allocated in the aggregate memory context and dropped when that context goes away.

use crate::pg::errors::raise;
use pgrx::fcinfo::{pg_arg_is_null, pg_getarg_datum_raw, pg_return_null};
use pgrx::{pg_sys, PgMemoryContexts, PgSqlErrorCode};

/// The aggregate memory context (where an `internal` state must live), refusing calls from
/// outside an aggregate — a support function called directly with a forged `internal` would
/// crash — and, unless `window_ok`, use as a window function.
///
/// # Safety
/// `fcinfo` must be the non-null FunctionCallInfo of the current call, valid for the call.
pub unsafe fn context(
    fcinfo: pg_sys::FunctionCallInfo,
    what: &str,
    window_ok: bool,
) -> pg_sys::MemoryContext {
    let mut ctx: pg_sys::MemoryContext = std::ptr::null_mut();
    // SAFETY: fcinfo is the call's FunctionCallInfo (the caller's contract); AggCheckCallContext
    // only reads fcinfo->context and writes the aggregate context into `ctx`, a local. pgrx's
    // wrapper guards the call.
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
///
/// # Safety
/// `fcinfo` must be the call's FunctionCallInfo from an aggregate (checked with `context`), and
/// argument `n` must be non-null and hold a state of this very `T` made by `new_state`, in the
/// aggregate context, which outlives `'a`; no other reference to that state may be live while
/// the returned one is.
pub unsafe fn state_at<'a, T>(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> &'a mut T {
    // SAFETY: as the caller guarantees: the datum is the pointer that leak_and_drop_on_delete
    // returned for a live `T` in the aggregate context, and this is its only reference.
    unsafe { &mut *(pg_getarg_datum_raw(fcinfo, n).value() as *mut T) }
}

impl Aggregate {
    /// Checks the call (see `context`) and returns the aggregate context.
    ///
    /// # Safety
    /// `fcinfo` must be the non-null FunctionCallInfo of the current call.
    pub unsafe fn context(&self, fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::MemoryContext {
        // SAFETY: fcinfo is the call's FunctionCallInfo, as our caller guarantees.
        unsafe { context(fcinfo, self.name, self.window_ok) }
    }

    /// `value` as a new state in the aggregate context.
    ///
    /// # Safety
    /// `fcinfo` must be the non-null FunctionCallInfo of the current call; the datum returned is
    /// a pointer to a `T` that only `state_at::<T>` (same `T`) may read.
    pub unsafe fn new_state<T>(&self, fcinfo: pg_sys::FunctionCallInfo, value: T) -> pg_sys::Datum {
        // SAFETY: fcinfo is the call's (our caller's contract); `context` raises unless an
        // aggregate calls us and returns its aggregate context, which lives as long as the
        // transition state; the value is moved there and dropped when that context is deleted.
        unsafe {
            let ctx = self.context(fcinfo);
            pg_sys::Datum::from(PgMemoryContexts::For(ctx).leak_and_drop_on_delete(value))
        }
    }

    /// The transition state in argument 0, made with `T::default()` on the first row.
    ///
    /// # Safety
    /// `fcinfo` must be the non-null FunctionCallInfo of a call of this aggregate's transition
    /// function, whose argument 0 is NULL or a state of this `T` made by `new_state`.
    pub unsafe fn state<T: Default>(&self, fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
        // SAFETY: fcinfo is the call's FunctionCallInfo with at least one argument (our caller's
        // contract), so argument 0's null flag and datum may be read; a NULL state is made by
        // new_state, which checks the aggregate context.
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
    ///
    /// # Safety
    /// As for `state`; argument 1 must be of a varlena type.
    pub unsafe fn add_bytes<T: Default>(
        &self,
        fcinfo: pg_sys::FunctionCallInfo,
        add: impl FnOnce(&mut T, &[u8]),
    ) -> pg_sys::Datum {
        // SAFETY: fcinfo is a call of the transition function (our caller's contract): argument
        // 1 is a non-null varlena (checked for NULL first), whose bytes live for the call, and
        // `state` is argument 0's state or a new one, a live `T` in the aggregate context with no
        // other reference during `add`.
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
    ///
    /// # Safety
    /// `fcinfo` must be the non-null FunctionCallInfo of a call of this aggregate's combine
    /// function, whose two arguments are NULL or states of this `T` made by `new_state`.
    pub unsafe fn combine<T: Default>(
        &self,
        fcinfo: pg_sys::FunctionCallInfo,
        merge: impl FnOnce(&mut T, T),
    ) -> pg_sys::Datum {
        // SAFETY: fcinfo is a combine call with two arguments (our caller's contract); `context`
        // raises first unless an aggregate calls us, so non-null arguments are its states of `T`.
        // The two `state_at` borrows do not overlap: the first ends when the value is taken out.
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
