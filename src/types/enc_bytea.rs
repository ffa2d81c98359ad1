//! `enc_bytea`: a randomized AES-256-GCM ciphertext (layout in docs/formats.md and
//! `encml_core::format`). Text form: standard base64 of the binary value, so psql, pg_dump and
//! every driver handle it; binary send/receive carry the bytes unchanged. Input is checked for
//! structure (magic, version, algorithm, minimum length) but not authenticated: only decryption
//! can tell a forged value from a real one.

use crate::pg::errors::{raise, raise_core};
use crate::types::varlena::OwnedVarlena;
use base64::Engine;
use encml_core::format::Header;
use pgrx::callconv::{BoxRet, FcInfo};
use pgrx::datum::Datum;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use std::ffi::{CStr, CString};

/// An `enc_bytea` argument: the detoasted bytes of the value.
pub struct EncBytea<'a>(pub &'a [u8]);

/// An `enc_bytea` result, built in place.
pub struct EncByteaOut(pub OwnedVarlena);

const TYPE_IDENT: &str = pgrx::pgrx_resolved_type!(EncBytea);

macro_rules! enc_bytea_sql {
    ($ty:ty) => {
        unsafe impl SqlTranslatable for $ty {
            const TYPE_IDENT: &'static str = TYPE_IDENT;
            const TYPE_ORIGIN: TypeOrigin = TypeOrigin::ThisExtension;
            const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> =
                Ok(SqlMappingRef::literal("enc_bytea"));
            const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
                Ok(ReturnsRef::One(SqlMappingRef::literal("enc_bytea")));
        }
    };
}
enc_bytea_sql!(EncBytea<'_>);
enc_bytea_sql!(EncByteaOut);

crate::types::varlena::varlena_bytes_arg!(EncBytea, "enc_bytea");

unsafe impl BoxRet for EncByteaOut {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        unsafe { self.0.box_into(fcinfo) }
    }
}

impl EncBytea<'_> {
    /// The parsed header; raises on a malformed value.
    pub fn header(&self) -> Header {
        Header::decode(self.0).unwrap_or_else(|e| raise_core(e))
    }
}

extension_sql!(
    r#"
CREATE TYPE enc_bytea;
"#,
    name = "enc_bytea_shell",
    creates = [Type(EncBytea)],
);

fn validated(bytes: &[u8], code: PgSqlErrorCode) -> EncByteaOut {
    if let Err(e) = Header::decode(bytes) {
        raise(code, format!("invalid input for type enc_bytea: {e}"));
    }
    EncByteaOut(OwnedVarlena::from_slice(bytes))
}

#[pg_extern(immutable, strict, parallel_safe)]
fn enc_bytea_in(input: &CStr) -> EncByteaOut {
    let text = input.to_bytes();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_else(|_| {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
                "invalid input syntax for type enc_bytea: expected base64",
            )
        });
    validated(&bytes, PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn enc_bytea_out(value: EncBytea<'_>) -> &'static CStr {
    let s = base64::engine::general_purpose::STANDARD.encode(value.0);
    let c = CString::new(s).expect("base64 has no NUL");
    // Postgres frees the result with the function's memory context.
    unsafe {
        let p = pg_sys::pstrdup(c.as_ptr());
        CStr::from_ptr(p)
    }
}

#[pg_extern(immutable, strict, parallel_safe)]
fn enc_bytea_recv(buf: pgrx::Internal) -> EncByteaOut {
    let msg = buf
        .unwrap()
        .expect("receive buffer")
        .cast_mut_ptr::<pg_sys::StringInfoData>();
    unsafe {
        let remaining = ((*msg).len - (*msg).cursor) as usize;
        let start = (*msg).data.add((*msg).cursor as usize) as *const u8;
        let bytes = std::slice::from_raw_parts(start, remaining);
        let out = validated(bytes, PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION);
        (*msg).cursor = (*msg).len;
        out
    }
}

#[pg_extern(immutable, strict, parallel_safe)]
fn enc_bytea_send(value: EncBytea<'_>) -> OwnedVarlena {
    OwnedVarlena::from_slice(value.0)
}

/// bytea -> enc_bytea: lets clients that build ciphertexts themselves insert them.
#[pg_extern(immutable, strict, parallel_safe)]
fn enc_bytea_from_bytea(value: &[u8]) -> EncByteaOut {
    validated(value, PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION)
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
