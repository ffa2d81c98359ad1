//! Utility statements seen before they run (library preloaded, from the ProcessUtility hook):
//!
//! - **Maintenance that evaluates the owner's expressions over a read-audited table's rows**
//!   (ALTER TABLE: a column type's USING, a CHECK or NOT NULL being validated, a rewrite;
//!   CREATE INDEX, REINDEX, CLUSTER, VACUUM, ANALYZE: index expressions and predicates; a new
//!   partition, which scans the default partition; ALTER DOMAIN's constraints, checked against
//!   every column of the domain), also through a parent of the owner's own, is a read (and so
//!   is COPY FROM into the table, whose unique and exclusion checks answer for existing rows):
//!   an error can show a row's value ("invalid input syntax for type integer: ..."), and the
//!   expressions can be the owner's functions. It is recorded before the statement runs, so that
//!   one that fails is on record too (as a rolled-back read: `reads`).
//! - **Statements that lock before they check ownership** (CREATE TRIGGER, CREATE RULE, CREATE
//!   TABLE ... PARTITION OF, ATTACH PARTITION, a foreign key's REFERENCES) naming a relation of
//!   the extension's schema (the log, its ranges, the witness, the catalog) are refused for roles
//!   that do not own it, before they queue a lock: queued behind any transaction that wrote an
//!   audited row, such a lock request stalled every audited write and every seal until it was
//!   cancelled.

use crate::audit::{audited, reads, triggers};
use crate::pg::catalog_reads::relation_named;
use crate::pg::errors::raise;
use pgrx::prelude::*;
use pgrx::{is_a, PgList, PgSqlErrorCode};

/// What a maintenance statement reads: the relations it names (each with the tables under it;
/// only what the role may maintain), every table (ANALYZE or VACUUM without a list), or the
/// tables Postgres scans for another object whoever owns them (a parent's default partition
/// for a new partition, the columns of a domain for its constraint).
enum Reads {
    Named(Vec<pg_sys::Oid>),
    Everything,
    Scanned(Vec<pg_sys::Oid>),
}

