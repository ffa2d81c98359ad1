//! GDPR data-subject rights (docs/gdpr.md): where a subject's rows are
//! (`register_subject_column`), the subject's own keys (`subject_key`), access and portability
//! (`subject_export`) and erasure (`subject_forget`).
//!
//! Rows are found and changed with the caller's rights (SELECT for an export, DELETE or UPDATE
//! for an erasure; row-level security applies), so these functions give nobody access to a
//! table. An erasure is one transaction: the rows, the subject's keys, the consent records and
//! the erasure record in the audit log change together or not at all.

use crate::audit::events::require_table_owner;
use crate::events;
use crate::keys::grants::Privilege;
use crate::keys::{cache, catalog, provider};
use crate::pg::erasure_guard;
use crate::pg::errors::OrSpiFailed;
use crate::pg::errors::{notice, raise, raise_full};
use crate::pg::identity::{as_extension_owner, as_table_owner};
use crate::pg::roles::{
    caller, has_privs_of_role_named, is_superuser, role_name, DPO, KEY_ADMIN, SUBJECT_PROCESSOR,
};
use crate::pg::sql_text::{quote_ident, quote_literal};
use crate::types::identity::{self, Encrypted};
use crate::types::reg::RegClass;
use base64::Engine;
use encml_core::format::Header;
use encml_core::kdf::Purpose;
use pgrx::prelude::*;
use pgrx::{pg_sys, JsonB, PgSqlErrorCode, Uuid};
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// Layout name and version of `subject_export`'s document (docs/formats.md).
const EXPORT_FORMAT: &str = "encml.subject_export/1";

#[derive(Clone, Copy, PartialEq)]
enum IdKind {
    Plain,
    Det,
    Fpe,
}

impl IdKind {
    fn label(self) -> &'static str {
        match self {
            IdKind::Plain => "plain",
            IdKind::Det => "det_text",
            IdKind::Fpe => "fpe",
        }
    }
}

const FORCED_ROW_SECURITY: &str =
    "the table forces row-level security on its owner, as whom its rows are read";

/// One registered identifier column.
struct Registration {
    rel: pg_sys::Oid,
    /// The column's number (0 once it was dropped): with `rel`, what the registration is of.
    attnum: i16,
    table: String,
    /// The column's current name.
    col: String,
    col_type: String,
    col_type_oid: pg_sys::Oid,
    /// The column's type is built in (oid below FirstNormalObjectId): no role but a superuser
    /// can have given it a cast or output function of its own.
    builtin_type: bool,
    kind: IdKind,
    id_key: Option<Uuid>,
    alphabet: Option<String>,
    on_forget: String,
    /// pg_class.relkind of the table now ('v' once a rule "_RETURN" turned it into a view).
    relkind: String,
}

impl Registration {
    /// What the registration is of: its table and column number (a renamed column is the same
    /// one), or the name of a column that no longer exists.
    fn ident(&self) -> (pg_sys::Oid, i16, String) {
        let name = if self.attnum == 0 {
            self.col.clone()
        } else {
            String::new()
        };
        (self.rel, self.attnum, name)
    }
}

/// The registrations, read now (each erasure step reads them again: the owners' code it runs
/// can rename, drop and register columns meanwhile). A registration is of a column number
/// (0.2.0 schema; a column dropped and added again under its name is another column, attacker
/// round 8), or of a name (0.1.0 schema). One of a table that no longer exists (a temporary
/// table registered before 0.2.0 refused them; the upgrade deletes those) holds no rows and is
/// left out.
fn registrations() -> Vec<Registration> {
    let numbered = crate::audit::classes::numbers_subject_columns(
        crate::pg::catalog_reads::extension_relation(c"subject_columns"),
    );
    let join = if numbered {
        "a.attnum OPERATOR(pg_catalog.=) s.attnum"
    } else {
        "a.attname OPERATOR(pg_catalog.=) s.col"
    };
    let sql = format!(
        "SELECT s.tbl::oid, coalesce(a.attname, s.col)::text, s.id_kind, s.id_key, s.id_alphabet, \
                        s.on_forget, pg_catalog.format_type(a.atttypid, a.atttypmod), \
                        a.atttypid OPERATOR(pg_catalog.<) 16384::pg_catalog.oid, a.atttypid, \
                        coalesce(a.attnum, 0::pg_catalog.int2), \
                        (SELECT c.relkind::pg_catalog.text FROM pg_catalog.pg_class c \
                          WHERE c.oid OPERATOR(pg_catalog.=) s.tbl) \
                   FROM encml.subject_columns s \
                   JOIN pg_catalog.pg_class t ON t.oid OPERATOR(pg_catalog.=) s.tbl \
                   LEFT JOIN pg_catalog.pg_attribute a \
                     ON a.attrelid OPERATOR(pg_catalog.=) s.tbl AND {join} \
                    AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped \
              ORDER BY s.tbl::oid, s.col"
    );
    // (Through a connection that sees what the statements before it changed: the owners' code
    // the erasure ran may have renamed, dropped or registered columns.)
    as_extension_owner(|| {
        Spi::connect(|client| {
            client
                .select(&sql, None, &[])
                .or_spi_failed("")
                .map(|r| {
                    let rel: pg_sys::Oid = r.get(1).ok().flatten().expect("tbl is NOT NULL");
                    let kind = match r.get::<String>(3).ok().flatten().as_deref() {
                        Some("det_text") => IdKind::Det,
                        Some("fpe") => IdKind::Fpe,
                        _ => IdKind::Plain,
                    };
                    Registration {
                        rel,
                        attnum: r.get(10).ok().flatten().unwrap_or(0),
                        table: crate::audit::table_name(rel),
                        col: r.get(2).ok().flatten().unwrap_or_default(),
                        col_type: r.get(7).ok().flatten().unwrap_or_default(),
                        builtin_type: r.get(8).ok().flatten().unwrap_or(false),
                        col_type_oid: r.get(9).ok().flatten().unwrap_or(pg_sys::InvalidOid),
                        kind,
                        id_key: r.get(4).ok().flatten(),
                        alphabet: r.get(5).ok().flatten(),
                        on_forget: r.get(6).ok().flatten().unwrap_or_default(),
                        relkind: r.get(11).ok().flatten().unwrap_or_default(),
                    }
                })
                .collect()
        })
    })
}

/// Why the registered column can no longer be searched: it was dropped, or its type changed
/// since it was registered to one whose comparison or cast could run the type owner's code, or
/// that no longer fits the registered kind of identifier.
fn unsearchable(reg: &Registration) -> Option<String> {
    // Only tables: reading a view runs its owner's code (attacker round 9: an empty registered
    // table turned into a view by CREATE RULE "_RETURN" put rows back during the final search).
    if reg.relkind != "r" && reg.relkind != "p" {
        return Some(
            "it is no longer a table (a view now): only tables hold subject columns".into(),
        );
    }
    if reg.col_type_oid == pg_sys::InvalidOid {
        return Some(format!(
            "its identifier column \"{}\" no longer exists (dropped)",
            reg.col
        ));
    }
    let fits = match reg.kind {
        IdKind::Plain => plain_identifier_type(reg.col_type_oid),
        IdKind::Det => identity::encrypted_type(reg.col_type_oid) == Some(Encrypted::DetText),
        IdKind::Fpe => {
            [pg_sys::TEXTOID, pg_sys::VARCHAROID, pg_sys::BPCHAROID].contains(&reg.col_type_oid)
        }
    };
    let why = match reg.kind {
        IdKind::Plain if !reg.builtin_type => {
            "is not built in: comparing it could run the type owner's code".to_string()
        }
        IdKind::Plain => "does not hold plain identifiers (text, a number, uuid): its text form \
                          is not the identifier as written"
            .to_string(),
        kind => format!("does not hold {} identifiers", kind.label()),
    };
    if !fits {
        return Some(format!(
            "its identifier column \"{}\" now has type {}, which {why}",
            reg.col, reg.col_type
        ));
    }
    // Its values can no longer be computed from a subject, so no row of it can be found, and
    // the rest of each row stays (attacker round 11: an owner's code destroyed a later table's
    // identifier key during the erasure, which then reported that table as done).
    destroyed_id_key(reg)
}

/// Whether a column of type `typ` may hold plain identifiers: built-in scalar types whose text
/// form is the identifier as written. Others (bytea, arrays, json) print differently, and a
/// column changed to one after registration matched nothing, silently (attacker round 7).
fn plain_identifier_type(typ: pg_sys::Oid) -> bool {
    [
        pg_sys::TEXTOID,
        pg_sys::VARCHAROID,
        pg_sys::BPCHAROID,
        pg_sys::NAMEOID,
        pg_sys::INT2OID,
        pg_sys::INT4OID,
        pg_sys::INT8OID,
        pg_sys::NUMERICOID,
        pg_sys::UUIDOID,
    ]
    .contains(&typ)
}

/// How to find a subject's rows: a WHERE clause over alias `t` and the value it binds as `$1`.
/// How to find the subject's rows: `t.<column> <after_column>` with `$1` bound to `bound`.
#[derive(Clone)]
struct Search {
    after_column: String,
    bound: String,
}

impl Search {
    /// The predicate on the column as it is called now (an owner's code can rename it during
    /// an erasure).
    fn on(&self, reg: &Registration) -> String {
        format!("t.{}{}", quote_ident(&reg.col), self.after_column)
    }
}

/// What an erasure does in one registered table, worked out when it has locked the
/// registrations, before any owner's code runs: that code can change what these depend on
/// (attacker round 16: an earlier table's trigger declassified a column, which the
/// anonymization then kept, or force-retired the identifier key's version, whose rows the
/// search then no longer found).
struct Plan {
    /// How the subject's rows are found; key-derived identifiers are computed now.
    search: Option<Search>,
    /// `anonymize`: the columns set to NULL, and those of tables under it, by number (an
    /// owner's code can rename them during an erasure).
    cleared: Vec<i16>,
    only_under: Vec<(pg_sys::Oid, Vec<i16>)>,
}

