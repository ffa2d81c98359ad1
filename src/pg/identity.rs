//! Running catalog queries as the extension owner, for a caller who may not read the catalog.
//!
//! The SQL functions are invoker-rights: they identify the calling role first
//! (`pg::roles::caller()`), do every permission check against it, and only then switch to the
//! extension owner for the catalog work itself, with `search_path` pinned to `pg_catalog,
//! pg_temp` so that no object of the caller can be resolved while running with the owner's
//! rights. Postgres restores both the user id and the GUC nest level on (sub)transaction abort;
//! the guard restores them on success. `as_table_owner` runs code as a table's owner instead, as
//! Postgres runs maintenance, and `with_pinned_search_path` pins the search_path alone, for
//! queries run with the caller's rights.

use crate::pg::catalog_reads::select_one;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::Cell;

thread_local! {
    static OWNER: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
}

/// Forgets the cached owner (the extension may have been dropped and created again).
pub fn forget_owner() {
    OWNER.with(|o| o.set(pg_sys::InvalidOid));
}

pub fn extension_owner() -> pg_sys::Oid {
    let cached = OWNER.with(|o| o.get());
    if cached != pg_sys::InvalidOid {
        return cached;
    }
    let owner = select_one::<pg_sys::Oid>(
        "SELECT extowner FROM pg_catalog.pg_extension \
         WHERE extname OPERATOR(pg_catalog.=) 'pg_encrypt_ml'",
        &[],
    )
    .unwrap_or_else(|| {
        crate::pg::errors::raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            "extension pg_encrypt_ml is not installed in this database",
        )
    });
    OWNER.with(|o| o.set(owner));
    owner
}

struct Restore {
    user: pg_sys::Oid,
    sec_context: i32,
    guc_nest: i32,
    /// Whether settings changed inside survive; false where another role's code ran: whatever
    /// it set is undone, as Postgres does after REFRESH MATERIALIZED VIEW.
    keep_settings: bool,
}

impl Drop for Restore {
    fn drop(&mut self) {
        // SAFETY: puts back what with_identity saved: closes the GUC nest level it opened
        // (skipped while unwinding from an ERROR: the (sub)transaction abort closes it) and
        // restores the user id and security context, which only sets two globals and cannot
        // ERROR. Both calls are pgrx's guarded wrappers.
        unsafe {
            if !std::thread::panicking() {
                pg_sys::AtEOXact_GUC(self.keep_settings, self.guc_nest);
            }
            pg_sys::SetUserIdAndSecContext(self.user, self.sec_context);
        }
    }
}

/// Sets a setting until the GUC nest level of `as_extension_owner` (or `with_pinned_search_path`)
/// ends (allowed in parallel mode, unlike a plain SET). Only inside one of them, or another
/// level its caller opened with `NewGUCNestLevel` and closes with `AtEOXact_GUC`.
///
/// # Safety
/// Must run inside a transaction and inside a GUC nest level as just described, which the
/// caller closes (with `AtEOXact_GUC`) before returning control past it; otherwise the saved
/// setting outlives the scope it was meant for.
pub unsafe fn save_setting(name: &std::ffi::CStr, value: &std::ffi::CStr) {
    // SAFETY: name and value are NUL-terminated and outlive the call (set_config_option copies
    // the value); pgrx's guarded wrapper turns an ERROR (unknown or invalid setting) into a
    // Rust panic. The nest level is the caller's guarantee.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
    }
}

/// Runs `f` inside a GUC nest level with search_path = pg_catalog, pg_temp, as `role` (None:
/// the current user) with `context` added to the security context. Restore puts the user,
/// security context and settings back, also when `f` raises an ERROR and unwinds; settings
/// changed inside survive only with `keep_settings`.
fn with_identity<R>(
    role: Option<pg_sys::Oid>,
    context: i32,
    keep_settings: bool,
    f: impl FnOnce() -> R,
) -> R {
    in_guc_nest(
        role,
        context,
        keep_settings,
        &[(c"search_path", c"pg_catalog, pg_temp")],
        f,
    )
}