/// What a maintenance statement reads, and its command.
unsafe fn maintained(stmt: *mut pg_sys::Node) -> Option<(Reads, &'static str)> {
    use pg_sys::NodeTag::*;
    // SAFETY: each node is cast to the type its tag names (is_a) before its fields are read.
    unsafe {
        if is_a(stmt, T_AlterTableStmt) {
            use pg_sys::AlterTableType as At;
            let s = stmt as *mut pg_sys::AlterTableStmt;
            // Subcommands that evaluate expressions over the rows: defaults and generated
            // columns of a new column, USING, constraints and indexes being built or validated,
            // and rewrites (which rebuild the indexes, expressions included).
            let reads = PgList::<pg_sys::AlterTableCmd>::from_pg((*s).cmds)
                .iter_ptr()
                .any(|c| {
                    matches!(
                        (*c).subtype,
                        At::AT_AddColumn
                            | At::AT_AddColumnRecurse
                            | At::AT_AlterColumnType
                            | At::AT_SetNotNull
                            | At::AT_CheckNotNull
                            | At::AT_AddIndex
                            | At::AT_ReAddIndex
                            | At::AT_AddConstraint
                            | At::AT_AddConstraintRecurse
                            | At::AT_ReAddConstraint
                            | At::AT_ValidateConstraint
                            | At::AT_ValidateConstraintRecurse
                            | At::AT_AddIndexConstraint
                            | At::AT_AttachPartition
                            | At::AT_SetAccessMethod
                            | At::AT_SetLogged
                            | At::AT_SetUnLogged
                    )
                });
            if !reads {
                return None;
            }
            // A table being attached is scanned against its partition constraint (an error
            // says whether a row lies outside the bound: an oracle on the values).
            let cmds = PgList::<pg_sys::AlterTableCmd>::from_pg((*s).cmds);
            let attached: Vec<pg_sys::Oid> = cmds
                .iter_ptr()
                .filter(|&c| {
                    (*c).subtype == At::AT_AttachPartition
                        && !(*c).def.is_null()
                        && is_a((*c).def, T_PartitionCmd)
                })
                .filter_map(|c| relation_named((*((*c).def as *mut pg_sys::PartitionCmd)).name))
                .collect();
            return Some((
                Reads::Named(
                    relation_named((*s).relation)
                        .into_iter()
                        .chain(attached)
                        .collect(),
                ),
                "ALTER TABLE",
            ));
        }
        if is_a(stmt, T_CopyStmt) {
            // COPY FROM inserts without an executor start: its unique and exclusion checks
            // answer for existing rows as an INSERT's do (`reads`), for whoever may insert.
            let s = stmt as *mut pg_sys::CopyStmt;
            if (*s).is_from && !(*s).relation.is_null() {
                return Some((
                    Reads::Scanned(relation_named((*s).relation).into_iter().collect()),
                    "COPY FROM",
                ));
            }
            return None;
        }
        if is_a(stmt, T_IndexStmt) {
            let s = stmt as *mut pg_sys::IndexStmt;
            return Some((
                Reads::Named(relation_named((*s).relation).into_iter().collect()),
                "CREATE INDEX",
            ));
        }
        if is_a(stmt, T_ClusterStmt) {
            let s = stmt as *mut pg_sys::ClusterStmt;
            return Some((
                if (*s).relation.is_null() {
                    Reads::Everything
                } else {
                    Reads::Named(relation_named((*s).relation).into_iter().collect())
                },
                "CLUSTER",
            ));
        }
        if is_a(stmt, T_ReindexStmt) {
            let s = stmt as *mut pg_sys::ReindexStmt;
            let rel = match (*s).kind {
                pg_sys::ReindexObjectType::REINDEX_OBJECT_TABLE => relation_named((*s).relation),
                pg_sys::ReindexObjectType::REINDEX_OBJECT_INDEX => relation_named((*s).relation)
                    .map(|i| pg_sys::IndexGetRelation(i, true))
                    .filter(|r| *r != pg_sys::InvalidOid),
                _ => return Some((Reads::Everything, "REINDEX")),
            };
            return Some((Reads::Named(rel.into_iter().collect()), "REINDEX"));
        }
        if is_a(stmt, T_VacuumStmt) {
            let s = stmt as *mut pg_sys::VacuumStmt;
            let command = if (*s).is_vacuumcmd {
                "VACUUM"
            } else {
                "ANALYZE"
            };
            // (A plain VACUUM evaluates no expression; FULL rebuilds the indexes, ANALYZE
            // evaluates the index expressions and extended statistics.)
            if (*s).is_vacuumcmd
                && !PgList::<pg_sys::DefElem>::from_pg((*s).options)
                    .iter_ptr()
                    .any(|d| {
                        let name = std::ffi::CStr::from_ptr((*d).defname).to_bytes();
                        name == b"full" || name == b"analyze"
                    })
            {
                return None;
            }
            let rels = PgList::<pg_sys::VacuumRelation>::from_pg((*s).rels);
            if rels.is_empty() {
                return Some((Reads::Everything, command));
            }
            let relids = rels
                .iter_ptr()
                .filter_map(|v| relation_named((*v).relation))
                .collect();
            return Some((Reads::Named(relids), command));
        }
        // A new partition: Postgres scans the parent's default partition for rows it would
        // take (an error names none, but says whether there are any: an oracle on the values).
        if is_a(stmt, T_CreateStmt) {
            let s = stmt as *mut pg_sys::CreateStmt;
            if (*s).partbound.is_null() {
                return None;
            }
            let defaults: Vec<pg_sys::Oid> = PgList::<pg_sys::Node>::from_pg((*s).inhRelations)
                .iter_ptr()
                .filter(|n| is_a(*n, T_RangeVar))
                .filter_map(|n| relation_named(n as *mut pg_sys::RangeVar))
                .filter_map(default_partition)
                .filter(|d| *d != pg_sys::InvalidOid)
                .collect();
            if defaults.is_empty() {
                return None;
            }
            return Some((Reads::Scanned(defaults), "CREATE TABLE"));
        }
        // A domain constraint added or validated is checked against every column of the domain,
        // in whosever table (the domain's owner decides the expression).
        if is_a(stmt, T_AlterDomainStmt) {
            let s = stmt as *mut pg_sys::AlterDomainStmt;
            if !matches!((*s).subtype as u8, b'C' | b'V' | b'O') {
                return None;
            }
            let name = pg_sys::makeTypeNameFromNameList((*s).typeName);
            let domain = pg_sys::LookupTypeNameOid(std::ptr::null_mut(), name, true);
            if domain == pg_sys::InvalidOid {
                return None;
            }
            return Some((Reads::Scanned(domain_columns(domain)), "ALTER DOMAIN"));
        }
    }
    None
}

