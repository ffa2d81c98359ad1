//! Column classifications (`encml.column_classes`) and data-subject identifier registrations
//! (`encml.subject_columns`) follow their columns through DDL: a rename
//! updates the name a restore finds the column by (attribute numbers change when a table with
//! dropped columns is dumped and restored), and a dropped column or table takes its labels with
//! it (a later column or table could get its number or oid). Called by the event triggers in
//! `ddl` for every table, audited or not.

use crate::pg::catalog_reads::{arg, extension_relation, select_one};
use crate::pg::errors::OrSpiFailed;
use crate::pg::identity::as_extension_owner;
use pgrx::prelude::*;

/// Whether the installed schema names classified columns (0.2.0 and later).
fn names_columns(classes: pg_sys::Oid) -> bool {
    select_one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = $1 \
            AND attname = 'column_name' AND NOT attisdropped)",
        &[arg(classes)],
    )
    .unwrap_or(false)
}

/// Whether the installed schema numbers registered subject-identifier columns (0.2.0 and later).
pub fn numbers_subject_columns(registrations: pg_sys::Oid) -> bool {
    // SAFETY: a syscache lookup of a column by name; nothing is kept.
    unsafe { pg_sys::get_attnum(registrations, c"attnum".as_ptr()) > 0 }
}

/// After a column of `rel` was renamed: the classifications of `rel` and the tables under it
/// (a rename recurses to them) take the current names.
pub fn columns_renamed(rel: pg_sys::Oid) {
    let classes = extension_relation(c"column_classes");
    if classes == pg_sys::InvalidOid {
        return;
    }
    as_extension_owner(|| {
        if !names_columns(classes) {
            return;
        }
        Spi::run_with_args(
            "WITH RECURSIVE tree(relid) AS (SELECT $1::pg_catalog.oid UNION \
                 SELECT i.inhrelid FROM tree t JOIN pg_catalog.pg_inherits i \
                   ON i.inhparent OPERATOR(pg_catalog.=) t.relid) \
             UPDATE encml.column_classes c SET column_name = a.attname::pg_catalog.text \
               FROM pg_catalog.pg_attribute a \
              WHERE c.table_oid::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (SELECT relid FROM tree) \
                AND a.attrelid OPERATOR(pg_catalog.=) c.table_oid::pg_catalog.oid \
                AND a.attnum OPERATOR(pg_catalog.=) c.attnum AND NOT a.attisdropped \
                AND c.column_name IS DISTINCT FROM a.attname::pg_catalog.text",
            &[rel.into()],
        )
        .or_spi_failed("column classifications")
    });
}

/// After a statement that may have renamed columns (ALTER TABLE ... RENAME COLUMN, which
/// recurses to inheritors, and ALTER TYPE ... RENAME ATTRIBUTE ... CASCADE, which renames the
/// columns of typed tables): registrations of subject-identifier columns (`encml.subject_columns`,
/// identified by number) take their columns' current names, wherever the rename reached. Without
/// this a renamed column hid its table from exports and erasures (attacker rounds 7 and 8).
pub fn subject_columns_follow_renames() {
    let registrations = extension_relation(c"subject_columns");
    if registrations == pg_sys::InvalidOid {
        return;
    }
    as_extension_owner(|| {
        if !numbers_subject_columns(registrations) {
            return;
        }
        Spi::run(
            "UPDATE encml.subject_columns s SET col = a.attname \
               FROM pg_catalog.pg_attribute a \
              WHERE a.attrelid OPERATOR(pg_catalog.=) s.tbl::pg_catalog.oid \
                AND a.attnum OPERATOR(pg_catalog.=) s.attnum AND NOT a.attisdropped \
                AND s.col OPERATOR(pg_catalog.<>) a.attname",
        )
        .or_spi_failed("subject registrations")
    });
}

/// After a DROP: forgets the classifications of dropped tables and of dropped columns
/// (table, attribute number).
pub fn forget_dropped(tables: &[pg_sys::Oid], columns: &[(pg_sys::Oid, i32)]) {
    if tables.is_empty() && columns.is_empty() {
        return;
    }
    let classes = extension_relation(c"column_classes");
    if classes == pg_sys::InvalidOid {
        return;
    }
    let column_tables: Vec<pg_sys::Oid> = columns.iter().map(|(t, _)| *t).collect();
    let column_numbers: Vec<i32> = columns.iter().map(|(_, n)| *n).collect();
    as_extension_owner(|| {
        // (Most drops are of other tables: nothing is written then.)
        let any = select_one::<bool>(
            "SELECT EXISTS (SELECT FROM encml.column_classes c \
              WHERE c.table_oid::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) \
                 OR (c.table_oid::pg_catalog.oid, c.attnum::pg_catalog.int4) IN \
                    (SELECT * FROM ROWS FROM (pg_catalog.unnest($2::pg_catalog.oid[]), pg_catalog.unnest($3::pg_catalog.int4[]))))",
            &[arg(tables.to_vec()), arg(column_tables.clone()), arg(column_numbers.clone())],
        )
        .unwrap_or(false);
        if any {
            Spi::run_with_args(
                "DELETE FROM encml.column_classes c \
                  WHERE c.table_oid::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) \
                     OR (c.table_oid::pg_catalog.oid, c.attnum::pg_catalog.int4) IN \
                        (SELECT * FROM ROWS FROM (pg_catalog.unnest($2::pg_catalog.oid[]), pg_catalog.unnest($3::pg_catalog.int4[])))",
                &[tables.to_vec().into(), column_tables.into(), column_numbers.into()],
            )
            .or_spi_failed("column classifications");
        }
    });
}
