//! Read auditing: `audit_enable(tbl, reads => true)` (library preloaded) logs each statement
//! that reads the table, or a table under it (SELECT; UPDATE, DELETE, MERGE, which scan it;
//! INSERT, whose unique and exclusion checks answer for existing rows), as one chained event
//! per statement and table
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
use crate::pg::guards::{unless_nested, with_active_snapshot};
use crate::pg::nothrow::list_ptrs;
use pgrx::prelude::*;
use serde_json::json;
use std::cell::{Cell, RefCell};

/// A read-audited statement whose executor has started: recorded when it ends (with the rows
/// it returned), or, if it fails first, as a read of unknown rows (it may have sent rows before
/// failing, and a cursor's rows are read before its transaction ends).
struct Started {
    query: usize,
    sub: pg_sys::SubTransactionId,
    hits: Vec<(pg_sys::Oid, String, pg_sys::Oid)>,
    command: &'static str,
    query_id: i64,
    /// Who and where (read while the transaction can still look roles up).
    session: serde_json::Value,
}

thread_local! {
    static STARTED: RefCell<Vec<Started>> = const { RefCell::new(Vec::new()) };
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
    rows: Option<u64>,
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
        crate::log_event!(
            "pg_encrypt_ml read audit: {}",
            json!({ "operation": "read", "audited_table": root_name, "detail": detail })
        );
        return;
    }
    let prepared = detached::prepared_event("read", Some((root, root_name)), detail.clone());
    if !can_write_here() {
        crate::log_event!("pg_encrypt_ml read audit: {prepared}");
        detached::record_prepared(&[prepared]);
        return;
    }
    let text = detail.to_string();
    append(&Entry::without_rows(
        "event",
        "read",
        Some((root, root_name)),
        Some(&text),
    ));
    // SAFETY: reads the current subtransaction id.
    let sub = unsafe { pg_sys::GetCurrentSubTransactionId() };
    WRITTEN.with(|w| w.borrow_mut().push((sub, prepared)));
}

/// Writes the records of rolled-back transactions, and the events no background worker could
/// write: in the current transaction where it can write (if it rolls back too, they wait for
/// the next one), else through the background writer.
fn flush_orphans() {
    // Through the background writer first: committed on its own, whatever this session's
    // transaction does next (an attacker's find: written in the next transaction, the records
    // were lost again when the reader rolled that one back too, and disconnected).
    let orphans: Vec<String> = ORPHANS.with(|o| std::mem::take(&mut *o.borrow_mut()));
    if !orphans.is_empty() {
        detached::record_prepared(&orphans);
    }
    // What no worker could take (no slot free) goes into the current transaction if it can
    // write; if that rolls back, the records are orphans again and go to the worker first.
    let unsent = detached::take_unsent();
    if unsent.is_empty() {
        return;
    }
    if can_write_here() {
        // SAFETY: reads the current subtransaction id.
        let sub = unsafe { pg_sys::GetCurrentSubTransactionId() };
        for event in &unsent {
            detached::insert_event_json(event);
        }
        WRITTEN.with(|w| w.borrow_mut().extend(unsent.into_iter().map(|e| (sub, e))));
    } else {
        detached::requeue(unsent);
    }
}

/// Whether records wait to be written again.
fn waiting() -> bool {
    ORPHANS.with(|o| !o.borrow().is_empty()) || detached::has_unsent()
}

/// Runs `f` (the extension's own reads of user tables, such as counting the rows of a table
/// that joins an audited one) without read auditing.
pub fn unaudited<R>(f: impl FnOnce() -> R) -> R {
    let was = BUSY.with(|b| b.replace(true));
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            BUSY.with(|b| b.set(self.0));
        }
    }
    let _reset = Reset(was);
    f()
}

