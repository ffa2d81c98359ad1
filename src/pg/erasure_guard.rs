//! What the owners' code writes during an erasure (docs/gdpr.md, section 4): an erasure vouches
//! that the subject's rows are gone from the registered tables, and only its own statements may
//! write to them until it commits. The code of the tables' owners that runs meanwhile
//! (triggers, rules, the functions of their types, the actions of their foreign keys) may
//! delete rows there, and write to any other table; an INSERT, UPDATE or MERGE of a registered
//! table or a table under one, a COPY FROM into one, or any ALTER TABLE fails the erasure (55000).
//! Attacker round 15: an owner's AFTER UPDATE trigger put the anonymized values back after the
//! erasure's UPDATE had returned them cleared, and the identifier it had cleared no longer found
//! the row.
//!
//! The hooks are installed in the subject worker alone, at its start (`install`): no other
//! process runs an erasure, and a preloaded library's hooks in `crate::hooks` stay as they are.
//! The erasure's own statements are told from the owners' by where they start: the erasure
//! announces each UPDATE it runs (`own_update`), and the first executor started for it is its
//! own; everything started while it runs (triggers, rules, functions) is the owners'.

use crate::pg::catalog_reads::{arg, read_rows};
use crate::pg::errors::raise_full;
use crate::pg::identity::as_extension_owner;
use crate::pg::plan_writes::{inserted_or_updated, opened_for_writing, result_relations};
use pgrx::prelude::*;
use std::cell::RefCell;

static mut PREV_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;
static mut PREV_EXECUTOR_END: pg_sys::ExecutorEnd_hook_type = None;
static mut PREV_UTILITY: pg_sys::ProcessUtility_hook_type = None;

struct Guard {
    /// The registered tables and the tables under them, as the erasure locked them.
    watched: Vec<pg_sys::Oid>,
    /// The erasure's next own statement: an UPDATE of this table.
    expected: Option<pg_sys::Oid>,
    /// The erasure's own statements running.
    own: Vec<*mut pg_sys::QueryDesc>,
    /// The first write of the owners' code to a watched table (also when the code caught the
    /// ERROR it got, and so undid the write).
    breach: Option<String>,
}

thread_local! {
    static GUARD: RefCell<Option<Guard>> = const { RefCell::new(None) };
}

/// Installs the hooks (from the subject worker's entry, before it runs any statement).
pub fn install() {
    // SAFETY: called once, at the worker's start, before any query; single-threaded.
    unsafe {
        PREV_EXECUTOR_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(executor_start);
        PREV_EXECUTOR_END = pg_sys::ExecutorEnd_hook;
        pg_sys::ExecutorEnd_hook = Some(executor_end);
        PREV_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
    }
}

/// Watches `tables` from now until the worker's transaction ends (the worker runs one erasure).
pub fn watch(tables: &[pg_sys::Oid]) {
    GUARD.with(|g| {
        let mut g = g.borrow_mut();
        let guard = g.get_or_insert_with(|| Guard {
            watched: Vec::new(),
            expected: None,
            own: Vec::new(),
            breach: None,
        });
        for t in tables {
            if !guard.watched.contains(t) {
                guard.watched.push(*t);
            }
        }
    });
}

/// Runs `f`, which runs the erasure's own UPDATE of `rel` (one statement).
pub fn own_update<R>(rel: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            GUARD.with(|g| {
                if let Some(g) = g.borrow_mut().as_mut() {
                    g.expected = None;
                }
            });
        }
    }
    GUARD.with(|g| {
        if let Some(g) = g.borrow_mut().as_mut() {
            g.expected = Some(rel);
        }
    });
    let _clear = Clear;
    f()
}

/// Whether an erasure runs in this session (it has called `watch`; until the worker ends).
pub fn active() -> bool {
    GUARD.with(|g| g.borrow().is_some())
}

/// The table the owners' code wrote to during the erasure, if it did.
pub fn breach() -> Option<String> {
    GUARD.with(|g| g.borrow().as_ref().and_then(|g| g.breach.clone()))
}

fn watched() -> Option<Vec<pg_sys::Oid>> {
    GUARD.with(|g| g.borrow().as_ref().map(|g| g.watched.clone()))
}

