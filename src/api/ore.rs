//! Order-revealing encryption: ore_encrypt / ore_decrypt / ore_reencrypt for bigint, float8 and
//! timestamptz. The types and their comparison functions are in `types::ore`.

use crate::api::encrypt::key_arg;
use crate::keys::cache;
use crate::keys::grants::Privilege;
use crate::pg::errors::raise_core;
use crate::pg::varlena::OwnedVarlena;
use crate::types::ore::float8::{OreFloat8, OreFloat8Out};
use crate::types::ore::int8::{OreInt8, OreInt8Out};
use crate::types::ore::timestamptz::{OreTimestamptz, OreTimestamptzOut};
use encml_core::format::Header;
use encml_core::ore::{decode_f64, decode_i64, encode_f64, encode_i64, Domain};
use pgrx::prelude::*;
use pgrx::{pg_sys, Uuid};

fn seal(
    domain: Domain,
    m: u64,
    key: Option<Uuid>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> OwnedVarlena {
    // SAFETY: fcinfo is passed on unchanged by every caller, each a #[pg_extern]
    // function handing over its own, valid for the call (none is set-returning).
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    let key = cache::current(&key_arg(key));
    OwnedVarlena::from_slice(&key.order_revealing(Privilege::Encrypt).encrypt(domain, m))
}

fn open(domain: Domain, value: &[u8], header: Header, fcinfo: pg_sys::FunctionCallInfo) -> u64 {
    // SAFETY: fcinfo is passed on unchanged by every caller, each a #[pg_extern]
    // function handing over its own, valid for the call (none is set-returning).
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    let key = cache::version(&header.key_id, header.key_version);
    let m = key
        .order_revealing(Privilege::Decrypt)
        .decrypt(domain, value)
        .unwrap_or_else(|e| raise_core(e));
    crate::security::exfil::decrypted(&header.key_id);
    m
}

/// The value under the current version of its key (unchanged if already there).
fn reseal(
    domain: Domain,
    value: &[u8],
    header: Header,
    fcinfo: pg_sys::FunctionCallInfo,
) -> OwnedVarlena {
    // SAFETY: fcinfo is passed on unchanged by every caller, each a #[pg_extern]
    // function handing over its own, valid for the call (none is set-returning).
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    cache::reencrypting(|| {
        let current = cache::current(&header.key_id);
        if current.version == header.key_version {
            return OwnedVarlena::from_slice(value);
        }
        let m = open(domain, value, header, fcinfo);
        OwnedVarlena::from_slice(
            &current
                .order_revealing(Privilege::Encrypt)
                .encrypt(domain, m),
        )
    })
}

#[pg_extern(stable, parallel_safe, name = "ore_encrypt", requires = ["ore_types"])]
fn ore_encrypt_int8(
    value: Option<i64>,
    key: Option<Uuid>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<OreInt8Out> {
    Some(OreInt8Out(seal(
        Domain::Int8,
        encode_i64(value?),
        key,
        fcinfo,
    )))
}

#[pg_extern(stable, parallel_safe, name = "ore_encrypt", requires = ["ore_types"])]
fn ore_encrypt_float8(
    value: Option<f64>,
    key: Option<Uuid>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<OreFloat8Out> {
    Some(OreFloat8Out(seal(
        Domain::Float8,
        encode_f64(value?),
        key,
        fcinfo,
    )))
}

#[pg_extern(stable, parallel_safe, name = "ore_encrypt", requires = ["ore_types"])]
fn ore_encrypt_timestamptz(
    value: Option<TimestampWithTimeZone>,
    key: Option<Uuid>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<OreTimestamptzOut> {
    let micros: pg_sys::TimestampTz = value?.into();
    Some(OreTimestamptzOut(seal(
        Domain::Timestamptz,
        encode_i64(micros),
        key,
        fcinfo,
    )))
}

/// Encrypts under one given version of the key, for range searches over a column whose values
/// are under several versions while a re-encryption job runs: one range per version, joined
/// laterally (docs/searchable.md). Versions reported compromised are refused.
fn seal_at(
    domain: Domain,
    m: u64,
    key: Option<Uuid>,
    version: Option<i32>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> OwnedVarlena {
    // SAFETY: fcinfo is passed on unchanged by every caller, each a #[pg_extern]
    // function handing over its own, valid for the call (none is set-returning).
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    let id = key_arg(key);
    let version = crate::pg::errors::not_null(version, "version");
    // The current version first: unknown, destroyed and wrong-purpose keys raise their usual
    // errors, and the caller's right to encrypt with the key is checked.
    let current = cache::current(&id);
    current.order_revealing(Privilege::Encrypt);
    if version < 1 || !crate::keys::catalog::searchable_versions(&id).contains(&(version as u32)) {
        crate::pg::errors::raise_full(
            pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "version {version} of key {} cannot encrypt",
                crate::keys::catalog::uuid_string(&id)
            ),
            Some("Only active versions that were not reported compromised encrypt.".into()),
            None,
        );
    }
    let key = cache::version(&id, version as u32);
    OwnedVarlena::from_slice(&key.order_revealing(Privilege::Encrypt).encrypt(domain, m))
}

#[pg_extern(stable, parallel_safe, name = "ore_encrypt", requires = ["ore_types"])]
fn ore_encrypt_int8_at(
    value: Option<i64>,
    key: Option<Uuid>,
    version: Option<i32>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<OreInt8Out> {
    Some(OreInt8Out(seal_at(
        Domain::Int8,
        encode_i64(value?),
        key,
        version,
        fcinfo,
    )))
}

#[pg_extern(stable, parallel_safe, name = "ore_encrypt", requires = ["ore_types"])]
fn ore_encrypt_float8_at(
    value: Option<f64>,
    key: Option<Uuid>,
    version: Option<i32>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<OreFloat8Out> {
    Some(OreFloat8Out(seal_at(
        Domain::Float8,
        encode_f64(value?),
        key,
        version,
        fcinfo,
    )))
}

#[pg_extern(stable, parallel_safe, name = "ore_encrypt", requires = ["ore_types"])]
fn ore_encrypt_timestamptz_at(
    value: Option<TimestampWithTimeZone>,
    key: Option<Uuid>,
    version: Option<i32>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<OreTimestamptzOut> {
    let micros: pg_sys::TimestampTz = value?.into();
    Some(OreTimestamptzOut(seal_at(
        Domain::Timestamptz,
        encode_i64(micros),
        key,
        version,
        fcinfo,
    )))
}

#[pg_extern(stable, strict, parallel_safe, name = "ore_decrypt", requires = ["ore_types"])]
fn ore_decrypt_int8(value: OreInt8<'_>, fcinfo: pg_sys::FunctionCallInfo) -> i64 {
    decode_i64(open(Domain::Int8, value.0, value.checked_header(), fcinfo))
}

#[pg_extern(stable, strict, parallel_safe, name = "ore_decrypt", requires = ["ore_types"])]
fn ore_decrypt_float8(value: OreFloat8<'_>, fcinfo: pg_sys::FunctionCallInfo) -> f64 {
    decode_f64(open(
        Domain::Float8,
        value.0,
        value.checked_header(),
        fcinfo,
    ))
}

#[pg_extern(stable, strict, parallel_safe, name = "ore_decrypt", requires = ["ore_types"])]
fn ore_decrypt_timestamptz(
    value: OreTimestamptz<'_>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> TimestampWithTimeZone {
    let micros = decode_i64(open(
        Domain::Timestamptz,
        value.0,
        value.checked_header(),
        fcinfo,
    ));
    TimestampWithTimeZone::try_from(micros)
        .unwrap_or_else(|_| raise_core(encml_core::Error::AuthenticationFailed))
}

#[pg_extern(stable, strict, parallel_safe, name = "ore_reencrypt", requires = ["ore_types"])]
fn ore_reencrypt_int8(value: OreInt8<'_>, fcinfo: pg_sys::FunctionCallInfo) -> OreInt8Out {
    OreInt8Out(reseal(
        Domain::Int8,
        value.0,
        value.checked_header(),
        fcinfo,
    ))
}

#[pg_extern(stable, strict, parallel_safe, name = "ore_reencrypt", requires = ["ore_types"])]
fn ore_reencrypt_float8(value: OreFloat8<'_>, fcinfo: pg_sys::FunctionCallInfo) -> OreFloat8Out {
    OreFloat8Out(reseal(
        Domain::Float8,
        value.0,
        value.checked_header(),
        fcinfo,
    ))
}

#[pg_extern(stable, strict, parallel_safe, name = "ore_reencrypt", requires = ["ore_types"])]
fn ore_reencrypt_timestamptz(
    value: OreTimestamptz<'_>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> OreTimestamptzOut {
    OreTimestamptzOut(reseal(
        Domain::Timestamptz,
        value.0,
        value.checked_header(),
        fcinfo,
    ))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
pub mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn ore_order_and_round_trip() {
        let k = Spi::get_one::<pgrx::Uuid>("SELECT encml.create_key('pgtest-ore', 'ore')")
            .unwrap()
            .unwrap();
        let sorted = Spi::get_one::<bool>(&format!(
            "SELECT array_agg(x ORDER BY c) = array_agg(x ORDER BY x) \
               FROM (SELECT x, encml.ore_encrypt(x, '{k}') c \
                       FROM unnest(ARRAY[-5, 3, 0, -9223372036854775808, 9223372036854775807, 42]::bigint[]) x) s"
        ));
        assert_eq!(sorted, Ok(Some(true)));
        assert_eq!(
            Spi::get_one::<i64>(&format!(
                "SELECT encml.ore_decrypt(encml.ore_encrypt(-77::bigint, '{k}'))"
            )),
            Ok(Some(-77))
        );
    }
}