/// `with_identity` with any settings in force.
fn in_guc_nest<R>(
    role: Option<pg_sys::Oid>,
    context: i32,
    keep_settings: bool,
    settings: &[(&std::ffi::CStr, &std::ffi::CStr)],
    f: impl FnOnce() -> R,
) -> R {
    let mut user = pg_sys::InvalidOid;
    let mut sec_context = 0i32;
    // SAFETY: the user and context read here are set back by Restore when it drops; the GUC
    // nest level opened here is closed by it, and save_setting runs inside it.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut sec_context);
        let guc_nest = pg_sys::NewGUCNestLevel();
        let _restore = Restore {
            user,
            sec_context,
            guc_nest,
            keep_settings,
        };
        if let Some(role) = role {
            pg_sys::SetUserIdAndSecContext(role, sec_context | context);
        }
        for (name, value) in settings {
            save_setting(name, value);
        }
        f()
    }
}

/// Runs `f` with `settings` (name, value) in force and every setting put back afterwards, as a
/// function's SET clause does: for output that must not depend on the session (DateStyle,
/// TimeZone, ...). Not for a scope that runs another role's code: the caller's own rights.
pub fn with_settings<R>(
    settings: &[(&std::ffi::CStr, &std::ffi::CStr)],
    f: impl FnOnce() -> R,
) -> R {
    in_guc_nest(None, 0, false, settings, f)
}

/// Runs `f` with the caller's rights and search_path = pg_catalog, pg_temp: for SPI queries the
/// extension runs as the caller (on the caller's tables), so that no operator or function they
/// name resolves to one the caller planted ahead of pg_catalog. Table names in such queries are
/// schema-qualified.
pub fn with_pinned_search_path<R>(f: impl FnOnce() -> R) -> R {
    with_identity(None, 0, true, f)
}

/// Runs `f` with the extension owner's rights and a pinned search_path.
pub fn as_extension_owner<R>(f: impl FnOnce() -> R) -> R {
    let owner = extension_owner();
    with_identity(
        Some(owner),
        pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        true,
        || {
            if crate::pg::citus::loaded() {
                // On a Citus worker the catalog is a reference table whose local copy this
                // backend reads inside a query pushed down to a shard; Citus refuses such nested
                // queries unless told they are safe, which they are for reference tables
                // (docs/citus.md).
                // SAFETY: inside the GUC nest level with_identity opened.
                unsafe { save_setting(c"citus.allow_nested_distributed_execution", c"on") };
            }
            f()
        },
    )
}

/// Runs `f` as the owner of `rel`, in a security-restricted operation with a pinned
/// search_path, as Postgres runs maintenance over a table (ANALYZE, REFRESH MATERIALIZED VIEW):
/// code the owner attached to the table runs with the owner's rights, not the caller's, and
/// whatever settings it changes are undone afterwards (attacker round 4 set the caller's
/// search_path from a policy). The caller's own rights must be checked before.
pub fn as_table_owner<R>(rel: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    with_identity(
        Some(table_owner(rel)),
        (pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION) as i32,
        false,
        f,
    )
}

/// Runs `f` as `role` (a background worker acting for the role that asked for the work: a
/// re-encryption job, a rotation policy) with a pinned search_path; settings changed inside are
/// undone afterwards. Every permission check inside is against `role`.
pub fn as_role<R>(role: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    with_identity(
        Some(role),
        pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        false,
        f,
    )
}

/// The owner of relation `rel` (42P01 if it does not exist).
pub fn table_owner(rel: pg_sys::Oid) -> pg_sys::Oid {
    // SAFETY: a syscache lookup of the relation's owner; the tuple is released before use.
    unsafe {
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::RELOID as i32,
            pg_sys::Datum::from(rel),
        );
        if tuple.is_null() {
            crate::pg::errors::raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                format!("relation {} does not exist", rel.to_u32()),
            );
        }
        let owner = (*(pg_sys::GETSTRUCT(tuple) as pg_sys::Form_pg_class)).relowner;
        pg_sys::ReleaseSysCache(tuple);
        owner
    }
}
