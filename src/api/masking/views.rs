//! Masking rules and masked views (docs/masking.md): the table's owner sets a mask per column
//! and the roles that see it unmasked (`set_masking_rule`, kept in `encml.masking_rules`);
//! `apply_masking` makes the security-barrier view `<table>_masked` from them, with the masks
//! of plain columns precomputed in generated columns of the table if asked.

use super::masks::mask_expr;
use crate::pg::errors::raise;
use crate::pg::errors::OrSpiFailed;
use crate::pg::sql_text::{quote_ident, quote_literal};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

pgrx::extension_sql_file!(
    "../../../sql/schema/masking.sql",
    name = "masking_rules",
    requires = ["bootstrap", "mask_functions"]
);

/// Only the table's owner (or a superuser) sets its masking rules and views.
fn require_owner(rel: pg_sys::Oid) {
    crate::audit::events::require_table_owner(rel, "masking_owner_refused");
}

/// (name, type name, is encrypted) of the table's live columns, in order.
fn columns(rel: pg_sys::Oid) -> Vec<(String, String)> {
    Spi::connect(|client| {
        client
            .select(
                "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod) \
                   FROM pg_catalog.pg_attribute a \
                  WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                None,
                &[rel.into()],
            )
            .map(|rows| {
                rows.filter_map(|r| Some((r.get::<String>(1).ok()??, r.get::<String>(2).ok()??)))
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// `encml.set_masking_rule(tbl regclass, col name, mask text, unmasked_roles regrole[])`,
/// declared in sql/schema/masking.sql (pgrx maps neither `name` nor `regrole[]`; the roles arrive
/// as their oids).
#[pg_extern(sql = false)]
fn set_masking_rule(
    tbl: crate::types::reg::RegClass,
    col: crate::types::reg::SqlName,
    mask: &str,
    unmasked_roles: Vec<Option<pg_sys::Oid>>,
) {
    crate::pg::recovery::refuse_during_recovery("encml.set_masking_rule()");
    set_rule(tbl, &col.0, mask, unmasked_roles)
}

/// The C entry point of `encml.masking_rule_set(regclass, text, text, oid[])`, through which
/// release 0.1.0's SQL `set_masking_rule` worked; kept for its frozen install script, dropped
/// from SQL by the 0.1.0--0.2.0 upgrade.
#[pg_extern(sql = false)]
fn masking_rule_set(
    tbl: crate::types::reg::RegClass,
    col: &str,
    mask: &str,
    unmasked_roles: Vec<Option<pg_sys::Oid>>,
) {
    crate::pg::recovery::refuse_during_recovery("encml.set_masking_rule()");
    set_rule(tbl, col, mask, unmasked_roles)
}

/// Sets the mask of one column (see `mask_expr`) and the roles that see it unmasked; applied by
/// `apply_masking`.
fn set_rule(
    tbl: crate::types::reg::RegClass,
    col: &str,
    mask: &str,
    unmasked_roles: Vec<Option<pg_sys::Oid>>,
) {
    // Its catalog queries and DDL run as the caller; nothing they name may resolve through
    // the caller's search_path (issue 27, attacker round 1).
    crate::pg::identity::with_pinned_search_path(|| {
        let rel = tbl.0;
        require_owner(rel);
        let Some((_, type_name)) = columns(rel).into_iter().find(|(n, _)| n == col) else {
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                format!(
                    "column {col:?} of {} does not exist",
                    crate::audit::table_name(rel)
                ),
            );
        };
        if let Some(of) = rules(rel)
            .into_iter()
            .find(|r| r.stored.as_ref().is_some_and(|(n, _)| n == col))
        {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!(
                    "column {col:?} holds the stored mask of column {:?}; set the rule on that column",
                    of.col
                ),
            );
        }
        mask_expr(mask, "x", &type_name); // validates
        let roles: Vec<pg_sys::Oid> = unmasked_roles.into_iter().flatten().collect();
        let by = crate::pg::roles::caller();
        crate::pg::identity::as_extension_owner(|| {
            Spi::run_with_args(
                "INSERT INTO encml.masking_rules (tbl, col, mask, unmasked_roles, set_by) \
                 VALUES ($1::oid::regclass, $2, $3, $4::oid[]::regrole[], $5::oid::regrole) \
                 ON CONFLICT (tbl, col) DO UPDATE SET mask = EXCLUDED.mask, \
                     unmasked_roles = EXCLUDED.unmasked_roles, set_by = EXCLUDED.set_by, set_at = now()",
                &[rel.into(), col.into(), mask.trim().into(), roles.into(), by.into()],
            )
            .or_spi_failed("masking rule catalog");
        });
    })
}

/// A masking rule as stored, with the generated column holding its precomputed mask, if any.
#[derive(Clone)]
struct Rule {
    col: String,
    mask: String,
    roles: Vec<String>,
    /// (column name, mask it was generated with)
    stored: Option<(String, String)>,
}

fn rules(rel: pg_sys::Oid) -> Vec<Rule> {
    crate::pg::identity::as_extension_owner(|| {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT col::text, mask, unmasked_roles::text[], stored_as::text, stored_mask \
                       FROM encml.masking_rules WHERE tbl = $1::oid::regclass",
                    None,
                    &[rel.into()],
                )
                .map(|rows| {
                    rows.filter_map(|r| {
                        Some(Rule {
                            col: r.get::<String>(1).ok()??,
                            mask: r.get::<String>(2).ok()??,
                            roles: r.get::<Vec<String>>(3).ok()??,
                            stored: r.get::<String>(4).ok()?.zip(r.get::<String>(5).ok()?),
                        })
                    })
                    .collect()
                })
                .unwrap_or_default()
        })
    })
}