/// The numbers of the columns of `rel` named `names`.
fn attnums(rel: pg_sys::Oid, names: &[String]) -> Vec<i16> {
    Spi::get_one_with_args::<Vec<i16>>(
        "SELECT pg_catalog.array_agg(attnum ORDER BY attnum) FROM pg_catalog.pg_attribute \
          WHERE attrelid OPERATOR(pg_catalog.=) $1 AND attname OPERATOR(pg_catalog.=) ANY ($2::pg_catalog.name[]) \
            AND attnum OPERATOR(pg_catalog.>) 0 AND NOT attisdropped",
        &[rel.into(), names.to_vec().into()],
    )
    .or_spi_failed("")
    .unwrap_or_default()
}

/// The current names of the columns of `rel` numbered `numbers` (dropped ones left out).
fn attnames(rel: pg_sys::Oid, numbers: &[i16]) -> Vec<String> {
    Spi::get_one_with_args::<Vec<String>>(
        "SELECT pg_catalog.array_agg(attname::pg_catalog.text ORDER BY attnum) FROM pg_catalog.pg_attribute \
          WHERE attrelid OPERATOR(pg_catalog.=) $1 AND attnum OPERATOR(pg_catalog.=) ANY ($2::pg_catalog.int2[]) \
            AND NOT attisdropped",
        &[rel.into(), numbers.to_vec().into()],
    )
    .or_spi_failed("")
    .unwrap_or_default()
}

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
fn anonymizing_update(target: &str, rel: pg_sys::Oid, set: &[String], predicate: &str) -> String {
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

type Plans = Vec<((pg_sys::Oid, i16, String), Plan)>;

fn plan_for(reg: &Registration, subject: &str) -> Plan {
    require_searchable(reg);
    let anonymize = reg.on_forget == "anonymize";
    Plan {
        search: frozen_search(reg, subject),
        cleared: if anonymize {
            attnums(reg.rel, &anonymized_columns(reg))
        } else {
            Vec::new()
        },
        only_under: if anonymize {
            columns_only_under(reg, true)
                .into_iter()
                .map(|(m, names)| (m, attnums(m, &names)))
                .collect()
        } else {
            Vec::new()
        },
    }
}

/// The plan of `reg` as worked out at the start, or now for a column registered during the
/// erasure (by a superuser's direct change of the registry).
fn planned<'a>(plans: &'a mut Plans, reg: &Registration, subject: &str) -> &'a Plan {
    let at = match plans.iter().position(|(id, _)| *id == reg.ident()) {
        Some(at) => at,
        None => {
            let plan = plan_for(reg, subject);
            plans.push((reg.ident(), plan));
            plans.len() - 1
        }
    };
    &plans[at].1
}

/// `subject_predicate` with the identifiers a key derives (det_text under every usable version
/// of the key, FPE tokens) computed now, as the table's owner (as the statements would), so
/// that later changes of the key do not change what is searched.
fn frozen_search(reg: &Registration, subject: &str) -> Option<Search> {
    let search = subject_predicate(reg, subject)?;
    let key = reg
        .id_key
        .map(|k| quote_literal(&catalog::uuid_string(k.as_bytes())));
    let (expression, after_column) = match reg.kind {
        IdKind::Plain => return Some(search),
        IdKind::Det => (
            format!(
                "SELECT encml.det_encrypt_all_versions($1, {}::uuid)::pg_catalog.text",
                key.expect("det_text registrations have a key")
            ),
            " OPERATOR(pg_catalog.=) ANY ($1::encml.det_text[])".to_string(),
        ),
        IdKind::Fpe => (
            format!(
                "SELECT encml.fpe_encrypt($1, {}::uuid, {})",
                key.expect("fpe registrations have a key"),
                quote_literal(reg.alphabet.as_deref().unwrap_or("0123456789"))
            ),
            " OPERATOR(pg_catalog.=) $1".to_string(),
        ),
    };
    let bound = as_owner_of(reg, "finding the subject's identifiers for", || {
        Spi::get_one_with_args::<String>(&expression, &[subject.into()]).or_spi_failed("")
    })?;
    Some(Search {
        after_column,
        bound,
    })
}

/// How to find the subject's rows in the registered column, or None when the subject cannot
/// occur in it (no value of the column's type, not in the token alphabet). Operators and
/// functions are schema-qualified: the statement runs with the caller's search_path. The caller
/// checked `unsearchable` first, so a plain column's type is one of `plain_identifier_type`'s.
fn subject_predicate(reg: &Registration, subject: &str) -> Option<Search> {
    let key = reg
        .id_key
        .map(|k| quote_literal(&catalog::uuid_string(k.as_bytes())));
    let as_is = |after_column: String| Search {
        after_column,
        bound: subject.to_string(),
    };
    // A value of a built-in type, compared as that type (`encml_core::subject_id`): the subject
    // was checked to be one, so the cast cannot fail, and the column's index serves.
    let typed = |bound: Option<String>, typ: &str| {
        bound.map(|bound| Search {
            after_column: format!(" OPERATOR(pg_catalog.=) $1::pg_catalog.{typ}"),
            bound,
        })
    };
    use encml_core::subject_id;
    match reg.kind {
        IdKind::Plain => match reg.col_type_oid {
            // COLLATE "C": under a nondeterministic collation of the owner's, 'alice' would also
            // match 'ALICE' and 'Alíce', other subjects (attacker round 3).
            pg_sys::TEXTOID | pg_sys::VARCHAROID => Some(as_is(
                " COLLATE pg_catalog.\"C\" OPERATOR(pg_catalog.=) $1".to_string(),
            )),
            // As a name, which cuts it to 63 bytes as the column's values were cut when
            // stored, and as Postgres's own `WHERE col = '...'` would (attacker round 13: a
            // longer identifier was not found, and its row stayed).
            pg_sys::NAMEOID => Some(as_is(
                " COLLATE pg_catalog.\"C\" OPERATOR(pg_catalog.=) $1::pg_catalog.name".to_string(),
            )),
            // (As text: bpchar's trailing blanks do not count.)
            pg_sys::BPCHAROID => Some(as_is(
                "::pg_catalog.text COLLATE pg_catalog.\"C\" OPERATOR(pg_catalog.=) $1".to_string(),
            )),
            pg_sys::INT2OID | pg_sys::INT4OID | pg_sys::INT8OID => {
                typed(subject_id::integer(subject), "int8")
            }
            pg_sys::NUMERICOID => typed(subject_id::numeric(subject), "numeric"),
            pg_sys::UUIDOID => typed(subject_id::uuid(subject), "uuid"),
            _ => unreachable!("unsearchable() refuses other types"),
        },
        // Every usable version of the key, so rows written before a rotation are found too.
        IdKind::Det => Some(as_is(format!(
            " OPERATOR(pg_catalog.=) ANY (encml.det_encrypt_all_versions($1, {}::uuid))",
            key.expect("det_text registrations have a key")
        ))),
        IdKind::Fpe => {
            let alphabet = reg.alphabet.as_deref().unwrap_or("0123456789");
            if encml_core::fpe::Alphabet::new(alphabet)
                .and_then(|a| a.check(subject))
                .is_err()
            {
                return None;
            }
            Some(as_is(format!(
                " OPERATOR(pg_catalog.=) encml.fpe_encrypt($1, {}::uuid, {})",
                key.expect("fpe registrations have a key"),
                quote_literal(alphabet)
            )))
        }
    }
}

/// Why the rows of a registration cannot be searched: its identifier key was destroyed (its
/// identifiers are then unreadable for everyone).
fn destroyed_id_key(reg: &Registration) -> Option<String> {
    let id = *reg.id_key?.as_bytes();
    match catalog::load(&id, None, false) {
        Some((row, _)) if row.destroyed_at.is_none() => None,
        _ => Some(format!(
            "the identifier key {} was destroyed",
            catalog::uuid_string(&id)
        )),
    }
}

fn required<'a>(value: Option<&'a str>, what: &str) -> &'a str {
    match value {
        Some(v) if !v.is_empty() => v,
        _ => raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("{what} must not be NULL or empty"),
        ),
    }
}

