//! At executor start (the hook in `crate::hooks`, preloaded): writes in replica mode.
//!
//! Writes in replica mode. With `session_replication_role = replica` (superusers only) ordinary
//! triggers, the audit triggers among them, do not fire: an INSERT, UPDATE, DELETE or MERGE of an
//! audited table (or a table under one) would leave no row in the log. With the library
//! preloaded, each such statement is logged when its executor starts, as a critical
//! `replica_mode_write` event naming the tables and the command (not the query text, which may
//! hold personal data); the rows themselves are not logged. Logical replication's apply worker
//! does not pass through the executor hooks and is not affected.

use crate::audit::events;
use crate::pg::catalog_reads::{arg, read_rows};
use crate::pg::identity::as_extension_owner;
use pgrx::prelude::*;
use serde_json::json;
use std::cell::Cell;

thread_local! {
    static CHECKING: Cell<bool> = const { Cell::new(false) };
}

fn command(op: pg_sys::CmdType::Type) -> &'static str {
    match op {
        pg_sys::CmdType::CMD_INSERT => "INSERT",
        pg_sys::CmdType::CMD_UPDATE => "UPDATE",
        pg_sys::CmdType::CMD_DELETE => "DELETE",
        pg_sys::CmdType::CMD_MERGE => "MERGE",
        _ => "WITH ... (data-modifying)",
    }
}

/// Logs a write of an audited table in replica mode, before the executor starts.
///
/// # Safety
/// `query` must be the QueryDesc being started.
pub unsafe fn check(query: *mut pg_sys::QueryDesc, eflags: i32) {
    // SAFETY: query is the executor's QueryDesc, valid through ExecutorStart; backend globals
    // are read only.
    unsafe {
        if pg_sys::SessionReplicationRole != pg_sys::SESSION_REPLICATION_ROLE_REPLICA as i32
            || eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 != 0
            || (*query).plannedstmt.is_null()
            || pg_sys::RecoveryInProgress()
            || pg_sys::get_extension_oid(c"pg_encrypt_ml".as_ptr(), true) == pg_sys::InvalidOid
        {
            return;
        }
        let stmt = (*query).plannedstmt;
        if (*stmt).resultRelations.is_null() {
            return;
        }
        crate::pg::guards::unless_nested(&CHECKING, || log_writes(query, stmt));
    }
}

/// Logs the write of each audited table `stmt` writes.
unsafe fn log_writes(query: *mut pg_sys::QueryDesc, stmt: *mut pg_sys::PlannedStmt) {
    // SAFETY: as in `check`.
    unsafe {
        let relids = crate::pg::plan_writes::result_relations(stmt);
        let hits = as_extension_owner(|| {
            read_rows(
                "WITH RECURSIVE up(relid, anc) AS (SELECT r, r FROM pg_catalog.unnest($1::oid[]) r \
                     UNION SELECT up.relid, i.inhparent FROM up JOIN pg_catalog.pg_inherits i ON i.inhrelid = up.anc) \
                 SELECT a.table_oid::oid, a.table_oid::text, \
                        pg_catalog.array_agg(DISTINCT up.relid::pg_catalog.regclass::text) \
                   FROM up JOIN encml.audited_tables a ON a.table_oid::oid = up.anc GROUP BY 1, 2",
                &[arg(relids)],
                0,
                |r| {
                    Some((
                        r.get::<pg_sys::Oid>(1)?,
                        r.get::<String>(2)?,
                        r.get::<Vec<String>>(3).unwrap_or_default(),
                    ))
                },
            )
        });
        let op = command((*query).operation);
        for (root, name, tables) in hits.into_iter().flatten() {
            events::record(
                "replica_mode_write",
                Some((root, &name)),
                json!({ "command": op, "tables": tables, "session_replication_role": "replica" }),
            );
        }
    }
}