/// Fails the erasure if one of `written` is watched or under a watched table (a table created
/// under one meanwhile too).
fn check(written: Vec<pg_sys::Oid>, what: &str) {
    let Some(watched) = watched() else { return };
    if written.is_empty() {
        return;
    }
    let hit = as_extension_owner(|| {
        read_rows(
            "WITH RECURSIVE up(relid, anc) AS (SELECT r, r FROM pg_catalog.unnest($1::pg_catalog.oid[]) r \
                 UNION SELECT up.relid, i.inhparent FROM up JOIN pg_catalog.pg_inherits i \
                     ON i.inhrelid OPERATOR(pg_catalog.=) up.anc) \
             SELECT up.relid::pg_catalog.regclass::pg_catalog.text FROM up \
              WHERE up.anc OPERATOR(pg_catalog.=) ANY ($2::pg_catalog.oid[]) LIMIT 1",
            &[arg(written), arg(watched)],
            1,
            |r| r.get::<String>(1),
        )
    })
    .into_iter()
    .flatten()
    .next();
    if let Some(table) = hit {
        GUARD.with(|g| {
            if let Some(g) = g.borrow_mut().as_mut() {
                g.breach.get_or_insert_with(|| table.clone());
            }
        });
        refuse(&table, what);
    }
}

/// ERROR 55000: the owners' code wrote to `table` during the erasure.
pub fn refuse(table: &str, what: &str) -> ! {
    refuse_because(&format!(
        "code of a table's owner ran {what} on {table}, a registered table or one under it, during the erasure"
    ))
}

/// ERROR 55000 with `message`, the rest as for `refuse`.
fn refuse_because(message: &str) -> ! {
    raise_full(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        message.to_string(),
        Some("Only the erasure writes to registered tables until it commits: a trigger, rule or function that writes there meanwhile could put the subject's rows back. Nothing was erased: the erasure is all or nothing.".into()),
        Some("The table's owner must keep its triggers and rules from writing to registered tables (DELETE is allowed). Foreign keys between registered tables write too: use ON DELETE CASCADE rather than SET NULL or SET DEFAULT, and no ON UPDATE action on an anonymized column.".into()),
    )
}

/// Whether a statement writes in a way the guard looks at (not a read, not a plain DELETE).
unsafe fn writes(query: *mut pg_sys::QueryDesc) -> bool {
    // SAFETY: the executor's QueryDesc and its plan.
    unsafe {
        let stmt = (*query).plannedstmt;
        if stmt.is_null() {
            return false;
        }
        let op = (*query).operation;
        (*stmt).hasModifyingCTE
            || matches!(
                op,
                pg_sys::CmdType::CMD_INSERT
                    | pg_sys::CmdType::CMD_UPDATE
                    | pg_sys::CmdType::CMD_MERGE
            )
    }
}

fn command(op: pg_sys::CmdType::Type) -> &'static str {
    match op {
        pg_sys::CmdType::CMD_INSERT => "INSERT",
        pg_sys::CmdType::CMD_UPDATE => "UPDATE",
        pg_sys::CmdType::CMD_MERGE => "MERGE",
        _ => "a data-modifying WITH",
    }
}

/// At executor start: the erasure's own UPDATE, or a write of the owners' code.
unsafe fn at_start(query: *mut pg_sys::QueryDesc, eflags: i32) {
    // SAFETY: the executor's QueryDesc, before it starts.
    unsafe {
        if watched().is_none()
            || eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 != 0
            || !writes(query)
        {
            return;
        }
        let stmt = (*query).plannedstmt;
        let own = GUARD.with(|g| {
            let mut g = g.borrow_mut();
            let g = g.as_mut()?;
            let rel = g.expected?;
            let mine = (*query).operation == pg_sys::CmdType::CMD_UPDATE
                && !(*stmt).hasModifyingCTE
                && inserted_or_updated(stmt) == [rel];
            mine.then(|| {
                g.expected = None;
                g.own.push(query);
            })
        });
        if own.is_some() {
            return;
        }
        let mut written = inserted_or_updated(stmt);
        written.extend(result_relations(stmt));
        check(written, command((*query).operation));
    }
}