fn is_encrypted(type_name: &str) -> bool {
    matches!(
        type_name,
        "encml.enc_bytea" | "enc_bytea" | "encml.det_text" | "det_text"
    )
}

/// The generated column holding a column's mask (`<col>__masked`).
fn stored_column_name(col: &str) -> String {
    let name = format!("{col}__masked");
    if name.len() >= pg_sys::NAMEDATALEN as usize {
        raise(
            PgSqlErrorCode::ERRCODE_NAME_TOO_LONG,
            format!("column name {col:?} is too long to store its mask as {name:?}"),
        );
    }
    name
}

/// The view's select list: every column but the generated mask columns, masked per its rule
/// unless the reader is a superuser or in the rule's unmasked roles.
fn view_select(cols: &[(String, String)], rules: &[Rule], mask_columns: &[String]) -> Vec<String> {
    let mut select = Vec::new();
    for (col, type_name) in cols {
        if mask_columns.contains(col) {
            continue;
        }
        let q = quote_ident(col);
        let Some(rule) = rules.iter().find(|r| r.col == *col) else {
            select.push(q);
            continue;
        };
        let mask = rule.mask.trim();
        let roles_lit = quote_literal(&format!(
            "{{{}}}",
            rule.roles
                .iter()
                .map(|r| format!("\"{}\"", r.replace('"', "\\\"")))
                .collect::<Vec<_>>()
                .join(",")
        ));
        let unmasked = format!("(SELECT encml.masking_unmasked({roles_lit}::regrole[]))");
        let hidden = || -> String {
            if mask == "null" {
                "NULL".into()
            } else {
                "'********'".into()
            }
        };
        let (clear, masked) = match type_name.as_str() {
            "encml.enc_bytea" | "enc_bytea" => (format!("encml.decrypt_text({q})"), hidden()),
            "encml.det_text" | "det_text" => (format!("encml.det_decrypt({q})"), hidden()),
            t => {
                let clear = if mask == "null" || mask == "year" {
                    q.clone()
                } else {
                    format!("{q}::text")
                };
                let masked = match &rule.stored {
                    Some((name, _)) => quote_ident(name),
                    None => mask_expr(mask, &q, t),
                };
                (clear, masked)
            }
        };
        select.push(format!(
            "CASE WHEN {unmasked} THEN {clear} ELSE {masked} END AS {q}"
        ));
    }
    select
}

