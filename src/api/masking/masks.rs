//! Masking functions for display (docs/masking.md): IMMUTABLE, character by character, so they
//! serve in views, generated columns and indexes. The rules are in `encml_core::mask`.
//! `mask_expr` writes the SQL expression of the mask a masking rule names (`views`).

use crate::pg::errors::raise;
use crate::pg::sql_text::quote_literal;
use crate::pg::varlena::{OwnedVarlena, VarlenaBytes};
use encml_core::mask;
use pgrx::datum::FromDatum;
use pgrx::fcinfo::pg_getarg_datum_raw;
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
    let (prefix, suffix) = (
        count_arg(keep_prefix, "keep_prefix"),
        count_arg(keep_suffix, "keep_suffix"),
    );
    // A long pad multiplies the length: refuse a result no text value can hold before building
    // it (the value's length times the pad's bounds it; count exactly only when that is over).
    if value.len().saturating_mul(pad.len() + 1) > crate::pg::varlena::MAX_PAYLOAD {
        let len = mask::partial_len(value, prefix, suffix, pad);
        if len > crate::pg::varlena::MAX_PAYLOAD {
            raise(
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!("mask_partial's result would be {len} bytes, more than a text value holds (1 GB)"),
            );
        }
    }
    mask::partial(value, prefix, suffix, pad)
}

/// A copy of the text argument `n`'s bytes, masked in place: the masks of digits and ASCII
/// addresses keep the length, so the result is built with one allocation and no re-validation.
///
/// # Safety
/// As for `text_arg`.
unsafe fn masked_copy(
    fcinfo: pg_sys::FunctionCallInfo,
    n: usize,
    mask: impl FnOnce(&mut [u8]) -> bool,
) -> Option<pg_sys::Datum> {
    // SAFETY: as the caller guarantees; the bytes are copied at once.
    let value = unsafe { text_arg(fcinfo, n) };
    let mut v = OwnedVarlena::small_copy(value);
    mask(v.payload_mut()).then(|| v.into_datum())
}

/// The bytes of the text argument `n`.
///
/// # Safety
/// Argument `n` of the valid `fcinfo` must be a non-NULL `text`; the result must not outlive
/// the current memory context.
unsafe fn text_arg<'a>(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> &'a [u8] {
    // SAFETY: as the caller guarantees, the datum is a non-NULL varlena; VarlenaBytes detoasts
    // it into the current memory context when needed, which outlives the call; pgrx
    // bounds-checks `n` against nargs.
    unsafe {
        VarlenaBytes::from_polymorphic_datum(
            pg_getarg_datum_raw(fcinfo, n),
            false,
            pg_sys::InvalidOid,
        )
        .expect("STRICT function")
        .0
    }
}

/// The integer argument `n`, checked not negative.
///
/// # Safety
/// Argument `n` of the valid `fcinfo` must be a non-NULL `integer`.
unsafe fn int_arg(fcinfo: pg_sys::FunctionCallInfo, n: usize, what: &str) -> usize {
    count_arg(
        // SAFETY: as the caller guarantees (an int4 datum is by value); pgrx bounds-checks `n`.
        unsafe { pg_getarg_datum_raw(fcinfo, n) }.value() as i32,
        what,
    )
}

/// mask_pan(pan text, keep_first integer DEFAULT 0): a card number showing its last four digits
/// (and the first `keep_first`, at most 6).
///
/// # Safety
/// Only as the C function `encml_mask_pan` (`c_functions!`): `fcinfo` is the call's,
/// (text, integer) as declared below (STRICT).
unsafe fn mask_pan(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract); argument 1 is its non-NULL integer.
    let keep = unsafe { int_arg(fcinfo, 1, "keep_first") };
    if keep > 6 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("PCI DSS allows at most the first 6 digits to be shown, not {keep}"),
        );
    }
    // SAFETY: as above; argument 0 is its non-NULL text.
    unsafe { digits_masked(fcinfo, keep, 4) }
}

/// `mask_pan`/`mask_phone` of argument 0: ASCII text masked in a copy, other UTF-8 text
/// character by character (digits of every script are masked); text that is not UTF-8 (another
/// server encoding) has its ASCII digits masked.
///
/// # Safety
/// As for `text_arg` with argument 0.
unsafe fn digits_masked(
    fcinfo: pg_sys::FunctionCallInfo,
    keep_first: usize,
    keep_last: usize,
) -> pg_sys::Datum {
    // SAFETY: argument 0 is a non-NULL text, as the caller guarantees.
    let value = unsafe { text_arg(fcinfo, 0) };
    if !value.is_ascii() {
        if let Ok(text) = std::str::from_utf8(value) {
            let masked = mask::digits(text, keep_first, keep_last);
            return OwnedVarlena::from_slice(masked.as_bytes()).into_datum();
        }
    }
    // SAFETY: as above.
    unsafe {
        masked_copy(fcinfo, 0, |b| {
            mask::digits_masked_in_place(b, keep_first, keep_last);
            true
        })
    }
    .expect("always masked")
}

/// mask_email(email text)
///
/// # Safety
/// Only as the C function `encml_mask_email` (`c_functions!`): `fcinfo` is the call's,
/// (text) as declared below (STRICT).
unsafe fn mask_email(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract); argument 0 is its non-NULL text.
    unsafe { masked_copy(fcinfo, 0, mask::email_ascii_in_place) }.unwrap_or_else(|| {
        // SAFETY: as above, argument 0 is a non-NULL text.
        let text = std::str::from_utf8(unsafe { text_arg(fcinfo, 0) }).unwrap_or_else(|_| {
            raise(
                PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
                "mask_email needs a UTF-8 database",
            )
        });
        OwnedVarlena::from_slice(mask::email(text).as_bytes()).into_datum()
    })
}

/// mask_phone(phone text, keep_last integer DEFAULT 4): a phone number showing its last
/// `keep_last` digits, formatting kept.
///
/// # Safety
/// Only as the C function `encml_mask_phone` (`c_functions!`): `fcinfo` is the call's,
/// (text, integer) as declared below (STRICT).
unsafe fn mask_phone(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract); argument 1 is its non-NULL integer.
    let keep = unsafe { int_arg(fcinfo, 1, "keep_last") };
    // SAFETY: as above; argument 0 is its non-NULL text.
    unsafe { digits_masked(fcinfo, 0, keep) }
}

// Plain version-1 C functions rather than #[pg_extern]: masked views call them once per value,
// and pgrx's generic wrapper (argument iterator, memory-context switch, return boxing) cost
// about as much as the mask itself.
crate::pg::c_functions! {
    encml_mask_pan, pg_finfo_encml_mask_pan => mask_pan;
    encml_mask_email, pg_finfo_encml_mask_email => mask_email;
    encml_mask_phone, pg_finfo_encml_mask_phone => mask_phone;
}

pgrx::extension_sql!(
    r#"
CREATE FUNCTION mask_pan(pan text, keep_first integer DEFAULT 0) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_mask_pan';
CREATE FUNCTION mask_email(email text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_mask_email';
CREATE FUNCTION mask_phone(phone text, keep_last integer DEFAULT 4) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_mask_phone';
"#,
    name = "mask_functions",
    requires = ["bootstrap"]
);

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

/// The SQL expression of a mask over column expression `col` (already quoted), for a column of
/// type `type_name`. Masks: pan, pan6, email, phone, year, null, partial(p, s[, 'pad']).
pub(super) fn mask_expr(mask: &str, col: &str, type_name: &str) -> String {
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
