//! GDPR data-subject rights (docs/gdpr.md): where a subject's rows are
//! (`register_subject_column`), the subject's own keys (`subject_key`), access and portability
//! (`subject_export`) and erasure (`subject_forget`).
//!
//! Rows are found and changed with the caller's rights (SELECT for an export, DELETE or UPDATE
//! for an erasure; row-level security applies), so these functions give nobody access to a
//! table. An erasure is one transaction: the rows, the subject's keys, the consent records and
//! the erasure record in the audit log change together or not at all.
//!
//! - [`registration`]: which columns hold subjects' identifiers (`register_subject_column`);
//! - [`keys`]: the subjects' own keys (`subject_key`), cached per session;
//! - [`export`]: access and portability (`subject_export`);
//! - [`erasure`]: the erasure (`subject_forget`): its locks, its final checks and its receipt;
//! - [`erasure_plan`]: what it does in each table, worked out before any owner's code runs;
//! - [`erasure_step`]: erasing the subject's rows in one registered table, and checking that
//!   they are gone;
//! - [`anonymizing_update`]: the UPDATE that anonymizes rows and reports what it stored;
//! - [`worker`]: the session of its own that an export or erasure runs in, with the caller's
//!   roles, and the table owners' code run there as the owner;
//! - [`tables`]: the registered tables' columns, the tables under them, and who may read them;
//! - here: the registrations as read back (`registrations`), whether each can still be searched
//!   (`unsearchable`), and how a subject's rows are found in it (`subject_predicate`).

pub mod anonymizing_update;
pub mod erasure;
pub mod erasure_plan;
pub mod erasure_step;
pub mod export;
pub mod keys;
pub mod registration;
pub mod tables;
pub mod worker;

use crate::keys::catalog;
use crate::pg::errors::OrSpiFailed;
use crate::pg::identity::as_extension_owner;
use crate::pg::roles::{has_privs_of_role_named, is_superuser, KEY_ADMIN, SUBJECT_PROCESSOR};
use crate::pg::sql_text::{quote_ident, quote_literal};
use crate::types::identity::{self, Encrypted};
use pgrx::prelude::*;
use pgrx::{pg_sys, Uuid};

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

fn may_process_subjects(role: pg_sys::Oid) -> bool {
    is_superuser(role)
        || has_privs_of_role_named(role, SUBJECT_PROCESSOR)
        || has_privs_of_role_named(role, KEY_ADMIN)
}

pgrx::extension_sql_file!(
    "../../../sql/schema/subjects.sql",
    name = "subjects",
    requires = ["bootstrap"]
);
