//! `ore_int8`, `ore_float8`, `ore_timestamptz`: order-revealing ciphertexts (CLWW, see
//! `encml_core::ore` and docs/searchable.md). The three types share one layout (a domain byte
//! says which); only input checks differ. Their comparison functions, written once here, are
//! bound to each type in sql/schema/ore.sql; ore_encrypt and ore_decrypt are in `api::ore`. I/O
//! conventions: `types::ciphertext`.

use crate::keys::cache::{self, Cipher};
use crate::pg::errors::{raise, raise_full};
use crate::pg::varlena::OwnedVarlena;
use encml_core::format::Header;
use encml_core::ore::{self, check, Domain};
use int8::{OreInt8, OreInt8Out};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode, Uuid};
use std::cmp::Ordering;
use std::ffi::CStr;

/// A checked copy of `bytes` as an ORE value of `domain`, or an ERROR with `code`: its structure,
/// then (unless a superuser turned `encml.verify_ore_input` off to restore a dump) its MAC under
/// the key version its header names. Values without a valid MAC could make the comparison
/// non-transitive and corrupt btree indexes (`encml_core::ore::OreKey::verify`).
pub fn validated(bytes: &[u8], domain: Domain, code: PgSqlErrorCode) -> OwnedVarlena {
    let header = check(bytes, domain).unwrap_or_else(|e| {
        raise(
            code,
            format!("invalid input for type {}: {e}", domain.name()),
        )
    });
    if crate::pg::gucs::VERIFY_ORE_INPUT.get() {
        verify_authentic(bytes, domain, &header, code);
    }
    OwnedVarlena::from_slice(bytes)
}

/// Verifies the MAC with the key looked up as the extension, whatever the caller's grants,
/// clearances or tenant: the check only says whether the key made the value, which anyone
/// who can read the value could ask of any comparison anyway.
fn verify_authentic(bytes: &[u8], domain: Domain, header: &Header, code: PgSqlErrorCode) {
    let id = crate::keys::catalog::uuid_string(&header.key_id);
    let key = match cache::try_version(&header.key_id, header.key_version) {
        Ok(key) => key,
        // A restore loads tables in schema order, so a table in a schema named before the
        // extension's arrives while the key catalog is still empty: its values cannot be checked
        // yet. Nothing can be forged under a key that exists, and once any key exists, values
        // under unknown keys are refused.
        Err(e)
            if e.code == PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT
                && crate::keys::catalog::is_empty() =>
        {
            return;
        }
        Err(e) => raise_full(
            e.code,
            format!(
                "{} value under version {} of key {id} cannot be verified: {}",
                domain.name(),
                header.key_version,
                e.message
            ),
            e.detail,
            Some(
                "Restore the extension's key catalog before tables with ORE columns, or restore \
                 as a superuser with encml.verify_ore_input = off (docs/searchable.md)."
                    .into(),
            ),
        ),
    };
    let authentic = match &key.cipher {
        Cipher::OrderRevealing(k) => k.verify(domain, bytes).is_ok(),
        _ => false,
    };
    if !authentic {
        crate::events::refused(
            "ore_input_forged",
            serde_json::json!({
                "type": domain.name(),
                "key": id,
                "key_version": header.key_version,
            }),
        );
        raise_full(
            code,
            format!(
                "invalid input for type {}: not made by version {} of key {id}",
                domain.name(),
                header.key_version
            ),
            Some("Its MAC does not verify, or the key is not an ORE key.".into()),
            None,
        );
    }
}