/// Creates (or replaces) the security-barrier view `<schema>.<table>_masked`: every column of
/// the table, masked per its rule unless the reader is a superuser or in its unmasked roles.
/// Encrypted columns (enc_bytea, det_text) are decrypted for unmasked readers (who need the key
/// grant) and show `********` (or NULL for the null mask) to everyone else. With `stored`, the
/// masks of plain columns are precomputed in generated columns `<col>__masked` of the table
/// (one table rewrite), so reading the view costs a column read instead of a mask call per
/// value; without it, such columns from an earlier call are dropped.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn apply_masking(tbl: crate::types::reg::RegClass, stored: default!(bool, false)) -> String {
    crate::pg::recovery::refuse_during_recovery("encml.apply_masking()");
    // Its catalog queries and DDL run as the caller; nothing they name may resolve through
    // the caller's search_path (issue 27, attacker round 1).
    crate::pg::identity::with_pinned_search_path(|| {
        let rel = tbl.0;
        require_owner(rel);
        let mut rules = rules(rel);
        // SAFETY: syscache lookups by oid (guarded bindings). No lock is held on the table, so
        // a concurrent DROP seen since require_owner makes them return NULL: checked before
        // CStr reads the palloc'd names, which live in the current context for the block.
        let (schema, name) = unsafe {
            let nsp = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(rel));
            let relname = pg_sys::get_rel_name(rel);
            if nsp.is_null() || relname.is_null() {
                raise(
                    PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                    format!("relation {} does not exist", rel.to_u32()),
                );
            }
            (
                std::ffi::CStr::from_ptr(nsp).to_string_lossy().into_owned(),
                std::ffi::CStr::from_ptr(relname)
                    .to_string_lossy()
                    .into_owned(),
            )
        };
        let table = format!("{}.{}", quote_ident(&schema), quote_ident(&name));
        let view = format!(
            "{}.{}",
            quote_ident(&schema),
            quote_ident(&format!("{name}_masked"))
        );
        let create_view = |cols: &[(String, String)], rules: &[Rule], mask_columns: &[String]| {
            Spi::run(&format!(
                "CREATE OR REPLACE VIEW {view} WITH (security_barrier = true) AS SELECT {} FROM {table}",
                view_select(cols, rules, mask_columns).join(", "),
            ))
            .unwrap_or_else(|e| {
                raise(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    e.to_string(),
                )
            })
        };

        // Which generated mask columns to drop and add: a column is kept while its rule's mask is
        // unchanged; a column dropped by hand is made again.
        let cols = columns(rel);
        let has_column = |n: &str| cols.iter().any(|(c, _)| c == n);
        let old_mask_columns: Vec<String> = rules
            .iter()
            .filter_map(|r| r.stored.as_ref().map(|(n, _)| n.clone()))
            .filter(|n| has_column(n))
            .collect();
        let mut drops = Vec::new();
        let mut adds = Vec::new();
        let mut changed = Vec::new();
        for rule in rules.iter_mut() {
            let Some((_, type_name)) = cols.iter().find(|(c, _)| *c == rule.col) else {
                continue;
            };
            let mask = rule.mask.trim().to_string();
            let wanted = stored && mask != "null" && !is_encrypted(type_name);
            let existing = rule.stored.take().filter(|(n, _)| has_column(n));
            let current = existing.as_ref().is_some_and(|(_, m)| *m == mask);
            if let Some((n, _)) = &existing {
                if !(wanted && current) {
                    drops.push(format!("DROP COLUMN {}", quote_ident(n)));
                }
            }
            if wanted && current {
                rule.stored = existing;
                continue;
            }
            if !wanted && existing.is_none() {
                continue;
            }
            if wanted {
                let n = stored_column_name(&rule.col);
                if has_column(&n) && existing.as_ref().is_none_or(|(e, _)| *e != n) {
                    raise(
                        PgSqlErrorCode::ERRCODE_DUPLICATE_COLUMN,
                        format!(
                            "column {n:?} already exists and is not a mask column of this table"
                        ),
                    );
                }
                let result_type = if mask == "year" {
                    type_name.as_str()
                } else {
                    "text"
                };
                adds.push(format!(
                    "ADD COLUMN {} {result_type} GENERATED ALWAYS AS ({}) STORED",
                    quote_ident(&n),
                    mask_expr(&mask, &quote_ident(&rule.col), type_name)
                ));
                rule.stored = Some((n, mask));
            }
            changed.push(rule.col.clone());
        }
        for rule in rules.iter().filter(|r| changed.contains(&r.col)) {
            let (stored_as, stored_mask) = match &rule.stored {
                Some((n, m)) => (Some(n.as_str()), Some(m.as_str())),
                None => (None, None),
            };
            crate::pg::identity::as_extension_owner(|| {
                Spi::run_with_args(
                    "UPDATE encml.masking_rules SET stored_as = $3, stored_mask = $4 \
                      WHERE tbl = $1::oid::regclass AND col = $2",
                    &[
                        rel.into(),
                        rule.col.as_str().into(),
                        stored_as.into(),
                        stored_mask.into(),
                    ],
                )
                .or_spi_failed("masking rule catalog");
            });
        }
        let altered = !drops.is_empty() || !adds.is_empty();
        if altered {
            // The view must stop reading the columns being dropped first; replacing it (same
            // columns, same types) keeps the grants made on it.
            if !drops.is_empty() {
                let dynamic: Vec<Rule> = rules
                    .iter()
                    .map(|r| Rule {
                        stored: None,
                        ..r.clone()
                    })
                    .collect();
                create_view(&cols, &dynamic, &old_mask_columns);
            }
            Spi::run(&format!(
                "ALTER TABLE {table} {}",
                [drops, adds].concat().join(", ")
            ))
            .unwrap_or_else(|e| {
                raise(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    e.to_string(),
                )
            });
        }
        let mask_columns: Vec<String> = rules
            .iter()
            .filter_map(|r| r.stored.as_ref().map(|(n, _)| n.clone()))
            .collect();
        let cols = if altered { columns(rel) } else { cols };
        create_view(&cols, &rules, &mask_columns);
        // SAFETY: `c` is NUL-terminated and alive until the copy into a String is made;
        // quote_identifier returns `c`'s own pointer or a palloc'd quoted copy, never NULL.
        let q = |s: &str| unsafe {
            let c = std::ffi::CString::new(s).expect("no NUL in a name");
            std::ffi::CStr::from_ptr(pg_sys::quote_identifier(c.as_ptr()))
                .to_string_lossy()
                .into_owned()
        };
        format!("{}.{}", q(&schema), q(&format!("{name}_masked")))
    })
}
