//! Building varlena results in place, so a value is allocated once in the caller's memory
//! context and written once (encryption happens inside the final buffer).

use crate::pg::errors::raise;
use pgrx::callconv::{BoxRet, FcInfo};
use pgrx::datum::Datum;
use pgrx::datum::FromDatum;
use pgrx::{pg_sys, PgSqlErrorCode};

/// Asks the kernel to back a large, fresh allocation with transparent huge pages before it is
/// first written: a 100 MB value then takes about 50 page faults instead of 25,000, which is a
/// fifth of the time of encrypting it. Advice only; ignored where unsupported.
pub fn prefer_huge_pages(ptr: *mut u8, len: usize) {
    const HUGE: usize = 2 << 20;
    if len < 4 * HUGE {
        return;
    }
    // SAFETY: madvise only changes the kernel's paging policy for [start, end), whole huge pages
    // inside the caller's allocation [ptr, ptr + len); it never reads or writes the memory, and an
    // invalid range only makes it fail with an error code, which is ignored (advice only).
    #[cfg(target_os = "linux")]
    unsafe {
        let start = (ptr as usize).next_multiple_of(HUGE);
        let end = (ptr as usize + len) & !(HUGE - 1);
        if end > start {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

/// A palloc'd varlena under construction or ready to be returned.
pub struct OwnedVarlena(*mut pg_sys::varlena);

/// Largest payload a varlena can hold (1 GB minus the header).
pub const MAX_PAYLOAD: usize = 0x3FFF_FFFF - pg_sys::VARHDRSZ;

impl OwnedVarlena {
    /// Allocates `len` payload bytes holding `bytes` at `offset` and zeros elsewhere, writing
    /// each byte once (no zeroing pass over the part that is copied in).
    pub fn with_bytes_at(len: usize, offset: usize, bytes: &[u8]) -> Self {
        assert!(
            offset
                .checked_add(bytes.len())
                .is_some_and(|end| end <= len),
            "bytes outside the value"
        );
        if len > MAX_PAYLOAD {
            raise(
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!("result of {len} bytes exceeds the 1 GB limit of a Postgres value"),
            );
        }
        // SAFETY: pgrx's palloc wrapper is guarded (out of memory raises an ERROR, never NULL) and
        // allocates len + VARHDRSZ bytes in CurrentMemoryContext, the caller's, which outlives
        // this value (built and returned within one function call). len <= MAX_PAYLOAD, so the
        // size fits the 4-byte header's i32; the three writes cover [0, offset), [offset, end)
        // and [end, len) of the payload, inside it by the assert above, and `bytes` cannot
        // overlap a fresh allocation.
        unsafe {
            let ptr = pg_sys::palloc(len + pg_sys::VARHDRSZ) as *mut pg_sys::varlena;
            prefer_huge_pages(ptr as *mut u8, len + pg_sys::VARHDRSZ);
            pgrx::set_varsize_4b(ptr, (len + pg_sys::VARHDRSZ) as i32);
            let data = pgrx::vardata_any(ptr) as *mut u8;
            std::ptr::write_bytes(data, 0, offset);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), data.add(offset), bytes.len());
            let end = offset + bytes.len();
            std::ptr::write_bytes(data.add(end), 0, len - end);
            OwnedVarlena(ptr)
        }
    }

    pub fn from_slice(bytes: &[u8]) -> Self {
        Self::with_bytes_at(bytes.len(), 0, bytes)
    }

    /// A copy of a short value (masks, per row in views), allocated without pgrx's guarded FFI
    /// call, whose sigsetjmp costs as much as masking a short value. It calls the current
    /// AllocSet's allocator the way palloc does: in PostgreSQL 15 that allocator reports failure
    /// by returning NULL and never raises an ERROR itself, so nothing can longjmp across Rust
    /// frames; on NULL, or for other kinds of context, the guarded palloc runs (and raises the
    /// out-of-memory error).
    pub fn small_copy(bytes: &[u8]) -> Self {
        let size = bytes.len() + pg_sys::VARHDRSZ;
        if size > 8192 {
            return Self::from_slice(bytes);
        }
        // SAFETY: CurrentMemoryContext is always a valid context in a backend (single-threaded,
        // so read without a race); its methods table is read only once its tag says it is an
        // AllocSet, whose alloc returns NULL on failure and does not raise in PostgreSQL 15 (see
        // above), and the result is checked non-null before use. Setting isReset first is what
        // palloc does. The chunk has `size` <= 8192 bytes: the header plus bytes.len() payload
        // bytes copied in, from a slice that cannot overlap a fresh chunk.
        unsafe {
            let cxt = pg_sys::CurrentMemoryContext;
            if (*cxt).type_ != pg_sys::NodeTag::T_AllocSetContext {
                return Self::from_slice(bytes);
            }
            let Some(alloc) = (*(*cxt).methods).alloc else {
                return Self::from_slice(bytes);
            };
            (*cxt).isReset = false;
            let ptr = alloc(cxt, size) as *mut pg_sys::varlena;
            if ptr.is_null() {
                return Self::from_slice(bytes);
            }
            pgrx::set_varsize_4b(ptr, size as i32);
            let data = pgrx::vardata_any(ptr) as *mut u8;
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len());
            OwnedVarlena(ptr)
        }
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        // SAFETY: self.0 is the non-null varlena with a 4-byte header allocated by the
        // constructors, still live in the memory context that was current then (an OwnedVarlena
        // is built and returned within one function call); its payload is varsize_any_exhdr bytes
        // and `&mut self` makes this the only reference to it.
        unsafe {
            let len = pgrx::varsize_any_exhdr(self.0);
            std::slice::from_raw_parts_mut(pgrx::vardata_any(self.0) as *mut u8, len)
        }
    }

    /// The value as a datum, still owned (and freed with its memory context).
    pub fn datum(&self) -> pg_sys::Datum {
        pg_sys::Datum::from(self.0)
    }

    pub fn into_datum(self) -> pg_sys::Datum {
        pg_sys::Datum::from(self.0)
    }
}

