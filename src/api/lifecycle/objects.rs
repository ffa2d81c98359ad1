//! Large objects in re-encryption jobs: an oid column naming `lo_encrypt` objects is moved by
//! pointing each row at a new object (`encml.lo_reencrypt`), and the objects the job replaced,
//! and any it created that no row took (a trigger kept the old value), are unlinked when the
//! job ends, once no oid column of the database names them (as contrib's vacuumlo decides).

use super::columns::{self, Kind};
use crate::pg::catalog_reads::{arg, read_rows};
use crate::pg::identity::as_extension_owner;
use crate::pg::sql_text::quote_ident;
use pgrx::pg_sys;
use std::cell::RefCell;

thread_local! {
    /// The objects `lo_reencrypt` created while `collecting`.
    static CREATED: RefCell<Option<Vec<pg_sys::Oid>>> = const { RefCell::new(None) };
}

/// Called by `lo_reencrypt` for each object it creates.
pub fn created(oid: pg_sys::Oid) {
    CREATED.with(|c| {
        if let Some(list) = c.borrow_mut().as_mut() {
            list.push(oid);
        }
    });
}

/// Runs `f`, returning with its result the objects `lo_reencrypt` created inside it (an ERROR
/// aborts the transaction, and with it the objects, so nothing is lost by not collecting then).
pub fn collecting<R>(f: impl FnOnce() -> R) -> (R, Vec<pg_sys::Oid>) {
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            CREATED.with(|c| c.borrow_mut().take());
        }
    }
    CREATED.with(|c| *c.borrow_mut() = Some(Vec::new()));
    let _stop = Stop;
    let result = f();
    let list = CREATED.with(|c| c.borrow_mut().take()).unwrap_or_default();
    (result, list)
}

/// The distinct objects named by `column` of `rel` in heap blocks `[from, to)` (all blocks
/// when `None`) that are encrypted under the versions `args` names (`columns::behind_args`).
/// Reads pg_largeobject: run by the worker or as the extension owner.
pub fn behind_in(
    rel: pg_sys::Oid,
    column: &str,
    blocks: Option<(i64, i64)>,
    args: &[(pg_sys::Oid, Option<pg_sys::Datum>)],
) -> Vec<pg_sys::Oid> {
    let range = blocks
        .map(|(from, to)| format!("{} AND ", columns::block_range("", from, to)))
        .unwrap_or_default();
    let c = quote_ident(column);
    read_rows(
        &format!(
            "SELECT DISTINCT ({c})::pg_catalog.oid FROM ONLY {} WHERE {range}{}",
            columns::relation_name(rel),
            columns::behind_condition(Kind::LargeObject, column)
        ),
        args,
        0,
        |row| row.get::<pg_sys::Oid>(1).unwrap_or(pg_sys::InvalidOid),
    )
}

/// The statement moving the rows of `column` in blocks `[from, to)` (all when `None`) that name
/// one of the objects `$5` (oid[]) to new objects, one per object (rows sharing an object
/// share its replacement), returning how many rows it moved (not those a trigger kept).
pub fn move_sql(rel: pg_sys::Oid, column: &str, blocks: Option<(i64, i64)>) -> String {
    let c = quote_ident(column);
    let range = blocks
        .map(|(from, to)| format!(" AND {}", columns::block_range("t", from, to)))
        .unwrap_or_default();
    format!(
        "WITH m AS MATERIALIZED ( \
             SELECT o AS was, encml.lo_reencrypt(o) AS now \
               FROM pg_catalog.unnest($5::pg_catalog.oid[]) o), \
         moved AS ( \
             UPDATE ONLY {} t SET {c} = m.now FROM m \
              WHERE (t.{c})::pg_catalog.oid OPERATOR(pg_catalog.=) m.was{range} \
             RETURNING t.{c} AS now) \
         SELECT pg_catalog.count(*) FROM moved \
          WHERE NOT ((now)::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($5))",
        columns::relation_name(rel)
    )
}

