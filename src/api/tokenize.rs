//! Format-preserving encryption and card-number tokens (docs/tokenization.md): FF1 under a data
//! key of purpose 'fpe' (`encml_core::fpe`). Deterministic: equal inputs give equal outputs, so
//! tokens join and index, and the output shows the input's length and alphabet.

use crate::api::encrypt::key_arg;
use crate::keys::cache;
use crate::keys::grants::Privilege;
use crate::pg::errors::raise;
use encml_core::fpe::{Alphabet, FpeError, FpeKey};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode, Uuid};
use std::cell::RefCell;
use std::rc::Rc;
use zeroize::Zeroizing;

fn fpe_error(e: FpeError) -> ! {
    let code = match e {
        FpeError::NotInAlphabet(_) => PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
        FpeError::TooLong { .. } => PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        _ => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
    };
    raise(code, e.to_string())
}

thread_local! {
    /// The last alphabet used: a column is usually encrypted with one alphabet row after row.
    static LAST_ALPHABET: RefCell<Option<(String, Rc<Alphabet>)>> = const { RefCell::new(None) };
}

fn alphabet(text: &str) -> Rc<Alphabet> {
    LAST_ALPHABET.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((_, a)) = last.as_ref().filter(|(t, _)| t == text) {
            return a.clone();
        }
        let a = Rc::new(Alphabet::new(text).unwrap_or_else(|e| fpe_error(e)));
        *last = Some((text.to_string(), a.clone()));
        a
    })
}

/// The FF1 key of `key`'s current version, after the caller's checks for `privilege` (tenant,
/// grants, clearances to decrypt). Keys of purpose 'fpe' have one version: tokens carry none.
fn with_key<R>(
    key: Option<Uuid>,
    privilege: Privilege,
    fcinfo: pg_sys::FunctionCallInfo,
    f: impl FnOnce(&FpeKey) -> Result<R, FpeError>,
) -> R {
    // SAFETY: fcinfo is passed on unchanged by every caller, each a #[pg_extern]
    // function handing over its own, valid for the call (none is set-returning).
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    let id = key_arg(key);
    let version = cache::current(&id);
    let out = f(version.format_preserving(privilege)).unwrap_or_else(|e| fpe_error(e));
    if privilege == Privilege::Decrypt {
        crate::security::exfil::decrypted(&id);
    }
    out
}

fn required<'a>(value: Option<&'a str>, what: &str) -> &'a str {
    value.unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("{what} must not be NULL"),
        )
    })
}

/// FF1 (NIST SP 800-38G) of `value`, every character of which is in `alphabet`; the tweak
/// (NULL: none) must be the same to decrypt.
#[pg_extern(stable, parallel_safe)]
fn fpe_encrypt(
    value: Option<&str>,
    key: Option<Uuid>,
    alphabet: default!(Option<&str>, "'0123456789'"),
    tweak: default!(Option<&str>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<String> {
    let value = value?;
    let a = self::alphabet(required(alphabet, "alphabet"));
    let tweak = tweak.unwrap_or_default().as_bytes();
    Some(with_key(key, Privilege::Encrypt, fcinfo, |k| {
        k.encrypt(&a, value, tweak)
    }))
}

#[pg_extern(stable, parallel_safe)]
fn fpe_decrypt(
    value: Option<&str>,
    key: Option<Uuid>,
    alphabet: default!(Option<&str>, "'0123456789'"),
    tweak: default!(Option<&str>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<String> {
    let value = value?;
    let a = self::alphabet(required(alphabet, "alphabet"));
    let tweak = tweak.unwrap_or_default().as_bytes();
    Some(with_key(key, Privilege::Decrypt, fcinfo, |k| {
        k.decrypt(&a, value, tweak)
    }))
}

fn keep_first_arg(keep_first: i32) -> usize {
    usize::try_from(keep_first).unwrap_or_else(|_| {
        crate::pg::errors::raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "keep_first must be 0 or 6 (the digits PCI DSS allows to display), not {keep_first}"
            ),
        )
    })
}

/// `keep_first`, which must not be NULL.
fn keep_first_required(keep_first: Option<i32>) -> usize {
    keep_first_arg(keep_first.unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "keep_first must not be NULL",
        )
    }))
}

// Not STRICT: a NULL card number or token gives NULL, but a NULL key or keep_first is an
// error (STRICT turned `retokenize_pan(t, k, NULL)` into NULL and an UPDATE with it wiped
// every token; docs/tokenization.md).

/// A token for a card number: same length and separators, last four (and first `keep_first`,
/// 0 or 6) digits in clear, failing the Luhn check.
#[pg_extern(stable, parallel_safe)]
fn tokenize_pan(
    pan: Option<&str>,
    key: Option<Uuid>,
    keep_first: default!(Option<i32>, 0),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<String> {
    let keep = keep_first_required(keep_first);
    key_arg(key); // a NULL key is an error even for a NULL card number
    let pan = pan?;
    Some(with_key(key, Privilege::Encrypt, fcinfo, |k| {
        k.tokenize_pan(pan, keep)
    }))
}

#[pg_extern(stable, parallel_safe)]
fn detokenize_pan(
    token: Option<&str>,
    key: Option<Uuid>,
    keep_first: default!(Option<i32>, 0),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<String> {
    let keep = keep_first_required(keep_first);
    key_arg(key);
    let token = token?;
    Some(with_key(key, Privilege::Decrypt, fcinfo, |k| {
        k.detokenize_pan(token, keep)
    }))
}

/// The token of the same card number under `new_key` (rotation: tokens carry no key version).
#[pg_extern(stable, parallel_safe)]
fn retokenize_pan(
    token: Option<&str>,
    old_key: Option<Uuid>,
    new_key: Option<Uuid>,
    keep_first: default!(Option<i32>, 0),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<String> {
    let keep = keep_first_required(keep_first);
    key_arg(old_key);
    key_arg(new_key);
    let token = token?;
    let pan = Zeroizing::new(with_key(old_key, Privilege::Decrypt, fcinfo, |k| {
        k.detokenize_pan(token, keep)
    }));
    Some(with_key(new_key, Privilege::Encrypt, fcinfo, |k| {
        k.tokenize_pan(&pan, keep)
    }))
}