/// Declares that `col` of `tbl` holds a data subject's identifier: as is (id_key NULL), as a
/// det_text under id_key (a key of purpose 'deterministic'), or as an FF1 token under id_key
/// (purpose 'fpe', over `id_alphabet`); and whether `subject_forget` deletes the subject's rows
/// or anonymizes them. The table's owner only.
#[pg_extern(volatile, parallel_unsafe)]
fn register_subject_column(
    tbl: Option<RegClass>,
    col: Option<&str>,
    id_key: default!(Option<Uuid>, "NULL"),
    on_forget: default!(Option<&str>, "'delete'"),
    id_alphabet: default!(Option<&str>, "'0123456789'"),
) {
    // Its queries run as the caller; no operator or function they name may resolve
    // through the caller's search_path (issue 27).
    crate::pg::identity::with_pinned_search_path(|| {
        let Some(RegClass(rel)) = tbl else {
            raise(
                PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                "tbl must not be NULL",
            )
        };
        let col = required(col, "col");
        refuse_during_export_or_erasure("register_subject_column");
        require_table_owner(rel, "subject_owner_refused");
        let table = crate::audit::table_name(rel);
        let on_forget = on_forget.unwrap_or("delete");
        if on_forget != "delete" && on_forget != "anonymize" {
            raise_full(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("unknown on_forget action \"{on_forget}\""),
                None,
                Some("Use 'delete' (the subject's rows are deleted) or 'anonymize' (their identifying and encrypted columns are set to NULL).".into()),
            );
        }
        let column = Spi::connect(|client| {
            client
                .select(
                    "SELECT pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                            a.atttypid OPERATOR(pg_catalog.<) 16384::pg_catalog.oid, c.relkind::pg_catalog.text, \
                            a.atttypid \
                       FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) a.attrelid \
                      WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attname OPERATOR(pg_catalog.=) $2 \
                        AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped",
                    None,
                    &[rel.into(), col.into()],
                )
                .or_spi_failed("")
                .next()
                .map(|r| {
                    (
                        r.get::<String>(1).ok().flatten().unwrap_or_default(),
                        r.get::<bool>(2).ok().flatten().unwrap_or(false),
                        r.get::<bool>(3).ok().flatten().unwrap_or(false),
                        r.get::<String>(4).ok().flatten().unwrap_or_default(),
                        r.get::<pg_sys::Oid>(5)
                            .ok()
                            .flatten()
                            .unwrap_or(pg_sys::InvalidOid),
                    )
                })
        });
        let Some((col_type, not_null, builtin_type, relkind, type_oid)) = column else {
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                format!("column \"{col}\" of {table} does not exist"),
            )
        };
        // Tables only: reading a view runs its functions with the rights of whoever exports or
        // forgets (attacker round 2).
        if relkind != "r" && relkind != "p" {
            raise(
                PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
                format!("{table} is not a table: only tables hold subject columns"),
            );
        }
        // A temporary table ends with its session, which no event trigger sees: its
        // registration outlived it, named a table that no longer existed and failed every
        // export and erasure (attacker round 12); nor could the subject worker read it.
        // SAFETY: a syscache lookup of the relation's persistence.
        if unsafe { pg_sys::get_rel_persistence(rel) }
            == pg_sys::RELPERSISTENCE_TEMP as std::ffi::c_char
        {
            raise(
                PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
                format!("{table} is a temporary table: only permanent tables hold subject columns"),
            );
        }
        if on_forget == "anonymize" && not_null {
            raise_full(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("column \"{col}\" of {table} is NOT NULL, so its rows cannot be anonymized"),
                None,
                Some("Anonymizing sets the identifier to NULL: drop the NOT NULL constraint, or use 'delete'.".into()),
            );
        }
        let encrypted = identity::encrypted_type(type_oid);
        let is_det = encrypted == Some(Encrypted::DetText);
        let kind = match id_key {
            None if is_det => raise_full(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("column \"{col}\" is a det_text: give the key it is encrypted under as id_key"),
                None,
                None,
            ),
            None if encrypted.is_some() => {
                raise_full(
                PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
                format!("column \"{col}\" of type {col_type} cannot be searched for a subject"),
                Some("Randomized and order-revealing ciphertexts of one identifier all differ.".into()),
                Some("Store the identifier as a det_text (or an FF1 token) to find a subject's rows by it.".into()),
                )
            }
            None if builtin_type && !plain_identifier_type(type_oid) => raise_full(
                PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                format!("identifier column \"{col}\" of {table} has type {col_type}, which does not hold plain identifiers"),
                Some("Subjects are found by the column's text form, which for this type is not the identifier as written.".into()),
                Some("Use a column of type text, varchar, char, name, an integer, numeric or uuid, a det_text or an FF1 token.".into()),
            ),
            None if !builtin_type => raise_full(
                PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                format!("identifier column \"{col}\" of {table} has type {col_type}, which is not built in"),
                Some("Its casts and output function could run the type owner's code with the rights of whoever exports or forgets a subject.".into()),
                Some("Use a column of a built-in type (text, a number, uuid), a det_text or an FF1 token.".into()),
            ),
            None => IdKind::Plain,
            Some(key) => {
                let id = *key.as_bytes();
                let Some((row, _)) = catalog::load(&id, None, false) else {
                    raise(
                        PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                        format!("key {} does not exist", catalog::uuid_string(&id)),
                    )
                };
                match row.purpose {
                    Purpose::Deterministic if is_det => IdKind::Det,
                    Purpose::Fpe if col_type == "text" || col_type.starts_with("character") => {
                        IdKind::Fpe
                    }
                    p => raise_full(
                        PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
                        format!(
                            "a key of purpose '{}' does not fit identifier column \"{col}\" of type {col_type}",
                            p.label()
                        ),
                        None,
                        Some("Use a 'deterministic' key for a det_text column, an 'fpe' key for a text column of FF1 tokens.".into()),
                    ),
                }
            }
        };
        let alphabet = (kind == IdKind::Fpe).then(|| {
            let a = id_alphabet.unwrap_or("0123456789");
            if let Err(e) = encml_core::fpe::Alphabet::new(a) {
                raise(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    e.to_string(),
                );
            }
            a
        });
        let by = caller();
        as_extension_owner(|| {
            Spi::run_with_args(
                "INSERT INTO encml.subject_columns \
                        (tbl, col, id_kind, id_key, id_alphabet, on_forget, registered_by) \
                 VALUES ($1::oid::regclass, $2, $3, $4, $5, $6, $7::oid::regrole) \
                 ON CONFLICT (tbl, col) DO UPDATE SET id_kind = EXCLUDED.id_kind, id_key = EXCLUDED.id_key, \
                     id_alphabet = EXCLUDED.id_alphabet, on_forget = EXCLUDED.on_forget, \
                     registered_by = EXCLUDED.registered_by, registered_at = now()",
                &[
                    rel.into(),
                    col.into(),
                    kind.label().into(),
                    id_key.into(),
                    alphabet.into(),
                    on_forget.into(),
                    by.into(),
                ],
            )
            .or_spi_failed("")
        });
        events::record(
            "register_subject_column",
            Some((rel, &table)),
            json!({ "column": col, "identifier": kind.label(), "on_forget": on_forget }),
        );
    })
}

/// Removes a registration; returns whether there was one. The table's owner only.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn unregister_subject_column(tbl: RegClass, col: &str) -> bool {
    let rel = tbl.0;
    refuse_during_export_or_erasure("unregister_subject_column");
    require_table_owner(rel, "subject_owner_refused");
    let removed = as_extension_owner(|| {
        Spi::connect_mut(|client| {
            !client
                .update(
                    "DELETE FROM encml.subject_columns WHERE tbl = $1::oid::regclass AND col = $2",
                    None,
                    &[rel.into(), col.into()],
                )
                .or_spi_failed("")
                .is_empty()
        })
    });
    if removed {
        let table = crate::audit::table_name(rel);
        events::record(
            "unregister_subject_column",
            Some((rel, &table)),
            json!({ "column": col }),
        );
    }
    removed
}

/// The registered column (table, column) whose identifier key `key` is, if any: `destroy_key`
/// refuses such a key, whose destruction would leave the column's rows unfindable.
pub fn registered_with_id_key(key: Uuid) -> Option<String> {
    as_extension_owner(|| {
        Spi::get_one_with_args::<String>(
            "SELECT (SELECT pg_catalog.format('%s.%I', s.tbl, s.col) FROM encml.subject_columns s \
                      WHERE s.id_key OPERATOR(pg_catalog.=) $1 LIMIT 1)",
            &[key.into()],
        )
        .or_spi_failed("")
    })
}

/// 55000 in code that a subject export or erasure runs (an owner's trigger): a registration
/// removed meanwhile left its table out of the erasure, the receipt and the final search, with
/// the subject's rows in it (attacker round 10).
fn refuse_during_export_or_erasure(what: &str) {
    if crate::pg::session_worker::serving() {
        raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("{what} cannot be called from code that a subject export or erasure runs"),
            Some("The registrations are what the erasure erases and vouches for.".into()),
            None,
        );
    }
}

fn may_process_subjects(role: pg_sys::Oid) -> bool {
    is_superuser(role)
        || has_privs_of_role_named(role, SUBJECT_PROCESSOR)
        || has_privs_of_role_named(role, KEY_ADMIN)
}

/// subject -> (purpose, the subject's key) for each purpose looked up.
type SubjectKeys = HashMap<String, Vec<(Purpose, [u8; 16])>>;

thread_local! {
    /// subject -> (purpose, the subject's key): `subject_key()` runs once per row in bulk loads.
    static SUBJECT_KEYS: RefCell<SubjectKeys> = RefCell::new(HashMap::new());
    /// The role last found allowed to use subject keys.
    static ALLOWED_ROLE: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
}

/// Has the subject-key cache emptied with the key cache (from `_PG_init`).
pub fn register_cache() {
    crate::keys::cache::also_clear(clear_cache);
}

/// Dropped with the key cache (any change of keys or of role memberships, an abort): a
/// forgotten subject's key is looked up again, a revoked membership checked again.
fn clear_cache() {
    ALLOWED_ROLE.with(|r| r.set(pg_sys::InvalidOid));
    SUBJECT_KEYS.with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            m.clear();
        }
    });
}

fn cached_subject_key(subject: &str, purpose: Purpose) -> Option<[u8; 16]> {
    SUBJECT_KEYS.with(|m| {
        m.borrow()
            .get(subject)?
            .iter()
            .find(|(p, _)| *p == purpose)
            .map(|(_, id)| *id)
    })
}

/// The data subject's own key for `purpose`, made on first use and owned by the extension (not
/// by the caller); members of encml_subject_processor encrypt and decrypt with it, and
/// `subject_forget` destroys it. STABLE like `tenant_key`, so that a lookup by a det_text under
/// it can use an index.
#[pg_extern(stable, strict, parallel_safe)]
fn subject_key(
    subject: &str,
    purpose: default!(&str, "'aead'"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Uuid {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    let role = caller();
    if ALLOWED_ROLE.with(|r| r.get()) != role {
        require_subject_processor(role, purpose);
        ALLOWED_ROLE.with(|r| r.set(role));
    }
    if subject.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a subject needs a non-empty identifier",
        );
    }
    let purpose = crate::api::keys::purpose_arg(purpose);
    if let Some(id) = cached_subject_key(subject, purpose) {
        return Uuid::from_bytes(id);
    }
    let id = catalog::subject_key(subject, purpose, false)
        .unwrap_or_else(|| make_subject_key(subject, purpose));
    SUBJECT_KEYS.with(|m| {
        let mut m = m.borrow_mut();
        let keys = m.entry(subject.to_string()).or_default();
        keys.retain(|(p, _)| *p != purpose);
        keys.push((purpose, id));
    });
    Uuid::from_bytes(id)
}

fn require_subject_processor(role: pg_sys::Oid, purpose: &str) {
    if !may_process_subjects(role) {
        events::refused("subject_key_refused", json!({ "purpose": purpose }));
        raise_full(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "permission denied for subject keys (role {})",
                role_name(role)
            ),
            None,
            Some(format!("Members of {SUBJECT_PROCESSOR} use subject keys.")),
        );
    }
}