// SAFETY: box_into returns the value's own datum, a complete non-null 4-byte-header varlena, as
// the declared SQL type (bytea, or the varlena type of a wrapper) expects.
unsafe impl BoxRet for OwnedVarlena {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        // SAFETY: a by-reference return of a valid varlena, palloc'd in the memory context that
        // was current when the function built it (the caller's), so it lasts for the caller.
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
        // SAFETY: reads bytes.len() bytes of the payload borrowed just above; with noError = true
        // pg_verifymbstr reports invalid input by returning false and does not raise (the call
        // goes through pgrx's guarded wrapper anyway).
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

// SAFETY: returns the inner OwnedVarlena's datum (see its impl), a valid varlena for `text`;
// every OwnedText in the crate is made by `verified`, so its bytes are valid in the server
// encoding.
unsafe impl BoxRet for OwnedText {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        // SAFETY: this function's caller returns the datum to Postgres, as box_into requires.
        unsafe { self.0.box_into(fcinfo) }
    }
}

/// The bytes of a varlena argument. Values stored inline and uncompressed (the common case for
/// short columns) are read in place; only compressed or out-of-line values go through
/// `pg_detoast_datum_packed`. pgrx's `&[u8]` conversion always makes that FFI call, which costs
/// a setjmp per row.
pub(crate) struct VarlenaBytes<'a>(pub(crate) &'a [u8]);

