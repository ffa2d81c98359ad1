//! Running catalog queries as the extension owner, for a caller who may not read the catalog.
//!
//! The SQL functions are invoker-rights: they identify the calling role first (`caller()`), do
//! every permission check against it, and only then switch to the extension owner for the catalog
//! work itself, with `search_path` pinned to `pg_catalog, pg_temp` so that no object of the caller
//! can be resolved while running with the owner's rights. Postgres restores both the user id and
//! the GUC nest level on (sub)transaction abort; the guard restores them on success.

use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::Cell;

thread_local! {
    static OWNER: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
}

/// The role calling us (current_user at entry: SET ROLE and SECURITY DEFINER callers count).
pub fn caller() -> pg_sys::Oid {
    // Called for every decrypted value: GetUserId only returns a variable and cannot raise, so
    // it is declared here without pgrx's error guard (a sigsetjmp per call).
    extern "C" {
        #[link_name = "GetUserId"]
        fn get_user_id_unguarded() -> pg_sys::Oid;
    }
    // SAFETY: GetUserId takes no arguments and returns the backend's CurrentUserId global (set
    // since backend start); it cannot ERROR, so there is no longjmp to guard against, and the
    // backend's only thread reads it.
    unsafe { get_user_id_unguarded() }
}

/// When the current statement started (statement_timestamp()): identifies the statement for
/// answers that hold per statement. Unguarded for the same reason as `caller`.
pub fn statement_start() -> i64 {
    extern "C" {
        #[link_name = "GetCurrentStatementStartTimestamp"]
        fn statement_start_unguarded() -> i64;
    }
    // SAFETY: GetCurrentStatementStartTimestamp takes no arguments and returns the backend's
    // stmtStartTimestamp global; it cannot ERROR, so no guard is needed.
    unsafe { statement_start_unguarded() }
}

pub fn is_superuser(role: pg_sys::Oid) -> bool {
    // SAFETY: superuser_arg takes any oid (a role that does not exist is not a superuser) and
    // does a syscache lookup in the current transaction; pgrx's wrapper guards its ERRORs.
    unsafe { pg_sys::superuser_arg(role) }
}

/// Whether `role` has the privileges of the role named `group` (inherited membership, as GRANT).
pub fn has_privs_of_role_named(role: pg_sys::Oid, group: &str) -> bool {
    let c = std::ffi::CString::new(group).expect("role names have no NUL");
    // SAFETY: `c` is a NUL-terminated string that outlives the call; missing_ok = true gives
    // InvalidOid for an unknown role; the call is guarded by pgrx's wrapper.
    let group_oid = unsafe { pg_sys::get_role_oid(c.as_ptr(), true) };
    // SAFETY: two role oids, looked up in the catalog (an unknown role has no privileges);
    // guarded by pgrx's wrapper.
    group_oid != pg_sys::InvalidOid && unsafe { pg_sys::has_privs_of_role(role, group_oid) }
}