fn make_subject_key(subject: &str, purpose: Purpose) -> [u8; 16] {
    // SAFETY: reads this backend's transaction state (a plain getter, never raises).
    if unsafe { pg_sys::IsInParallelMode() } {
        raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "the subject has no key of purpose '{}' yet, and none can be made during a parallel query",
                purpose.label()
            ),
            None,
            Some("Make the keys first (SELECT encml.subject_key(s, purpose) for each subject), or SET max_parallel_workers_per_gather = 0.".into()),
        );
    }
    let id = *uuid::Uuid::new_v4().as_bytes();
    let (wrapped, fingerprint) = provider::new_wrapped_data_key(&id, 1);
    // No cache invalidation: no session caches a key that does not exist yet, and emptying this
    // backend's key cache would re-unwrap every other key a bulk load uses, once per new subject.
    if catalog::insert_subject_key(&id, subject, purpose, caller(), &wrapped, &fingerprint) {
        events::record(
            "create_subject_key",
            None,
            json!({ "key": catalog::uuid_string(&id), "purpose": purpose.label() }),
        );
        return id;
    }
    catalog::subject_key(subject, purpose, true).unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
            "the subject's key was made by a concurrent transaction; retry",
        )
    })
}

/// A stored ciphertext as the export shows it: its plaintext when the caller may decrypt it,
/// else the ciphertext with the reason.
fn exported_value(kind: Encrypted, bytes: &[u8], shown: &Value) -> (Value, bool) {
    let undecrypted = |key: Option<&[u8; 16]>, reason: String| {
        (
            json!({
                "encrypted": shown,
                "key": key.map(catalog::uuid_string),
                "reason": reason,
            }),
            false,
        )
    };
    let header = match Header::decode(bytes) {
        Ok(h) => h,
        Err(e) => return undecrypted(None, e.to_string()),
    };
    let key = match cache::try_version(&header.key_id, header.key_version) {
        Ok(k) => k,
        Err(e) => return undecrypted(Some(&header.key_id), e.message),
    };
    if !key.usable(Privilege::Decrypt) {
        return undecrypted(
            Some(&header.key_id),
            "the caller may not decrypt with this key".into(),
        );
    }
    let plain = match kind {
        Encrypted::EncBytea => key.aead(Privilege::Decrypt).open(bytes, &[]),
        _ => key.deterministic(Privilege::Decrypt).open(bytes),
    };
    let plain = match plain {
        Ok(p) => zeroize::Zeroizing::new(p),
        Err(e) => {
            return undecrypted(
                Some(&header.key_id),
                format!("{e} (values encrypted with associated data are exported encrypted)"),
            )
        }
    };
    crate::security::exfil::decrypted(&header.key_id);
    let value = match std::str::from_utf8(&plain) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(&plain[..]) }),
    };
    (value, true)
}

/// (name, oid of its type) of the table's columns, in order.
fn columns(rel: pg_sys::Oid) -> Vec<(String, pg_sys::Oid)> {
    as_extension_owner(|| {
        crate::pg::catalog_reads::read_rows(
            "SELECT a.attname::pg_catalog.text, a.atttypid FROM pg_catalog.pg_attribute a \
              WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.>) 0 \
                AND NOT a.attisdropped ORDER BY a.attnum",
            &[crate::pg::catalog_reads::arg(rel)],
            0,
            |r| {
                (
                    r.get::<String>(1).unwrap_or_default(),
                    r.get::<pg_sys::Oid>(2).unwrap_or(pg_sys::InvalidOid),
                )
            },
        )
    })
}

/// (name, type) of the table's columns of a ciphertext type of the extension, or of a domain
/// over one (recognised by OID, `types::identity`).
fn encrypted_columns(rel: pg_sys::Oid) -> Vec<(String, Encrypted)> {
    columns(rel)
        .into_iter()
        .filter_map(|(name, typ)| Some((name, identity::encrypted_type(typ)?)))
        .collect()
}

/// Whether row-level security of `rel` applies to the current role (the caller, in the subject
/// worker): its policies would hide rows from it.
fn row_security_applies(rel: pg_sys::Oid) -> bool {
    // SAFETY: a catalog check of the relation for the current user; noError.
    unsafe {
        pg_sys::check_enable_rls(rel, pg_sys::InvalidOid, true)
            == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32
    }
}

/// Runs `f` as the table's owner, in a security-restricted operation (`as_table_owner`), with
/// the owner as the worker's session role too (`session_worker::as_session_of`); what the
/// owner's code raises meanwhile reaches the caller marked as raised `doing` in that table.
fn as_owner_of<R>(reg: &Registration, doing: &str, f: impl FnOnce() -> R) -> R {
    let owner = crate::pg::identity::table_owner(reg.rel);
    crate::pg::session_worker::foreign(&format!("while {doing} {} as its owner", reg.table), || {
        crate::pg::session_worker::as_session_of(owner, || as_table_owner(reg.rel, f))
    })
}

/// Whether the current role (the caller, in the subject worker) holds `privilege` on the table
/// and USAGE on its schema, as Postgres requires of a statement naming it (attacker round 10:
/// the export read tables in a schema the caller could not use).
fn has_table_privilege(rel: pg_sys::Oid, privilege: &str) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.has_table_privilege($1, $2) \
            AND pg_catalog.has_schema_privilege((SELECT c.relnamespace FROM pg_catalog.pg_class c \
                 WHERE c.oid OPERATOR(pg_catalog.=) $1), 'USAGE')",
        &[rel.into(), privilege.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// Whether the current role may read the registered column: Postgres requires it of a DELETE or
/// UPDATE whose WHERE reads the column, and the receipt's row count tells what it would read
/// (attacker round 10: a caller with DELETE alone learned how many rows matched).
fn may_read_identifier(reg: &Registration) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.has_column_privilege($1, $2, 'SELECT')",
        &[reg.rel.into(), reg.attnum.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// Whether row-level security of the table applies to its owner (it forces it on itself): the
/// statements the export and erasure run as the owner would see only what its policies let
/// them.
fn row_security_applies_to_owner(rel: pg_sys::Oid) -> bool {
    let owner = crate::pg::identity::table_owner(rel);
    // SAFETY: a catalog check of the relation for the given role; noError.
    unsafe {
        pg_sys::check_enable_rls(rel, owner, true)
            == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32
    }
}

/// 55000 while this transaction holds a lock on a registered table (or a table under one, or
/// the subject keys) in one of `modes`, those the subject worker's own locks wait for: it would
/// wait for this transaction, which waits for it. (An UPDATE that changed no row holds ROW
/// EXCLUSIVE without having written.)
fn refuse_with_conflicting_locks(what: &str, modes: &[&str]) {
    let modes: Vec<String> = modes.iter().map(|m| m.to_string()).collect();
    // As the extension: the caller may not read the registry (the locks are this backend's).
    let held = as_extension_owner(|| {
        Spi::get_two_with_args::<String, String>(
            "WITH RECURSIVE tree(relid) AS ( \
                 SELECT s.tbl::pg_catalog.oid FROM encml.subject_columns s \
                 UNION SELECT 'encml.subject_keys'::pg_catalog.regclass::pg_catalog.oid \
                 UNION SELECT 'encml.consents'::pg_catalog.regclass::pg_catalog.oid \
                 UNION SELECT 'encml.subject_columns'::pg_catalog.regclass::pg_catalog.oid \
                 UNION SELECT i.inhrelid FROM tree t JOIN pg_catalog.pg_inherits i \
                   ON i.inhparent OPERATOR(pg_catalog.=) t.relid) \
             SELECT l.relation::pg_catalog.regclass::pg_catalog.text, l.mode FROM pg_catalog.pg_locks l \
              WHERE l.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid() AND l.granted \
                AND l.locktype OPERATOR(pg_catalog.=) 'relation' \
                AND l.database OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_database \
                     WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database()) \
                AND l.mode OPERATOR(pg_catalog.=) ANY ($1) \
                AND l.relation IN (SELECT relid FROM tree) LIMIT 1",
            &[modes.into()],
        )
    });
    if let Ok((Some(table), Some(mode))) = held {
        raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("{what} refuses to run while this transaction holds a {mode} on {table}"),
            Some(
                "It runs in a session of its own, which would wait for this transaction's lock."
                    .into(),
            ),
            Some("Call it in a transaction of its own.".into()),
        );
    }
}

/// Runs an export or erasure in a session of its own (`pg::session_worker`), with the caller's
/// roles: code the owners of registered tables attach to them runs there, and never reaches this
/// session's large objects, advisory locks, sequences or cursors (attacker round 5). An erasure
/// commits there, on its own.
fn in_own_session(mut request: Value) -> JsonB {
    // The caller's lock_timeout bounds the worker's lock waits too (it waits for the caller
    // only as a whole, where statement_timeout applies).
    // SAFETY: reads the GUC's current value in this backend.
    request["lock_timeout_ms"] = json!(unsafe { pg_sys::LockTimeout });
    let answer = crate::pg::session_worker::run(
        "pg_encrypt_ml subject",
        "encml_subject_worker_main",
        request.to_string().as_bytes(),
    );
    JsonB(serde_json::from_str(&answer).unwrap_or(Value::Null))
}

/// The subject worker: runs `export_here` or `forget_here` for the request.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn encml_subject_worker_main(arg: pg_sys::Datum) {
    erasure_guard::install();
    crate::pg::session_worker::serve(arg, |request| {
        let request: Value = serde_json::from_slice(&request).unwrap_or(Value::Null);
        let subject = request["subject"].as_str().unwrap_or_default().to_string();
        if let Some(ms) = request["lock_timeout_ms"].as_i64().filter(|ms| *ms > 0) {
            Spi::run(&format!(
                "SELECT pg_catalog.set_config('lock_timeout', '{}ms', true)",
                ms.min(i32::MAX as i64)
            ))
            .or_spi_failed("");
        }
        let answer = if request["op"] == "forget" {
            forget_here(&subject)
        } else {
            if let Some(tenant) = request["tenant"].as_str() {
                crate::keys::tenant_context::set(tenant, true);
            }
            export_here(&subject)
        };
        answer.to_string()
    });
}

