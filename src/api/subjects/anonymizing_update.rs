//! The anonymizing UPDATE (`anonymizing_update`): it sets the columns to clear to NULL and
//! returns, per row, whether the row as stored has them NULL and every other column as it was,
//! generated columns included.

use super::tables::tree_of;
use crate::pg::errors::raise_full;
use crate::pg::errors::OrSpiFailed;
use crate::pg::sql_text::quote_ident;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};

/// The columns of `rel` besides `set` that an UPDATE leaves as they are: every stored column
/// that is not generated (a generated one is recomputed from the row, as Postgres does).
fn kept_attnames(rel: pg_sys::Oid, set: &[String]) -> Vec<String> {
    Spi::get_one_with_args::<Vec<String>>(
        "SELECT pg_catalog.array_agg(attname::pg_catalog.text ORDER BY attnum) FROM pg_catalog.pg_attribute \
          WHERE attrelid OPERATOR(pg_catalog.=) $1 AND attnum OPERATOR(pg_catalog.>) 0 AND NOT attisdropped \
            AND attgenerated OPERATOR(pg_catalog.=) '' \
            AND NOT attname::pg_catalog.text OPERATOR(pg_catalog.=) ANY ($2::pg_catalog.text[])",
        &[rel.into(), set.to_vec().into()],
    )
    .or_spi_failed("")
    .unwrap_or_default()
}

/// The stored generated columns of `rel`: name, and whether its expression, in `rel` or in a
/// table under it, reads one of the columns `set` clears. The UPDATE recomputes them, and the
/// owners' code can steer what they compute to: a function of the owner's that says it is
/// IMMUTABLE yet reads the table, where the UPDATE shows the row as it was (attacker round 19),
/// or a built-in output function that follows a setting the owner's trigger changed for the
/// row (`extra_float_digits`, `bytea_output`, `quote_all_identifiers`: round 20, six bits of a
/// cleared column per row). So each must come out fixed: NULL if it reads a cleared column, else
/// as it was.
fn generated_columns(rel: pg_sys::Oid, set: &[String]) -> Vec<(String, bool)> {
    let tree = tree_of(rel);
    crate::pg::catalog_reads::read_rows(
        "SELECT a.attname::pg_catalog.text, EXISTS ( \
                SELECT FROM pg_catalog.pg_attribute c \
                  JOIN pg_catalog.pg_attrdef ad \
                    ON ad.adrelid OPERATOR(pg_catalog.=) c.attrelid AND ad.adnum OPERATOR(pg_catalog.=) c.attnum \
                  JOIN pg_catalog.pg_depend d \
                    ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_attrdef'::pg_catalog.regclass \
                   AND d.objid OPERATOR(pg_catalog.=) ad.oid \
                   AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass \
                   AND d.refobjid OPERATOR(pg_catalog.=) c.attrelid \
                  JOIN pg_catalog.pg_attribute r \
                    ON r.attrelid OPERATOR(pg_catalog.=) d.refobjid AND r.attnum OPERATOR(pg_catalog.=) d.refobjsubid \
                 WHERE c.attrelid OPERATOR(pg_catalog.=) ANY ($2::pg_catalog.oid[]) \
                   AND c.attname OPERATOR(pg_catalog.=) a.attname \
                   AND r.attname::pg_catalog.text OPERATOR(pg_catalog.=) ANY ($3::pg_catalog.text[])) \
           FROM pg_catalog.pg_attribute a \
          WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.>) 0 \
            AND NOT a.attisdropped AND a.attgenerated OPERATOR(pg_catalog.=) 's' \
          ORDER BY a.attnum",
        &[
            crate::pg::catalog_reads::arg(rel),
            crate::pg::catalog_reads::arg(tree),
            crate::pg::catalog_reads::arg(set.to_vec()),
        ],
        0,
        |r| {
            (
                r.get::<String>(1).unwrap_or_default(),
                r.get::<bool>(2).unwrap_or(true),
            )
        },
    )
}

/// An anonymizing UPDATE of `target` (`ONLY t` or `t`) that sets `set` to NULL in the rows
/// `predicate` finds and returns, per row, whether the row as stored has every set column
/// NULL and every other column as it was, byte for byte (`*=`, record image equality: no
/// type's own operator is asked). An owner's BEFORE UPDATE trigger that copies the cleared
/// values into a kept column (attacker round 18) or puts one back (round 14) is seen.
/// Stored generated columns are recomputed by the UPDATE, not set: one to clear, or one that
/// reads a cleared column, must come out NULL, any other as it was (`generated_columns`).
pub(super) fn anonymizing_update(
    target: &str,
    rel: pg_sys::Oid,
    set: &[String],
    predicate: &str,
) -> String {
    let kept = kept_attnames(rel, set);
    let generated = generated_columns(rel, set);
    let is_generated = |c: &String| generated.iter().any(|(g, _)| g == c);
    let assignments: Vec<String> = set
        .iter()
        .filter(|c| !is_generated(c))
        .map(|c| format!("{} = NULL", quote_ident(c)))
        .collect();
    if assignments.is_empty() {
        raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("cannot anonymize the subject's rows in {target}: every column to clear is generated"),
            Some("Nothing was erased: the erasure is all or nothing.".into()),
            Some("Register the columns the generated ones are computed from, or register the table to delete.".into()),
        );
    }
    let mut checks: Vec<String> = set
        .iter()
        .map(|c| format!("t.{} IS NULL", quote_ident(c)))
        .collect();
    let mut before = vec![format!("ROW({}) AS encml_kept", columns_of("t", &kept))];
    for (i, (g, reads_cleared)) in generated.iter().enumerate() {
        if set.contains(g) {
            continue; // IS NULL, above
        }
        if *reads_cleared {
            checks.push(format!("t.{} IS NULL", quote_ident(g)));
        } else {
            before.push(format!("ROW(t.{}) AS encml_generated_{i}", quote_ident(g)));
            checks.push(format!(
                "ROW(t.{}) OPERATOR(pg_catalog.*=) o.encml_generated_{i}",
                quote_ident(g)
            ));
        }
    }
    checks.push(format!(
        "ROW({}) OPERATOR(pg_catalog.*=) o.encml_kept",
        columns_of("t", &kept)
    ));
    format!(
        "UPDATE {target} t SET {} \
           FROM (SELECT t.tableoid AS encml_rel, t.ctid AS encml_tid, {} \
                   FROM {target} t WHERE {predicate}) o \
          WHERE t.tableoid OPERATOR(pg_catalog.=) o.encml_rel \
            AND t.ctid OPERATOR(pg_catalog.=) o.encml_tid \
         RETURNING {}",
        assignments.join(", "),
        before.join(", "),
        checks.join(" AND "),
    )
}

/// `alias.c1, alias.c2, ...`, quoted.
fn columns_of(alias: &str, columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| format!("{alias}.{}", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ")
}
