//! Field-level encryption inside jsonb documents: encrypt_jsonb, decrypt_jsonb,
//! jsonb_is_encrypted. Paths, wildcards, the ciphertext string and the path AAD are defined in
//! `encml_core::json_fields` and docs/formats.md.

use crate::api::encrypt::key_arg;
use crate::keys::cache::{self, KeyVersion};
use crate::keys::grants::Privilege;
use crate::keys::nonce_budget;
use crate::pg::errors::{raise, raise_core, raise_full};
use crate::types::jsonb::JsonbDoc;
use encml_core::format::Header;
use encml_core::json_fields::{self as jf, Elem};
use pgrx::datum::FromDatum;
use pgrx::prelude::*;
use pgrx::{pg_sys, JsonB, PgSqlErrorCode, Uuid};
use serde_json::Value;
use std::rc::Rc;
use zeroize::Zeroizing;

/// Parses one path argument: a text[] literal such as '{layers,*,bias}', or a bare top-level
/// key such as 'weights'.
fn parse_path(path: &str) -> Vec<String> {
    if !path.starts_with('{') {
        return vec![path.to_string()];
    }
    let Ok(cstr) = std::ffi::CString::new(path) else {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
            "a path must not contain NUL",
        )
    };
    // Postgres's own text[] input (quoting, escapes), as the #> operator's argument is parsed.
    // SAFETY: `cstr` is NUL-terminated and outlives the call; array_in only reads it (it
    // dequotes a pstrdup'd copy, so the `*mut` cast is never written through) and raises on bad
    // syntax, which the guarded binding turns into a panic. Its result is a non-NULL text[]
    // palloc'd in the current memory context, read (and copied into Strings) at once.
    let elems = unsafe {
        let datum = pg_sys::OidInputFunctionCall(
            pg_sys::Oid::from(pg_sys::F_ARRAY_IN),
            cstr.as_ptr() as *mut _,
            pg_sys::TEXTOID,
            -1,
        );
        Vec::<Option<String>>::from_datum(datum, false).unwrap_or_default()
    };
    elems
        .into_iter()
        .map(|e| {
            e.unwrap_or_else(|| {
                raise(
                    PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                    format!("path {path} contains a NULL element"),
                )
            })
        })
        .collect()
}

fn parse_paths(paths: Vec<Option<String>>) -> Vec<Vec<String>> {
    paths
        .into_iter()
        .map(|p| match p {
            Some(p) => {
                let path = parse_path(&p);
                if path.is_empty() {
                    raise_full(
                        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                        "the empty path would encrypt the whole document",
                        None,
                        Some("Use encml.encrypt(doc::text, key) for that.".into()),
                    );
                }
                path
            }
            None => raise(
                PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                "paths must not contain NULL",
            ),
        })
        .collect()
}

