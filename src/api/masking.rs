//! Masking functions for display (docs/masking.md): IMMUTABLE, character by character, so they
//! serve in views, generated columns and indexes. The rules are in `encml_core::mask`.

use crate::pg::errors::raise;
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

/// A card number showing its last four digits (and the first `keep_first`, at most 6).
#[pg_extern(immutable, strict, parallel_safe)]
fn mask_pan(pan: &str, keep_first: default!(i32, 0)) -> String {
    let keep = count_arg(keep_first, "keep_first");
    if keep > 6 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("PCI DSS allows at most the first 6 digits to be shown, not {keep}"),
        );
    }
    mask::pan(pan, keep)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn mask_email(email: &str) -> String {
    mask::email(email)
}

/// A phone number showing its last `keep_last` digits, formatting kept.
#[pg_extern(immutable, strict, parallel_safe)]
fn mask_phone(phone: &str, keep_last: default!(i32, 4)) -> String {
    mask::phone(phone, count_arg(keep_last, "keep_last"))
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
