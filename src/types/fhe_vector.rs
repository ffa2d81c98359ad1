//! `fhe_vector`: an encrypted fixed-point vector for homomorphic aggregation (layout in
//! docs/formats.md and `encml_fhe::vector`). Text form base64, binary form the bytes, like the
//! ciphertext types; input checks the header and the length, nothing can check more without the
//! secret key.

use crate::pg::errors::raise;
use crate::pg::varlena::{ByteaBytes, OwnedVarlena};
use crate::types::ciphertext::{self, varlena_type};
use encml_fhe::vector::parse_header;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::ffi::CStr;

varlena_type!(FheVector, FheVectorOut, "fhe_vector");

extension_sql!(
    r#"
CREATE TYPE fhe_vector;
"#,
    name = "fhe_vector_shell",
    creates = [Type(FheVector)],
);

/// A checked copy of `bytes` as an fhe_vector, or an ERROR with `code`.
fn validated(bytes: &[u8], code: PgSqlErrorCode) -> FheVectorOut {
    if let Err(e) = parse_header(bytes) {
        raise(code, format!("invalid input for type fhe_vector: {e}"));
    }
    FheVectorOut(OwnedVarlena::from_slice(bytes))
}

#[pg_extern(immutable, strict, parallel_safe)]
fn fhe_vector_in(input: &CStr) -> FheVectorOut {
    let bytes = ciphertext::text_in_bytes(input, "fhe_vector");
    validated(&bytes, PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn fhe_vector_out(value: FheVector<'_>) -> &'static CStr {
    ciphertext::text_out(value.0)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn fhe_vector_recv(buf: pgrx::Internal) -> FheVectorOut {
    validated(
        &ciphertext::recv_bytes(buf),
        PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
    )
}

#[pg_extern(immutable, strict, parallel_safe)]
fn fhe_vector_send(value: FheVector<'_>) -> OwnedVarlena {
    OwnedVarlena::from_slice(value.0)
}

/// bytea -> fhe_vector: what clients upload (the pg_encrypt_ml-fhe tool writes these bytes).
#[pg_extern(immutable, strict, parallel_safe)]
fn fhe_vector_from_bytea(value: ByteaBytes<'_>) -> FheVectorOut {
    validated(
        value.0,
        PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
    )
}

extension_sql!(
    r#"
CREATE TYPE fhe_vector (
    INPUT = fhe_vector_in,
    OUTPUT = fhe_vector_out,
    RECEIVE = fhe_vector_recv,
    SEND = fhe_vector_send,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = int4,
    -- ciphertext does not compress: store it out of line without trying
    STORAGE = external
);
COMMENT ON TYPE fhe_vector IS
    'Encrypted fixed-point vector (LWE compact public-key encryption, tfhe-rs) that adds homomorphically; see docs/fhe.md. Text form is base64.';
CREATE CAST (fhe_vector AS bytea) WITHOUT FUNCTION AS ASSIGNMENT;
CREATE CAST (bytea AS fhe_vector) WITH FUNCTION fhe_vector_from_bytea(bytea);
"#,
    name = "fhe_vector_type",
    requires = [
        "fhe_vector_shell",
        fhe_vector_in,
        fhe_vector_out,
        fhe_vector_recv,
        fhe_vector_send,
        fhe_vector_from_bytea
    ],
);
