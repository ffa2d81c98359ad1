//! Encrypted tensors: numeric arrays sealed as described enc_bytea values (dtype and shape in a
//! clear, authenticated descriptor; the values packed little-endian inside). Format:
//! `encml_core::tensor` and docs/formats.md.

use crate::api::encrypt::{key_arg, open_into, seal_with};
use crate::keys::cache;
use crate::pg::errors::{raise, raise_core};
use crate::pg::varlena::TextBytes;
use crate::types::enc_bytea::{EncBytea, EncByteaOut};
use crate::types::num_array::*;
use encml_core::aead::Parts;
use encml_core::tensor::{DType, TensorDescriptor};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode, Uuid};

fn encrypt(
    values: &ArrayArg<'_>,
    dtype: DType,
    key: Option<Uuid>,
    aad: Option<TextBytes<'_>>,
) -> EncByteaOut {
    let key = cache::current(&key_arg(key));
    let descriptor = TensorDescriptor {
        dtype,
        dims: values.dims(),
    };
    seal_with(
        &key,
        Some(&descriptor.encode()),
        values.values(dtype),
        aad.map(|a| a.0),
    )
}

/// The descriptor of a tensor value, checked against its length; unauthenticated.
fn descriptor(value: &[u8]) -> TensorDescriptor {
    match TensorDescriptor::of_value(value) {
        Ok(d) => d,
        Err(encml_core::Error::Malformed("not an encrypted tensor")) => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "value is an enc_bytea but not an encrypted tensor",
        ),
        Err(e) => raise_core(e),
    }
}

fn decrypt(value: EncBytea<'_>, aad: Option<TextBytes<'_>>, dtype: DType) -> OwnedArray {
    let desc = descriptor(value.0);
    if desc.dtype != dtype {
        raise_full_mismatch(desc.dtype, dtype);
    }
    let parts = Parts::parse(value.0).unwrap_or_else(|e| raise_core(e));
    // The ciphertext is copied into its final place and decrypted there.
    let mut array = OwnedArray::with_values(dtype, &desc.dims, parts.body);
    let out = array.values_mut();
    open_into(value.0, aad.map(|a| a.0), out);
    array
}

fn raise_full_mismatch(stored: DType, wanted: DType) -> ! {
    let function = match stored {
        DType::Float32 => "decrypt_tensor_real",
        DType::Float64 => "decrypt_tensor_float8",
        DType::Int16 => "decrypt_tensor_smallint",
        DType::Int32 => "decrypt_tensor_int",
    };
    crate::pg::errors::raise_full(
        PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
        format!(
            "encrypted tensor holds {} ({}), not {} ({})",
            stored.name(),
            sql_array_type(stored),
            wanted.name(),
            sql_array_type(wanted)
        ),
        None,
        Some(format!("Use encml.{function}().")),
    )
}