/// At executor end: the partitions a write of the owners' code routed rows to.
unsafe fn at_end(query: *mut pg_sys::QueryDesc) {
    // SAFETY: the executor's QueryDesc, before standard_ExecutorEnd frees its state.
    unsafe {
        if watched().is_none() {
            return;
        }
        let own = GUARD.with(|g| {
            let mut g = g.borrow_mut();
            let g = g.as_mut()?;
            let at = g.own.iter().position(|q| *q == query)?;
            g.own.remove(at);
            Some(())
        });
        if own.is_some() || !writes(query) {
            return;
        }
        check(
            opened_for_writing((*query).estate),
            command((*query).operation),
        );
    }
}

/// Before a utility statement: COPY FROM into a watched table, and every ALTER TABLE (which can
/// rewrite a table's rows, attach one to a registered table, or move one under it).
unsafe fn at_utility(stmt: *mut pg_sys::Node) {
    // SAFETY: the statement's own parse tree, before it runs; nodes cast after is_a.
    unsafe {
        if stmt.is_null() || watched().is_none() {
            return;
        }
        if pgrx::is_a(stmt, pg_sys::NodeTag::T_AlterTableStmt) {
            let s = stmt as *mut pg_sys::AlterTableStmt;
            let rel = if (*s).relation.is_null() {
                pg_sys::InvalidOid
            } else {
                pg_sys::RangeVarGetRelidExtended(
                    (*s).relation,
                    pg_sys::NoLock as i32,
                    pg_sys::RVROption::RVR_MISSING_OK,
                    None,
                    std::ptr::null_mut(),
                )
            };
            let name = if rel == pg_sys::InvalidOid {
                "a table".to_string()
            } else {
                as_extension_owner(|| {
                    read_rows(
                        "SELECT $1::pg_catalog.regclass::pg_catalog.text",
                        &[arg(rel)],
                        1,
                        |r| r.get::<String>(1),
                    )
                })
                .into_iter()
                .flatten()
                .next()
                .unwrap_or_else(|| "a table".into())
            };
            GUARD.with(|g| {
                if let Some(g) = g.borrow_mut().as_mut() {
                    g.breach.get_or_insert_with(|| name.clone());
                }
            });
            refuse_because(&format!(
                "code of a table's owner ran ALTER TABLE on {name} during the erasure"
            ));
        }
        if pgrx::is_a(stmt, pg_sys::NodeTag::T_CopyStmt) {
            let s = stmt as *mut pg_sys::CopyStmt;
            if (*s).is_from && !(*s).relation.is_null() {
                let rel = pg_sys::RangeVarGetRelidExtended(
                    (*s).relation,
                    pg_sys::NoLock as i32,
                    pg_sys::RVROption::RVR_MISSING_OK,
                    None,
                    std::ptr::null_mut(),
                );
                if rel != pg_sys::InvalidOid {
                    check(vec![rel], "COPY FROM");
                }
            }
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn executor_start(query: *mut pg_sys::QueryDesc, eflags: i32) {
    // SAFETY: the executor's QueryDesc; the previous hook saved at install.
    unsafe {
        at_start(query, eflags);
        match PREV_EXECUTOR_START {
            Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| prev(query, eflags)),
            None => pg_sys::standard_ExecutorStart(query, eflags),
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn executor_end(query: *mut pg_sys::QueryDesc) {
    // SAFETY: the executor's QueryDesc, freed by the standard end below; the previous hook saved
    // at install.
    unsafe {
        at_end(query);
        match PREV_EXECUTOR_END {
            Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| prev(query)),
            None => pg_sys::standard_ExecutorEnd(query),
        }
    }
}

#[pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    // SAFETY: the statement and its arguments, valid for the call; the previous hook saved at
    // install.
    unsafe {
        if !pstmt.is_null() {
            at_utility((*pstmt).utilityStmt);
        }
        match PREV_UTILITY {
            Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| {
                prev(pstmt, query, read_only_tree, context, params, env, dest, qc)
            }),
            None => pg_sys::standard_ProcessUtility(
                pstmt,
                query,
                read_only_tree,
                context,
                params,
                env,
                dest,
                qc,
            ),
        }
    }
}