/// Every row of every registered table that belongs to `subject`, encrypted columns decrypted
/// where the caller may (else left as ciphertext with the reason), and the subject's consent
/// history, as one document (layout in docs/formats.md). Rows are read with the caller's rights;
/// tables the caller cannot read are listed as skipped. Audited (without the subject).
#[pg_extern(volatile, strict, parallel_unsafe)]
fn subject_export(subject: &str) -> JsonB {
    refuse_with_conflicting_locks("subject_export", &["AccessExclusiveLock"]);
    let request = json!({ "op": "export", "subject": subject, "tenant": crate::keys::tenant_context::current() });
    in_own_session(request)
}

/// The export, run in the subject worker with the caller's roles (see `in_own_session`).
fn export_here(subject: &str) -> Value {
    // Its queries run as the caller; no operator or function they name may resolve
    // through the caller's search_path (issue 27).
    crate::pg::identity::with_pinned_search_path(|| {
        let export_id = uuid::Uuid::new_v4().to_string();
        let mut tables = Vec::new();
        let mut skipped = Vec::new();
        let (mut rows_total, mut undecrypted_total) = (0usize, 0usize);
        for reg in registrations() {
            let skip = |reason: String| json!({ "table": reg.table, "identifier_column": reg.col, "reason": reason });
            if !has_table_privilege(reg.rel, "SELECT") {
                skipped.push(skip("the caller may not read the table".into()));
                continue;
            }
            // The rows are read as the owner (below): under the caller's own policies they would
            // be filtered by the owner's code run with the caller's rights (attacker round 6).
            if row_security_applies(reg.rel) {
                skipped.push(skip("row-level security of the table applies to the caller; its policies are the owner's code, which does not run with the caller's rights".into()));
                continue;
            }
            if let Some(reason) = unsearchable(&reg) {
                skipped.push(skip(reason));
                continue;
            }
            if row_security_applies_to_owner(reg.rel) {
                skipped.push(skip(FORCED_ROW_SECURITY.into()));
                continue;
            }
            if let Some(key) = reg.id_key {
                let id = *key.as_bytes();
                if !cache::current(&id).usable(Privilege::Encrypt) {
                    skipped.push(skip(format!(
                        "the caller may not encrypt with the identifier key {}",
                        catalog::uuid_string(&id)
                    )));
                    continue;
                }
            }
            let Some(search) = subject_predicate(&reg, subject) else {
                continue; // the subject is no value of the column: no rows
            };
            let (predicate, bound) = (search.on(&reg), search.bound);
            let encrypted = encrypted_columns(reg.rel);
            let mut select = vec!["pg_catalog.to_jsonb(t)".to_string()];
            for (name, typ) in &encrypted {
                select.push(format!(
                    "encml.{}_send(t.{})",
                    typ.type_name(),
                    quote_ident(name)
                ));
            }
            let sql = format!(
                "SELECT {} FROM {} t WHERE {predicate}",
                select.join(", "),
                reg.table
            );
            let mut undecrypted = 0usize;
            // The rows are read as the table's owner in a security-restricted operation: the
            // owner's code on the table (row-security policies, casts of its column types to
            // json, a view's functions) runs with the owner's rights, never the caller's
            // (attacker round 3). The caller's right to read it was checked above; keys are
            // checked against the caller below, outside.
            let fetched: Vec<(Value, Vec<Option<Vec<u8>>>)> = as_owner_of(&reg, "reading", || {
                Spi::connect(|client| {
                    client
                        .select(&sql, None, &[bound.as_str().into()])
                        .or_spi_failed("")
                        .map(|r| {
                            let row = r
                                .get::<JsonB>(1)
                                .ok()
                                .flatten()
                                .map(|j| j.0)
                                .unwrap_or(Value::Null);
                            let bytes = (0..encrypted.len())
                                .map(|i| r.get::<Vec<u8>>(i + 2).ok().flatten())
                                .collect();
                            (row, bytes)
                        })
                        .collect()
                })
            });
            let rows: Vec<Value> = fetched
                .into_iter()
                .map(|(mut row, bytes)| {
                    for ((name, typ), bytes) in encrypted.iter().zip(bytes) {
                        let Some(bytes) = bytes else {
                            continue;
                        };
                        let shown = row[name.as_str()].clone();
                        let (value, opened) = if typ.decryptable() {
                            exported_value(*typ, &bytes, &shown)
                        } else {
                            (
                                json!({ "encrypted": shown, "reason": "order-revealing values are exported encrypted" }),
                                false,
                            )
                        };
                        undecrypted += usize::from(!opened);
                        row[name.as_str()] = value;
                    }
                    row
                })
                .collect();
            rows_total += rows.len();
            undecrypted_total += undecrypted;
            tables.push(json!({
                "table": reg.table,
                "identifier_column": reg.col,
                "identifier": reg.kind.label(),
                "rows": rows,
                "undecrypted_values": undecrypted,
            }));
            // Columns only a table under it has are not in its rows (attacker round 13): say so.
            for (member, extra) in columns_only_under(&reg, false) {
                skipped.push(json!({
                    "table": crate::audit::table_name(member),
                    "identifier_column": reg.col,
                    "reason": format!("columns of its own, not in {} ({}), are not exported: register its identifier column too", reg.table, extra.join(", ")),
                }));
            }
            // Another session's temporary table under it, or a partition being detached, was left
            // out of the read (attacker rounds 12 and 13): say so.
            if let Some(pending) = detach_pending_in(&tree_of(reg.rel)) {
                skipped.push(json!({
                    "table": crate::audit::table_name(pending),
                    "identifier_column": reg.col,
                    "reason": format!("a partition of {} being detached (DETACH PENDING): its rows cannot be read", reg.table),
                }));
            }
            if let Some(temp) = temporary_in(&tree_of(reg.rel)) {
                skipped.push(json!({
                    "table": crate::audit::table_name(temp),
                    "identifier_column": reg.col,
                    "reason": format!("a temporary table of another session, under {}: its rows cannot be read", reg.table),
                }));
            }
        }
        let role = caller();
        let consents = if may_process_subjects(role) || has_privs_of_role_named(role, DPO) {
            crate::api::consent::history(subject)
        } else {
            skipped.push(json!({ "consents": true, "reason": format!("only members of {SUBJECT_PROCESSOR} or {DPO} read consent records") }));
            Value::Null
        };
        events::record(
            "subject_export",
            None,
            json!({
                "export_id": export_id,
                "tables": tables.len(),
                "rows": rows_total,
                "undecrypted_values": undecrypted_total,
                "skipped": skipped.len(),
            }),
        );
        let exported_at = Spi::get_one::<String>("SELECT pg_catalog.now()::text")
            .ok()
            .flatten()
            .unwrap_or_default();
        json!({
            "format": EXPORT_FORMAT,
            "export_id": export_id,
            "subject": subject,
            "exported_at": exported_at,
            "exported_by": role_name(role),
            "tables": tables,
            "skipped": skipped,
            "consents": consents,
        })
    })
}

/// The columns an anonymization sets to NULL: the identifier, every column that can hold a
/// ciphertext of the extension (its types, domains over them, arrays, ranges and composite types
/// with one inside: `types::identity`) and every column classified pii, phi, pci or secret
/// (encml.classify).
fn anonymized_columns(reg: &Registration) -> Vec<String> {
    // Classified in the registered table or in any table under it (a partition's column
    // classified there alone was kept, attacker round 13): columns are matched by name.
    let classified = classified_columns(&lineage(&tree_of(reg.rel)));
    columns(reg.rel)
        .into_iter()
        .filter(|(name, typ)| {
            *name == reg.col || classified.contains(name) || identity::holds_encrypted(*typ)
        })
        .map(|(name, _)| name)
        .collect()
}

/// `rels` with every table they inherit from, up to the roots (a column is classified where it
/// is defined, possibly in a table between, or in a second parent: attacker round 14).
fn lineage(rels: &[pg_sys::Oid]) -> Vec<pg_sys::Oid> {
    let rels = rels.to_vec();
    Spi::get_one_with_args::<Vec<pg_sys::Oid>>(
        "WITH RECURSIVE up(relid) AS ( \
             SELECT pg_catalog.unnest($1::pg_catalog.oid[]) \
             UNION SELECT i.inhparent FROM up u JOIN pg_catalog.pg_inherits i \
               ON i.inhrelid OPERATOR(pg_catalog.=) u.relid) \
         SELECT pg_catalog.array_agg(relid) FROM up",
        &[rels.into()],
    )
    .or_spi_failed("")
    .unwrap_or_default()
}

/// Names of the columns classified pii, phi, pci or secret (encml.classify) in any of `rels`.
fn classified_columns(rels: &[pg_sys::Oid]) -> Vec<String> {
    let rels: Vec<pg_sys::Oid> = rels.to_vec();
    as_extension_owner(|| {
        crate::pg::catalog_reads::read_rows(
            "SELECT DISTINCT a.attname::pg_catalog.text FROM pg_catalog.pg_attribute a \
               JOIN encml.column_classes c \
                 ON c.table_oid OPERATOR(pg_catalog.=) a.attrelid \
                AND c.attnum OPERATOR(pg_catalog.=) a.attnum \
              WHERE a.attrelid OPERATOR(pg_catalog.=) ANY ($1) AND NOT a.attisdropped \
                AND c.label OPERATOR(pg_catalog.=) ANY ('{pii,phi,pci,secret}'::pg_catalog.text[])",
            &[crate::pg::catalog_reads::arg(rels.clone())],
            0,
            |r| r.get::<String>(1).unwrap_or_default(),
        )
    })
}

