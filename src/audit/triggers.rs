//! Installing and removing the audit triggers of a table and of every table its scans return
//! (partitions and inheritance children). Triggers are found by their function
//! (`encml.audit_row_trigger`'s OID), not by name: a renamed audit trigger is still ours.
//!
//! DDL runs as the extension owner (callers check that the calling role owns the table first)
//! with a pinned search_path like every catalog query here, inside `ddl::while_configuring`, so
//! the extension's own event triggers let it through. Anyone else's trigger calling
//! `encml.audit_row_trigger` on an audited table is refused by those event triggers, and the
//! function refuses to fire on a table that is not audited.

use crate::audit::ddl::while_configuring;
use crate::audit::state::row_trigger_function;
use crate::audit::{table_name, SENSITIVE_LABELS};
use crate::pg::catalog_reads::{arg, read_rows};
use crate::pg::errors::OrSpiFailed;
use crate::pg::identity::as_extension_owner;
use crate::pg::sql_text::{quote_ident, quote_literal};
use pgrx::pg_sys;
use pgrx::prelude::*;

/// The columns of `rel` classified with a sensitive label.
pub fn sensitive_columns(rel: pg_sys::Oid) -> Vec<String> {
    as_extension_owner(|| {
        read_rows(
            "SELECT a.attname::text FROM encml.column_classes c \
               JOIN pg_catalog.pg_attribute a ON a.attrelid = c.table_oid AND a.attnum = c.attnum \
              WHERE c.table_oid = $1 AND c.label = ANY ($2) AND NOT a.attisdropped \
              ORDER BY a.attnum",
            &[arg(rel), arg(SENSITIVE_LABELS.map(String::from).to_vec())],
            0,
            |r| r.get::<String>(1),
        )
        .into_iter()
        .flatten()
        .collect()
    })
}

/// The explicitly redacted columns recorded by audit_enable, if the table is audited.
pub fn audited(rel: pg_sys::Oid) -> Option<Vec<String>> {
    as_extension_owner(|| {
        read_rows(
            "SELECT redact FROM encml.audited_tables WHERE table_oid = $1",
            &[arg(rel)],
            1,
            |r| r.get::<Vec<String>>(1),
        )
        .into_iter()
        .next()
        .map(Option::unwrap_or_default)
    })
}

/// The tables whose rows a scan of `rel` returns, `rel` first: (oid, is a partition).
pub fn tree(rel: pg_sys::Oid) -> Vec<(pg_sys::Oid, bool)> {
    as_extension_owner(|| {
        read_rows(
            "WITH RECURSIVE t(relid, depth) AS (SELECT $1::oid, 0 UNION \
                 SELECT i.inhrelid, t.depth + 1 FROM t JOIN pg_catalog.pg_inherits i \
                     ON i.inhparent OPERATOR(pg_catalog.=) t.relid) \
             SELECT t.relid, c.relispartition FROM t JOIN pg_catalog.pg_class c \
                 ON c.oid OPERATOR(pg_catalog.=) t.relid \
              ORDER BY min(depth) OVER (PARTITION BY t.relid), t.relid",
            &[arg(rel)],
            0,
            |r| {
                (
                    r.get::<pg_sys::Oid>(1).unwrap_or(pg_sys::InvalidOid),
                    r.get::<bool>(2).unwrap_or(false),
                )
            },
        )
    })
}

/// The audit triggers on `rel` that can be dropped directly (clones on partitions go with their
/// parent's): (name, is the row trigger).
fn own_triggers(rel: pg_sys::Oid) -> Vec<(String, bool)> {
    as_extension_owner(|| {
        read_rows(
            "SELECT g.tgname::text, (g.tgtype & 1) = 1 FROM pg_catalog.pg_trigger g \
              WHERE g.tgrelid = $1 AND g.tgparentid = 0 AND NOT g.tgisinternal \
                AND g.tgfoid = $2",
            &[arg(rel), arg(row_trigger_function())],
            0,
            |r| r.get::<String>(1).zip(r.get::<bool>(2)),
        )
        .into_iter()
        .flatten()
        .collect()
    })
}

fn run(statement: &str, context: &str) {
    as_extension_owner(|| Spi::run(statement).or_spi_failed(context));
}

/// Drops the audit triggers of `rel` and of the tables under it (as the caller).
pub fn drop_all(rel: pg_sys::Oid) {
    for (relid, _) in tree(rel) {
        drop_from(relid);
    }
}

/// Drops the audit triggers of `relid` itself (not of the tables under it).
pub fn drop_from(relid: pg_sys::Oid) {
    while_configuring(|| {
        let table = table_name(relid);
        for (name, _) in own_triggers(relid) {
            run(
                &format!("DROP TRIGGER {} ON {table}", quote_ident(&name)),
                "audit",
            );
        }
    })
}

/// The redaction list of an audited table: the explicit columns, then the sensitive ones.
pub fn redaction_list(rel: pg_sys::Oid, explicit: &[String]) -> Vec<String> {
    let mut redact: Vec<String> = explicit.to_vec();
    for c in sensitive_columns(rel) {
        if !redact.contains(&c) {
            redact.push(c);
        }
    }
    redact
}

/// Creates the missing audit triggers on one table of an audited tree: the row trigger (unless a
/// partition, which gets a clone of its parent's) and the TRUNCATE trigger (statement triggers
/// are not cloned).
pub fn add_to(
    relid: pg_sys::Oid,
    is_partition: bool,
    redact: &[String],
    row: bool,
    truncate: bool,
) {
    let table = table_name(relid);
    let args: Vec<String> = redact.iter().map(|c| quote_literal(c)).collect();
    // One statement per call: Citus forwards each to the shards of a distributed table by its
    // text.
    while_configuring(|| {
        if row && !is_partition {
            run(
                &format!(
                    "CREATE TRIGGER encml_audit_row AFTER INSERT OR UPDATE OR DELETE ON {table} \
                       FOR EACH ROW EXECUTE FUNCTION encml.audit_row_trigger({})",
                    args.join(", ")
                ),
                "audit_enable",
            );
        }
        if truncate {
            run(
                &format!(
                    "CREATE TRIGGER encml_audit_truncate AFTER TRUNCATE ON {table} \
                       FOR EACH STATEMENT EXECUTE FUNCTION encml.audit_row_trigger()"
                ),
                "audit_enable",
            );
        }
    })
}

/// (Re)creates the audit triggers of `rel` and of the tables under it, redacting `explicit` and
/// the sensitive columns; returns the redaction list.
pub fn install(rel: pg_sys::Oid, explicit: &[String]) -> Vec<String> {
    let redact = redaction_list(rel, explicit);
    drop_all(rel);
    for (relid, is_partition) in tree(rel) {
        // (The audited table itself may be a partition of a table that is not audited: it gets
        // its own row trigger, there is no parent's to clone.)
        add_to(relid, is_partition && relid != rel, &redact, true, true);
    }
    redact
}