pub fn role_name(role: pg_sys::Oid) -> String {
    // SAFETY: with noerr = true GetUserNameFromId returns NULL for an unknown role (checked)
    // or a palloc'd NUL-terminated copy in the current memory context, which is copied into a
    // Rust String before this returns.
    unsafe {
        let p = pg_sys::GetUserNameFromId(role, true);
        if p.is_null() {
            format!("role {}", role.to_u32())
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
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

/// One row of a read-only catalog query; values are copied out into Rust-owned types.
pub struct Row {
    tuple: pg_sys::HeapTuple,
    desc: pg_sys::TupleDesc,
}

impl Row {
    /// Column `n` (1-based), None for SQL NULL.
    pub fn get<T: pgrx::datum::FromDatum>(&self, n: i32) -> Option<T> {
        let mut isnull = false;
        // SAFETY: a Row exists only inside read_rows' callback, between SPI_execute_with_args
        // and SPI_finish, so tuple and desc (from SPI_tuptable) are live; SPI_getbinval checks `n`
        // against the descriptor (out of range: NULL). The result is converted by T::from_datum
        // before the callback returns; every caller reads a column of the SQL type matching T
        // (from_datum on another type would misread it) into an owned Rust value.
        unsafe {
            let datum = pg_sys::SPI_getbinval(self.tuple, self.desc, n, &mut isnull);
            T::from_datum(datum, isnull)
        }
    }
}

thread_local! {
    static READ_LATEST: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Restores `READ_LATEST` when `with_latest_snapshot` ends, by return or by error.
struct LatestScope(bool);

impl Drop for LatestScope {
    fn drop(&mut self) {
        READ_LATEST.with(|l| l.set(self.0));
    }
}

/// Runs `f` with `read_rows` reading the latest committed state (and this transaction's earlier
/// commands), as Postgres reads its own catalogs, not the transaction's snapshot: for what a
/// backend caches until an invalidation tells it to load again. Loaded through an older
/// REPEATABLE READ snapshot, a key destroyed meanwhile was cached again as alive, after the
/// invalidation that should have dropped it, and stayed usable in that session (attacker
/// round 7); a withdrawn consent likewise stayed granted. In parallel mode (no new snapshot
/// may be taken there) it reads through the active snapshot.
pub fn with_latest_snapshot<R>(f: impl FnOnce() -> R) -> R {
    let _scope = LatestScope(READ_LATEST.with(|l| l.replace(true)));
    f()
}

/// Runs a read-only query and maps its rows. It executes with SPI's `read_only` flag, which uses
/// the active snapshot and starts no new command: pgrx's `select` starts one as soon as the
/// transaction has an xid, which Postgres refuses during a parallel operation (for example a
/// parallel CREATE TABLE AS that decrypts in the leader). Outside parallel mode it reads through
/// a copy of that snapshot advanced to the current command, so rows written earlier in the same
/// statement (a key `tenant_key()` just made) are seen.
pub fn read_rows<R>(
    sql: &str,
    args: &[(pg_sys::Oid, Option<pg_sys::Datum>)],
    limit: i64,
    mut f: impl FnMut(&Row) -> R,
) -> Vec<R> {
    let c_sql = std::ffi::CString::new(sql).expect("catalog SQL has no NUL");
    let mut types: Vec<pg_sys::Oid> = args.iter().map(|(t, _)| *t).collect();
    let mut values: Vec<pg_sys::Datum> = args
        .iter()
        .map(|(_, v)| v.unwrap_or(pg_sys::Datum::from(0)))
        .collect();
    let nulls: Vec<std::ffi::c_char> = args
        .iter()
        .map(|(_, v)| if v.is_some() { b' ' } else { b'n' } as std::ffi::c_char)
        .collect();
    // SAFETY: guarded pg_sys calls inside the caller's transaction. The snapshot pushed (if
    // any) is popped by `finish`, which also ends the SPI connection, on every path that
    // returns; on an ERROR, transaction abort pops both. types, values and nulls hold
    // args.len() entries each and outlive the execution; SPI_tuptable and its SPI_processed
    // rows are read only after a successful SELECT and before SPI_finish frees them, and `f`
    // copies what it needs out of each Row (see Row::get).
    unsafe {
        let latest = READ_LATEST.with(|l| l.get()) && !pg_sys::IsInParallelMode();
        let advance = latest || (pg_sys::ActiveSnapshotSet() && !pg_sys::IsInParallelMode());
        if latest {
            pg_sys::PushActiveSnapshot(pg_sys::GetLatestSnapshot());
            pg_sys::UpdateActiveSnapshotCommandId();
        } else if advance {
            pg_sys::PushCopiedSnapshot(pg_sys::GetActiveSnapshot());
            pg_sys::UpdateActiveSnapshotCommandId();
        }
        let finish = || {
            pg_sys::SPI_finish();
            if advance {
                pg_sys::PopActiveSnapshot();
            }
        };
        pg_sys::SPI_connect();
        let rc = pg_sys::SPI_execute_with_args(
            c_sql.as_ptr(),
            args.len() as i32,
            types.as_mut_ptr(),
            values.as_mut_ptr(),
            nulls.as_ptr(),
            true,
            limit,
        );
        if rc != pg_sys::SPI_OK_SELECT as i32 {
            finish();
            crate::pg::errors::internal(format!("key catalog query failed (SPI code {rc})"));
        }
        let table = pg_sys::SPI_tuptable;
        let n = pg_sys::SPI_processed as usize;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let row = Row {
                tuple: *(*table).vals.add(i),
                desc: (*table).tupdesc,
            };
            out.push(f(&row));
        }
        finish();
        out
    }
}

/// The oid of the extension's relation `name` in schema encml, or InvalidOid while it does not
/// exist (the extension not installed here, or an older schema without it). Syscache lookups,
/// cheap enough for every statement.
pub fn extension_relation(name: &std::ffi::CStr) -> pg_sys::Oid {
    // SAFETY: syscache lookups by name; nothing is kept.
    unsafe {
        let nsp = pg_sys::get_namespace_oid(c"encml".as_ptr(), true);
        if nsp == pg_sys::InvalidOid {
            return pg_sys::InvalidOid;
        }
        pg_sys::get_relname_relid(name.as_ptr(), nsp)
    }
}

/// The relation a statement's RangeVar names, looked up without a lock (the statement takes its
/// own), or None if there is none.
///
/// # Safety
/// `rv` must be NULL or a RangeVar of a parse tree that lives for the call.
pub unsafe fn relation_named(rv: *mut pg_sys::RangeVar) -> Option<pg_sys::Oid> {
    if rv.is_null() {
        return None;
    }
    // SAFETY: rv is a RangeVar of the statement's parse tree, as the caller guarantees.
    let oid = unsafe {
        pg_sys::RangeVarGetRelidExtended(
            rv,
            pg_sys::NoLock as i32,
            pg_sys::RVROption::RVR_MISSING_OK,
            None,
            std::ptr::null_mut(),
        )
    };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// A query argument for `read_rows`.
pub fn arg<T: pgrx::datum::IntoDatum>(value: T) -> (pg_sys::Oid, Option<pg_sys::Datum>) {
    (T::type_oid(), value.into_datum())
}

/// An oid parameter for pgrx's SPI calls (update mode), e.g. a role to cast to regrole.
pub fn oid_arg<'a>(oid: pg_sys::Oid) -> pgrx::datum::DatumWithOid<'a> {
    // SAFETY: an Oid converts to a by-value datum of type oid, which is what OIDOID names.
    unsafe { pgrx::datum::DatumWithOid::new(oid, pg_sys::OIDOID) }
}

/// The first column of the first row of a read-only query.
pub fn select_one<T: pgrx::datum::FromDatum>(
    sql: &str,
    args: &[(pg_sys::Oid, Option<pg_sys::Datum>)],
) -> Option<T> {
    read_rows(sql, args, 1, |row| row.get::<T>(1))
        .into_iter()
        .next()
        .flatten()
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
    let mut user = pg_sys::InvalidOid;
    let mut sec_context = 0i32;
    // SAFETY: the user and context read here are set back by Restore when it drops; the GUC
    // nest level opened here is closed by it.
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
        save_setting(c"search_path", c"pg_catalog, pg_temp");
        f()
    }
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