#[pg_extern(volatile, parallel_safe)]
fn encrypt_jsonb(
    doc: Option<JsonbDoc>,
    key: Option<Uuid>,
    paths: Option<Vec<Option<String>>>,
    aad: default!(Option<&str>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<JsonB> {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    let mut doc = doc?.0;
    let key = cache::current(&key_arg(key));
    let Some(paths) = paths else {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "paths must not be NULL",
        )
    };
    let row_aad = aad.unwrap_or("").as_bytes();
    let cipher = key.aead(Privilege::Encrypt);
    for pattern in parse_paths(paths) {
        pgrx::check_for_interrupts!();
        jf::visit_matches::<()>(
            &mut doc,
            &pattern,
            &mut |path: &[Elem], value: &mut Value| {
                // A wildcard over a large document visits millions of values.
                pgrx::check_for_interrupts!();
                // Already encrypted (by an earlier call or an overlapping path): left as is.
                if jf::is_ciphertext(value) {
                    return Ok(());
                }
                let plaintext =
                    Zeroizing::new(serde_json::to_vec(value).expect("JSON values serialize"));
                let nonce = nonce_budget::nonce_for(&key.key_id, key.version);
                let sealed = cipher.seal(&nonce, &plaintext, &jf::path_aad(path, row_aad));
                *value = Value::String(jf::encode_ciphertext(&sealed));
                Ok(())
            },
        )
        .ok();
    }
    Some(JsonB(doc))
}

/// Opens the ciphertext string `s` found at `path`: its key version and plaintext (JSON text),
/// or `None` when it stays encrypted (its key was destroyed or the version retired, or the
/// caller may not use the key). A damaged or moved value is an ERROR naming the path.
fn open_at(path: &[Elem], s: &str, row_aad: &[u8]) -> Option<(Rc<KeyVersion>, Zeroizing<Vec<u8>>)> {
    let where_ = jf::display_path(path);
    let bytes = match jf::decode_ciphertext(s) {
        Some(Ok(b)) => b,
        _ => raise(
            PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
            format!("the encrypted value at {where_} is not valid base64"),
        ),
    };
    let header = Header::decode(&bytes).unwrap_or_else(|e| {
        raise(
            crate::pg::errors::sqlstate(&e),
            format!("the encrypted value at {where_}: {e}"),
        )
    });
    let key = match cache::try_version(&header.key_id, header.key_version) {
        Ok(k) => k,
        // Crypto-shredded or retired: the value stays a ciphertext string.
        Err(e) if e.is_erased() => return None,
        Err(e) => e.raise(),
    };
    // A key the caller may not use (another tenant's) leaves the value encrypted.
    if !key.usable(Privilege::Decrypt) {
        return None;
    }
    let plain = match key.aead(Privilege::Decrypt).open(&bytes, &jf::path_aad(path, row_aad)) {
        Ok(p) => Zeroizing::new(p),
        Err(encml_core::Error::AuthenticationFailed) => raise_full(
            PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
            format!("decryption of the value at {where_} failed: it was altered, moved from another field, or the AAD does not match"),
            None,
            Some("Encrypted jsonb values are bound to their path and to the aad given to encrypt_jsonb.".into()),
        ),
        Err(e) => raise_core(e),
    };
    crate::security::exfil::decrypted(&header.key_id);
    Some((key, plain))
}

#[pg_extern(stable, parallel_safe)]
fn decrypt_jsonb(
    doc: Option<JsonbDoc>,
    aad: default!(Option<&str>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<JsonB> {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    let mut doc = doc?.0;
    let row_aad = aad.unwrap_or("").as_bytes();
    jf::visit_ciphertexts::<()>(&mut doc, &mut |path: &[Elem], value: &mut Value| {
        pgrx::check_for_interrupts!();
        let Value::String(s) = value else {
            return Ok(());
        };
        let Some((_, plain)) = open_at(path, s, row_aad) else {
            return Ok(());
        };
        *value = serde_json::from_slice(&plain).unwrap_or_else(|_| {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_JSON_TEXT,
                format!(
                    "the decrypted value at {} is not JSON",
                    jf::display_path(path)
                ),
            )
        });
        Ok(())
    })
    .ok();
    Some(JsonB(doc))
}

/// Moves every encrypted value of a document to the current version of its key (values already
/// there, and values left encrypted by `decrypt_jsonb`'s rules, are unchanged), for rotation.
#[pg_extern(volatile, parallel_safe)]
fn reencrypt_jsonb(
    doc: Option<JsonbDoc>,
    aad: default!(Option<&str>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<JsonB> {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    let mut doc = doc?.0;
    let row_aad = aad.unwrap_or("").as_bytes();
    cache::reencrypting(|| move_fields(&mut doc, row_aad));
    Some(JsonB(doc))
}

/// The fields of `doc` under older versions of their keys, moved to the current versions.
fn move_fields(doc: &mut Value, row_aad: &[u8]) {
    jf::visit_ciphertexts::<()>(doc, &mut |path: &[Elem], value: &mut Value| {
        pgrx::check_for_interrupts!();
        let Value::String(s) = value else {
            return Ok(());
        };
        let Some(Ok(bytes)) = jf::decode_ciphertext(s) else {
            return Ok(()); // open_at below would raise; only well-formed values are moved
        };
        let Ok(header) = Header::decode(&bytes) else {
            return Ok(());
        };
        if cache::try_version(&header.key_id, header.key_version).is_err() {
            return Ok(());
        }
        let current = cache::current(&header.key_id);
        if current.version == header.key_version {
            return Ok(());
        }
        let Some((_, plain)) = open_at(path, s, row_aad) else {
            return Ok(());
        };
        let nonce = nonce_budget::nonce_for(&current.key_id, current.version);
        let sealed =
            current
                .aead(Privilege::Encrypt)
                .seal(&nonce, &plain, &jf::path_aad(path, row_aad));
        *value = Value::String(jf::encode_ciphertext(&sealed));
        Ok(())
    })
    .ok();
}

/// Whether every value at the paths is encrypted (true when a path matches nothing), for CHECK
/// constraints that keep fields from ever being stored in clear.
#[pg_extern(immutable, strict, parallel_safe)]
fn jsonb_is_encrypted(doc: JsonbDoc, paths: Vec<Option<String>>) -> bool {
    let mut doc = doc.0;
    let mut all = true;
    for pattern in parse_paths(paths) {
        pgrx::check_for_interrupts!();
        jf::visit_matches::<()>(&mut doc, &pattern, &mut |_, value: &mut Value| {
            // Many wildcard paths over a large document: the walk repeats per path (attacker
            // round 1 of issue 27: 1,000 paths ran 39 s past a 2 s timeout).
            pgrx::check_for_interrupts!();
            all &= jf::is_ciphertext(value);
            Ok(())
        })
        .ok();
    }
    all
}
