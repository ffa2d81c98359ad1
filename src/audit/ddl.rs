//! DDL on audited tables, seen by event triggers (no preloading needed; created ENABLE ALWAYS so
//! that `session_replication_role = replica` does not switch them off):
//!
//! - `ddl_command_end`: every statement that touches an audited table, a table under it, or
//!   their triggers, policies, indexes or constraints is a chained `ddl` event (command tag,
//!   objects, role, client). A table that joins an audited tree (CREATE TABLE ... PARTITION OF
//!   or INHERITS, ATTACH PARTITION, INHERIT) gets the audit triggers at once, and the event
//!   records the rows it brought (the planner's estimate). A column rename keeps the redaction
//!   list. Then the tree's state is checked (`state`): a non-superuser's statement that leaves an
//!   audit trigger disabled, replica-only, conditional, narrowed or with another redaction list,
//!   or that replaces one, is refused (42501, the refusal logged outside the transaction); a
//!   superuser's is logged as `audit_trigger_disabled` (critical), and `audit_verify` fails
//!   until `audit_enable` restores the triggers.
//! - `ddl_command_start` (DROP statements only) notes the audited trees and audit triggers, and
//!   `sql_drop` compares: a dropped audit trigger is refused (or logged, for a superuser), a
//!   dropped table under an audited one is logged, a dropped audited table is logged and
//!   forgotten.
//! - `table_rewrite`: a rewrite of an audited table (ALTER COLUMN TYPE ... USING changes every
//!   row without firing a row trigger) is logged with its reason.
//!
//! The extension's own DDL (audit_enable, audit_disable, classify) runs `while_configuring`.

use crate::audit::state::{self, Kind, Problem};
use crate::audit::{classes, events};
use crate::audit::{table_name, triggers};
use crate::pg::c_functions;
use crate::pg::catalog_reads::{arg, read_rows, relation_named};
use crate::pg::errors::OrSpiFailed;
use crate::pg::errors::{raise, raise_full};
use crate::pg::identity::as_extension_owner;
use crate::pg::roles::{caller, is_superuser};
use pgrx::prelude::*;
use pgrx::{is_a, pg_sys, PgList, PgSqlErrorCode};
use serde_json::json;
use std::cell::{Cell, RefCell};
use std::ffi::CStr;

thread_local! {
    static CONFIGURING: Cell<u32> = const { Cell::new(0) };
    /// What a DROP statement may remove, noted at ddl_command_start for sql_drop.
    static BEFORE_DROP: RefCell<Option<DropSnapshot>> = const { RefCell::new(None) };
}

/// Runs the extension's own DDL on audited tables, which the event triggers let through.
pub fn while_configuring<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            CONFIGURING.with(|c| c.set(c.get().saturating_sub(1)));
        }
    }
    CONFIGURING.with(|c| c.set(c.get() + 1));
    let _reset = Reset;
    f()
}

/// Whether the extension is installed and not running its own DDL or script.
fn installed() -> bool {
    if CONFIGURING.with(|c| c.get()) > 0 {
        return false;
    }
    // SAFETY: reads a backend global and looks up a catalog row; no pointers are kept.
    unsafe {
        !pg_sys::creating_extension
            && pg_sys::get_extension_oid(c"pg_encrypt_ml".as_ptr(), true) != pg_sys::InvalidOid
    }
}

/// Whether the handlers have anything to do: not during the extension's own DDL or script, and
/// only while some table is audited.
fn active() -> bool {
    if !installed() {
        return false;
    }
    as_extension_owner(|| {
        crate::pg::catalog_reads::select_one::<bool>(
            "SELECT EXISTS (SELECT FROM encml.audited_tables)",
            &[],
        )
        .unwrap_or(false)
    })
}

unsafe fn event_data(fcinfo: pg_sys::FunctionCallInfo) -> *mut pg_sys::EventTriggerData {
    // SAFETY: fcinfo is the call's own; its context is checked to be EventTriggerData before use.
    let ctx = unsafe { (*fcinfo).context };
    // SAFETY: `||` reads the tag only of a non-null context, and fmgr's context is always a
    // Node (fmgr.h), so its first field is a NodeTag.
    if ctx.is_null() || unsafe { (*ctx).type_ } != pg_sys::NodeTag::T_EventTriggerData {
        raise(
            PgSqlErrorCode::ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED,
            "this function must be called as an event trigger",
        );
    }
    ctx as *mut pg_sys::EventTriggerData
}

unsafe fn command_tag(data: *mut pg_sys::EventTriggerData) -> String {
    // SAFETY: data comes from event_data; GetCommandTagName returns a static string.
    unsafe {
        CStr::from_ptr(pg_sys::GetCommandTagName((*data).tag))
            .to_string_lossy()
            .into_owned()
    }
}

