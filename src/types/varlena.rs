//! Building varlena results in place, so a value is allocated once in the caller's memory
//! context and written once (encryption happens inside the final buffer).

use crate::pg::errors::raise;
use pgrx::callconv::{Arg, ArgAbi, BoxRet, FcInfo};
use pgrx::datum::Datum;
use pgrx::nullable::Nullable;
use pgrx::{pg_sys, PgSqlErrorCode};

/// A palloc'd varlena under construction or ready to be returned.
pub struct OwnedVarlena(*mut pg_sys::varlena);

/// Largest payload a varlena can hold (1 GB minus the header).
const MAX_PAYLOAD: usize = 0x3FFF_FFFF - pg_sys::VARHDRSZ;

impl OwnedVarlena {
    /// Allocates a varlena with `len` payload bytes, zeroed (so no uninitialized memory is ever
    /// seen as a Rust slice).
    pub fn zeroed(len: usize) -> Self {
        if len > MAX_PAYLOAD {
            raise(
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!("result of {len} bytes exceeds the 1 GB limit of a Postgres value"),
            );
        }
        unsafe {
            let ptr = pg_sys::palloc0(len + pg_sys::VARHDRSZ) as *mut pg_sys::varlena;
            pgrx::set_varsize_4b(ptr, (len + pg_sys::VARHDRSZ) as i32);
            OwnedVarlena(ptr)
        }
    }

    pub fn from_slice(bytes: &[u8]) -> Self {
        let mut v = Self::zeroed(bytes.len());
        v.payload_mut().copy_from_slice(bytes);
        v
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        unsafe {
            let len = pgrx::varsize_any_exhdr(self.0);
            std::slice::from_raw_parts_mut(pgrx::vardata_any(self.0) as *mut u8, len)
        }
    }

    pub fn into_datum(self) -> pg_sys::Datum {
        pg_sys::Datum::from(self.0)
    }
}

unsafe impl BoxRet for OwnedVarlena {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        unsafe { fcinfo.return_raw_datum(self.into_datum()) }
    }
}

pgrx::impl_sql_translatable!(OwnedVarlena, "bytea");

/// A text result built in place; checked to be valid in the server encoding before returning.
pub struct OwnedText(pub OwnedVarlena);

pgrx::impl_sql_translatable!(OwnedText, "text");

impl OwnedText {
    pub fn verified(mut v: OwnedVarlena) -> Self {
        let bytes = v.payload_mut();
        let ok =
            unsafe { pg_sys::pg_verifymbstr(bytes.as_ptr() as *const _, bytes.len() as i32, true) };
        if !ok {
            bytes.fill(0);
            raise(
                PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
                "decrypted value is not valid text in the server encoding",
            );
        }
        OwnedText(v)
    }
}

unsafe impl BoxRet for OwnedText {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        unsafe { self.0.box_into(fcinfo) }
    }
}

/// A `text` argument as the bytes of its value in the server encoding, without pgrx's UTF-8
/// conversion (which would fail in a database whose encoding is not UTF-8). Encryption works on
/// bytes; nothing here needs Rust strings.
pub struct TextBytes<'a>(pub &'a [u8]);

pgrx::impl_sql_translatable!(TextBytes<'_>, "text");

unsafe impl<'fcx> ArgAbi<'fcx> for TextBytes<'fcx> {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        TextBytes(unsafe { <&'fcx [u8] as ArgAbi<'fcx>>::unbox_arg_unchecked(arg) })
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
        match unsafe { <&'fcx [u8] as ArgAbi<'fcx>>::unbox_nullable_arg(arg) } {
            Nullable::Valid(b) => Nullable::Valid(TextBytes(b)),
            Nullable::Null => Nullable::Null,
        }
    }
}
