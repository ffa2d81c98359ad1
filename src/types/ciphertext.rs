//! Plumbing shared by the ciphertext types (enc_bytea, det_text, ...): each is a varlena of bytes
//! that starts with the common header (`encml_core::format`). Text form: standard base64 of the
//! binary value, so psql, pg_dump and every driver handle it; binary send/receive carry the bytes
//! unchanged. Input is checked for structure (magic, version, algorithm, minimum length) but not
//! authenticated: only decryption can tell a forged value from a real one.

use crate::pg::errors::raise;
use crate::pg::varlena::OwnedVarlena;
use base64::Engine;
use encml_core::format::{Header, Kind};
use pgrx::{pg_sys, PgSqlErrorCode};
use std::ffi::{CStr, CString};

/// Declares the argument type `$arg<'a>(&'a [u8])` and result type `$out(OwnedVarlena)` of a
/// varlena type of this extension named `$sql` in SQL.
macro_rules! varlena_type {
    ($arg:ident, $out:ident, $sql:literal) => {
        /// An argument of this type: the bytes of the value.
        pub struct $arg<'a>(pub &'a [u8]);

        /// A result of this type, built in place.
        pub struct $out(pub $crate::pg::varlena::OwnedVarlena);

        const TYPE_IDENT: &str = ::pgrx::pgrx_resolved_type!($arg);

        // SAFETY: $sql is a varlena type this extension creates (CREATE TYPE ... INTERNALLENGTH
        // = VARIABLE next to each use of this macro), and $arg is unboxed from it as the bytes
        // of that varlena (varlena_bytes_arg! below), so the SQL and Rust sides agree.
        unsafe impl ::pgrx::pgrx_sql_entity_graph::metadata::SqlTranslatable for $arg<'_> {
            const TYPE_IDENT: &'static str = TYPE_IDENT;
            const TYPE_ORIGIN: ::pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin =
                ::pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin::ThisExtension;
            const ARGUMENT_SQL: Result<
                ::pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef,
                ::pgrx::pgrx_sql_entity_graph::metadata::ArgumentError,
            > = Ok(::pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef::literal($sql));
            const RETURN_SQL: Result<
                ::pgrx::pgrx_sql_entity_graph::metadata::ReturnsRef,
                ::pgrx::pgrx_sql_entity_graph::metadata::ReturnsError,
            > = Ok(::pgrx::pgrx_sql_entity_graph::metadata::ReturnsRef::One(
                ::pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef::literal($sql),
            ));
        }

        // SAFETY: as for $arg: $out returns an OwnedVarlena, a complete varlena of the bytes of
        // a $sql value, which is what the SQL type holds.
        unsafe impl ::pgrx::pgrx_sql_entity_graph::metadata::SqlTranslatable for $out {
            const TYPE_IDENT: &'static str = TYPE_IDENT;
            const TYPE_ORIGIN: ::pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin =
                ::pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin::ThisExtension;
            const ARGUMENT_SQL: Result<
                ::pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef,
                ::pgrx::pgrx_sql_entity_graph::metadata::ArgumentError,
            > = Ok(::pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef::literal($sql));
            const RETURN_SQL: Result<
                ::pgrx::pgrx_sql_entity_graph::metadata::ReturnsRef,
                ::pgrx::pgrx_sql_entity_graph::metadata::ReturnsError,
            > = Ok(::pgrx::pgrx_sql_entity_graph::metadata::ReturnsRef::One(
                ::pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef::literal($sql),
            ));
        }

        $crate::pg::varlena::varlena_bytes_arg!($arg, $sql);

        // SAFETY: returns the inner OwnedVarlena's datum (see its BoxRet impl), a varlena as
        // the $sql type stores it.
        unsafe impl ::pgrx::callconv::BoxRet for $out {
            unsafe fn box_into<'fcx>(
                self,
                fcinfo: &mut ::pgrx::callconv::FcInfo<'fcx>,
            ) -> ::pgrx::datum::Datum<'fcx> {
                // SAFETY: this function's caller returns the datum to Postgres, as box_into
                // requires.
                unsafe { self.0.box_into(fcinfo) }
            }
        }
    };
}
pub(crate) use varlena_type;

/// A varlena type (see `varlena_type!`) holding ciphertexts of `$kind` with the common header.
macro_rules! ciphertext_type {
    ($arg:ident, $out:ident, $sql:literal, $kind:expr) => {
        $crate::types::ciphertext::varlena_type!($arg, $out, $sql);

        impl $arg<'_> {
            /// The parsed header; raises on a malformed value.
            pub fn header(&self) -> ::encml_core::format::Header {
                ::encml_core::format::Header::decode_as(self.0, $kind)
                    .unwrap_or_else(|e| $crate::pg::errors::raise_core(e))
            }
        }
    };
}
pub(crate) use ciphertext_type;

/// A checked copy of `bytes` as a value of `kind`, or an ERROR with `code`.
pub fn validated(bytes: &[u8], kind: Kind, code: PgSqlErrorCode) -> OwnedVarlena {
    if let Err(e) = Header::decode_as(bytes, kind) {
        raise(
            code,
            format!("invalid input for type {}: {e}", kind.type_name()),
        );
    }
    OwnedVarlena::from_slice(bytes)
}

/// Text input: base64 to bytes (checked by the caller).
pub fn text_in_bytes(input: &CStr, type_name: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(input.to_bytes())
        .unwrap_or_else(|_| {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
                format!("invalid input syntax for type {type_name}: expected base64"),
            )
        })
}

/// Text input: base64.
pub fn text_in(input: &CStr, kind: Kind) -> OwnedVarlena {
    let bytes = text_in_bytes(input, kind.type_name());
    validated(
        &bytes,
        kind,
        PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
    )
}

/// Text output: base64, palloc'd (freed with the function's memory context).
pub fn text_out(bytes: &[u8]) -> &'static CStr {
    let c = CString::new(base64::engine::general_purpose::STANDARD.encode(bytes))
        .expect("base64 has no NUL");
    // SAFETY: pstrdup (guarded: raises on out of memory, never NULL) copies the NUL-terminated
    // string into CurrentMemoryContext. The 'static is nominal: the copy lives as long as the
    // calling function's memory context, and every caller is a type's output function that
    // returns it to Postgres at once.
    unsafe { CStr::from_ptr(pg_sys::pstrdup(c.as_ptr())) }
}

/// Binary input: the remaining bytes of the message (checked by the caller).
pub fn recv_bytes(buf: pgrx::Internal) -> Vec<u8> {
    let msg = buf
        .unwrap()
        .expect("receive buffer")
        .cast_mut_ptr::<pg_sys::StringInfoData>();
    // SAFETY: every caller is a type's receive function, whose `internal` argument is the
    // StringInfo of the message being received, never NULL (receive functions are strict;
    // `expect` above refuses a missing one) and valid for the call; data[cursor..len] lies inside its buffer, and moving the cursor to len
    // marks the bytes consumed, as pq_getmsgbytes does.
    unsafe {
        let remaining = ((*msg).len - (*msg).cursor) as usize;
        let start = (*msg).data.add((*msg).cursor as usize) as *const u8;
        let bytes = std::slice::from_raw_parts(start, remaining).to_vec();
        (*msg).cursor = (*msg).len;
        bytes
    }
}

/// Binary input: the remaining bytes of the message.
pub fn recv(buf: pgrx::Internal, kind: Kind) -> OwnedVarlena {
    let bytes = recv_bytes(buf);
    validated(
        &bytes,
        kind,
        PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
    )
}
