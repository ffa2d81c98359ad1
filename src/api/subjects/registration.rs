//! Which columns hold data subjects' identifiers (`encml.subject_columns`): registered and
//! unregistered by the table's owner, with how the identifier is stored (as is, a det_text or
//! an FF1 token) and whether an erasure deletes or anonymizes the subject's rows.

use super::{plain_identifier_type, IdKind};
use crate::audit::events::require_table_owner;
use crate::events;
use crate::keys::catalog;
use crate::pg::errors::OrSpiFailed;
use crate::pg::errors::{raise, raise_full};
use crate::pg::identity::as_extension_owner;
use crate::pg::roles::caller;
use crate::types::identity::{self, Encrypted};
use crate::types::reg::RegClass;
use encml_core::kdf::Purpose;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode, Uuid};
use serde_json::json;

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
    crate::pg::recovery::refuse_during_recovery("encml.register_subject_column()");
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
    crate::pg::recovery::refuse_during_recovery("encml.unregister_subject_column()");
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
