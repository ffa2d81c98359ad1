//! Randomized field encryption: encrypt, decrypt, decrypt_text, reencrypt and header accessors.

use crate::keys::cache::{self, KeyVersion};
use crate::keys::grants::Privilege;
use crate::keys::nonce_budget;
use crate::pg::errors::{raise, raise_core};
use crate::pg::varlena::{ByteaBytes, OwnedText, OwnedVarlena, TextBytes};
use crate::types::enc_bytea::{EncBytea, EncByteaOut};
use encml_core::aead::{ciphertext_body, described_body_offset, Parts};
use encml_core::format::{described_overhead, Header, HEADER_LEN, NONCE_LEN, OVERHEAD};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode, Uuid};

pub(crate) fn key_arg(key: Option<Uuid>) -> [u8; 16] {
    match key {
        Some(k) => *k.as_bytes(),
        None => raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "key must not be NULL",
        ),
    }
}

/// Seals `plaintext` under the current version of `key_id`, allocating the result once.
fn seal(plaintext: &[u8], key_id: &[u8; 16], aad: Option<&[u8]>) -> EncByteaOut {
    seal_with(&cache::current(key_id), None, plaintext, aad)
}

/// Seals `plaintext` under `key`; with a descriptor, as a described value (algorithm 4) whose
/// descriptor travels in clear, authenticated.
pub(crate) fn seal_with(
    key: &KeyVersion,
    descriptor: Option<&[u8]>,
    plaintext: &[u8],
    aad: Option<&[u8]>,
) -> EncByteaOut {
    let cipher = key.aead(Privilege::Encrypt);
    let nonce = nonce_budget::nonce_for(&key.key_id, key.version);
    let aad = aad.unwrap_or(&[]);
    let out = match descriptor {
        None => {
            let mut out = OwnedVarlena::with_bytes_at(
                OVERHEAD.saturating_add(plaintext.len()),
                HEADER_LEN + NONCE_LEN,
                plaintext,
            );
            cipher.seal_in_place(&nonce, aad, out.payload_mut());
            out
        }
        Some(d) => {
            let mut out = OwnedVarlena::with_bytes_at(
                described_overhead(d.len()).saturating_add(plaintext.len()),
                described_body_offset(d.len()),
                plaintext,
            );
            cipher.seal_described_in_place(&nonce, d, aad, out.payload_mut());
            out
        }
    };
    EncByteaOut(out)
}

/// Decrypts the body of `value` in place into `out` (a copy of `ciphertext_body(value)` the
/// caller allocated in its final place), checking the key's tenant, and counts the decryption.
pub(crate) fn open_into(value: &[u8], aad: Option<&[u8]>, out: &mut [u8]) {
    let header = Header::decode(value).unwrap_or_else(|e| raise_core(e));
    let key = cache::version(&header.key_id, header.key_version);
    if let Err(e) = key
        .aead(Privilege::Decrypt)
        .open_in_place(value, aad.unwrap_or(&[]), out)
    {
        raise_core(e);
    }
    crate::security::exfil::decrypted(&header.key_id);
}

/// Opens `value` into a fresh varlena of the plaintext's length.
fn open(value: &EncBytea<'_>, aad: Option<&[u8]>) -> OwnedVarlena {
    let body = ciphertext_body(value.0).unwrap_or_else(|e| raise_core(e));
    let mut out = OwnedVarlena::with_bytes_at(body.len(), 0, body);
    open_into(value.0, aad, out.payload_mut());
    out
}

