//! A `jsonb` argument read as a serde_json document. pgrx's `JsonB` conversion panics (SQLSTATE
//! XX000) on a document deeper than serde_json's recursion limit; this one refuses it with
//! 54000 and names the limit (docs/ml.md).

use crate::pg::errors::raise_full;
use encml_core::json_fields::{parse_document, DocumentError, MAX_DEPTH};
use pgrx::callconv::{Arg, ArgAbi};
use pgrx::datum::FromDatum;
use pgrx::nullable::Nullable;
use pgrx::{pg_sys, PgSqlErrorCode};
use std::ffi::CStr;

pub struct JsonbDoc(pub serde_json::Value);
pgrx::impl_sql_translatable!(JsonbDoc, "jsonb");

impl FromDatum for JsonbDoc {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null || datum.is_null() {
            return None;
        }
        // SAFETY: a non-NULL jsonb argument is a valid jsonb varlena; jsonb_out returns a
        // palloc'd, NUL-terminated string that lives until it is freed below.
        let text = unsafe {
            pgrx::direct_function_call::<&CStr>(pg_sys::jsonb_out, &[Some(datum)])
                .expect("jsonb_out returns a string")
        };
        let parsed = parse_document(text.to_bytes());
        // SAFETY: the string came from palloc and is not used after this point.
        unsafe { pg_sys::pfree(text.as_ptr() as *mut _) };
        match parsed {
            Ok(v) => Some(JsonbDoc(v)),
            Err(DocumentError::TooDeep(depth)) => raise_full(
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "jsonb document nested {depth} levels deep; at most {MAX_DEPTH} are supported"
                ),
                None,
                Some(
                    "Encrypt a deeper document whole with encml.encrypt(doc::text::bytea, key)."
                        .into(),
                ),
            ),
            Err(DocumentError::Invalid(e)) => raise_full(
                PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
                format!("jsonb document could not be read: {e}"),
                None,
                None,
            ),
        }
    }
}

// SAFETY: JsonbDoc is declared as SQL jsonb and unboxed through its FromDatum, which reads a
// jsonb datum and keeps only an owned serde_json::Value, borrowing nothing from the call.
unsafe impl<'fcx> ArgAbi<'fcx> for JsonbDoc {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        // SAFETY: the same argument, under the contract this function was called with.
        match unsafe { Self::unbox_nullable_arg(arg) } {
            Nullable::Valid(v) => v,
            Nullable::Null => panic!("jsonb argument must not be NULL"),
        }
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
        // SAFETY: the argument is a jsonb datum (the SQL signature says so).
        match unsafe { arg.unbox_arg_using_from_datum::<JsonbDoc>() } {
            Some(d) => Nullable::Valid(d),
            None => Nullable::Null,
        }
    }
}
