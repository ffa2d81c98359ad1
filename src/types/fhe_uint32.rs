//! `fhe_uint32` and `fhe_bool`: tfhe-rs high-level ciphertexts (`FheUint32`, `FheBool`) behind
//! our header (layout in docs/formats.md and `encml_fhe::uint32`). Text form base64, binary form
//! the bytes. Input checks the header; the body is checked (versioned, size-limited
//! deserialization) when an operation reads it.

use crate::pg::errors::raise;
use crate::pg::varlena::{ByteaBytes, OwnedVarlena};
use crate::types::ciphertext;
use encml_fhe::uint32::check_value;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::ffi::CStr;

mod uint {
    crate::types::ciphertext::varlena_type!(FheUint32, FheUint32Out, "fhe_uint32");
}
mod boolean {
    crate::types::ciphertext::varlena_type!(FheBool, FheBoolOut, "fhe_bool");
}
pub use boolean::{FheBool, FheBoolOut};
pub use uint::{FheUint32, FheUint32Out};

extension_sql!(
    r#"
CREATE TYPE fhe_uint32;
CREATE TYPE fhe_bool;
"#,
    name = "fhe_uint32_shell",
    creates = [Type(FheUint32), Type(FheBool)],
);

fn validated(bytes: &[u8], uint: bool, code: PgSqlErrorCode) -> OwnedVarlena {
    if let Err(e) = check_value(bytes, uint) {
        let name = if uint { "fhe_uint32" } else { "fhe_bool" };
        raise(code, format!("invalid input for type {name}: {e}"));
    }
    OwnedVarlena::from_slice(bytes)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn fhe_uint32_in(input: &CStr) -> FheUint32Out {
    let bytes = ciphertext::text_in_bytes(input, "fhe_uint32");
    FheUint32Out(validated(
        &bytes,
        true,
        PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
    ))
}

#[pg_extern(immutable, strict, parallel_safe)]
fn fhe_uint32_out(value: FheUint32<'_>) -> &'static CStr {
    ciphertext::text_out(value.0)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn fhe_uint32_recv(buf: pgrx::Internal) -> FheUint32Out {
    let bytes = ciphertext::recv_bytes(buf);
    FheUint32Out(validated(
        &bytes,
        true,
        PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
    ))
}

#[pg_extern(immutable, strict, parallel_safe)]
fn fhe_uint32_send(value: FheUint32<'_>) -> OwnedVarlena {
    OwnedVarlena::from_slice(value.0)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn fhe_uint32_from_bytea(value: ByteaBytes<'_>) -> FheUint32Out {
    FheUint32Out(validated(
        value.0,
        true,
        PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
    ))
}

#[pg_extern(immutable, strict, parallel_safe)]
fn fhe_bool_in(input: &CStr) -> FheBoolOut {
    let bytes = ciphertext::text_in_bytes(input, "fhe_bool");
    FheBoolOut(validated(
        &bytes,
        false,
        PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
    ))
}

#[pg_extern(immutable, strict, parallel_safe)]
fn fhe_bool_out(value: FheBool<'_>) -> &'static CStr {
    ciphertext::text_out(value.0)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn fhe_bool_recv(buf: pgrx::Internal) -> FheBoolOut {
    let bytes = ciphertext::recv_bytes(buf);
    FheBoolOut(validated(
        &bytes,
        false,
        PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
    ))
}

#[pg_extern(immutable, strict, parallel_safe)]
fn fhe_bool_send(value: FheBool<'_>) -> OwnedVarlena {
    OwnedVarlena::from_slice(value.0)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn fhe_bool_from_bytea(value: ByteaBytes<'_>) -> FheBoolOut {
    FheBoolOut(validated(
        value.0,
        false,
        PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
    ))
}

extension_sql!(
    r#"
CREATE TYPE fhe_uint32 (
    INPUT = fhe_uint32_in, OUTPUT = fhe_uint32_out, RECEIVE = fhe_uint32_recv, SEND = fhe_uint32_send,
    INTERNALLENGTH = VARIABLE, ALIGNMENT = int4, STORAGE = external
);
COMMENT ON TYPE fhe_uint32 IS
    'Encrypted 32-bit unsigned integer (tfhe-rs FheUint32): add, sum and compare under a registered server key; see docs/fhe.md. Text form is base64.';
CREATE CAST (fhe_uint32 AS bytea) WITHOUT FUNCTION AS ASSIGNMENT;
CREATE CAST (bytea AS fhe_uint32) WITH FUNCTION fhe_uint32_from_bytea(bytea);
CREATE TYPE fhe_bool (
    INPUT = fhe_bool_in, OUTPUT = fhe_bool_out, RECEIVE = fhe_bool_recv, SEND = fhe_bool_send,
    INTERNALLENGTH = VARIABLE, ALIGNMENT = int4, STORAGE = external
);
COMMENT ON TYPE fhe_bool IS
    'Encrypted boolean (tfhe-rs FheBool), the result of comparing fhe_uint32 values; only the client key decrypts it. Text form is base64.';
CREATE CAST (fhe_bool AS bytea) WITHOUT FUNCTION AS ASSIGNMENT;
CREATE CAST (bytea AS fhe_bool) WITH FUNCTION fhe_bool_from_bytea(bytea);
"#,
    name = "fhe_uint32_type",
    requires = [
        "fhe_uint32_shell",
        fhe_uint32_in,
        fhe_uint32_out,
        fhe_uint32_recv,
        fhe_uint32_send,
        fhe_uint32_from_bytea,
        fhe_bool_in,
        fhe_bool_out,
        fhe_bool_recv,
        fhe_bool_send,
        fhe_bool_from_bytea
    ],
);
