//! Read-only catalog queries through SPI, for code that runs with whatever rights it was given
//! (usually inside `pg::identity::as_extension_owner`): `read_rows` and `select_one` copy their
//! values out into Rust-owned types, `with_latest_snapshot` reads the latest committed state for
//! what a backend caches, and `extension_relation` / `relation_named` look relations up in the
//! syscache.

use pgrx::pg_sys;

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

/// Arguments in the three arrays SPI_execute_with_args takes.
struct SpiArgs {
    types: Vec<pg_sys::Oid>,
    values: Vec<pg_sys::Datum>,
    nulls: Vec<std::ffi::c_char>,
}

impl SpiArgs {
    fn of(args: &[(pg_sys::Oid, Option<pg_sys::Datum>)]) -> SpiArgs {
        SpiArgs {
            types: args.iter().map(|(t, _)| *t).collect(),
            values: args
                .iter()
                .map(|(_, v)| v.unwrap_or(pg_sys::Datum::from(0)))
                .collect(),
            nulls: args
                .iter()
                .map(|(_, v)| if v.is_some() { b' ' } else { b'n' } as std::ffi::c_char)
                .collect(),
        }
    }
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
    let SpiArgs {
        mut types,
        mut values,
        nulls,
    } = SpiArgs::of(args);
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

/// Runs a statement (one that writes, with a new snapshot per command as SPI gives in
/// non-read-only mode) with arguments and returns the rows it processed, or, for a statement
/// returning rows, the bigint in the first column of its first row (`WITH moved AS (UPDATE ...
/// RETURNING ...) SELECT count(*) ...`). Errors of the statement itself arrive as its own ERROR.
pub fn execute(sql: &str, args: &[(pg_sys::Oid, Option<pg_sys::Datum>)]) -> i64 {
    let c_sql = std::ffi::CString::new(sql).expect("no NUL in generated SQL");
    let SpiArgs {
        mut types,
        mut values,
        nulls,
    } = SpiArgs::of(args);
    // SAFETY: guarded SPI calls inside the caller's transaction; the connection is finished on
    // return, and on an ERROR the (sub)transaction abort cleans it up. types, values and nulls
    // hold args.len() entries each and outlive the call.
    unsafe {
        if pg_sys::SPI_connect() != pg_sys::SPI_OK_CONNECT as i32 {
            crate::pg::errors::internal("SPI_connect failed");
        }
        let rc = pg_sys::SPI_execute_with_args(
            c_sql.as_ptr(),
            args.len() as i32,
            types.as_mut_ptr(),
            values.as_mut_ptr(),
            nulls.as_ptr(),
            false,
            0,
        );
        let processed = pg_sys::SPI_processed as i64;
        // A statement returning rows (a data-modifying WITH that counts what it changed): its
        // first column of its first row, a bigint.
        let first = if rc == pg_sys::SPI_OK_SELECT as i32 && processed > 0 {
            let table = pg_sys::SPI_tuptable;
            let mut isnull = false;
            let datum = pg_sys::SPI_getbinval(*(*table).vals, (*table).tupdesc, 1, &mut isnull);
            (!isnull).then(|| datum.value() as i64)
        } else {
            None
        };
        pg_sys::SPI_finish();
        if rc < 0 {
            crate::pg::errors::internal(format!("statement failed (SPI {rc})"));
        }
        first.unwrap_or(processed)
    }
}