/// Whether the current role may run maintenance on `relid` (owner or superuser): others fail
/// before reading anything, and are not recorded.
fn may_maintain(relid: pg_sys::Oid) -> bool {
    // SAFETY: catalog lookups by oid.
    unsafe { pg_sys::pg_class_ownercheck(relid, pg_sys::GetUserId()) }
}

/// The default partition of a partitioned table, if it has one.
fn default_partition(parent: pg_sys::Oid) -> Option<pg_sys::Oid> {
    crate::pg::identity::as_extension_owner(|| {
        crate::pg::catalog_reads::select_one::<pg_sys::Oid>(
            "SELECT partdefid FROM pg_catalog.pg_partitioned_table \
              WHERE partrelid OPERATOR(pg_catalog.=) $1",
            &[crate::pg::catalog_reads::arg(parent)],
        )
    })
}

/// The tables with columns of `domain`, or of a domain over it.
fn domain_columns(domain: pg_sys::Oid) -> Vec<pg_sys::Oid> {
    crate::pg::identity::as_extension_owner(|| {
        crate::pg::catalog_reads::read_rows(
            "WITH RECURSIVE d(t) AS (SELECT $1::pg_catalog.oid UNION \
                 SELECT y.oid FROM pg_catalog.pg_type y JOIN d ON y.typbasetype OPERATOR(pg_catalog.=) d.t \
                  WHERE y.typtype OPERATOR(pg_catalog.=) 'd') \
             SELECT DISTINCT a.attrelid FROM pg_catalog.pg_attribute a \
              WHERE a.atttypid OPERATOR(pg_catalog.=) ANY (SELECT t FROM d) AND NOT a.attisdropped \
                AND a.attnum OPERATOR(pg_catalog.>) 0",
            &[crate::pg::catalog_reads::arg(domain)],
            0,
            |r| r.get::<pg_sys::Oid>(1),
        )
        .into_iter()
        .flatten()
        .collect()
    })
}

/// Records the reads of read-audited tables a maintenance statement is about to make.
fn record_maintenance(reads_what: Reads, command: &str) {
    let map = audited::map();
    if map.is_empty() || !map.values().any(|a| a.reads) {
        return;
    }
    let candidates: Vec<pg_sys::Oid> = match reads_what {
        // Each named relation with the tables under it (maintenance of a parent of one's own
        // reaches an audited partition or child below it), if the role may maintain it.
        Reads::Named(named) => named
            .into_iter()
            .filter(|relid| may_maintain(*relid))
            .flat_map(|relid| triggers::tree(relid).into_iter().map(|(r, _)| r))
            .collect(),
        // Every table the role may maintain: the read-audited ones among them.
        Reads::Everything => map
            .iter()
            .filter(|(relid, a)| a.reads && **relid == a.root && may_maintain(**relid))
            .map(|(relid, _)| *relid)
            .collect(),
        Reads::Scanned(relids) => relids
            .into_iter()
            .flat_map(|relid| triggers::tree(relid).into_iter().map(|(r, _)| r))
            .collect(),
    };
    let mut seen: Vec<pg_sys::Oid> = Vec::new();
    for relid in candidates {
        let Some(a) = map.get(&relid).filter(|a| a.reads) else {
            continue;
        };
        if seen.contains(&a.root) {
            continue;
        }
        seen.push(a.root);
        reads::record(a.root, &a.root_name, relid, command, 0, None);
    }
}