#[pg_extern(volatile, parallel_safe, name = "encrypt", requires = ["enc_bytea_type"])]
fn encrypt_bytea(
    data: Option<ByteaBytes<'_>>,
    key: Option<Uuid>,
    aad: default!(Option<TextBytes<'_>>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<EncByteaOut> {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    let data = data?;
    Some(seal(data.0, &key_arg(key), aad.map(|a| a.0)))
}

#[pg_extern(volatile, parallel_safe, name = "encrypt", requires = ["enc_bytea_type"])]
fn encrypt_text(
    data: Option<TextBytes<'_>>,
    key: Option<Uuid>,
    aad: default!(Option<TextBytes<'_>>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<EncByteaOut> {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    let data = data?;
    Some(seal(data.0, &key_arg(key), aad.map(|a| a.0)))
}

#[pg_extern(stable, parallel_safe, requires = ["enc_bytea_type"])]
fn decrypt(
    value: Option<EncBytea<'_>>,
    aad: default!(Option<TextBytes<'_>>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<OwnedVarlena> {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    Some(open(&value?, aad.map(|a| a.0)))
}

#[pg_extern(stable, parallel_safe, requires = ["enc_bytea_type"])]
fn decrypt_text(
    value: Option<EncBytea<'_>>,
    aad: default!(Option<TextBytes<'_>>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<OwnedText> {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    Some(OwnedText::verified(open(&value?, aad.map(|a| a.0))))
}

/// Moves a value to the current version of its key; a value already there is returned as is.
#[pg_extern(volatile, parallel_safe, requires = ["enc_bytea_type"])]
fn reencrypt(
    value: Option<EncBytea<'_>>,
    aad: default!(Option<TextBytes<'_>>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<EncByteaOut> {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    let value = value?;
    let aad = aad.map(|a| a.0);
    cache::reencrypting(|| {
        let header = value.header();
        let current = cache::current(&header.key_id);
        if current.version == header.key_version {
            return Some(EncByteaOut(OwnedVarlena::from_slice(value.0)));
        }
        let mut plain = open(&value, aad);
        // A described value (a tensor) keeps its descriptor.
        let parts = Parts::parse(value.0).unwrap_or_else(|e| raise_core(e));
        let out = seal_with(&current, parts.descriptor, plain.payload_mut(), aad);
        plain.payload_mut().fill(0);
        crate::pg::pause::point("reencrypt");
        Some(out)
    })
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["enc_bytea_type"])]
fn key_id(value: EncBytea<'_>) -> Uuid {
    Uuid::from_bytes(value.header().key_id)
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["enc_bytea_type"])]
fn key_version(value: EncBytea<'_>) -> i32 {
    value.header().key_version as i32
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
pub mod tests {
    use pgrx::prelude::*;

    fn new_key(name: &str) -> String {
        Spi::get_one::<pgrx::Uuid>(&format!("SELECT encml.create_key('{name}')"))
            .unwrap()
            .unwrap()
            .to_string()
    }

    #[pg_test]
    fn round_trip_sizes() {
        let k = new_key("pgtest-sizes");
        for n in [0, 1, 64, 1 << 20] {
            let same = Spi::get_one::<bool>(&format!(
                "WITH p AS (SELECT decode(repeat('ab', {n}), 'hex') AS v) \
                 SELECT encml.decrypt(encml.encrypt(v, '{k}')) = v FROM p"
            ));
            assert_eq!(same, Ok(Some(true)), "size {n}");
        }
    }

    #[pg_test]
    fn ciphertexts_are_randomized_and_carry_the_key() {
        let k = new_key("pgtest-random");
        let distinct = Spi::get_one::<i64>(&format!(
            "SELECT count(DISTINCT encml.encrypt('same', '{k}')::bytea) FROM generate_series(1, 1000)"
        ));
        assert_eq!(distinct, Ok(Some(1000)));
        let id =
            Spi::get_one::<pgrx::Uuid>(&format!("SELECT encml.key_id(encml.encrypt('x', '{k}'))"));
        assert_eq!(id.unwrap().unwrap().to_string(), k);
    }

    #[pg_test(
        error = "decryption failed: the ciphertext was altered or truncated, or the AAD does not match"
    )]
    fn wrong_aad_is_refused() {
        let k = new_key("pgtest-aad");
        Spi::run(&format!(
            "SELECT encml.decrypt(encml.encrypt('x', '{k}', 'row 1'), 'row 2')"
        ))
        .unwrap();
    }

    #[pg_test(error = "key 00000000-0000-0000-0000-000000000001 does not exist")]
    fn unknown_key_is_refused() {
        Spi::run("SELECT encml.encrypt('x'::text, '00000000-0000-0000-0000-000000000001')")
            .unwrap();
    }

    #[pg_test]
    fn null_data_gives_null_and_aad_may_be_omitted() {
        let k = new_key("pgtest-null");
        assert_eq!(
            Spi::get_one::<bool>(&format!("SELECT encml.encrypt(NULL::text, '{k}') IS NULL")),
            Ok(Some(true))
        );
        assert_eq!(
            Spi::get_one::<String>(&format!(
                "SELECT encml.decrypt_text(encml.encrypt('hi', '{k}'))"
            )),
            Ok(Some("hi".to_string()))
        );
    }
}