unsafe fn cstr(p: *const std::ffi::c_char) -> Option<String> {
    // SAFETY: p is a NUL-terminated string of a parse tree, checked for NULL.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// What the statement's parse tree says beyond pg_event_trigger_ddl_commands().
#[derive(Default)]
struct Statement {
    /// Relations the statement affects without naming them as its object: NO INHERIT's parent,
    /// the tables its foreign keys reference (they get Postgres's RI triggers).
    extra: Vec<pg_sys::Oid>,
    /// The statement may bring a table into an audited tree.
    joins_tree: bool,
    /// CREATE OR REPLACE TRIGGER.
    replaces_trigger: bool,
    /// ALTER TABLE ... RENAME COLUMN: (table, old, new).
    column_rename: Option<(pg_sys::Oid, String, String)>,
    /// RENAME COLUMN or RENAME ATTRIBUTE (which cascades to typed tables): columns anywhere may
    /// have new names.
    renames_columns: bool,
    /// Tables the statement takes out of an inheritance tree (NO INHERIT, DETACH PARTITION,
    /// DETACH PARTITION ... FINALIZE).
    leaving: Vec<pg_sys::Oid>,
    /// Tables the statement puts into an inheritance tree (ATTACH PARTITION, INHERIT): logged
    /// with their rows even when they still carry audit triggers from an earlier time in it.
    joining: Vec<pg_sys::Oid>,
    /// Partitions a DETACH PARTITION ... CONCURRENTLY takes out of the scans in a first
    /// transaction of its own.
    detaching_concurrently: Vec<pg_sys::Oid>,
    /// ALTER TABLE (columns may have been dropped).
    alters_table: bool,
}

unsafe fn inspect(tree: *mut pg_sys::Node) -> Statement {
    use pg_sys::NodeTag::*;
    let mut s = Statement::default();
    if tree.is_null() {
        return s;
    }
    // A foreign key puts Postgres's own triggers on the table it references.
    // SAFETY: tree is the statement's parse tree.
    s.extra
        .extend(unsafe { crate::audit::maintenance::foreign_key_targets(tree) });
    // SAFETY: each node is cast to the type its tag names (is_a) before its fields are read.
    unsafe {
        if is_a(tree, T_CreateStmt) {
            let c = tree as *mut pg_sys::CreateStmt;
            s.joins_tree = !(*c).inhRelations.is_null() || !(*c).partbound.is_null();
        } else if is_a(tree, T_AlterTableStmt) {
            let a = tree as *mut pg_sys::AlterTableStmt;
            s.alters_table = true;
            for cmd in PgList::<pg_sys::AlterTableCmd>::from_pg((*a).cmds).iter_ptr() {
                match (*cmd).subtype {
                    pg_sys::AlterTableType::AT_AddInherit => {
                        s.joins_tree = true;
                        s.joining.extend(relation_named((*a).relation));
                    }
                    pg_sys::AlterTableType::AT_AttachPartition => {
                        s.joins_tree = true;
                        let part = (*cmd).def as *mut pg_sys::PartitionCmd;
                        if !part.is_null() {
                            s.joining.extend(relation_named((*part).name));
                        }
                    }
                    pg_sys::AlterTableType::AT_DropInherit => {
                        if let Some(parent) = relation_named((*cmd).def as *mut pg_sys::RangeVar) {
                            s.extra.push(parent);
                        }
                        s.leaving.extend(relation_named((*a).relation));
                    }
                    pg_sys::AlterTableType::AT_DetachPartition
                    | pg_sys::AlterTableType::AT_DetachPartitionFinalize => {
                        let part = (*cmd).def as *mut pg_sys::PartitionCmd;
                        if !part.is_null() {
                            if let Some(rel) = relation_named((*part).name) {
                                s.leaving.push(rel);
                                if (*part).concurrent {
                                    s.detaching_concurrently.push(rel);
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        } else if is_a(tree, T_CreateTrigStmt) {
            s.replaces_trigger = (*(tree as *mut pg_sys::CreateTrigStmt)).replace;
        } else if is_a(tree, T_RenameStmt) {
            let r = tree as *mut pg_sys::RenameStmt;
            s.renames_columns = matches!(
                (*r).renameType,
                pg_sys::ObjectType::OBJECT_COLUMN | pg_sys::ObjectType::OBJECT_ATTRIBUTE
            );
            if (*r).renameType == pg_sys::ObjectType::OBJECT_COLUMN {
                if let (Some(rel), Some(old), Some(new)) = (
                    relation_named((*r).relation),
                    cstr((*r).subname),
                    cstr((*r).newname),
                ) {
                    s.column_rename = Some((rel, old, new));
                }
            }
        }
    }
    s
}

/// One command of the statement, as pg_event_trigger_ddl_commands() reports it.
struct Command {
    tag: String,
    object_type: String,
    object: String,
}

/// The commands of the statement and the audited tables whose trees they touch: above or below
/// the relations the commands (and `extra`) name.
fn touched(extra: &[pg_sys::Oid]) -> (Vec<Command>, Vec<pg_sys::Oid>) {
    as_extension_owner(|| {
        let commands = read_rows(
            "SELECT command_tag, object_type, coalesce(object_identity, '') \
               FROM pg_catalog.pg_event_trigger_ddl_commands()",
            &[],
            0,
            |r| Command {
                tag: r.get::<String>(1).unwrap_or_default(),
                object_type: r.get::<String>(2).unwrap_or_default(),
                object: r.get::<String>(3).unwrap_or_default(),
            },
        );
        let roots = read_rows(
            "WITH RECURSIVE typedep(classid, objid) AS ( \
                 SELECT c.classid, c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c \
                  WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass \
                 UNION \
                 SELECT 'pg_catalog.pg_type'::pg_catalog.regclass::oid, k.reltype \
                   FROM pg_catalog.pg_event_trigger_ddl_commands() c JOIN pg_catalog.pg_class k \
                     ON k.oid OPERATOR(pg_catalog.=) c.objid AND k.relkind OPERATOR(pg_catalog.=) 'c' \
                  WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass \
                 UNION \
                 SELECT CASE WHEN k.relkind OPERATOR(pg_catalog.=) 'c' THEN 'pg_catalog.pg_type'::pg_catalog.regclass::oid \
                             ELSE d.classid END, \
                        CASE WHEN k.relkind OPERATOR(pg_catalog.=) 'c' THEN k.reltype ELSE d.objid END \
                   FROM typedep t JOIN pg_catalog.pg_depend d \
                     ON d.refclassid OPERATOR(pg_catalog.=) t.classid AND d.refobjid OPERATOR(pg_catalog.=) t.objid \
                   LEFT JOIN pg_catalog.pg_class k \
                     ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass \
                    AND k.oid OPERATOR(pg_catalog.=) d.objid \
                  WHERE t.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass \
                    AND d.classid IN ('pg_catalog.pg_type'::pg_catalog.regclass, 'pg_catalog.pg_class'::pg_catalog.regclass)), \
             cmd AS ( \
                 SELECT CASE c.classid \
                     WHEN 'pg_catalog.pg_class'::pg_catalog.regclass THEN coalesce( \
                         (SELECT i.indrelid FROM pg_catalog.pg_index i WHERE i.indexrelid = c.objid), c.objid) \
                     WHEN 'pg_catalog.pg_trigger'::pg_catalog.regclass THEN \
                         (SELECT g.tgrelid FROM pg_catalog.pg_trigger g WHERE g.oid = c.objid) \
                     WHEN 'pg_catalog.pg_policy'::pg_catalog.regclass THEN \
                         (SELECT p.polrelid FROM pg_catalog.pg_policy p WHERE p.oid = c.objid) \
                     WHEN 'pg_catalog.pg_constraint'::pg_catalog.regclass THEN \
                         (SELECT k.conrelid FROM pg_catalog.pg_constraint k WHERE k.oid = c.objid) \
                     WHEN 'pg_catalog.pg_rewrite'::pg_catalog.regclass THEN \
                         (SELECT w.ev_class FROM pg_catalog.pg_rewrite w WHERE w.oid = c.objid) \
                     WHEN 'pg_catalog.pg_attrdef'::pg_catalog.regclass THEN \
                         (SELECT d.adrelid FROM pg_catalog.pg_attrdef d WHERE d.oid = c.objid) \
                     WHEN 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass THEN \
                         (SELECT x.stxrelid FROM pg_catalog.pg_statistic_ext x WHERE x.oid = c.objid) \
                     END AS relid \
                   FROM pg_catalog.pg_event_trigger_ddl_commands() c \
                 UNION SELECT pg_catalog.unnest($1::oid[]) \
                 UNION SELECT objid FROM typedep WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass), \
             up(anc) AS (SELECT relid FROM cmd WHERE relid IS NOT NULL \
                 UNION SELECT i.inhparent FROM up JOIN pg_catalog.pg_inherits i ON i.inhrelid = up.anc), \
             down(d) AS (SELECT relid FROM cmd WHERE relid IS NOT NULL \
                 UNION SELECT i.inhrelid FROM down JOIN pg_catalog.pg_inherits i ON i.inhparent = down.d) \
             SELECT DISTINCT a.table_oid::oid FROM (SELECT anc FROM up UNION SELECT d FROM down) r(relid) \
               JOIN encml.audited_tables a ON a.table_oid::oid = r.relid",
            &[arg(extra.to_vec())],
            0,
            |r| r.get::<pg_sys::Oid>(1),
        );
        (commands, roots.into_iter().flatten().collect())
    })
}

/// A non-superuser's statement that weakened auditing is refused; a superuser's is logged.
fn refuse_or_log(root: pg_sys::Oid, operation: &str, problems: &[String], statement: &str) {
    let table = table_name(root);
    if !is_superuser(caller()) {
        events::refused(
            "audit_trigger_refused",
            json!({ "table": table, "statement": statement, "problems": problems }),
        );
        raise_full(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "the audit triggers of {table} must stay as encml.audit_enable made them: {}",
                problems.join("; ")
            ),
            None,
            Some("Stop auditing with encml.audit_disable (logged), or repair the triggers with encml.audit_enable.".into()),
        );
    }
    events::record(
        operation,
        Some((root, &table)),
        json!({ "statement": statement, "problems": problems }),
    );
}

/// Adds the audit triggers to the tables of `root`'s tree that lack them (tables that just
/// joined it); returns their names and rows, and those of the tables the statement attached
/// that had kept audit triggers (a partition detached and attached again).
fn cover(
    root: pg_sys::Oid,
    problems: &[Problem],
    joining: &[pg_sys::Oid],
) -> Vec<serde_json::Value> {
    let missing: Vec<&Problem> = problems
        .iter()
        .filter(|p| {
            matches!(
                p.kind,
                Kind::MissingRowTrigger | Kind::MissingTruncateTrigger
            ) && p.relid != root
        })
        .collect();
    if missing.is_empty() && joining.is_empty() {
        return Vec::new();
    }
    let redact = triggers::redaction_list(root, &triggers::audited(root).unwrap_or_default());
    // (A table that joined brings the tables under it.)
    let joined: Vec<pg_sys::Oid> = joining
        .iter()
        .flat_map(|j| triggers::tree(*j).into_iter().map(|(relid, _)| relid))
        .filter(|relid| *relid != root)
        .collect();
    let mut added = Vec::new();
    for (relid, is_partition) in triggers::tree(root) {
        let here: Vec<&&Problem> = missing.iter().filter(|p| p.relid == relid).collect();
        if here.is_empty() && !joined.contains(&relid) {
            continue;
        }
        let row = here.iter().any(|p| p.kind == Kind::MissingRowTrigger);
        let truncate = here.iter().any(|p| p.kind == Kind::MissingTruncateTrigger);
        if row || truncate {
            triggers::add_to(relid, is_partition && relid != root, &redact, row, truncate);
        }
        // The rows it brought into the audited table's scans without an INSERT being logged
        // (ATTACH PARTITION scans the table anyway, unless a constraint proves the bound).
        added.push(json!({ "table": table_name(relid), "rows": rows_of(relid) }));
    }
    added
}

/// `rel` and every table under it, each with its own rows: what enters or leaves the audited
/// table's scans with it.
fn with_rows(rel: pg_sys::Oid) -> Vec<serde_json::Value> {
    triggers::tree(rel)
        .into_iter()
        .map(|(relid, _)| json!({ "table": table_name(relid), "rows": rows_of(relid) }))
        .collect()
}

/// The rows of `relid` itself (not its children), read without read auditing.
fn rows_of(relid: pg_sys::Oid) -> Option<i64> {
    let table = table_name(relid);
    crate::audit::reads::unaudited(|| {
        as_extension_owner(|| {
            crate::pg::catalog_reads::select_one::<i64>(
                &format!("SELECT count(*) FROM ONLY {table}"),
                &[],
            )
        })
    })
}

unsafe fn ddl_command_end(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: called by the event trigger manager with its EventTriggerData (checked).
    let data = unsafe { event_data(fcinfo) };
    if CONFIGURING.with(|c| c.get()) > 0 {
        return pg_sys::Datum::from(0usize);
    }
    BEFORE_DROP.with(|b| b.borrow_mut().take());
    // SAFETY: data is the event's; its parse tree lives until the command ends.
    let statement = unsafe { inspect((*data).parsetree) };
    // Classifications keep the names of their columns, audited tables or not.
    if let Some((rel, _, _)) = &statement.column_rename {
        if installed() {
            classes::columns_renamed(*rel);
        }
    }
    if statement.renames_columns && installed() {
        classes::subject_columns_follow_renames();
    }
    if !active() {
        return pg_sys::Datum::from(0usize);
    }
    // SAFETY: data is the event's.
    let tag = unsafe { command_tag(data) };
    if let Some((rel, old, new)) = &statement.column_rename {
        // (A rename recurses: audited tables under the renamed one keep their redaction too.)
        for (relid, _) in triggers::tree(*rel) {
            rename_redacted_column(relid, old, new);
        }
    }
    // The tables a statement names and those under them: DDL on a parent of one's own (ADD
    // COLUMN, RENAME COLUMN, CREATE TRIGGER, ATTACH PARTITION of the audited table) reaches the
    // audited table below it.
    let named: Vec<pg_sys::Oid> = statement
        .extra
        .iter()
        .chain(statement.leaving.iter())
        .copied()
        .collect();
    let (commands, roots) = touched(&named);
    if !roots.is_empty() {
        // Tables may have joined or left an audited tree: read auditing looks again.
        crate::audit::audited::invalidate();
    }
    // Tables that left an audited tree (and are not audited themselves) lose the audit triggers
    // they had as its parts; the event records them and the rows that left with them.
    // (Only the tables no audited table covers any more: one that is audited itself, or under
    // another audited table, keeps its triggers — an attacker's find: detaching a parent of the
    // owner's own from above stripped the audited table below it of its triggers.)
    let left: Vec<serde_json::Value> = statement
        .leaving
        .iter()
        .flat_map(|rel| triggers::tree(*rel))
        .filter(|(relid, _)| crate::audit::audited::lookup(*relid).is_none())
        .map(|(relid, _)| {
            let rows = rows_of(relid);
            triggers::drop_from(relid);
            json!({ "table": table_name(relid), "rows": rows })
        })
        .collect();
    for root in roots {
        let mut before = state::problems(Some(root));
        // A column dropped (or renamed some other way) leaves the trigger's redaction list behind:
        // after the owner's own ALTER TABLE, the triggers are recreated with the current list.
        if statement.alters_table
            && before.iter().any(|p| p.kind == Kind::Redaction)
            && !before.iter().any(|p| p.kind == Kind::Altered)
        {
            triggers::install(root, &triggers::audited(root).unwrap_or_default());
            before = state::problems(Some(root));
        }
        let covered = if statement.joins_tree {
            cover(root, &before, &statement.joining)
        } else {
            Vec::new()
        };
        let problems = if covered.is_empty() {
            before
        } else {
            state::problems(Some(root))
        };
        let detail = json!({
            "command_tag": tag,
            "objects": commands.iter().map(|c| json!({
                "command_tag": c.tag, "object_type": c.object_type, "object": c.object,
            })).collect::<Vec<_>>(),
            "tables_added": covered,
            "tables_left": left,
        });
        events::record("ddl", Some((root, &table_name(root))), detail);
        let weakened: Vec<String> = problems
            .iter()
            .filter(|p| {
                matches!(p.kind, Kind::Altered | Kind::Redaction) || statement.replaces_trigger
            })
            .map(Problem::describe)
            .collect();
        if !weakened.is_empty() {
            refuse_or_log(root, "audit_trigger_disabled", &weakened, &tag);
        }
    }
    pg_sys::Datum::from(0usize)
}

/// Keeps the redaction of a renamed column: the explicit list names columns, and the trigger's
/// arguments are recreated with the new name.
fn rename_redacted_column(rel: pg_sys::Oid, old: &str, new: &str) {
    let Some(explicit) = triggers::audited(rel) else {
        return;
    };
    let renamed: Vec<String> = explicit
        .iter()
        .map(|c| if c == old { new.to_string() } else { c.clone() })
        .collect();
    if renamed != explicit {
        as_extension_owner(|| {
            Spi::run_with_args(
                "UPDATE encml.audited_tables SET redact = $2 WHERE table_oid = $1",
                &[rel.into(), renamed.clone().into()],
            )
            .or_spi_failed("audited tables")
        });
    }
    // A classified column keeps its label by attribute number; either way the triggers' argument
    // lists name the old column until recreated.
    if triggers::redaction_list(rel, &renamed)
        .iter()
        .any(|c| c == new)
    {
        triggers::install(rel, &renamed);
    }
}

/// What a DROP statement may remove: the tables of audited trees, and the objects that belong
/// to them (triggers, rules, policies, indexes, constraints, column defaults).
struct DropSnapshot {
    /// (relation, its audited root)
    tables: Vec<(pg_sys::Oid, pg_sys::Oid)>,
    /// (catalog, object, its table, is an audit trigger)
    parts: Vec<(pg_sys::Oid, pg_sys::Oid, pg_sys::Oid, bool)>,
}

unsafe fn ddl_command_start(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: called by the event trigger manager with its EventTriggerData (checked).
    let data = unsafe { event_data(fcinfo) };
    if CONFIGURING.with(|c| c.get()) > 0 {
        return pg_sys::Datum::from(0usize);
    }
    BEFORE_DROP.with(|b| b.borrow_mut().take());
    // SAFETY: data is the event's; the parse tree is only tested for its node type.
    let tree = unsafe { (*data).parsetree };
    // DETACH PARTITION ... CONCURRENTLY commits a first transaction that takes the partition out
    // of the scans, then waits for the readers; if it is interrupted there (a statement timeout),
    // ddl_command_end never runs. The event is written now, and commits with that first step.
    // SAFETY: the parse tree lives until the command ends.
    let detaching = unsafe { inspect(tree) }.detaching_concurrently;
    if !detaching.is_empty() {
        if active() {
            // SAFETY: data is the event's.
            let tag = unsafe { command_tag(data) };
            for rel in detaching {
                let Some(a) = crate::audit::audited::lookup(rel) else {
                    continue;
                };
                if a.root == rel {
                    continue;
                }
                events::record(
                    "ddl",
                    Some((a.root, &a.root_name)),
                    json!({
                        "command_tag": tag,
                        "phase": "detach_concurrently_started",
                        "tables_leaving": with_rows(rel),
                    }),
                );
            }
        }
        return pg_sys::Datum::from(0usize);
    }
    // SAFETY: `tree` is the event's parse tree (from event_data's checked EventTriggerData),
    // alive until the command ends; is_a only reads its tag, and only when it is non-null.
    let dropping = unsafe {
        !tree.is_null()
            && (is_a(tree, pg_sys::NodeTag::T_DropStmt)
                || is_a(tree, pg_sys::NodeTag::T_DropOwnedStmt))
    };
    if !dropping || !active() {
        return pg_sys::Datum::from(0usize);
    }
    let snapshot = as_extension_owner(|| {
        let tables: Vec<(pg_sys::Oid, pg_sys::Oid)> = read_rows(
            "WITH RECURSIVE t(root, relid) AS (SELECT table_oid::oid, table_oid::oid FROM encml.audited_tables \
                 UNION SELECT t.root, i.inhrelid FROM t JOIN pg_catalog.pg_inherits i \
                     ON i.inhparent OPERATOR(pg_catalog.=) t.relid) \
             SELECT relid, root FROM t",
            &[],
            0,
            |r| r.get::<pg_sys::Oid>(1).zip(r.get::<pg_sys::Oid>(2)),
        )
        .into_iter()
        .flatten()
        .collect();
        let relids: Vec<pg_sys::Oid> = tables.iter().map(|(r, _)| *r).collect();
        let parts = read_rows(
            "SELECT 'pg_catalog.pg_trigger'::pg_catalog.regclass::oid, g.oid, g.tgrelid, \
                    g.tgfoid OPERATOR(pg_catalog.=) $2 \
               FROM pg_catalog.pg_trigger g WHERE g.tgrelid OPERATOR(pg_catalog.=) ANY ($1) \
             UNION ALL SELECT 'pg_catalog.pg_rewrite'::pg_catalog.regclass::oid, w.oid, w.ev_class, false \
               FROM pg_catalog.pg_rewrite w WHERE w.ev_class OPERATOR(pg_catalog.=) ANY ($1) \
             UNION ALL SELECT 'pg_catalog.pg_policy'::pg_catalog.regclass::oid, p.oid, p.polrelid, false \
               FROM pg_catalog.pg_policy p WHERE p.polrelid OPERATOR(pg_catalog.=) ANY ($1) \
             UNION ALL SELECT 'pg_catalog.pg_class'::pg_catalog.regclass::oid, x.indexrelid, x.indrelid, false \
               FROM pg_catalog.pg_index x WHERE x.indrelid OPERATOR(pg_catalog.=) ANY ($1) \
             UNION ALL SELECT 'pg_catalog.pg_constraint'::pg_catalog.regclass::oid, k.oid, k.conrelid, false \
               FROM pg_catalog.pg_constraint k WHERE k.conrelid OPERATOR(pg_catalog.=) ANY ($1) \
             UNION ALL SELECT 'pg_catalog.pg_attrdef'::pg_catalog.regclass::oid, d.oid, d.adrelid, false \
               FROM pg_catalog.pg_attrdef d WHERE d.adrelid OPERATOR(pg_catalog.=) ANY ($1) \
             UNION ALL SELECT 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass::oid, x.oid, x.stxrelid, false \
               FROM pg_catalog.pg_statistic_ext x WHERE x.stxrelid OPERATOR(pg_catalog.=) ANY ($1)",
            &[arg(relids), arg(state::row_trigger_function())],
            0,
            |r| {
                Some((
                    r.get::<pg_sys::Oid>(1)?,
                    r.get::<pg_sys::Oid>(2)?,
                    r.get::<pg_sys::Oid>(3)?,
                    r.get::<bool>(4).unwrap_or(false),
                ))
            },
        )
        .into_iter()
        .flatten()
        .collect();
        DropSnapshot { tables, parts }
    });
    BEFORE_DROP.with(|b| *b.borrow_mut() = Some(snapshot));
    pg_sys::Datum::from(0usize)
}

/// What one audited table lost in a DROP: tables under it, its columns, objects of its tables,
/// audit triggers.
#[derive(Default)]
struct Lost {
    tables: Vec<String>,
    objects: Vec<String>,
    audit_triggers: Vec<String>,
}

unsafe fn sql_drop(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: called by the event trigger manager with its EventTriggerData (checked).
    let data = unsafe { event_data(fcinfo) };
    let before = BEFORE_DROP.with(|b| b.borrow_mut().take());
    if CONFIGURING.with(|c| c.get()) > 0
        // SAFETY: a catalog lookup by a static name.
        || unsafe { pg_sys::get_extension_oid(c"pg_encrypt_ml".as_ptr(), true) }
            == pg_sys::InvalidOid
    {
        return pg_sys::Datum::from(0usize);
    }
    // SAFETY: data is the event's.
    let tag = unsafe { command_tag(data) };
    let dropped: Vec<(pg_sys::Oid, pg_sys::Oid, i32, String)> = as_extension_owner(|| {
        read_rows(
            "SELECT classid, objid, objsubid, coalesce(object_identity, '') \
               FROM pg_catalog.pg_event_trigger_dropped_objects()",
            &[],
            0,
            |r| {
                Some((
                    r.get::<pg_sys::Oid>(1)?,
                    r.get::<pg_sys::Oid>(2)?,
                    r.get::<i32>(3).unwrap_or(0),
                    r.get::<String>(4).unwrap_or_default(),
                ))
            },
        )
        .into_iter()
        .flatten()
        .collect()
    });
    let class_oid = pg_sys::RelationRelationId;
    let dropped_tables: Vec<pg_sys::Oid> = dropped
        .iter()
        .filter(|(c, _, sub, _)| *c == class_oid && *sub == 0)
        .map(|(_, o, ..)| *o)
        .collect();
    // Columns dropped from tables that stay (ALTER TABLE ... DROP COLUMN, DROP TYPE ... CASCADE):
    // their tree is still in the catalog, with or without a snapshot.
    let column_tables: Vec<pg_sys::Oid> = dropped
        .iter()
        .filter(|(c, o, sub, _)| *c == class_oid && *sub > 0 && !dropped_tables.contains(o))
        .map(|(_, o, ..)| *o)
        .collect();
    let dropped_columns: Vec<(pg_sys::Oid, i32)> = dropped
        .iter()
        .filter(|(c, o, sub, _)| *c == class_oid && *sub > 0 && !dropped_tables.contains(o))
        .map(|(_, o, sub, _)| (*o, *sub))
        .collect();
    classes::forget_dropped(&dropped_tables, &dropped_columns);
    let mut by_root: Vec<(pg_sys::Oid, Lost)> = Vec::new();
    fn lost(by_root: &mut Vec<(pg_sys::Oid, Lost)>, root: pg_sys::Oid) -> &mut Lost {
        let i = match by_root.iter().position(|(r, _)| *r == root) {
            Some(i) => i,
            None => {
                by_root.push((root, Lost::default()));
                by_root.len() - 1
            }
        };
        &mut by_root[i].1
    }
    for (c, o, sub, identity) in &dropped {
        if *c == class_oid && *sub > 0 && column_tables.contains(o) {
            if let Some(a) = crate::audit::audited::lookup(*o) {
                lost(&mut by_root, a.root).objects.push(identity.clone());
            }
        }
    }
    let Some(before) = before else {
        record_lost(by_root, &tag);
        return pg_sys::Datum::from(0usize);
    };
    let identity = |oid: pg_sys::Oid| {
        dropped
            .iter()
            .find(|(_, o, sub, _)| *o == oid && *sub == 0)
            .map(|(.., i)| i.clone())
            .unwrap_or_default()
    };
    // Audited tables dropped: logged, and forgotten (their catalog rows would name nothing).
    let roots_dropped: Vec<pg_sys::Oid> = before
        .tables
        .iter()
        .filter(|(rel, root)| rel == root && dropped_tables.contains(rel))
        .map(|(rel, _)| *rel)
        .collect();
    for root in &roots_dropped {
        let name = identity(*root);
        events::record(
            "audited_table_dropped",
            Some((*root, &name)),
            json!({ "statement": tag }),
        );
        as_extension_owner(|| {
            Spi::run_with_args(
                "DELETE FROM encml.audited_tables WHERE table_oid::oid OPERATOR(pg_catalog.=) $1",
                &[(*root).into()],
            )
            .or_spi_failed("audited tables");
        });
        crate::audit::audited::invalidate();
    }
    // Tables under a surviving audited table: their rows left its scans without a row trigger.
    for (rel, root) in &before.tables {
        if rel != root && dropped_tables.contains(rel) && !roots_dropped.contains(root) {
            lost(&mut by_root, *root).tables.push(identity(*rel));
        }
    }
    // Triggers, rules, policies, indexes, constraints, defaults of tables that stay.
    for (catalog, object, rel, is_audit_trigger) in &before.parts {
        let Some((_, id)) = dropped
            .iter()
            .find(|(c, o, sub, _)| c == catalog && o == object && *sub == 0)
            .map(|(_, _, _, i)| ((), i.clone()))
        else {
            continue;
        };
        if dropped_tables.contains(rel) {
            continue;
        }
        let Some((_, root)) = before.tables.iter().find(|(r, _)| r == rel) else {
            continue;
        };
        if roots_dropped.contains(root) {
            continue;
        }
        let l = lost(&mut by_root, *root);
        if *is_audit_trigger {
            l.audit_triggers.push(id);
        } else {
            l.objects.push(id);
        }
    }
    record_lost(by_root, &tag);
    pg_sys::Datum::from(0usize)
}

fn record_lost(by_root: Vec<(pg_sys::Oid, Lost)>, tag: &str) {
    for (root, lost) in by_root {
        events::record(
            "ddl",
            Some((root, &table_name(root))),
            json!({
                "command_tag": tag,
                "tables_dropped": lost.tables,
                "objects_dropped": lost.objects,
                "audit_triggers_dropped": lost.audit_triggers,
            }),
        );
        if !lost.audit_triggers.is_empty() {
            let problems: Vec<String> = lost
                .audit_triggers
                .iter()
                .map(|t| format!("audit trigger {t} was dropped"))
                .collect();
            refuse_or_log(root, "audit_trigger_dropped", &problems, tag);
        }
    }
}

unsafe fn table_rewrite(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: called by the event trigger manager with its EventTriggerData (checked).
    let data = unsafe { event_data(fcinfo) };
    if !active() {
        return pg_sys::Datum::from(0usize);
    }
    // SAFETY: data is the event's.
    let tag = unsafe { command_tag(data) };
    let found = as_extension_owner(|| {
        read_rows(
            "WITH RECURSIVE up(anc) AS (SELECT pg_catalog.pg_event_trigger_table_rewrite_oid() \
                 UNION SELECT i.inhparent FROM up JOIN pg_catalog.pg_inherits i ON i.inhrelid = up.anc) \
             SELECT a.table_oid::oid, pg_catalog.pg_event_trigger_table_rewrite_oid(), \
                    pg_catalog.pg_event_trigger_table_rewrite_reason() \
               FROM up JOIN encml.audited_tables a ON a.table_oid::oid = up.anc",
            &[],
            0,
            |r| {
                Some((
                    r.get::<pg_sys::Oid>(1)?,
                    r.get::<pg_sys::Oid>(2)?,
                    r.get::<i32>(3).unwrap_or(0),
                ))
            },
        )
    });
    for (root, rel, reason) in found.into_iter().flatten() {
        events::record(
            "table_rewrite",
            Some((root, &table_name(root))),
            json!({ "command_tag": tag, "table": table_name(rel), "reason": reason }),
        );
    }
    pg_sys::Datum::from(0usize)
}

c_functions! {
    /// encml.audit_ddl_start(): notes what a DROP statement may remove from audited tables
    encml_audit_ddl_start, pg_finfo_encml_audit_ddl_start => ddl_command_start;
    /// encml.audit_ddl_end(): logs DDL on audited tables and refuses weakening it
    encml_audit_ddl_end, pg_finfo_encml_audit_ddl_end => ddl_command_end;
    /// encml.audit_sql_drop(): logs dropped audited tables, refuses dropped audit triggers
    encml_audit_sql_drop, pg_finfo_encml_audit_sql_drop => sql_drop;
    /// encml.audit_table_rewrite(): logs rewrites of audited tables
    encml_audit_table_rewrite, pg_finfo_encml_audit_table_rewrite => table_rewrite;
}