/// Declares one ORE type: its argument/result types and its input functions.
macro_rules! ore_type {
    ($module:ident, $arg:ident, $out:ident, $sql:literal, $domain:expr, $shell_sql:literal, $shell_name:literal,
     $in_fn:ident, $recv_fn:ident, $from_bytea_fn:ident) => {
        pub mod $module {
            use crate::types::ciphertext::ciphertext_type;
            use encml_core::format::Kind;
            use pgrx::prelude::*;
            use pgrx::PgSqlErrorCode;

            ciphertext_type!($arg, $out, $sql, Kind::OrderRevealing);

            impl $arg<'_> {
                /// The header, after checking the value is of this type's domain.
                pub fn checked_header(&self) -> encml_core::format::Header {
                    encml_core::ore::check(self.0, $domain)
                        .unwrap_or_else(|e| crate::pg::errors::raise_core(e))
                }
            }

            extension_sql!($shell_sql, name = $shell_name, creates = [Type($arg)],);

            #[pg_extern(stable, strict, parallel_safe)]
            fn $in_fn(input: &core::ffi::CStr) -> $out {
                let bytes = crate::types::ciphertext::text_in_bytes(input, $sql);
                $out(super::validated(
                    &bytes,
                    $domain,
                    PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
                ))
            }

            #[pg_extern(stable, strict, parallel_safe)]
            fn $recv_fn(buf: pgrx::Internal) -> $out {
                let bytes = crate::types::ciphertext::recv_bytes(buf);
                $out(super::validated(
                    &bytes,
                    $domain,
                    PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
                ))
            }

            #[pg_extern(stable, strict, parallel_safe)]
            fn $from_bytea_fn(value: crate::pg::varlena::ByteaBytes<'_>) -> $out {
                $out(super::validated(
                    value.0,
                    $domain,
                    PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
                ))
            }
        }
    };
}

ore_type!(
    int8,
    OreInt8,
    OreInt8Out,
    "ore_int8",
    encml_core::ore::Domain::Int8,
    "CREATE TYPE ore_int8;",
    "ore_int8_shell",
    ore_int8_in,
    ore_int8_recv,
    ore_int8_from_bytea
);
ore_type!(
    float8,
    OreFloat8,
    OreFloat8Out,
    "ore_float8",
    encml_core::ore::Domain::Float8,
    "CREATE TYPE ore_float8;",
    "ore_float8_shell",
    ore_float8_in,
    ore_float8_recv,
    ore_float8_from_bytea
);
ore_type!(
    timestamptz,
    OreTimestamptz,
    OreTimestamptzOut,
    "ore_timestamptz",
    encml_core::ore::Domain::Timestamptz,
    "CREATE TYPE ore_timestamptz;",
    "ore_timestamptz_shell",
    ore_timestamptz_in,
    ore_timestamptz_recv,
    ore_timestamptz_from_bytea
);

// ---- Written once, bound to ore_float8 and ore_timestamptz by C symbol in sql/schema/ore.sql ----

