//! Postgres plumbing shared by every feature.
pub mod aggregate;
pub mod catalog_cache;
pub mod catalog_reads;
pub mod citus;
pub mod citus_plan;
pub mod client_address;
pub mod detached_worker;
pub mod erasure_guard;
pub mod errors;
pub mod expanded;
pub mod guards;
pub mod gucs;
pub mod held_interrupts;
pub mod identity;
pub mod interruptible;
pub mod invalidation;
pub mod large_object;
pub mod nothrow;
pub mod pause;
pub mod plan_writes;
pub mod preload;
pub mod random;
pub mod recovery;
pub mod roles;
pub mod schema_version;
pub mod session_worker;
pub mod sql_text;
pub mod transport;
pub mod tree_mutator;
pub mod varlena;

/// The 0-based list index of a 1-based attribute, range-table or target-list number; None for 0
/// and negative numbers (whole-row references, system columns, special varnos), which index no
/// list (`unwrap_or(usize::MAX)` makes `PgList::get_ptr` answer None for them).
pub fn zero_based<N: TryInto<usize>>(n: N) -> Option<usize> {
    n.try_into().ok()?.checked_sub(1)
}

/// Exports each function under its C symbol with the version-1 calling convention (and the
/// `pg_finfo_` record Postgres looks up next to it), guarded like every pgrx entry point.
macro_rules! c_functions {
    ($($(#[doc = $doc:literal])* $name:ident, $finfo:ident => $body:expr;)*) => { $(
        #[no_mangle]
        #[doc(hidden)]
        pub extern "C" fn $finfo() -> &'static pg_sys::Pg_finfo_record {
            const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }

        $(#[doc = $doc])*
        ///
        /// # Safety
        /// Called by Postgres's function manager alone, through the SQL function declared with
        /// this symbol, with that call's FunctionCallInfo.
        #[pg_guard]
        #[no_mangle]
        pub unsafe extern "C-unwind" fn $name(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
            let body: unsafe fn(pg_sys::FunctionCallInfo) -> pg_sys::Datum = $body;
            // SAFETY: fcinfo is the FunctionCallInfo Postgres passed for this call, valid for the
            // whole call, and `body` is the implementation written for the SQL function declared
            // with this symbol (its arguments and call context); an ERROR raised inside it
            // unwinds as a Rust panic to #[pg_guard] above, which re-raises it to Postgres.
            unsafe { body(fcinfo) }
        }
    )* };
}

pub(crate) use c_functions;