/// The tables under the registered one that have columns of their own (inheritance children;
/// not in the registered table): statements on the registered table neither read nor change
/// those columns (attacker round 13: an anonymization kept a child's pii and ciphertext
/// columns, and the export left them out). With `sensitive` (anonymization), only columns it
/// must set to NULL (classified, or holding ciphertexts), also of tables registered themselves;
/// else (export) only of tables not registered themselves.
fn columns_only_under(reg: &Registration, sensitive: bool) -> Vec<(pg_sys::Oid, Vec<String>)> {
    let own: Vec<String> = columns(reg.rel).into_iter().map(|(n, _)| n).collect();
    let registered: Vec<pg_sys::Oid> = if sensitive {
        Vec::new()
    } else {
        registrations().iter().map(|r| r.rel).collect()
    };
    tree_of(reg.rel)
        .into_iter()
        .filter(|m| *m != reg.rel && !registered.contains(m))
        .filter_map(|m| {
            let classified = classified_columns(&lineage(&[m]));
            let extra: Vec<String> = columns(m)
                .into_iter()
                .filter(|(name, typ)| {
                    !own.contains(name)
                        && (!sensitive
                            || classified.contains(name)
                            || identity::holds_encrypted(*typ))
                })
                .map(|(name, _)| name)
                .collect();
            (!extra.is_empty()).then_some((m, extra))
        })
        .collect()
}

/// Whether the code calling it runs inside a subject erasure (`subject_forget`): the owners'
/// triggers test it to leave the erasure's statements alone. An anonymizing UPDATE must leave
/// every column it does not clear as it was (attacker round 18), so a trigger that stamps
/// `updated_at` fails the erasure unless it skips them; an archiving trigger can skip copying
/// the rows an erasure deletes. True only in the erasure's own session (a worker that runs
/// nothing else), from when it has locked and planned its tables until it commits.
#[pg_extern(stable, parallel_restricted)]
fn in_subject_erasure() -> bool {
    crate::pg::erasure_guard::active()
}

/// Right to erasure: deletes or anonymizes the subject's rows in every registered table (as
/// registered; with the caller's DELETE/UPDATE rights), destroys the subject's keys (so copies of
/// its values elsewhere, in other tables, exports and backups, cannot be decrypted once the
/// master key is rotated), deletes its consent records, and logs an erasure record without the
/// subject's data. Returns the receipt. Members of encml_dpo, encml_key_admin and superusers.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn subject_forget(subject: &str) -> JsonB {
    require_eraser(caller());
    // It commits on its own: a read-only transaction (or a standby) must not erase through it
    // (attacker round 12).
    // SAFETY: reads the backend's transaction state.
    if unsafe { pg_sys::XactReadOnly } {
        raise_full(
            PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            "subject_forget cannot run in a read-only transaction",
            None,
            Some("Call it in a read-write transaction of its own, on the primary.".into()),
        );
    }
    // The worker cannot see rows this transaction wrote, and would wait for its row locks.
    // SAFETY: reads this backend's top-level transaction id without assigning one; never raises.
    if unsafe { pg_sys::GetTopTransactionIdIfAny() } != pg_sys::InvalidTransactionId {
        raise_full(
            PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
            "subject_forget refuses to run in a transaction that has already written",
            Some("The erasure runs and commits in a session of its own, which cannot see this transaction's changes.".into()),
            Some("Call it in a transaction of its own.".into()),
        );
    }
    // The worker locks them in SHARE ROW EXCLUSIVE mode (`lock_for_erasure`).
    refuse_with_conflicting_locks(
        "subject_forget",
        &[
            "RowExclusiveLock",
            "ShareUpdateExclusiveLock",
            "ShareLock",
            "ShareRowExclusiveLock",
            "ExclusiveLock",
            "AccessExclusiveLock",
        ],
    );
    in_own_session(json!({ "op": "forget", "subject": subject }))
}

/// Members of encml_dpo, encml_key_admin and superusers erase; others are refused (and the
/// refusal logged).
fn require_eraser(role: pg_sys::Oid) {
    if !(is_superuser(role)
        || has_privs_of_role_named(role, DPO)
        || has_privs_of_role_named(role, KEY_ADMIN))
    {
        events::refused("subject_forget_refused", json!({}));
        raise_full(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "permission denied to erase data subjects (role {})",
                role_name(role)
            ),
            None,
            Some(format!("Members of {DPO} erase data subjects.")),
        );
    }
}

/// The erasure, run in the subject worker with the caller's roles (see `in_own_session`).
fn forget_here(subject: &str) -> Value {
    crate::pg::identity::with_pinned_search_path(|| {
        let role = caller();
        require_eraser(role);
        // On Citus the erasure deletes in distributed tables, then changes the key catalog (a
        // reference table): one transaction may do both only over one connection per node.
        // Local to the worker's own transaction.
        Spi::run(
            "SELECT pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true) \
               FROM pg_catalog.pg_settings WHERE name OPERATOR(pg_catalog.=) 'citus.multi_shard_modify_mode'",
        )
        .or_spi_failed("");
        // Deferred triggers fire at the end of each statement, as the table's owner, not at
        // this transaction's commit, as the caller. (Postgres refuses to queue a deferred event
        // in the restricted operation the statements run in: an owner's trigger that defers
        // constraints again fails the erasure.)
        Spi::run("SET CONSTRAINTS ALL IMMEDIATE").or_spi_failed("");
        lock_for_erasure();
        // Everything below reads what committed before the locks were granted: a column or an
        // inheritance child added by an owner's transaction that held the table as the erasure
        // started is planned for too (attacker round 18).
        crate::pg::session_worker::read_from_now();
        // What the receipt and the audit record call each table and column: their names before
        // any owner's code ran. That code sees the subject's rows, and could name a later table
        // or column after the subject, which would put the subject into the audit log for good
        // (attacker round 9). And the tables under each, as locked: one that leaves (DETACH
        // PARTITION, NO INHERIT by an owner's code meanwhile) would leave the final search too.
        let locked = registrations();
        let named = names_of(&locked);
        let trees = trees_of(&locked);
        let mut plans: Plans = locked
            .iter()
            .map(|r| (r.ident(), plan_for(r, subject)))
            .collect();
        for (rel, tree) in &trees {
            require_no_temporary_under(*rel, tree);
            // From here to the commit, only the erasure writes to them (attacker round 15).
            erasure_guard::watch(tree);
        }
        let erasure_id = uuid::Uuid::new_v4().to_string();
        let mut tables = Vec::new();
        crate::audit::row::during_erasure(&erasure_id, || {
            // The registrations are read again before each step: the owners' code run by one
            // step can rename, drop and register columns of other tables (attacker round 8).
            // Deleting registrations go first: an anonymizing one of a table above (a parent,
            // a partitioned table) clears the identifier in the rows of the tables under it, and
            // a deleting registration of one of those would then find none of the subject's rows
            // to delete (attacker round 17).
            let mut done = Vec::new();
            let mut changed = Vec::new();
            while let Some(reg) = registrations()
                .into_iter()
                .filter(|r| !done.contains(&r.ident()))
                .min_by_key(|r| r.on_forget != "delete")
            {
                done.push(reg.ident());
                if let Some(entry) = erase_in(&reg, subject, role, &mut plans) {
                    if entry["rows"].as_u64().unwrap_or(0) > 0 {
                        changed.push(reg.rel);
                    }
                    tables.push(receipt_entry(&reg, &named, entry));
                }
            }
            // A registered table dropped meanwhile (an owner's code put a copy of it back under
            // its name, unregistered: attacker round 18) fails the erasure.
            if let Some(gone) = locked.iter().find(|r| !relation_exists(r.rel)) {
                let table = named
                    .iter()
                    .find(|(ident, _)| *ident == gone.ident())
                    .map(|(_, (table, _))| table.clone())
                    .unwrap_or_default();
                raise_full(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("cannot erase the subject's rows: {table} was dropped during the erasure"),
                    Some("An owner's code dropped a registered table while the erasure ran (a copy under its name would be neither registered nor erased). Nothing was erased: the erasure is all or nothing.".into()),
                    Some("The table's owner must remove the code that drops it.".into()),
                );
            }
            // A later step's code can have put rows back in a table erased before it (attacker
            // round 8): the subject's rows must be gone from every table at the end.
            require_trees_kept(&trees);
            for reg in registrations() {
                require_erased(&reg, planned(&mut plans, &reg, subject));
            }
            // Also when the owner's code caught the ERROR its write got (the write was undone
            // with it; the erasure fails all the same).
            if let Some(table) = erasure_guard::breach() {
                erasure_guard::refuse(&table, "a write");
            }
            refresh_statistics(&changed);
        });
        let (keys, versions) = catalog::destroy_subject_keys(subject);
        clear_cache();
        let consents = crate::api::consent::forget(subject);
        let receipt = json!({
            "erasure_id": erasure_id,
            "tables": tables,
            "keys_destroyed": keys,
            "key_versions_erased": versions,
            "consent_records_deleted": consents,
        });
        // The audit record holds what was erased, not whose: the receipt's erasure_id links them.
        events::record("subject_forget", None, receipt.clone());
        notice(
            format!(
                "subject erased: {} row(s) in {} registered column(s), {keys} key(s) destroyed",
                tables
                    .iter()
                    .filter_map(|t| t["rows"].as_u64())
                    .sum::<u64>(),
                tables.len()
            ),
            Some(
                "Backups taken before now still hold the rows and the wrapped keys. Run \
                 encml.rotate_master_key() and remove the old master key from the provider to make \
                 the subject's encrypted values in them unrecoverable."
                    .into(),
            ),
        );
        let mut receipt = receipt;
        receipt["erased_by"] = json!(role_name(role));
        receipt["erased_at"] = json!(Spi::get_one::<String>("SELECT pg_catalog.now()::text")
            .ok()
            .flatten()
            .unwrap_or_default());
        receipt
    })
}

/// The registrations' table and column names now, by what each is of (`Registration::ident`).
type Names = Vec<((pg_sys::Oid, i16, String), (String, String))>;

fn names_of(regs: &[Registration]) -> Names {
    regs.iter()
        .map(|r| (r.ident(), (r.table.clone(), r.col.clone())))
        .collect()
}

/// The receipt's entry for a step, with the names the table and column had before the erasure;
/// a column registered during the erasure (by an owner's code, which saw the subject) is given
/// by numbers only: table oid and column number.
fn receipt_entry(reg: &Registration, named: &Names, mut entry: Value) -> Value {
    match named.iter().find(|(ident, _)| *ident == reg.ident()) {
        Some((_, (table, col))) => {
            entry["table"] = json!(table);
            entry["identifier_column"] = json!(col);
        }
        None => {
            entry["table"] = Value::Null;
            entry["identifier_column"] = Value::Null;
            entry["registered_during_erasure"] = json!({
                "table_oid": reg.rel.to_u32(), "attnum": reg.attnum,
            });
        }
    }
    entry
}