/// Of `oids`, those still existing that no column of type oid (or a domain over it) of a table
/// or materialized view of this database names, outside the system schemas and the extension's
/// own (temporary tables of other sessions are not seen, as vacuumlo does not see them). Err
/// names a table another transaction has locked (its references could not be read).
fn unreferenced(oids: &[pg_sys::Oid]) -> Result<Vec<pg_sys::Oid>, String> {
    as_extension_owner(|| {
        let mut left = existing(oids);
        if left.is_empty() {
            return Ok(left);
        }
        let columns = read_rows(
            "WITH RECURSIVE typ(oid) AS ( \
                 SELECT 'pg_catalog.oid'::pg_catalog.regtype::pg_catalog.oid \
                 UNION SELECT d.oid FROM pg_catalog.pg_type d JOIN typ ON d.typbasetype = typ.oid \
                  WHERE d.typtype = 'd') \
             SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname), a.attname::text \
               FROM pg_catalog.pg_attribute a \
               JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
              WHERE a.atttypid IN (SELECT oid FROM typ) AND a.attnum > 0 AND NOT a.attisdropped \
                AND c.relkind IN ('r', 'm') AND c.relispopulated AND c.relpersistence <> 't' \
                AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
                AND n.oid <> (SELECT e.extnamespace FROM pg_catalog.pg_extension e \
                               WHERE e.extname = 'pg_encrypt_ml')",
            &[],
            0,
            |row| {
                (
                    row.get::<pg_sys::Oid>(1).unwrap_or(pg_sys::InvalidOid),
                    row.get::<String>(2).unwrap_or_default(),
                    row.get::<String>(3).unwrap_or_default(),
                )
            },
        );
        for (rel, table, column) in columns {
            if left.is_empty() {
                break;
            }
            if !columns::lock_for_reading(rel) {
                return Err(table);
            }
            let c = quote_ident(&column);
            let named: Vec<pg_sys::Oid> = read_rows(
                &format!(
                    "SELECT DISTINCT ({c})::pg_catalog.oid FROM ONLY {table} \
                      WHERE ({c})::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1)"
                ),
                &[arg(left.clone())],
                0,
                |row| row.get::<pg_sys::Oid>(1).unwrap_or(pg_sys::InvalidOid),
            );
            left.retain(|o| !named.contains(o));
        }
        Ok(left)
    })
}

/// Unlinks those of `oids` (objects a job replaced or created) that no column names any more
/// and that the current role owns (directly or through a role it has the privileges of, as
/// `lo_unlink` requires); returns the unreferenced ones it could not unlink, or Err with a table
/// whose references could not be read (locked: nothing is unlinked then).
pub fn unlink_replaced(oids: &[pg_sys::Oid]) -> Result<Vec<pg_sys::Oid>, String> {
    if oids.is_empty() {
        return Ok(Vec::new());
    }
    let candidates = unreferenced(oids)?;
    if candidates.is_empty() {
        return Ok(candidates);
    }
    crate::pg::catalog_reads::execute(
        "SELECT pg_catalog.count(pg_catalog.lo_unlink(o)) FROM pg_catalog.unnest($1::pg_catalog.oid[]) o \
          WHERE EXISTS (SELECT FROM pg_catalog.pg_largeobject_metadata m \
                         WHERE m.oid OPERATOR(pg_catalog.=) o \
                           AND pg_catalog.pg_has_role(m.lomowner, 'USAGE'))",
        &[arg(candidates.clone())],
    );
    Ok(as_extension_owner(|| existing(&candidates)))
}

/// Those of `oids` that are large objects (pg_largeobject_metadata is readable by every role).
fn existing(oids: &[pg_sys::Oid]) -> Vec<pg_sys::Oid> {
    read_rows(
        "SELECT oid FROM pg_catalog.pg_largeobject_metadata WHERE oid = ANY ($1)",
        &[arg(oids.to_vec())],
        0,
        |row| row.get::<pg_sys::Oid>(1).unwrap_or(pg_sys::InvalidOid),
    )
}