/// The extension's schema (its catalog, the log and the log's ranges live there).
fn extension_schema() -> pg_sys::Oid {
    crate::pg::identity::as_extension_owner(|| {
        crate::pg::catalog_reads::select_one::<pg_sys::Oid>(
            "SELECT extnamespace FROM pg_catalog.pg_extension WHERE extname = 'pg_encrypt_ml'",
            &[],
        )
    })
    .unwrap_or(pg_sys::InvalidOid)
}

/// The table a foreign key among `node`'s constraints references: a Constraint node, or a
/// ColumnDef node with its constraints (others have none).
unsafe fn foreign_key_target(node: *mut pg_sys::Node, out: &mut Vec<pg_sys::Oid>) {
    // SAFETY: each node is tested to be of the type it is cast to.
    unsafe {
        if node.is_null() {
            return;
        }
        if is_a(node, pg_sys::NodeTag::T_ColumnDef) {
            for c in
                PgList::<pg_sys::Node>::from_pg((*(node as *mut pg_sys::ColumnDef)).constraints)
                    .iter_ptr()
            {
                foreign_key_target(c, out);
            }
        } else if is_a(node, pg_sys::NodeTag::T_Constraint) {
            let c = node as *mut pg_sys::Constraint;
            if (*c).contype == pg_sys::ConstrType::CONSTR_FOREIGN {
                out.extend(relation_named((*c).pktable));
            }
        }
    }
}

/// The tables the foreign keys a CREATE TABLE or ALTER TABLE (ADD CONSTRAINT, ADD COLUMN)
/// defines reference: Postgres locks them, and puts its RI triggers on them.
///
/// # Safety
/// `stmt` must be a statement's parse tree (or NULL).
pub unsafe fn foreign_key_targets(stmt: *mut pg_sys::Node) -> Vec<pg_sys::Oid> {
    let mut out = Vec::new();
    // SAFETY: each node is cast to the type its tag names (is_a) before its fields are read.
    unsafe {
        if stmt.is_null() {
            return out;
        }
        if is_a(stmt, pg_sys::NodeTag::T_CreateStmt) {
            let s = stmt as *mut pg_sys::CreateStmt;
            for list in [(*s).tableElts, (*s).constraints] {
                for e in PgList::<pg_sys::Node>::from_pg(list).iter_ptr() {
                    foreign_key_target(e, &mut out);
                }
            }
        } else if is_a(stmt, pg_sys::NodeTag::T_AlterTableStmt) {
            let a = stmt as *mut pg_sys::AlterTableStmt;
            for cmd in PgList::<pg_sys::AlterTableCmd>::from_pg((*a).cmds).iter_ptr() {
                if matches!(
                    (*cmd).subtype,
                    pg_sys::AlterTableType::AT_AddConstraint | pg_sys::AlterTableType::AT_AddColumn
                ) {
                    foreign_key_target((*cmd).def, &mut out);
                }
            }
        }
    }
    out
}

