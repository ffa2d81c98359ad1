//! Masking functions for display (docs/masking.md): IMMUTABLE, character by character, so they
//! serve in views, generated columns and indexes. The rules are in `encml_core::mask`.

use crate::pg::errors::raise;
use crate::pg::sql_text::{quote_ident, quote_literal};
use crate::types::varlena::{OwnedText, OwnedVarlena, TextBytes};
use encml_core::mask;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

fn count_arg(value: i32, what: &str) -> usize {
    usize::try_from(value).unwrap_or_else(|_| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("{what} must not be negative, not {value}"),
        )
    })
}

/// Every character but the first `keep_prefix` and the last `keep_suffix` replaced by `pad`;
/// at most half of the characters are kept.
#[pg_extern(immutable, strict, parallel_safe)]
fn mask_partial(
    value: &str,
    keep_prefix: i32,
    keep_suffix: i32,
    pad: default!(&str, "'*'"),
) -> String {
    mask::partial(
        value,
        count_arg(keep_prefix, "keep_prefix"),
        count_arg(keep_suffix, "keep_suffix"),
        pad,
    )
}

/// A copy of `value`'s bytes, masked in place: the masks of digits and ASCII addresses keep the
/// length, so the result is built with one allocation and no re-validation (these run per row
/// in masked views).
fn masked_copy(value: &[u8], mask: impl FnOnce(&mut [u8]) -> bool) -> Option<OwnedText> {
    let mut v = OwnedVarlena::from_slice(value);
    mask(v.payload_mut()).then_some(OwnedText(v))
}

/// A card number showing its last four digits (and the first `keep_first`, at most 6).
#[pg_extern(immutable, strict, parallel_safe)]
fn mask_pan(pan: TextBytes<'_>, keep_first: default!(i32, 0)) -> OwnedText {
    let keep = count_arg(keep_first, "keep_first");
    if keep > 6 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("PCI DSS allows at most the first 6 digits to be shown, not {keep}"),
        );
    }
    masked_copy(pan.0, |b| {
        mask::digits_masked_in_place(b, keep, 4);
        true
    })
    .expect("always masked")
}

#[pg_extern(immutable, strict, parallel_safe)]
fn mask_email(email: TextBytes<'_>) -> OwnedText {
    masked_copy(email.0, mask::email_ascii_in_place).unwrap_or_else(|| {
        let text = std::str::from_utf8(email.0).unwrap_or_else(|_| {
            raise(
                PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
                "mask_email needs a UTF-8 database",
            )
        });
        OwnedText(OwnedVarlena::from_slice(mask::email(text).as_bytes()))
    })
}

/// A phone number showing its last `keep_last` digits, formatting kept.
#[pg_extern(immutable, strict, parallel_safe)]
fn mask_phone(phone: TextBytes<'_>, keep_last: default!(i32, 4)) -> OwnedText {
    let keep = count_arg(keep_last, "keep_last");
    masked_copy(phone.0, |b| {
        mask::digits_masked_in_place(b, 0, keep);
        true
    })
    .expect("always masked")
}

pgrx::extension_sql!(
    r#"
CREATE FUNCTION mask_date_to_year(value date) RETURNS date
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
-- Schema-qualified instead of a pinned search_path, so that the planner can inline it.
AS $$ SELECT CASE WHEN pg_catalog.isfinite(value)
                  THEN pg_catalog.make_date(EXTRACT(year FROM value)::int, 1, 1) ELSE value END $$;
"#,
    name = "mask_date_to_year"
);

pgrx::extension_sql_file!(
    "../../sql/masking.sql",
    name = "masking_rules",
    requires = ["bootstrap", masking_rule_set]
);

/// The SQL expression of a mask over column expression `col` (already quoted), for a column of
/// type `type_name`. Masks: pan, pan6, email, phone, year, null, partial(p, s[, 'pad']).
fn mask_expr(mask: &str, col: &str, type_name: &str) -> String {
    let text = format!("{col}::text");
    let bad = || -> ! {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "unknown mask {mask:?}: use pan, pan6, email, phone, year, null or partial(prefix, suffix[, 'pad'])"
            ),
        )
    };
    match mask.trim() {
        "null" => "NULL".into(),
        "pan" => format!("encml.mask_pan({text})"),
        "pan6" => format!("encml.mask_pan({text}, 6)"),
        "email" => format!("encml.mask_email({text})"),
        "phone" => format!("encml.mask_phone({text})"),
        "year" if type_name == "date" => format!("encml.mask_date_to_year({col})"),
        "year" => raise(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!("mask year needs a date column, not {type_name}"),
        ),
        m => {
            let Some(args) = m.strip_prefix("partial(").and_then(|r| r.strip_suffix(')')) else {
                bad()
            };
            let parts: Vec<&str> = args.splitn(3, ',').map(str::trim).collect();
            let num = |s: &str| s.parse::<u16>().unwrap_or_else(|_| bad());
            let (p, s) = match parts.as_slice() {
                [p, s] | [p, s, _] => (num(p), num(s)),
                _ => bad(),
            };
            let pad = match parts.get(2) {
                Some(q) if q.len() >= 2 && q.starts_with('\'') && q.ends_with('\'') => {
                    quote_literal(&q[1..q.len() - 1].replace("''", "'"))
                }
                Some(_) => bad(),
                None => "'*'".into(),
            };
            format!("encml.mask_partial({text}, {p}, {s}, {pad})")
        }
    }
}

