//! Searchable encryption, equality part: det_text (AES-SIV).

use crate::api::encrypt::key_arg;
use crate::keys::grants::Privilege;
use crate::keys::{cache, catalog};
use crate::pg::errors::raise_core;
use crate::pg::varlena::{ByteaBytes, OwnedText, OwnedVarlena, TextBytes};
use crate::types::det_text::{DetText, DetTextOut};
use encml_core::siv::{DetKey, DET_OVERHEAD};
use pgrx::callconv::{BoxRet, FcInfo};
use pgrx::datum::Datum;
use pgrx::prelude::*;
use pgrx::{pg_sys, Uuid};

fn det_seal(key: &DetKey, plaintext: &[u8]) -> DetTextOut {
    let mut out = OwnedVarlena::with_bytes_at(
        DET_OVERHEAD.saturating_add(plaintext.len()),
        DET_OVERHEAD,
        plaintext,
    );
    key.seal_in_place(out.payload_mut());
    DetTextOut(out)
}

fn det_open(value: &DetText<'_>) -> OwnedVarlena {
    let header = value.header();
    let key = cache::version(&header.key_id, header.key_version);
    let mut out =
        OwnedVarlena::with_bytes_at(value.0.len() - DET_OVERHEAD, 0, &value.0[DET_OVERHEAD..]);
    if let Err(e) = key
        .deterministic(Privilege::Decrypt)
        .open_in_place(value.0, out.payload_mut())
    {
        raise_core(e);
    }
    crate::security::exfil::decrypted(&header.key_id);
    out
}

/// Both det_encrypt variants: the value's bytes under the key's current version.
fn det_encrypt_bytes(
    value: &[u8],
    key: Option<Uuid>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> DetTextOut {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    det_seal(
        cache::current(&key_arg(key)).deterministic(Privilege::Encrypt),
        value,
    )
}

#[pg_extern(stable, parallel_safe, name = "det_encrypt", requires = ["det_text_type"])]
fn det_encrypt_text(
    value: Option<TextBytes<'_>>,
    key: Option<Uuid>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<DetTextOut> {
    Some(det_encrypt_bytes(value?.0, key, fcinfo))
}

#[pg_extern(stable, parallel_safe, name = "det_encrypt", requires = ["det_text_type"])]
fn det_encrypt_bytea(
    value: Option<ByteaBytes<'_>>,
    key: Option<Uuid>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<DetTextOut> {
    Some(det_encrypt_bytes(value?.0, key, fcinfo))
}

#[pg_extern(stable, strict, parallel_safe, requires = ["det_text_type"])]
fn det_decrypt(value: DetText<'_>, fcinfo: pg_sys::FunctionCallInfo) -> OwnedText {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    OwnedText::verified(det_open(&value))
}

#[pg_extern(stable, strict, parallel_safe, requires = ["det_text_type"])]
fn det_decrypt_bytea(value: DetText<'_>, fcinfo: pg_sys::FunctionCallInfo) -> OwnedVarlena {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    det_open(&value)
}

/// Moves a value to the current version of its key; a value already there is returned as is.
#[pg_extern(stable, strict, parallel_safe, requires = ["det_text_type"])]
fn det_reencrypt(value: DetText<'_>, fcinfo: pg_sys::FunctionCallInfo) -> DetTextOut {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    cache::reencrypting(|| {
        let header = value.header();
        let current = cache::current(&header.key_id);
        if current.version == header.key_version {
            return DetTextOut(OwnedVarlena::from_slice(value.0));
        }
        let mut plain = det_open(&value);
        let out = det_seal(
            current.deterministic(Privilege::Encrypt),
            plain.payload_mut(),
        );
        plain.payload_mut().fill(0);
        out
    })
}

/// A det_text[] result.
pub struct DetTextArray(pg_sys::Datum);

pgrx::impl_sql_translatable!(DetTextArray, "det_text[]");

// SAFETY: a DetTextArray is only made by det_encrypt_all_versions from a non-NULL det_text[]
// that construct_array palloc'd in the call's memory context, which outlives the return; it
// is returned as that function's result, of the SQL type declared above.
unsafe impl BoxRet for DetTextArray {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        // SAFETY: self.0 is a valid, non-NULL det_text[] datum living past the call (see the
        // impl), returned to this very function call (box_into's contract).
        unsafe { fcinfo.return_raw_datum(self.0) }
    }
}

/// The value encrypted under every usable version of the key, newest first: searching a column
/// during a rotation is `col = ANY(encml.det_encrypt_all_versions(v, k))`.
#[pg_extern(stable, parallel_safe, requires = ["det_text_type"])]
fn det_encrypt_all_versions(
    value: Option<TextBytes<'_>>,
    key: Option<Uuid>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<DetTextArray> {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    let value = value?;
    let id = key_arg(key);
    // Raises the usual errors for unknown, destroyed or wrong-purpose keys.
    cache::current(&id).deterministic(Privilege::Encrypt);
    let mut datums: Vec<pg_sys::Datum> = catalog::searchable_versions(&id)
        .into_iter()
        .map(|v| {
            det_seal(
                cache::version(&id, v).deterministic(Privilege::Encrypt),
                value.0,
            )
            .0
            .into_datum()
        })
        .collect();
    // SAFETY: fcinfo is this call's FunctionCallInfo (pgrx passes it), valid for the call, and
    // its flinfo is set by fmgr. construct_array copies the `datums.len()` varlenas, valid
    // while `datums` lives, into a new array palloc'd in the current memory context, the one
    // pgrx runs this function in and returns its result from.
    unsafe {
        let array_type = pg_sys::get_fn_expr_rettype((*fcinfo).flinfo);
        let element_type = pg_sys::get_element_type(array_type);
        let array = pg_sys::construct_array(
            datums.as_mut_ptr(),
            datums.len() as i32,
            element_type,
            -1,
            false,
            pg_sys::TYPALIGN_INT as std::ffi::c_char,
        );
        Some(DetTextArray(pg_sys::Datum::from(array)))
    }
}

#[pg_extern(immutable, strict, parallel_safe, name = "key_id", requires = ["det_text_type"])]
fn det_key_id(value: DetText<'_>) -> Uuid {
    Uuid::from_bytes(value.header().key_id)
}

#[pg_extern(immutable, strict, parallel_safe, name = "key_version", requires = ["det_text_type"])]
fn det_key_version(value: DetText<'_>) -> i32 {
    value.header().key_version as i32
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
pub mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn det_round_trip_and_equality() {
        let k =
            Spi::get_one::<pgrx::Uuid>("SELECT encml.create_key('pgtest-det', 'deterministic')")
                .unwrap()
                .unwrap();
        assert_eq!(
            Spi::get_one::<String>(&format!(
                "SELECT encml.det_decrypt(encml.det_encrypt('x@y.z', '{k}'))"
            )),
            Ok(Some("x@y.z".into()))
        );
        assert_eq!(
            Spi::get_one::<bool>(&format!(
                "SELECT encml.det_encrypt('x@y.z', '{k}') = encml.det_encrypt('x@y.z', '{k}')"
            )),
            Ok(Some(true))
        );
    }

    #[pg_test(error = "key must not be NULL")]
    fn det_null_key_is_refused() {
        Spi::run("SELECT encml.det_encrypt('x'::text, NULL)").unwrap();
    }
}