#[pg_extern(volatile, parallel_safe, name = "encrypt_tensor", requires = ["enc_bytea_type"])]
fn encrypt_tensor_real(
    values: Option<RealArray<'_>>,
    key: Option<Uuid>,
    aad: default!(Option<TextBytes<'_>>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<EncByteaOut> {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    Some(encrypt(&values?.0, DType::Float32, key, aad))
}

#[pg_extern(volatile, parallel_safe, name = "encrypt_tensor", requires = ["enc_bytea_type"])]
fn encrypt_tensor_float8(
    values: Option<Float8Array<'_>>,
    key: Option<Uuid>,
    aad: default!(Option<TextBytes<'_>>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<EncByteaOut> {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    Some(encrypt(&values?.0, DType::Float64, key, aad))
}

#[pg_extern(volatile, parallel_safe, name = "encrypt_tensor", requires = ["enc_bytea_type"])]
fn encrypt_tensor_smallint(
    values: Option<SmallintArray<'_>>,
    key: Option<Uuid>,
    aad: default!(Option<TextBytes<'_>>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<EncByteaOut> {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    Some(encrypt(&values?.0, DType::Int16, key, aad))
}

#[pg_extern(volatile, parallel_safe, name = "encrypt_tensor", requires = ["enc_bytea_type"])]
fn encrypt_tensor_integer(
    values: Option<IntegerArray<'_>>,
    key: Option<Uuid>,
    aad: default!(Option<TextBytes<'_>>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<EncByteaOut> {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    Some(encrypt(&values?.0, DType::Int32, key, aad))
}

#[pg_extern(stable, parallel_safe, requires = ["enc_bytea_type"])]
fn decrypt_tensor_real(
    value: Option<EncBytea<'_>>,
    aad: default!(Option<TextBytes<'_>>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<RealArrayOut> {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    Some(RealArrayOut(decrypt(value?, aad, DType::Float32)))
}

#[pg_extern(stable, parallel_safe, requires = ["enc_bytea_type"])]
fn decrypt_tensor_float8(
    value: Option<EncBytea<'_>>,
    aad: default!(Option<TextBytes<'_>>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<Float8ArrayOut> {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    Some(Float8ArrayOut(decrypt(value?, aad, DType::Float64)))
}

#[pg_extern(stable, parallel_safe, requires = ["enc_bytea_type"])]
fn decrypt_tensor_smallint(
    value: Option<EncBytea<'_>>,
    aad: default!(Option<TextBytes<'_>>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<SmallintArrayOut> {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    Some(SmallintArrayOut(decrypt(value?, aad, DType::Int16)))
}

#[pg_extern(stable, parallel_safe, requires = ["enc_bytea_type"])]
fn decrypt_tensor_int(
    value: Option<EncBytea<'_>>,
    aad: default!(Option<TextBytes<'_>>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<IntegerArrayOut> {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    Some(IntegerArrayOut(decrypt(value?, aad, DType::Int32)))
}

/// The clear descriptor of an encrypted tensor, unverified until the value is decrypted.
#[pg_extern(immutable, strict, parallel_safe, requires = ["enc_bytea_type"])]
#[allow(clippy::type_complexity)] // pgrx's TableIterator spells out the result row
fn tensor_info(
    value: EncBytea<'_>,
) -> TableIterator<
    'static,
    (
        name!(dtype, String),
        name!(shape, Vec<i64>),
        name!(lower_bounds, Vec<i32>),
        name!(element_count, i64),
        name!(key_id, Uuid),
        name!(key_version, i32),
    ),
> {
    let desc = descriptor(value.0);
    let header = value.header();
    TableIterator::once((
        desc.dtype.name().to_string(),
        desc.dims.iter().map(|d| d.len as i64).collect(),
        desc.dims.iter().map(|d| d.lower).collect(),
        desc.element_count().unwrap_or_else(|e| raise_core(e)) as i64,
        Uuid::from_bytes(header.key_id),
        header.key_version as i32,
    ))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
pub mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn tensors_round_trip_in_place_for_every_dtype() {
        let k = Spi::get_one::<pgrx::Uuid>("SELECT encml.create_key('pgtest-tensor')")
            .unwrap()
            .unwrap();
        for (array, f) in [
            ("'{{1.5,2},{3,-4}}'::real[]", "real"),
            ("'[0:2]={1e300,-0.0,3}'::float8[]", "float8"),
            ("'{-32768,32767}'::smallint[]", "smallint"),
            ("'{{{1},{2}},{{3},{4}}}'::integer[]", "int"),
            ("'{}'::real[]", "real"),
        ] {
            let same = Spi::get_one::<bool>(&format!(
                "SELECT encml.decrypt_tensor_{f}(encml.encrypt_tensor({array}, '{k}')) = {array}"
            ));
            assert_eq!(same, Ok(Some(true)), "{array}");
        }
        // 4 bytes per float32 value plus a header fixed by the number of dimensions.
        let size = Spi::get_one::<i32>(&format!(
            "SELECT octet_length(encml.encrypt_tensor(array_fill(1::real, ARRAY[1000]), '{k}')::bytea)"
        ));
        assert_eq!(size, Ok(Some(4000 + 24 + 2 + 12 + 12 + 16)));
    }
}