/// Only the table's owner (or a superuser) sets its masking rules and views.
fn require_owner(rel: pg_sys::Oid) {
    crate::pg::catalog_access::require_table_owner(rel, "masking_owner_refused");
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

/// Sets the mask of one column (see `mask_expr`) and the roles that see it unmasked; applied by
/// `apply_masking`. Called by `encml.set_masking_rule` (sql/masking.sql), which takes the roles
/// as regrole[].
#[pg_extern(volatile, strict, parallel_unsafe)]
fn masking_rule_set(
    tbl: crate::types::reg::RegClass,
    col: &str,
    mask: &str,
    unmasked_roles: Vec<Option<pg_sys::Oid>>,
) {
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
    mask_expr(mask, "x", &type_name); // validates
    let roles: Vec<pg_sys::Oid> = unmasked_roles.into_iter().flatten().collect();
    let by = crate::pg::catalog_access::caller();
    crate::pg::catalog_access::as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO encml.masking_rules (tbl, col, mask, unmasked_roles, set_by) \
             VALUES ($1::oid::regclass, $2, $3, $4::oid[]::regrole[], $5::oid::regrole) \
             ON CONFLICT (tbl, col) DO UPDATE SET mask = EXCLUDED.mask, \
                 unmasked_roles = EXCLUDED.unmasked_roles, set_by = EXCLUDED.set_by, set_at = now()",
            &[rel.into(), col.into(), mask.trim().into(), roles.into(), by.into()],
        )
        .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, e.to_string()));
    });
}

/// Creates (or replaces) the security-barrier view `<schema>.<table>_masked`: every column of
/// the table, masked per its rule unless the reader is a superuser or in its unmasked roles.
/// Encrypted columns (enc_bytea, det_text) are decrypted for unmasked readers (who need the key
/// grant) and show `********` (or NULL for the null mask) to everyone else.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn apply_masking(tbl: crate::types::reg::RegClass) -> String {
    let rel = tbl.0;
    require_owner(rel);
    let rules: Vec<(String, String, Vec<String>)> = crate::pg::catalog_access::as_extension_owner(
        || {
            Spi::connect(|client| {
                client
                    .select(
                        "SELECT col::text, mask, unmasked_roles::text[] FROM encml.masking_rules WHERE tbl = $1::oid::regclass",
                        None,
                        &[rel.into()],
                    )
                    .map(|rows| {
                        rows.filter_map(|r| {
                            Some((
                                r.get::<String>(1).ok()??,
                                r.get::<String>(2).ok()??,
                                r.get::<Vec<String>>(3).ok()??,
                            ))
                        })
                        .collect()
                    })
                    .unwrap_or_default()
            })
        },
    );
    let (schema, name) = unsafe {
        let nsp = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(rel));
        let relname = pg_sys::get_rel_name(rel);
        (
            std::ffi::CStr::from_ptr(nsp).to_string_lossy().into_owned(),
            std::ffi::CStr::from_ptr(relname)
                .to_string_lossy()
                .into_owned(),
        )
    };
    let mut select = Vec::new();
    for (col, type_name) in columns(rel) {
        let q = quote_ident(&col);
        let Some((_, mask, roles)) = rules.iter().find(|(c, _, _)| *c == col) else {
            select.push(q);
            continue;
        };
        let roles_lit = quote_literal(&format!(
            "{{{}}}",
            roles
                .iter()
                .map(|r| format!("\"{}\"", r.replace('"', "\\\"")))
                .collect::<Vec<_>>()
                .join(",")
        ));
        let unmasked = format!("(SELECT encml.masking_unmasked({roles_lit}::regrole[]))");
        let (clear, masked) = match type_name.as_str() {
            "encml.enc_bytea" | "enc_bytea" => (
                format!("encml.decrypt_text({q})"),
                if mask.trim() == "null" {
                    "NULL".into()
                } else {
                    "'********'".into()
                },
            ),
            "encml.det_text" | "det_text" => (
                format!("encml.det_decrypt({q})"),
                if mask.trim() == "null" {
                    "NULL".into()
                } else {
                    "'********'".into()
                },
            ),
            t if mask.trim() == "null" || mask.trim() == "year" => {
                (q.clone(), mask_expr(mask, &q, t))
            }
            t => (format!("{q}::text"), mask_expr(mask, &q, t)),
        };
        select.push(format!(
            "CASE WHEN {unmasked} THEN {clear} ELSE {masked} END AS {q}"
        ));
    }
    let view = format!(
        "{}.{}",
        quote_ident(&schema),
        quote_ident(&format!("{name}_masked"))
    );
    let shown = unsafe {
        let q = |s: &str| {
            let c = std::ffi::CString::new(s).expect("no NUL in a name");
            std::ffi::CStr::from_ptr(pg_sys::quote_identifier(c.as_ptr()))
                .to_string_lossy()
                .into_owned()
        };
        format!("{}.{}", q(&schema), q(&format!("{name}_masked")))
    };
    Spi::run(&format!(
        "CREATE OR REPLACE VIEW {view} WITH (security_barrier = true) AS SELECT {} FROM {}.{}",
        select.join(", "),
        quote_ident(&schema),
        quote_ident(&name)
    ))
    .unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            e.to_string(),
        )
    });
    shown
}