/// Every table of `regs` (read after `lock_for_erasure` locked them all) with the tables under
/// it (partitions, inheritance children).
fn trees_of(regs: &[Registration]) -> Vec<(pg_sys::Oid, Vec<pg_sys::Oid>)> {
    let mut rels: Vec<pg_sys::Oid> = regs.iter().map(|r| r.rel).collect();
    rels.dedup();
    rels.into_iter().map(|rel| (rel, tree_of(rel))).collect()
}

fn tree_of(rel: pg_sys::Oid) -> Vec<pg_sys::Oid> {
    Spi::get_one_with_args::<Vec<pg_sys::Oid>>(
        "WITH RECURSIVE tree(relid) AS ( \
             SELECT $1 UNION SELECT i.inhrelid FROM tree t JOIN pg_catalog.pg_inherits i \
               ON i.inhparent OPERATOR(pg_catalog.=) t.relid) \
         SELECT pg_catalog.array_agg(relid) FROM tree",
        &[rel.into()],
    )
    .or_spi_failed("")
    .unwrap_or_default()
}

/// Fails the erasure if a table that was under a registered one when the erasure locked it is
/// no longer under it (and still exists): the owners' code detached it meanwhile, and the final
/// search of the registered table would not reach the subject's rows there (attacker round 9).
fn require_trees_kept(trees: &[(pg_sys::Oid, Vec<pg_sys::Oid>)]) {
    for (rel, was) in trees {
        if !relation_exists(*rel) {
            continue;
        }
        let now = tree_of(*rel);
        require_no_temporary_under(*rel, &now);
        if let Some(left) = was
            .iter()
            .find(|m| !now.contains(m) && relation_exists(**m))
        {
            raise_full(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!(
                    "cannot erase the subject's rows: {} left {} during the erasure",
                    crate::audit::table_name(*left),
                    crate::audit::table_name(*rel)
                ),
                Some("An owner's code detached it (DETACH PARTITION, NO INHERIT) while the erasure ran, so its rows would not be searched. Nothing was erased: the erasure is all or nothing.".into()),
                Some("The table's owner must remove the code that detaches it.".into()),
            );
        }
    }
}

/// Fails the erasure if a temporary table is under the registered table `rel`: another
/// session's temporary tables are invisible here (Postgres leaves them out of the statements'
/// inheritance), so the subject's rows in one would survive a "successful" erasure (attacker
/// round 12: `CREATE TEMP TABLE c () INHERITS (registered)`).
fn require_no_temporary_under(rel: pg_sys::Oid, tree: &[pg_sys::Oid]) {
    // A partition whose DETACH ... CONCURRENTLY was interrupted is still under its table, and
    // left out of statements on it the same way (attacker round 13).
    if let Some(pending) = detach_pending_in(tree) {
        raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "cannot erase the subject's rows in {}: its partition {} is being detached (DETACH PENDING)",
                crate::audit::table_name(rel),
                crate::audit::table_name(pending)
            ),
            Some("Statements on the table leave such a partition out, so its rows would stay. Nothing was erased: the erasure is all or nothing.".into()),
            Some("The table's owner must finish the detach (ALTER TABLE ... DETACH PARTITION ... FINALIZE).".into()),
        );
    }
    if let Some(temp) = temporary_in(tree) {
        raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "cannot erase the subject's rows in {}: the temporary table {} of another session is under it",
                crate::audit::table_name(rel),
                crate::audit::table_name(temp)
            ),
            Some("Another session's temporary tables cannot be read or changed here, so its rows would stay. Nothing was erased: the erasure is all or nothing.".into()),
            Some("The session that created it must drop it (or end).".into()),
        );
    }
}

/// The first partition among `rels` whose detach is pending.
fn detach_pending_in(rels: &[pg_sys::Oid]) -> Option<pg_sys::Oid> {
    let rels = rels.to_vec();
    Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT (SELECT i.inhrelid FROM pg_catalog.pg_inherits i \
                  WHERE i.inhdetachpending AND i.inhrelid OPERATOR(pg_catalog.=) ANY ($1) LIMIT 1)",
        &[rels.into()],
    )
    .or_spi_failed("")
}

/// The first temporary table among `rels`.
fn temporary_in(rels: &[pg_sys::Oid]) -> Option<pg_sys::Oid> {
    rels.iter().copied().find(|r| {
        // SAFETY: a syscache lookup of the relation's persistence.
        let persistence = unsafe { pg_sys::get_rel_persistence(*r) };
        persistence == pg_sys::RELPERSISTENCE_TEMP as std::ffi::c_char
    })
}

fn relation_exists(rel: pg_sys::Oid) -> bool {
    // SAFETY: a syscache lookup by oid.
    unsafe {
        pg_sys::SearchSysCacheExists(
            pg_sys::SysCacheIdentifier::RELOID as i32,
            pg_sys::Datum::from(rel),
            pg_sys::Datum::from(0usize),
            pg_sys::Datum::from(0usize),
            pg_sys::Datum::from(0usize),
        )
    }
}

/// Locks what an erasure reads and changes before it reads any of it, so that nothing commits
/// under it meanwhile (attacker round 8): the subject keys (a key made in a transaction still
/// open would survive the erasure) and every registered table with the tables under it (a row
/// of the subject inserted by a transaction still open would survive it). SHARE ROW EXCLUSIVE
/// waits for the writers in progress to commit, keeps new ones waiting until the erasure
/// commits, and lets readers read. In a fixed order (the key catalog, then tables by oid), so
/// that two erasures queue instead of deadlocking.
fn lock_for_erasure() {
    let mut rels: Vec<pg_sys::Oid> = registrations().iter().map(|r| r.rel).collect();
    rels.sort_by_key(|r| r.to_u32());
    rels.dedup();
    // (The consents too: one recorded by a transaction still open survived, attacker round 12.
    // And the registrations: another session unregistered a table mid-erasure, which left it
    // out with the subject's rows, or registered one in a transaction still open, round 13.)
    as_extension_owner(|| {
        Spi::run(
            "LOCK TABLE encml.subject_columns, encml.subject_keys, encml.consents \
               IN SHARE ROW EXCLUSIVE MODE",
        )
        .or_spi_failed("")
    });
    for rel in rels {
        lock_registered(rel);
    }
}

/// Locks a registered table for the erasure (`lock_for_erasure`); nothing if it was dropped.
fn lock_registered(rel: pg_sys::Oid) {
    // (A table dropped since it was registered has no name left to lock.)
    if relation_exists(rel) {
        as_extension_owner(|| {
            Spi::run(&format!(
                "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
                crate::audit::table_name(rel)
            ))
            .or_spi_failed("")
        });
    }
}

/// Analyzes again, in the erasure's transaction, every table in or under `rels` (the tables
/// whose rows it deleted or anonymized) that has planner statistics: `pg_stats` shows sampled
/// values of every column (most common values, histogram bounds) to whoever may read the
/// table, and kept the erased identifier and values until the next ANALYZE (attacker round 21,
/// also when an owner's trigger ran ANALYZE while the rows were still there). ANALYZE leaves out
/// rows this transaction deleted and samples the anonymized versions; its statistics commit
/// with the erasure.
fn refresh_statistics(rels: &[pg_sys::Oid]) {
    let mut members: Vec<pg_sys::Oid> = rels.iter().flat_map(|r| tree_of(*r)).collect();
    members.sort_by_key(|m| m.to_u32());
    members.dedup();
    if members.is_empty() {
        return;
    }
    let with_statistics: Vec<String> = as_extension_owner(|| {
        crate::pg::catalog_reads::read_rows(
            "SELECT c.oid::pg_catalog.regclass::pg_catalog.text FROM pg_catalog.pg_class c \
              WHERE c.oid OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[]) \
                AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,m}'::pg_catalog.\"char\"[]) \
                AND (EXISTS (SELECT FROM pg_catalog.pg_statistic s \
                              WHERE s.starelid OPERATOR(pg_catalog.=) c.oid) \
                     OR EXISTS (SELECT FROM pg_catalog.pg_statistic_ext e \
                                  JOIN pg_catalog.pg_statistic_ext_data d \
                                    ON d.stxoid OPERATOR(pg_catalog.=) e.oid \
                                 WHERE e.stxrelid OPERATOR(pg_catalog.=) c.oid)) \
              ORDER BY c.oid",
            &[crate::pg::catalog_reads::arg(members)],
            0,
            |r| r.get::<String>(1).unwrap_or_default(),
        )
    });
    if with_statistics.is_empty() {
        return;
    }
    as_extension_owner(|| {
        Spi::run(&format!("ANALYZE {}", with_statistics.join(", "))).or_spi_failed("")
    });
}

