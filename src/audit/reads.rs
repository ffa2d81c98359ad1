//! Read auditing: `audit_enable(tbl, reads => true)` (library preloaded) logs each statement
//! that reads the table, or a table under it, as one chained event per statement and table
//! (`operation = 'read'`: the command, the statement's query id — a fingerprint of its
//! normalized text, never the text, which may hold personal data — and the rows it returned),
//! as pgaudit's object auditing does. Checked when the statement's executor ends; COPY ... TO of
//! the table is recorded by the utility hook.
//!
//! Where the record goes:
//! - in the reader's transaction (a direct heap insert, as row changes): cheap;
//! - if that transaction (or the savepoint) then rolls back, the record is written again by the
//!   background writer at the session's next statement (a read happened even if the transaction
//!   did not commit), and it is in the server log at once;
//! - in a read-only transaction or a parallel worker: through the background writer, at once;
//! - on a hot standby: the server log only (nothing can be written there).

use crate::audit::audited;
use crate::audit::detached;
use crate::audit::writer::{append, Entry};
use pgrx::prelude::*;
use serde_json::json;
use std::cell::{Cell, RefCell};

thread_local! {
    /// Records written in the current transaction: (subtransaction, event JSON).
    static WRITTEN: RefCell<Vec<(pg_sys::SubTransactionId, String)>> = const { RefCell::new(Vec::new()) };
    /// Records of rolled-back (sub)transactions, to be written by the background writer.
    static ORPHANS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// Whether the installed schema can record read auditing (0.2.0 on: `audited_tables.reads`).
pub fn schema_supports() -> bool {
    let oid = audited::audited_tables_oid();
    // SAFETY: a syscache lookup of a column by name.
    oid != pg_sys::InvalidOid && unsafe { pg_sys::get_attnum(oid, c"reads".as_ptr()) } > 0
}

/// The read-audited roots among `relids`, with the relation actually read.
fn matches(relids: &[pg_sys::Oid]) -> Vec<(pg_sys::Oid, String, pg_sys::Oid)> {
    let map = audited::map();
    if map.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<(pg_sys::Oid, String, pg_sys::Oid)> = Vec::new();
    for relid in relids {
        if let Some(a) = map.get(relid).filter(|a| a.reads) {
            if !out.iter().any(|(r, ..)| *r == a.root) {
                out.push((a.root, a.root_name.clone(), *relid));
            }
        }
    }
    out
}

fn command(op: pg_sys::CmdType::Type) -> &'static str {
    match op {
        pg_sys::CmdType::CMD_SELECT => "SELECT",
        pg_sys::CmdType::CMD_INSERT => "INSERT",
        pg_sys::CmdType::CMD_UPDATE => "UPDATE",
        pg_sys::CmdType::CMD_DELETE => "DELETE",
        pg_sys::CmdType::CMD_MERGE => "MERGE",
        _ => "OTHER",
    }
}

fn can_write_here() -> bool {
    // SAFETY: reads backend globals.
    unsafe { !pg_sys::IsInParallelMode() && !pg_sys::XactReadOnly && !pg_sys::RecoveryInProgress() }
}

/// Records a read of `root` (through `relid`) by the current statement.
pub fn record(
    root: pg_sys::Oid,
    root_name: &str,
    relid: pg_sys::Oid,
    command: &str,
    query_id: i64,
    rows: u64,
) {
    let table = crate::audit::table_name(relid);
    let detail = json!({
        "command": command,
        "query_id": query_id.to_string(),
        "rows": rows,
        "table": table,
        "severity": "info",
    });
    // SAFETY: reads a backend global.
    if unsafe { pg_sys::RecoveryInProgress() } {
        pgrx::log!(
            "pg_encrypt_ml read audit: {}",
            json!({ "operation": "read", "audited_table": root_name, "detail": detail })
        );
        return;
    }
    let prepared = detached::prepared_event("read", Some((root, root_name)), detail.clone());
    if !can_write_here() {
        pgrx::log!("pg_encrypt_ml read audit: {prepared}");
        detached::record_prepared(&[prepared]);
        return;
    }
    let text = detail.to_string();
    append(&Entry {
        kind: "event",
        operation: "read",
        table_oid: Some(root),
        table_name: Some(root_name),
        old_row: None,
        new_row: None,
        changed_columns: None,
        detail: Some(&text),
    });
    // SAFETY: reads the current subtransaction id.
    let sub = unsafe { pg_sys::GetCurrentSubTransactionId() };
    WRITTEN.with(|w| w.borrow_mut().push((sub, prepared)));
}

/// Writes the records of rolled-back transactions through the background writer.
fn flush_orphans() {
    let orphans: Vec<String> = ORPHANS.with(|o| std::mem::take(&mut *o.borrow_mut()));
    if !orphans.is_empty() {
        detached::record_prepared(&orphans);
    }
}