impl FromDatum for VarlenaBytes<'_> {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null || datum.is_null() {
            return None;
        }
        // SAFETY: FromDatum's contract: a non-null datum (checked above) of a varlena type,
        // valid for the call. Its first header byte says whether it is plain (read in place) or
        // must be detoasted by the guarded pg_detoast_datum_packed, whose copy is palloc'd in
        // the current (the call's) memory context; either way the slice lives as long as the
        // argument, for the call.
        unsafe {
            let mut ptr = datum.cast_mut_ptr::<pg_sys::varlena>();
            let first = *(ptr as *const u8);
            // Little-endian varlena headers: xxxxxx00 = 4-byte uncompressed, xxxxxxx1 = 1-byte
            // (00000001 = external TOAST pointer); anything else needs detoasting.
            let plain = first & 0x03 == 0x00 || (first & 0x01 == 0x01 && first != 0x01);
            if !plain {
                ptr = pg_sys::pg_detoast_datum_packed(ptr);
            }
            let len = pgrx::varsize_any_exhdr(ptr);
            Some(VarlenaBytes(std::slice::from_raw_parts(
                pgrx::vardata_any(ptr) as *const u8,
                len,
            )))
        }
    }
}

/// Implements argument unboxing and the SQL type for a wrapper around varlena bytes.
macro_rules! varlena_bytes_arg {
    ($ty:ident, $sql:literal) => {
        // SAFETY: the SQL type declared for $ty is a varlena type ($sql), so the argument datum
        // is a varlena, unboxed through VarlenaBytes<'fcx>: the borrowed bytes (in place or a
        // detoasted copy in the call's memory context) live for the call, 'fcx.
        unsafe impl<'fcx> ::pgrx::callconv::ArgAbi<'fcx> for $ty<'fcx> {
            unsafe fn unbox_arg_unchecked(arg: ::pgrx::callconv::Arg<'_, 'fcx>) -> Self {
                // SAFETY: the same argument, under the contract this function was called with.
                match unsafe { Self::unbox_nullable_arg(arg) } {
                    ::pgrx::nullable::Nullable::Valid(v) => v,
                    ::pgrx::nullable::Nullable::Null => {
                        panic!("{} argument must not be NULL", $sql)
                    }
                }
            }

            unsafe fn unbox_nullable_arg(
                arg: ::pgrx::callconv::Arg<'_, 'fcx>,
            ) -> ::pgrx::nullable::Nullable<Self> {
                // SAFETY: the argument's SQL type is a varlena ($sql), the logical type that
                // VarlenaBytes unboxes; a NULL gives None.
                match unsafe {
                    arg.unbox_arg_using_from_datum::<$crate::pg::varlena::VarlenaBytes<'fcx>>()
                } {
                    Some(b) => ::pgrx::nullable::Nullable::Valid($ty(b.0)),
                    None => ::pgrx::nullable::Nullable::Null,
                }
            }
        }
    };
}
pub(crate) use varlena_bytes_arg;

/// A `text` argument as the bytes of its value in the server encoding, without pgrx's UTF-8
/// conversion (which would fail in a database whose encoding is not UTF-8). Encryption works on
/// bytes; nothing here needs Rust strings.
pub struct TextBytes<'a>(pub &'a [u8]);
pgrx::impl_sql_translatable!(TextBytes<'_>, "text");
varlena_bytes_arg!(TextBytes, "text");

/// A `bytea` argument.
pub struct ByteaBytes<'a>(pub &'a [u8]);
pgrx::impl_sql_translatable!(ByteaBytes<'_>, "bytea");
varlena_bytes_arg!(ByteaBytes, "bytea");

/// The bytes of the varlena argument `n` of a C function call.
///
/// # Safety
/// Argument `n` of the valid `fcinfo` must be a non-NULL varlena (flat, toasted or an expanded
/// object's pointer); the result must not outlive the current memory context.
pub unsafe fn arg_bytes<'a>(fcinfo: pgrx::pg_sys::FunctionCallInfo, n: usize) -> &'a [u8] {
    // SAFETY: as the caller guarantees, the datum is a non-NULL varlena; VarlenaBytes detoasts
    // (flattening an expanded object) into the current memory context when needed, which
    // outlives the call's use of the slice.
    unsafe {
        <VarlenaBytes as pgrx::datum::FromDatum>::from_polymorphic_datum(
            pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, n),
            false,
            pgrx::pg_sys::InvalidOid,
        )
        .expect("a value")
        .0
    }
}