/// Relations a statement locks, in a mode that conflicts with what any role can hold on the
/// extension's relations (ROW EXCLUSIVE by writing an audited row, ACCESS SHARE by a PREPAREd
/// SELECT), before Postgres checks that the caller owns them or may reference them.
unsafe fn locked_before_check(stmt: *mut pg_sys::Node) -> (Vec<pg_sys::Oid>, &'static str) {
    use pg_sys::NodeTag::*;
    let mut rels = Vec::new();
    // SAFETY: each node is cast to the type its tag names (is_a) before its fields are read.
    unsafe {
        if is_a(stmt, T_CreateTrigStmt) {
            rels.extend(relation_named(
                (*(stmt as *mut pg_sys::CreateTrigStmt)).relation,
            ));
            return (rels, "CREATE TRIGGER");
        }
        if is_a(stmt, T_RuleStmt) {
            rels.extend(relation_named((*(stmt as *mut pg_sys::RuleStmt)).relation));
            return (rels, "CREATE RULE");
        }
        if is_a(stmt, T_CreateStmt) {
            let s = stmt as *mut pg_sys::CreateStmt;
            if !(*s).partbound.is_null() {
                for p in PgList::<pg_sys::Node>::from_pg((*s).inhRelations).iter_ptr() {
                    if is_a(p, T_RangeVar) {
                        rels.extend(relation_named(p as *mut pg_sys::RangeVar));
                    }
                }
            }
            rels.extend(foreign_key_targets(stmt));
            return (rels, "CREATE TABLE");
        }
        if is_a(stmt, T_AlterTableStmt) {
            let a = stmt as *mut pg_sys::AlterTableStmt;
            use pg_sys::AlterTableType as At;
            for cmd in PgList::<pg_sys::AlterTableCmd>::from_pg((*a).cmds).iter_ptr() {
                let def = (*cmd).def;
                if def.is_null() {
                    continue;
                }
                match (*cmd).subtype {
                    // The partition named is locked before it is found not to be one (an
                    // attacker's find for DETACH: ACCESS EXCLUSIVE queued on the log's range
                    // stalled every statement of the database).
                    At::AT_AttachPartition
                    | At::AT_DetachPartition
                    | At::AT_DetachPartitionFinalize
                        if is_a(def, T_PartitionCmd) =>
                    {
                        rels.extend(relation_named((*(def as *mut pg_sys::PartitionCmd)).name));
                    }
                    // The new or old parent is locked before its ownership is checked.
                    At::AT_AddInherit | At::AT_DropInherit if is_a(def, T_RangeVar) => {
                        rels.extend(relation_named(def as *mut pg_sys::RangeVar));
                    }
                    _ => {}
                }
            }
            rels.extend(foreign_key_targets(stmt));
            return (rels, "ALTER TABLE");
        }
    }
    (rels, "")
}

/// Refuses, before any lock is requested, statements that would lock a relation of the
/// extension's schema before checking that the caller owns it (or may reference it).
unsafe fn refuse_locking_before_check(stmt: *mut pg_sys::Node) {
    // SAFETY: as the caller guarantees.
    let (rels, command) = unsafe { locked_before_check(stmt) };
    if rels.is_empty() {
        return;
    }
    let schema = extension_schema();
    for rel in rels {
        // SAFETY: catalog lookups by oid.
        let ours = unsafe { pg_sys::get_rel_namespace(rel) } == schema;
        if ours && !may_maintain(rel) {
            raise(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!(
                    "{command} naming {} is reserved to its owner",
                    crate::audit::table_name(rel)
                ),
            );
        }
    }
}

/// The extension's event trigger a statement alters, renames or drops (by catalog state: an
/// event trigger that is a member of the extension), with what it does.
unsafe fn event_trigger_change(stmt: *mut pg_sys::Node) -> Option<(String, String)> {
    use pg_sys::NodeTag::*;
    // SAFETY: each node is cast to the type its tag names (is_a) before its fields are read.
    let (names, action): (Vec<String>, String) = unsafe {
        let cstr = |p: *const std::ffi::c_char| {
            (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
        };
        if is_a(stmt, T_AlterEventTrigStmt) {
            let s = stmt as *mut pg_sys::AlterEventTrigStmt;
            let action = match (*s).tgenabled as u8 {
                b'D' => "DISABLE",
                b'R' => "ENABLE REPLICA",
                b'A' => "ENABLE ALWAYS",
                _ => "ENABLE",
            };
            (
                cstr((*s).trigname).into_iter().collect(),
                action.to_string(),
            )
        } else if is_a(stmt, T_RenameStmt)
            && (*(stmt as *mut pg_sys::RenameStmt)).renameType
                == pg_sys::ObjectType::OBJECT_EVENT_TRIGGER
        {
            let s = stmt as *mut pg_sys::RenameStmt;
            let old = if !(*s).object.is_null() && is_a((*s).object, T_String) {
                cstr((*((*s).object as *mut pg_sys::String)).sval)
            } else {
                None
            };
            (
                old.into_iter().collect(),
                format!("RENAME TO {}", cstr((*s).newname).unwrap_or_default()),
            )
        } else if is_a(stmt, T_DropStmt)
            && (*(stmt as *mut pg_sys::DropStmt)).removeType
                == pg_sys::ObjectType::OBJECT_EVENT_TRIGGER
        {
            let s = stmt as *mut pg_sys::DropStmt;
            let names = PgList::<pg_sys::Node>::from_pg((*s).objects)
                .iter_ptr()
                .filter(|n| is_a(*n, T_String))
                .filter_map(|n| cstr((*(n as *mut pg_sys::String)).sval))
                .collect();
            (names, "DROP".to_string())
        } else if is_a(stmt, T_AlterExtensionContentsStmt)
            && (*(stmt as *mut pg_sys::AlterExtensionContentsStmt)).objtype
                == pg_sys::ObjectType::OBJECT_EVENT_TRIGGER
        {
            let s = stmt as *mut pg_sys::AlterExtensionContentsStmt;
            let object = (*s).object;
            let name = if !object.is_null() && is_a(object, T_String) {
                cstr((*(object as *mut pg_sys::String)).sval)
            } else {
                None
            };
            let verb = if (*s).action > 0 {
                "ALTER EXTENSION ADD"
            } else {
                "ALTER EXTENSION DROP"
            };
            (name.into_iter().collect(), verb.to_string())
        } else {
            return None;
        }
    };
    let ours: Vec<String> = crate::audit::state::extension_event_triggers()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| names.contains(name))
        .collect();
    (!ours.is_empty()).then(|| (ours.join(", "), action))
}