/// The read-audited tables a statement reads, if auditing applies here.
unsafe fn reads_of(
    query: *mut pg_sys::QueryDesc,
    eflags: i32,
) -> Vec<(pg_sys::Oid, String, pg_sys::Oid)> {
    // SAFETY: the executor's QueryDesc, valid for the call; read-only accesses.
    unsafe {
        if !crate::pg::preload::preloaded()
            || pg_sys::ParallelWorkerNumber >= 0
            || !crate::pg::nothrow::is_transaction_state()
            || (*query).plannedstmt.is_null()
            || eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 != 0
        {
            return Vec::new();
        }
        // Most databases audit no reads: nothing to collect then (the map is cached).
        let any_reads = unless_nested(&BUSY, || {
            with_active_snapshot(|| audited::map().values().any(|a| a.reads))
        });
        if any_reads != Some(true) {
            return Vec::new();
        }
        let stmt = (*query).plannedstmt;
        let rtable: Vec<*mut pg_sys::RangeTblEntry> = list_ptrs((*stmt).rtable).collect();
        // A relation is read where the statement needs SELECT on it, and where it updates or
        // deletes rows (UPDATE, DELETE, MERGE, INSERT ... ON CONFLICT DO UPDATE): those scan it,
        // and the rows they reach show in a constraint error's DETAIL and to the table's own
        // triggers, with no WHERE clause (no SELECT privilege) needed. An INSERT reads too:
        // whether it succeeds answers whether a unique or exclusion constraint's key exists, and
        // an exclusion conflict's DETAIL shows the existing row's key.
        let scans =
            (pg_sys::ACL_SELECT | pg_sys::ACL_UPDATE | pg_sys::ACL_DELETE | pg_sys::ACL_INSERT)
                as pg_sys::AclMode;
        let mut read: Vec<bool> = rtable
            .iter()
            .map(|&rte| {
                (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION && (*rte).requiredPerms & scans != 0
            })
            .collect();
        // The partitions and inheritance children the planner added for a parent carry no
        // permissions of their own (they are checked on the parent): they are read when it is,
        // also when the audited table is the child of a parent of the reader's own.
        let appends: Vec<*mut pg_sys::AppendRelInfo> = list_ptrs((*stmt).appendRelations).collect();
        loop {
            let mut changed = false;
            for &info in &appends {
                let (parent, child) = ((*info).parent_relid as usize, (*info).child_relid as usize);
                if (1..=read.len()).contains(&parent)
                    && (1..=read.len()).contains(&child)
                    && read[parent - 1]
                    && !read[child - 1]
                {
                    read[child - 1] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let relids: Vec<pg_sys::Oid> = rtable
            .iter()
            .zip(&read)
            .filter(|&(&rte, &r)| r && (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION)
            .map(|(&rte, _)| (*rte).relid)
            .collect();
        if relids.is_empty() {
            return Vec::new();
        }
        unless_nested(&BUSY, || with_active_snapshot(|| matches(&relids))).unwrap_or_default()
    }
}

/// When a statement's executor starts: notes the read-audited tables it will read.
///
/// # Safety
/// `query` must be the executor's QueryDesc, called from an ExecutorStart hook.
pub unsafe fn start(query: *mut pg_sys::QueryDesc, eflags: i32) {
    // SAFETY: as the caller guarantees.
    let hits = unsafe { reads_of(query, eflags) };
    if hits.is_empty() {
        return;
    }
    // SAFETY: as above; reads the plan's fields and the current subtransaction.
    let started = unsafe {
        Started {
            query: query as usize,
            sub: pg_sys::GetCurrentSubTransactionId(),
            hits,
            command: command((*query).operation),
            query_id: (*(*query).plannedstmt).queryId as i64,
            session: detached::session_fields(),
        }
    };
    STARTED.with(|s| s.borrow_mut().push(started));
}

/// At the end of a statement's executor: records the reads noted at its start, with the rows.
///
/// # Safety
/// `query` must be the executor's QueryDesc, called from an ExecutorEnd hook before
/// `standard_ExecutorEnd` frees it.
pub unsafe fn check(query: *mut pg_sys::QueryDesc) {
    let started = STARTED.with(|s| {
        let mut s = s.borrow_mut();
        s.iter()
            .position(|st| st.query == query as usize)
            .map(|i| s.remove(i))
    });
    let orphans = waiting();
    if started.is_none() && !orphans {
        return;
    }
    // SAFETY: `query` is the executor's QueryDesc, not yet freed (this function's contract),
    // which is all check_started needs.
    unsafe { check_started(query, started) };
}

/// # Safety
/// As `check`: `query` must be the executor's QueryDesc, not yet freed by
/// `standard_ExecutorEnd`.
unsafe fn check_started(query: *mut pg_sys::QueryDesc, started: Option<Started>) {
    // SAFETY: reads a backend global.
    if !unsafe { pg_sys::IsTransactionState() } {
        return;
    }
    // (The statement's snapshot may be gone by now: the insert gets one.)
    unless_nested(&BUSY, || {
        with_active_snapshot(|| {
            flush_orphans();
            if let Some(st) = started {
                // SAFETY: the executor's QueryDesc, valid until standard_ExecutorEnd.
                let rows = unsafe {
                    (!(*query).estate.is_null()).then(|| (*(*query).estate).es_processed)
                };
                for (root, name, relid) in st.hits {
                    record(root, &name, relid, st.command, st.query_id, rows);
                }
            }
        })
    });
}

/// COPY ... TO of a table (no executor): recorded by the utility hook.
pub fn check_copy(relid: pg_sys::Oid, rows: u64) {
    if BUSY.with(|b| b.get()) {
        return;
    }
    for (root, name, relid) in matches(&[relid]) {
        record(root, &name, relid, "COPY", 0, Some(rows));
    }
}

/// At each transaction event (the callback in `crate::hooks`, preloaded).
pub fn on_xact(event: pg_sys::XactEvent::Type) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_COMMIT | pg_sys::XactEvent::XACT_EVENT_PREPARE => {
            WRITTEN.with(|w| w.borrow_mut().clear());
        }
        pg_sys::XactEvent::XACT_EVENT_ABORT => {
            let lost: Vec<(pg_sys::SubTransactionId, String)> =
                WRITTEN.with(|w| std::mem::take(&mut *w.borrow_mut()));
            orphan(lost);
            let unfinished: Vec<Started> = STARTED.with(|s| std::mem::take(&mut *s.borrow_mut()));
            orphan_unfinished(unfinished);
        }
        // Reads of rolled-back savepoints are written with the transaction that commits.
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT if waiting() && can_write_here() => {
            // (A utility statement's transaction, ANALYZE's say, has no snapshot here.)
            unless_nested(&BUSY, || with_active_snapshot(flush_orphans));
        }
        _ => {}
    }
}

/// At each subtransaction event (the callback in `crate::hooks`, preloaded).
pub fn on_subxact(event: pg_sys::SubXactEvent::Type, mine: pg_sys::SubTransactionId) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        // Subtransaction ids grow: this one and those begun inside it.
        let lost: Vec<(pg_sys::SubTransactionId, String)> = WRITTEN.with(|w| {
            let mut w = w.borrow_mut();
            let (lost, kept): (Vec<_>, Vec<_>) = w.drain(..).partition(|(s, _)| *s >= mine);
            *w = kept;
            lost
        });
        orphan(lost);
        let unfinished: Vec<Started> = STARTED.with(|s| {
            let mut s = s.borrow_mut();
            let (lost, kept): (Vec<_>, Vec<_>) = s.drain(..).partition(|st| st.sub >= mine);
            *s = kept;
            lost
        });
        orphan_unfinished(unfinished);
    }
}

/// Statements whose executor started but did not end before the (sub)transaction aborted: they
/// may have sent rows (a cursor's FETCH, rows streamed before an error). The event is built from
/// what was noted at the start (no catalog access is possible during abort).
fn orphan_unfinished(unfinished: Vec<Started>) {
    for st in unfinished {
        for (root, name, relid) in st.hits {
            let detail = json!({
                "command": st.command,
                "query_id": st.query_id.to_string(),
                "rows": null,
                "table_oid": relid.to_u32(),
                "ended": "the statement or its transaction failed before the executor ended",
                "severity": "info",
            });
            let mut event = st.session.clone();
            event["operation"] = json!("read");
            event["table_oid"] = json!(root.to_u32());
            event["table_name"] = json!(name);
            event["detail"] = detail;
            let event = event.to_string();
            crate::log_event!("pg_encrypt_ml read audit (statement failed, written again by the next statement): {event}");
            ORPHANS.with(|o| o.borrow_mut().push(event));
        }
    }
}

fn orphan(lost: Vec<(pg_sys::SubTransactionId, String)>) {
    for (_, event) in lost {
        crate::log_event!(
            "pg_encrypt_ml read audit (rolled back, written again by the next statement): {event}"
        );
        ORPHANS.with(|o| o.borrow_mut().push(event));
    }
}

thread_local! {
    static QUERY_IDS: Cell<bool> = const { Cell::new(false) };
}

/// After parse analysis (the hook in `crate::hooks`, preloaded): query ids (the fingerprint
/// recorded), as pg_stat_statements computes them, but only in a backend of a database with
/// read-audited tables: elsewhere EXPLAIN VERBOSE stays as it was.
///
/// # Safety
/// The arguments must be the post-parse-analysis hook's.
pub unsafe fn after_parse(pstate: *mut pg_sys::ParseState, query: *mut pg_sys::Query) {
    // SAFETY: the hook's arguments are the parser's, valid for this call.
    unsafe {
        // (No catalog lookup on this path, which every statement takes: the audited map is
        // cached, and empty where the extension is not installed.)
        if QUERY_IDS.with(|q| q.get())
            || query.is_null()
            || (*query).queryId != 0
            || !(*query).utilityStmt.is_null()
            || !crate::pg::nothrow::is_transaction_state()
        {
            return;
        }
        let any_reads = unless_nested(&BUSY, || {
            with_active_snapshot(|| audited::map().values().any(|a| a.reads))
        })
        .unwrap_or(false);
        if any_reads {
            pg_sys::EnableQueryId();
            QUERY_IDS.with(|q| q.set(true));
            if !(*pstate).p_sourcetext.is_null() {
                pg_sys::JumbleQuery(query, (*pstate).p_sourcetext);
            }
        }
    }
}