/// Erases the subject's rows in the registered column (deletes or anonymizes them, as
/// registered), or fails the whole erasure; returns the receipt's entry for it.
fn erase_in(
    reg: &Registration,
    subject: &str,
    role: pg_sys::Oid,
    plans: &mut Plans,
) -> Option<Value> {
    require_searchable(reg);
    // (Registered during the erasure, by a superuser's direct change: not locked yet.)
    lock_registered(reg.rel);
    erasure_guard::watch(&tree_of(reg.rel));
    let plan = planned(plans, reg, subject);
    let search = plan.search.clone()?;
    let predicate = search.on(reg);
    let bound = search.bound.clone();
    let anonymize = reg.on_forget == "anonymize";
    // Columns only a table under it has are cleared by statements of their own, run first (the
    // registered table's UPDATE then clears the identifier they find the rows by).
    let mut first = Vec::new();
    if anonymize {
        for (member, numbers) in plan.only_under.clone() {
            let extra = attnames(member, &numbers);
            if extra.is_empty() {
                continue;
            }
            let member_name = crate::audit::table_name(member);
            if !has_table_privilege(member, "UPDATE") {
                raise_full(
                    PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    format!("anonymizing the subject's rows in {}: {member_name} under it has columns of its own to clear ({}), which needs UPDATE on it", reg.table, extra.join(", ")),
                    Some("Nothing was erased: the erasure is all or nothing.".into()),
                    None,
                );
            }
            // RETURNING the rows as stored, and counted before: as for the registered table's
            // UPDATE below (attacker round 15: a BEFORE UPDATE trigger of the table under it
            // kept its column's value).
            first.push((
                member,
                format!("SELECT pg_catalog.count(*) FROM ONLY {member_name} t WHERE {predicate}"),
                anonymizing_update(&format!("ONLY {member_name}"), member, &extra, &predicate),
            ));
        }
    }
    let cleared_names = attnames(reg.rel, &plan.cleared);
    let sql = if anonymize {
        // RETURNING the row as stored: an owner's trigger that put a value back, or moved one
        // into a kept column, is seen.
        anonymizing_update(&reg.table, reg.rel, &cleared_names, &predicate)
    } else {
        format!("DELETE FROM {} t WHERE {predicate}", reg.table)
    };
    // Whether the caller may erase is checked first, as the caller; the statement then runs as
    // the table's owner, restricted, like the export's reads.
    let privilege = if anonymize { "UPDATE" } else { "DELETE" };
    if !has_table_privilege(reg.rel, privilege) || !may_read_identifier(reg) {
        raise_full(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "erasing the subject's rows in {} needs {privilege} on it, SELECT on its column {} and USAGE on its schema",
                reg.table,
                quote_ident(&reg.col)
            ),
            Some("Nothing was erased: the erasure is all or nothing.".into()),
            Some(format!(
                "The caller needs {privilege} on every registered table, SELECT on its identifier column and USAGE on its schema."
            )),
        );
    }
    // The statement runs as the owner; under the caller's own policies some of the subject's
    // rows would be hidden from it, and not erased (attacker round 6).
    if row_security_applies(reg.rel) {
        raise_full(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "erasing the subject's rows in {}: row-level security of the table applies to role {}",
                reg.table,
                role_name(role)
            ),
            Some("Its policies could hide some of the subject's rows from you, so they would not be erased. Nothing was erased: the erasure is all or nothing.".into()),
            Some("Erase as a role that row-level security does not apply to: with BYPASSRLS, or the table's owner (unless it forces row-level security).".into()),
        );
    }
    if row_security_applies_to_owner(reg.rel) {
        raise_full(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("cannot erase the subject's rows in {}: {FORCED_ROW_SECURITY}", reg.table),
            Some("The erasure runs as the table's owner, whose policies could hide some of the subject's rows. Nothing was erased: the erasure is all or nothing.".into()),
            Some("The table's owner must ALTER TABLE ... NO FORCE ROW LEVEL SECURITY.".into()),
        );
    }
    // The rows there before the statement: it must delete or anonymize every one (attacker
    // round 14: an owner's trigger cancelled the delete and cleared the identifier instead, and
    // the search afterwards found nothing).
    let found = matching_rows(reg, &search);
    let (mut kept_values, mut child_rows_kept) = (false, false);
    let rows = as_owner_of(reg, "erasing the subject's rows in", || {
        crate::audit::row::erasing_in(reg.rel, || {
            // Counted as the final search counts (row_security off: a policy the owner forced
            // meanwhile fails the count instead of hiding rows from it).
            let before: Vec<i64> = first
                .iter()
                .map(|(_, count, _)| {
                    without_row_security(|| {
                        Spi::get_one_with_args::<i64>(count, &[bound.as_str().into()])
                            .or_spi_failed("")
                            .unwrap_or(0)
                    })
                })
                .collect();
            Spi::connect_mut(|client| {
                for ((member, _, statement), before) in first.iter().zip(before) {
                    let done = erasure_guard::own_update(*member, || {
                        client
                            .update(statement, None, &[bound.as_str().into()])
                            .or_spi_failed("")
                    });
                    let cleared = done.len() as i64;
                    if done
                        .into_iter()
                        .any(|r| r.get::<bool>(1).ok().flatten() != Some(true))
                    {
                        kept_values = true;
                    }
                    if cleared < before {
                        child_rows_kept = true;
                    }
                }
                let mut run = || client.update(&sql, None, &[bound.as_str().into()]);
                let done = if anonymize {
                    erasure_guard::own_update(reg.rel, run)
                } else {
                    run()
                }
                .unwrap_or_else(|e| {
                    raise_full(
                        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                        format!("erasing the subject's rows in {} failed: {e}", reg.table),
                        Some("Nothing was erased: the erasure is all or nothing.".into()),
                        Some(format!(
                            "The caller needs {privilege} on every registered table."
                        )),
                    )
                });
                let rows = done.len();
                if anonymize
                    && done
                        .into_iter()
                        .any(|r| r.get::<bool>(1).ok().flatten() != Some(true))
                {
                    kept_values = true;
                }
                rows
            })
        })
    });
    if (rows as i64) < found || kept_values || child_rows_kept {
        raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("the subject's rows in {} were not all erased", reg.table),
            Some(format!(
                "{found} row(s) matched and {rows} were {}{}{}: a trigger or rule of the table's owner kept them. Nothing was erased: the erasure is all or nothing.",
                if anonymize { "anonymized" } else { "deleted" },
                if kept_values { ", some with values put back" } else { "" },
                if child_rows_kept { ", and rows of a table under it were not all anonymized" } else { "" }
            )),
            Some("The table's owner must remove the code that keeps them.".into()),
        );
    }
    // The owner's triggers, rules and policies decide what the statement really did (a trigger
    // put the row back, a rule did nothing instead): the receipt must not claim an erasure the
    // table does not show (attacker round 7).
    require_erased(
        reg,
        plans
            .iter()
            .find(|(id, _)| *id == reg.ident())
            .map(|(_, p)| p)
            .expect("planned above"),
    );
    Some(json!({
        "table": reg.table,
        "identifier_column": reg.col,
        "action": reg.on_forget,
        "rows": rows,
    }))
}

/// All or nothing: a table the erasure cannot search fails it (attacker round 6: it was skipped
/// with a WARNING, and the subject's rows stayed).
fn require_searchable(reg: &Registration) {
    if let Some(reason) = unsearchable(reg) {
        raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("cannot erase the subject's rows in {}: {reason}", reg.table),
            Some("Nothing was erased: the erasure is all or nothing.".into()),
            Some(format!(
                "The table's owner must change the column back, or register another column and unregister this one with encml.unregister_subject_column('{}', '{}').",
                reg.table.replace('\'', "''"),
                reg.col.replace('\'', "''")
            )),
        );
    }
}

/// Fails the erasure if rows of the subject remain in the registered column (read as the
/// table's owner, who sees them all unless it forces row-level security on itself).
fn require_erased(reg: &Registration, plan: &Plan) {
    require_searchable(reg);
    let Some(search) = &plan.search else { return };
    let left = matching_rows(reg, search);
    if left > 0 {
        raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("the subject's rows in {} remain after the erasure", reg.table),
            Some(format!(
                "{left} row(s) still match after the erasure: a trigger, rule or policy of a table's owner kept or restored them. Nothing was erased: the erasure is all or nothing.",
            )),
            Some("The table's owner must remove the code that keeps them.".into()),
        );
    }
}

/// How many rows of the registered table match the subject, read as the table's owner with
/// row_security off.
fn matching_rows(reg: &Registration, search: &Search) -> i64 {
    let (predicate, bound) = (search.on(reg), &search.bound);
    as_owner_of(reg, "checking the erasure in", || {
        without_row_security(|| {
            Spi::get_one_with_args::<i64>(
                &format!(
                    "SELECT pg_catalog.count(*) FROM {} t WHERE {predicate}",
                    reg.table
                ),
                &[bound.as_str().into()],
            )
            .or_spi_failed("")
            .unwrap_or(0)
        })
    })
}

/// Runs `f` (a count of the subject's rows) with row_security off. Policies the owner forced on
/// itself meanwhile (by an earlier step's code) would hide rows from the count (attacker round
/// 10): with row_security off, Postgres refuses the query instead of filtering it, and the
/// erasure fails. (Only for the count: the owners' code the erasure runs reads its other tables
/// as Postgres would.)
fn without_row_security<R>(f: impl FnOnce() -> R) -> R {
    let was = Spi::get_one::<String>("SELECT pg_catalog.current_setting('row_security')")
        .or_spi_failed("")
        .unwrap_or_else(|| "on".into());
    Spi::run("SELECT pg_catalog.set_config('row_security', 'off', true)").or_spi_failed("");
    let result = f();
    Spi::run_with_args(
        "SELECT pg_catalog.set_config('row_security', $1, true)",
        &[was.as_str().into()],
    )
    .or_spi_failed("");
    result
}

pgrx::extension_sql_file!(
    "../../sql/schema/subjects.sql",
    name = "subjects",
    requires = ["bootstrap"]
);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
pub mod tests {
    use pgrx::prelude::*;

    /// One key per subject, made on first use. (Its destruction by `subject_forget`, which runs
    /// and commits in a worker of its own, is in tests/pg_regress/sql/gdpr.sql.)
    #[pg_test]
    fn subject_key_is_made_once() {
        let k = Spi::get_one::<pgrx::Uuid>("SELECT encml.subject_key('pgtest-s1')")
            .unwrap()
            .unwrap();
        assert_eq!(
            Spi::get_one::<pgrx::Uuid>("SELECT encml.subject_key('pgtest-s1')"),
            Ok(Some(k))
        );
    }

    /// The erasure commits in a session of its own, which cannot see this transaction's rows: a
    /// transaction that has written (here the subject's key and a value under it) is refused.
    #[pg_test(error = "subject_forget refuses to run in a transaction that has already written")]
    fn forget_refuses_a_transaction_that_wrote() {
        Spi::run(
            "CREATE TEMP TABLE kept AS SELECT encml.encrypt('secret', encml.subject_key('pgtest-s2')) AS v",
        )
        .unwrap();
        Spi::run("SELECT encml.subject_forget('pgtest-s2')").unwrap();
    }
}
