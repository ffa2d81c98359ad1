//! Large reads of classified tables: a query returning at least encml.large_result_rows rows, or
//! any COPY TO (of a table: `privilege_changes`; of a query: here, by its destination), from a
//! table with classified columns is a security event. The query text is not recorded (it may hold
//! personal data in literals): the tables, the row count and the kind are.
//!
//! Checked when a query's executor ends, so only in backends that loaded the library (all of
//! them when preloaded).

use crate::pg::catalog_reads::{arg, read_rows};
use crate::pg::guards::{unless_nested, with_active_snapshot};
use crate::security::gucs::LARGE_RESULT_ROWS;
use pgrx::prelude::*;
use serde_json::json;
use std::cell::Cell;

thread_local! {
    static CHECKING: Cell<bool> = const { Cell::new(false) };
}

/// The classified tables among `relids`, by name (empty if the extension is not installed here).
pub fn classified(relids: &[pg_sys::Oid]) -> Vec<String> {
    if relids.is_empty()
        // SAFETY: a guarded catalog lookup of a static NUL-terminated name; with missing_ok it
        // returns InvalidOid rather than raising when the extension is not installed.
        || unsafe { pg_sys::get_extension_oid(c"pg_encrypt_ml".as_ptr(), true) }
            == pg_sys::InvalidOid
    {
        return Vec::new();
    }
    crate::pg::identity::as_extension_owner(|| {
        read_rows(
            "SELECT DISTINCT table_oid::regclass::text FROM encml.column_classes WHERE table_oid = ANY ($1) ORDER BY 1",
            &[arg(relids.to_vec())],
            relids.len() as i64,
            |row| row.get::<String>(1),
        )
        .into_iter()
        .flatten()
        .collect()
    })
}

/// Records `operation` for a read of `rows` rows from the classified ones of `relids`.
pub fn record_if_classified(operation: &str, relids: &[pg_sys::Oid], rows: u64) {
    unless_nested(&CHECKING, || {
        with_active_snapshot(|| {
            let tables = classified(relids);
            if !tables.is_empty() {
                crate::events::record_detached(
                    operation,
                    json!({ "tables": tables, "rows": rows }),
                );
            }
        })
    });
}

/// From ExecutorEnd: a SELECT that returned many rows or fed COPY TO.
///
/// # Safety
/// `query` is the executor's QueryDesc (or null), before standard_ExecutorEnd frees its state.
pub unsafe fn check(query: *mut pg_sys::QueryDesc) {
    // SAFETY: `query` is null (tested first) or the executor's QueryDesc, with its estate, dest
    // and plannedstmt (each tested for NULL before use) alive until standard_ExecutorEnd (the
    // contract above). The plan's rtable is a List of RangeTblEntry pointers, all non-null, owned
    // by the plan for the same time. ParallelWorkerNumber is a plain global of this
    // single-threaded backend.
    unsafe {
        if query.is_null()
            || (*query).estate.is_null()
            || (*query).operation != pg_sys::CmdType::CMD_SELECT
            || pg_sys::ParallelWorkerNumber >= 0
            || !crate::pg::nothrow::is_transaction_state()
            || CHECKING.with(|c| c.get())
            || crate::security::privilege_changes::in_copy()
        {
            return;
        }
        if (*query).dest.is_null() {
            return;
        }
        // Rows that leave the server: to the client or to COPY TO (not CREATE TABLE AS, not a
        // function's SPI query, whose caller's result is what the client gets).
        let dest = (*(*query).dest).mydest;
        let copy = dest == pg_sys::CommandDest::DestCopyOut;
        if !copy
            && !matches!(
                dest,
                pg_sys::CommandDest::DestRemote
                    | pg_sys::CommandDest::DestRemoteExecute
                    | pg_sys::CommandDest::DestRemoteSimple
            )
        {
            return;
        }
        let rows = (*(*query).estate).es_processed;
        let limit = LARGE_RESULT_ROWS.get();
        if !copy && (limit <= 0 || rows < limit as u64) {
            return;
        }
        let stmt = (*query).plannedstmt;
        if stmt.is_null() {
            return;
        }
        let rtable = pgrx::PgList::<pg_sys::RangeTblEntry>::from_pg((*stmt).rtable);
        let relids: Vec<pg_sys::Oid> = rtable
            .iter_ptr()
            .filter(|rte| (**rte).rtekind == pg_sys::RTEKind::RTE_RELATION)
            .map(|rte| (*rte).relid)
            .collect();
        record_if_classified(if copy { "copy_to" } else { "large_result" }, &relids, rows);
    }
}