#[pg_extern(immutable, strict, parallel_safe)]
fn ore_int8_out(value: OreInt8<'_>) -> &'static CStr {
    crate::types::ciphertext::text_out(value.0)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn ore_int8_send(value: OreInt8<'_>) -> OwnedVarlena {
    OwnedVarlena::from_slice(value.0)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn ore_int8_cmp(a: OreInt8<'_>, b: OreInt8<'_>) -> i32 {
    ore::compare(a.0, b.0) as i32
}

#[pg_extern(immutable, strict, parallel_safe)]
fn ore_int8_lt(a: OreInt8<'_>, b: OreInt8<'_>) -> bool {
    ore::compare(a.0, b.0) == Ordering::Less
}

#[pg_extern(immutable, strict, parallel_safe)]
fn ore_int8_le(a: OreInt8<'_>, b: OreInt8<'_>) -> bool {
    ore::compare(a.0, b.0) != Ordering::Greater
}

#[pg_extern(immutable, strict, parallel_safe)]
fn ore_int8_eq(a: OreInt8<'_>, b: OreInt8<'_>) -> bool {
    ore::compare(a.0, b.0) == Ordering::Equal
}

#[pg_extern(immutable, strict, parallel_safe)]
fn ore_int8_ne(a: OreInt8<'_>, b: OreInt8<'_>) -> bool {
    ore::compare(a.0, b.0) != Ordering::Equal
}

#[pg_extern(immutable, strict, parallel_safe)]
fn ore_int8_ge(a: OreInt8<'_>, b: OreInt8<'_>) -> bool {
    ore::compare(a.0, b.0) != Ordering::Less
}

#[pg_extern(immutable, strict, parallel_safe)]
fn ore_int8_gt(a: OreInt8<'_>, b: OreInt8<'_>) -> bool {
    ore::compare(a.0, b.0) == Ordering::Greater
}

#[pg_extern(immutable, strict, parallel_safe)]
fn ore_int8_smaller(a: OreInt8<'_>, b: OreInt8<'_>) -> OreInt8Out {
    let smaller = if ore::compare(a.0, b.0) == Ordering::Greater {
        b.0
    } else {
        a.0
    };
    OreInt8Out(OwnedVarlena::from_slice(smaller))
}

#[pg_extern(immutable, strict, parallel_safe)]
fn ore_int8_larger(a: OreInt8<'_>, b: OreInt8<'_>) -> OreInt8Out {
    let larger = if ore::compare(a.0, b.0) == Ordering::Less {
        b.0
    } else {
        a.0
    };
    OreInt8Out(OwnedVarlena::from_slice(larger))
}

#[pg_extern(immutable, strict, parallel_safe, name = "key_id")]
fn ore_int8_key_id(value: OreInt8<'_>) -> Uuid {
    Uuid::from_bytes(value.header().key_id)
}

#[pg_extern(immutable, strict, parallel_safe, name = "key_version")]
fn ore_int8_key_version(value: OreInt8<'_>) -> i32 {
    value.header().key_version as i32
}

/// The bytes of an ORE datum as stored: the types use STORAGE plain, so a datum is never
/// compressed or out of line, only short (1-byte header) or plain (4-byte header).
unsafe fn stored_bytes<'a>(datum: pg_sys::Datum) -> &'a [u8] {
    // SAFETY: the caller passes a non-null datum of an ORE type, live for 'a (the comparison).
    // It has a 1- or 4-byte header (see above), which varsize_any_exhdr and vardata_any both
    // read; the slice is the payload inside the datum.
    unsafe {
        let ptr = datum.cast_mut_ptr::<pg_sys::varlena>();
        let len = pgrx::varsize_any_exhdr(ptr);
        std::slice::from_raw_parts(pgrx::vardata_any(ptr) as *const u8, len)
    }
}

/// Sort comparator: compares datums directly, without a function-manager call per comparison
/// (what index builds and ORDER BY sorts spend their time on). Pure Rust, no Postgres calls.
unsafe extern "C-unwind" fn ore_fast_compare(
    a: pg_sys::Datum,
    b: pg_sys::Datum,
    _: pg_sys::SortSupport,
) -> i32 {
    // SAFETY: Postgres's sort calls this comparator, installed by ore_int8_sortsupport for the
    // ORE types' btree opclasses only, with two non-null datums of the sorted ORE type, live
    // during the call. ore::compare calls no Postgres function and does not panic (out-of-shape
    // values compare by bytes), so nothing needs a guard here.
    unsafe { ore::compare(stored_bytes(a), stored_bytes(b)) as i32 }
}

#[pg_extern(immutable, strict, parallel_safe)]
fn ore_int8_sortsupport(ssup: pgrx::Internal) {
    let ssup = ssup
        .unwrap()
        .expect("sort support state")
        .cast_mut_ptr::<pg_sys::SortSupportData>();
    // SAFETY: this is a btree sort support function (strict; SQL code cannot make an internal
    // value): its argument is the SortSupportData Postgres is filling in for this sort, valid
    // for the call; only its comparator field is set, to a function of this library that stays
    // loaded.
    unsafe { (*ssup).comparator = Some(ore_fast_compare) };
}

pgrx::extension_sql_file!(
    "../../sql/schema/ore.sql",
    name = "ore_types",
    requires = [
        "ore_int8_shell",
        "ore_float8_shell",
        "ore_timestamptz_shell",
        int8::ore_int8_in,
        int8::ore_int8_recv,
        int8::ore_int8_from_bytea,
        float8::ore_float8_in,
        float8::ore_float8_recv,
        float8::ore_float8_from_bytea,
        timestamptz::ore_timestamptz_in,
        timestamptz::ore_timestamptz_recv,
        timestamptz::ore_timestamptz_from_bytea,
        ore_int8_out,
        ore_int8_send,
        ore_int8_cmp,
        ore_int8_lt,
        ore_int8_le,
        ore_int8_eq,
        ore_int8_ne,
        ore_int8_ge,
        ore_int8_gt,
        ore_int8_smaller,
        ore_int8_larger,
        ore_int8_key_id,
        ore_int8_key_version,
        ore_int8_sortsupport
    ],
);
