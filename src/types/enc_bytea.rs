//! `enc_bytea`: a randomized AES-256-GCM ciphertext (layout in docs/formats.md and
//! `encml_core::format`). I/O conventions: `types::ciphertext`.

use crate::pg::varlena::OwnedVarlena;
use crate::types::ciphertext::{self, ciphertext_type};
use encml_core::format::Kind;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::ffi::CStr;

ciphertext_type!(EncBytea, EncByteaOut, "enc_bytea", Kind::Randomized);

extension_sql!(
    r#"
CREATE TYPE enc_bytea;
"#,
    name = "enc_bytea_shell",
    creates = [Type(EncBytea)],
);

#[pg_extern(immutable, strict, parallel_safe)]
fn enc_bytea_in(input: &CStr) -> EncByteaOut {
    EncByteaOut(ciphertext::text_in(input, Kind::Randomized))
}

#[pg_extern(immutable, strict, parallel_safe)]
fn enc_bytea_out(value: EncBytea<'_>) -> &'static CStr {
    ciphertext::text_out(value.0)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn enc_bytea_recv(buf: pgrx::Internal) -> EncByteaOut {
    EncByteaOut(ciphertext::recv(buf, Kind::Randomized))
}

#[pg_extern(immutable, strict, parallel_safe)]
fn enc_bytea_send(value: EncBytea<'_>) -> OwnedVarlena {
    OwnedVarlena::from_slice(value.0)
}

/// bytea -> enc_bytea: lets clients that build ciphertexts themselves insert them.
#[pg_extern(immutable, strict, parallel_safe)]
fn enc_bytea_from_bytea(value: crate::pg::varlena::ByteaBytes<'_>) -> EncByteaOut {
    EncByteaOut(ciphertext::validated(
        value.0,
        Kind::Randomized,
        PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
    ))
}

extension_sql!(
    r#"
CREATE TYPE enc_bytea (
    INPUT = enc_bytea_in,
    OUTPUT = enc_bytea_out,
    RECEIVE = enc_bytea_recv,
    SEND = enc_bytea_send,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = int4,
    -- ciphertext does not compress: store large values out of line without trying
    STORAGE = external
);
COMMENT ON TYPE enc_bytea IS
    'Randomized AES-256-GCM ciphertext with key id and key version in an authenticated header (see docs/formats.md). Text form is base64.';

-- enc_bytea is a varlena of bytes: it reads as bytea without conversion, and bytea becomes
-- enc_bytea after a structural check (for ciphertexts produced by client libraries).
CREATE CAST (enc_bytea AS bytea) WITHOUT FUNCTION AS ASSIGNMENT;
CREATE CAST (bytea AS enc_bytea) WITH FUNCTION enc_bytea_from_bytea(bytea);
"#,
    name = "enc_bytea_type",
    requires = [
        "enc_bytea_shell",
        enc_bytea_in,
        enc_bytea_out,
        enc_bytea_recv,
        enc_bytea_send,
        enc_bytea_from_bytea
    ],
);