/// Called by the ProcessUtility hook before a statement runs.
///
/// # Safety
/// `stmt` must be the statement's parse tree (utilityStmt of the PlannedStmt being run).
pub unsafe fn before_utility(stmt: *mut pg_sys::Node) {
    // SAFETY: reads backend globals; stmt as the caller guarantees.
    unsafe {
        if stmt.is_null()
            || pg_sys::creating_extension
            || !pg_sys::IsTransactionState()
            || pg_sys::get_extension_oid(c"pg_encrypt_ml".as_ptr(), true) == pg_sys::InvalidOid
        {
            return;
        }
        refuse_locking_before_check(stmt);
        // Event triggers fire for no statement on event triggers: a superuser's DISABLE, DROP or
        // RENAME of the extension's would leave nothing once undone. Recorded before it runs,
        // outside the transaction (and in the server log at once).
        if let Some((triggers, action)) = event_trigger_change(stmt) {
            crate::audit::events::refused(
                "event_trigger_altered",
                serde_json::json!({ "event_triggers": triggers, "action": action }),
            );
        }
        if let Some((what, command)) = maintained(stmt) {
            if reads::schema_supports() {
                record_maintenance(what, command);
            }
        }
    }
}

/// Whether `func` is a built-in that evaluates an index's expressions and predicate over its
/// table's rows outside any utility statement: BRIN summarization (the owner's functions in a
/// BRIN index's expressions see every summarized row, an attacker's find).
fn evaluates_index_expressions(func: pg_sys::Oid) -> bool {
    matches!(
        func.to_u32(),
        pg_sys::F_BRIN_SUMMARIZE_RANGE | pg_sys::F_BRIN_SUMMARIZE_NEW_VALUES
    )
}

/// From the object-access hook (`hooks::object_access`), for every function the executor
/// prepares to call (built-ins included), before the statement reads anything: a BRIN
/// summarization call is a maintenance read of each read-audited table the role may maintain
/// (the function takes an index whose table it must own; which index is known only when it runs).
pub fn on_function_execute(function: pg_sys::Oid) {
    // SAFETY: backend globals of this single-threaded process, read only; get_extension_oid is
    // a guarded syscache lookup by name that returns InvalidOid when missing.
    let here = unsafe {
        !pg_sys::creating_extension
            && pg_sys::IsTransactionState()
            && pg_sys::get_extension_oid(c"pg_encrypt_ml".as_ptr(), true) != pg_sys::InvalidOid
    };
    if !evaluates_index_expressions(function) || !here || !reads::schema_supports() {
        return;
    }
    let command = if function.to_u32() == pg_sys::F_BRIN_SUMMARIZE_RANGE {
        "brin_summarize_range"
    } else {
        "brin_summarize_new_values"
    };
    record_maintenance(Reads::Everything, command);
}