/// At the end of a statement's executor: the read-audited tables it read.
pub unsafe fn check(query: *mut pg_sys::QueryDesc) {
    if !crate::security::preloaded() || BUSY.with(|b| b.get()) {
        return;
    }
    // SAFETY: the executor's QueryDesc, valid until standard_ExecutorEnd; read-only accesses.
    unsafe {
        if pg_sys::ParallelWorkerNumber >= 0
            || !pg_sys::IsTransactionState()
            || (*query).plannedstmt.is_null()
            || (*query).estate.is_null()
            || (*(*query).estate).es_top_eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 != 0
        {
            return;
        }
        BUSY.with(|b| b.set(true));
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                BUSY.with(|b| b.set(false));
            }
        }
        let _reset = Reset;
        let stmt = (*query).plannedstmt;
        let mut relids = Vec::new();
        for rte in pgrx::PgList::<pg_sys::RangeTblEntry>::from_pg((*stmt).rtable).iter_ptr() {
            if (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION
                && (*rte).requiredPerms & pg_sys::ACL_SELECT != 0
            {
                relids.push((*rte).relid);
            }
        }
        let orphans = ORPHANS.with(|o| !o.borrow().is_empty());
        if (relids.is_empty() && !orphans)
            || pg_sys::get_extension_oid(c"pg_encrypt_ml".as_ptr(), true) == pg_sys::InvalidOid
        {
            return;
        }
        // The statement's snapshot may be gone by now: catalog reads and the insert get one.
        let pushed = if pg_sys::ActiveSnapshotSet() {
            false
        } else {
            pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
            true
        };
        struct Pop(bool);
        impl Drop for Pop {
            fn drop(&mut self) {
                // SAFETY: pops the snapshot pushed above, on every exit of this scope.
                if self.0 && !std::thread::panicking() {
                    unsafe { pg_sys::PopActiveSnapshot() };
                }
            }
        }
        let _pop = Pop(pushed);
        if orphans {
            flush_orphans();
        }
        let hits = if relids.is_empty() {
            Vec::new()
        } else {
            matches(&relids)
        };
        let rows = (*(*query).estate).es_processed;
        let op = command((*query).operation);
        let query_id = (*stmt).queryId as i64;
        for (root, name, relid) in hits {
            record(root, &name, relid, op, query_id, rows);
        }
    }
}

/// COPY ... TO of a table (no executor): recorded by the utility hook.
pub fn check_copy(relid: pg_sys::Oid, rows: u64) {
    if BUSY.with(|b| b.get()) {
        return;
    }
    for (root, name, relid) in matches(&[relid]) {
        record(root, &name, relid, "COPY", 0, rows);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_COMMIT | pg_sys::XactEvent::XACT_EVENT_PREPARE => {
            WRITTEN.with(|w| w.borrow_mut().clear());
        }
        pg_sys::XactEvent::XACT_EVENT_ABORT => {
            let lost: Vec<(pg_sys::SubTransactionId, String)> =
                WRITTEN.with(|w| std::mem::take(&mut *w.borrow_mut()));
            orphan(lost);
        }
        _ => {}
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_subxact(
    event: pg_sys::SubXactEvent::Type,
    mine: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        // Subtransaction ids grow: this one and those begun inside it.
        let lost: Vec<(pg_sys::SubTransactionId, String)> = WRITTEN.with(|w| {
            let mut w = w.borrow_mut();
            let (lost, kept): (Vec<_>, Vec<_>) = w.drain(..).partition(|(s, _)| *s >= mine);
            *w = kept;
            lost
        });
        orphan(lost);
    }
}

fn orphan(lost: Vec<(pg_sys::SubTransactionId, String)>) {
    for (_, event) in lost {
        pgrx::log!(
            "pg_encrypt_ml read audit (rolled back, written again by the next statement): {event}"
        );
        ORPHANS.with(|o| o.borrow_mut().push(event));
    }
}

/// Installs the callbacks (from _PG_init, when preloaded).
pub fn register() {
    // SAFETY: _PG_init, once per process.
    unsafe {
        pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(on_subxact), std::ptr::null_mut());
        PREV_POST_PARSE = pg_sys::post_parse_analyze_hook;
        pg_sys::post_parse_analyze_hook = Some(post_parse);
    }
}

static mut PREV_POST_PARSE: pg_sys::post_parse_analyze_hook_type = None;

thread_local! {
    static QUERY_IDS: Cell<bool> = const { Cell::new(false) };
}

/// Query ids (the fingerprint recorded), as pg_stat_statements computes them, but only in a
/// backend of a database with read-audited tables: elsewhere EXPLAIN VERBOSE stays as it was.
#[pg_guard]
unsafe extern "C-unwind" fn post_parse(
    pstate: *mut pg_sys::ParseState,
    query: *mut pg_sys::Query,
    jstate: *mut pg_sys::JumbleState,
) {
    // SAFETY: the hook's arguments are the parser's, valid for this call; the previous hook was
    // saved at install.
    unsafe {
        if let Some(prev) = PREV_POST_PARSE {
            pg_sys::ffi::pg_guard_ffi_boundary(|| prev(pstate, query, jstate));
        }
        if QUERY_IDS.with(|q| q.get())
            || BUSY.with(|b| b.get())
            || query.is_null()
            || (*query).queryId != 0
            || !(*query).utilityStmt.is_null()
            || !pg_sys::IsTransactionState()
            || pg_sys::get_extension_oid(c"pg_encrypt_ml".as_ptr(), true) == pg_sys::InvalidOid
        {
            return;
        }
        BUSY.with(|b| b.set(true));
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                BUSY.with(|b| b.set(false));
            }
        }
        let _reset = Reset;
        let pushed = if pg_sys::ActiveSnapshotSet() {
            false
        } else {
            pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
            true
        };
        let any_reads = audited::map().values().any(|a| a.reads);
        if pushed {
            pg_sys::PopActiveSnapshot();
        }
        if any_reads {
            pg_sys::EnableQueryId();
            QUERY_IDS.with(|q| q.set(true));
            if !(*pstate).p_sourcetext.is_null() {
                pg_sys::JumbleQuery(query, (*pstate).p_sourcetext);
            }
        }
    }
}
