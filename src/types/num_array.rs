//! Numeric arrays (real[], float8[], smallint[], integer[]) read and built in place for
//! encrypted tensors. A Postgres array of a fixed-width type without NULLs stores its values
//! contiguously after the dimensions, in native byte order, so on a little-endian machine the
//! values are already the packed tensor: encryption copies them once into the ciphertext and
//! decryption writes straight into the new array. pgrx's `Array<T>` would go value by value.

use crate::pg::errors::raise;
use encml_core::tensor::{DType, Dim};
use pgrx::callconv::{Arg, ArgAbi, BoxRet, FcInfo};
use pgrx::datum::{Datum, FromDatum};
use pgrx::nullable::Nullable;
use pgrx::{pg_sys, PgSqlErrorCode};
use std::marker::PhantomData;

#[cfg(target_endian = "big")]
compile_error!("encrypted tensors store little-endian values; big-endian hosts need a byte swap");

/// Postgres's MAXDIM.
pub const MAX_DIMS: usize = 6;
/// MaxAllocSize: the largest palloc (1 GB - 1).
const MAX_ALLOC: usize = 0x3FFF_FFFF;
/// MaxArraySize: the most elements Postgres allows in an array.
const MAX_ARRAY_SIZE: usize = MAX_ALLOC / std::mem::size_of::<pg_sys::Datum>();
const ARRAY_HEADER: usize = std::mem::size_of::<pg_sys::ArrayType>();

fn maxalign(n: usize) -> usize {
    let a = pg_sys::MAXIMUM_ALIGNOF as usize;
    (n + a - 1) & !(a - 1)
}

/// Bytes before the values of an array without a NULL bitmap (ARR_OVERHEAD_NONULLS).
fn overhead_nonulls(ndim: usize) -> usize {
    maxalign(ARRAY_HEADER + 2 * std::mem::size_of::<i32>() * ndim)
}

pub fn element_type(dtype: DType) -> pg_sys::Oid {
    match dtype {
        DType::Float32 => pg_sys::FLOAT4OID,
        DType::Float64 => pg_sys::FLOAT8OID,
        DType::Int16 => pg_sys::INT2OID,
        DType::Int32 => pg_sys::INT4OID,
    }
}

/// The SQL name of the array type of a dtype, for messages.
pub fn sql_array_type(dtype: DType) -> &'static str {
    match dtype {
        DType::Float32 => "real[]",
        DType::Float64 => "double precision[]",
        DType::Int16 => "smallint[]",
        DType::Int32 => "integer[]",
    }
}

/// A detoasted array argument.
pub struct ArrayArg<'a> {
    ptr: *mut pg_sys::ArrayType,
    _lifetime: PhantomData<&'a ()>,
}

impl FromDatum for ArrayArg<'_> {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null || datum.is_null() {
            return None;
        }
        // Flattens expanded arrays and fetches toasted ones.
        // SAFETY: FromDatum's contract: a non-null (checked above) array datum valid for the
        // call. pg_detoast_datum (guarded) returns it as is when it is a plain 4-byte-header
        // varlena, or else a flat, 4-byte-header copy palloc'd in the call's memory context:
        // either lives for the call, the lifetime ArrayArg is given.
        let ptr =
            unsafe { pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) } as *mut pg_sys::ArrayType;
        Some(ArrayArg {
            ptr,
            _lifetime: PhantomData,
        })
    }
}

impl<'a> ArrayArg<'a> {
    fn ndim(&self) -> usize {
        // SAFETY: an ArrayArg is made only by from_polymorphic_datum: ptr is a detoasted array,
        // whose ArrayType header is there for the lifetime 'a.
        unsafe { (*self.ptr).ndim as usize }
    }

    /// Lengths and lower bounds.
    pub fn dims(&self) -> Vec<Dim> {
        let n = self.ndim();
        // SAFETY: a valid array of ndim dimensions stores ndim lengths and then ndim lower
        // bounds, 4-aligned int32s, right after its ArrayType header (ARR_DIMS, ARR_LBOUND).
        unsafe {
            let dims = (self.ptr as *const u8).add(ARRAY_HEADER) as *const i32;
            let lbs = dims.add(n);
            (0..n)
                .map(|i| Dim {
                    len: *dims.add(i) as u32,
                    lower: *lbs.add(i),
                })
                .collect()
        }
    }

    /// The packed values, or an ERROR if the array holds NULLs or is not of `dtype`.
    pub fn values(&self, dtype: DType) -> &'a [u8] {
        // SAFETY: ptr is a detoasted array live for 'a. Its element type is checked to be the
        // fixed-width type of `dtype` and it has no NULL bitmap (dataoffset 0), so its values
        // are `count` (the product of its lengths, at most MaxArraySize in a valid array)
        // elements of dtype.size() bytes without padding, starting at ARR_OVERHEAD_NONULLS.
        unsafe {
            if (*self.ptr).elemtype != element_type(dtype) {
                raise(
                    PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                    format!("expected an array of {}", sql_array_type(dtype)),
                );
            }
            if (*self.ptr).dataoffset != 0 {
                raise(
                    PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                    "a tensor must not contain NULL values",
                );
            }
            let n = self.ndim();
            let count = if n == 0 {
                0
            } else {
                self.dims()
                    .iter()
                    .map(|d| d.len as usize)
                    .product::<usize>()
            };
            let data = (self.ptr as *const u8).add(overhead_nonulls(n));
            std::slice::from_raw_parts(data, count * dtype.size())
        }
    }
}

/// Declares an array argument type for one SQL array type.
macro_rules! array_arg {
    ($name:ident, $sql:literal) => {
        pub struct $name<'a>(pub ArrayArg<'a>);
        pgrx::impl_sql_translatable!($name<'_>, $sql);

        // SAFETY: $sql is an array type, the logical type ArrayArg reads (and `values` checks
        // the element type again); the detoasted array it points to lives for the call, 'fcx.
        unsafe impl<'fcx> ArgAbi<'fcx> for $name<'fcx> {
            unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
                // SAFETY: the same argument, under the contract this function was called with.
                match unsafe { Self::unbox_nullable_arg(arg) } {
                    Nullable::Valid(v) => v,
                    Nullable::Null => panic!("{} argument must not be NULL", $sql),
                }
            }

            unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
                // SAFETY: the argument's SQL type is an array ($sql), which ArrayArg unboxes;
                // a NULL gives None.
                match unsafe { arg.unbox_arg_using_from_datum::<ArrayArg<'fcx>>() } {
                    Some(a) => Nullable::Valid($name(a)),
                    None => Nullable::Null,
                }
            }
        }
    };
}

array_arg!(RealArray, "real[]");
array_arg!(Float8Array, "double precision[]");
array_arg!(SmallintArray, "smallint[]");
array_arg!(IntegerArray, "integer[]");

/// A new array of `dtype` with the given dimensions whose values the caller fills in place.
pub struct OwnedArray(*mut pg_sys::ArrayType);

impl OwnedArray {
    /// A new array of `dtype` with the given dimensions holding `values` (packed, native order,
    /// exactly the size the dimensions imply). Dimensions with a zero length give the empty
    /// array. Refuses what Postgres would not build: more than MAXDIM dimensions, more than
    /// MaxArraySize elements, a lower bound + length beyond int.
    pub fn with_values(dtype: DType, dims: &[Dim], values: &[u8]) -> Self {
        if dims.len() > MAX_DIMS {
            raise(
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "tensor has {} dimensions; Postgres arrays have at most {MAX_DIMS}",
                    dims.len()
                ),
            );
        }
        let dims: &[Dim] = if dims.iter().any(|d| d.len == 0) {
            &[]
        } else {
            dims
        };
        if dims
            .iter()
            .any(|d| d.len > i32::MAX as u32 || d.lower.checked_add(d.len as i32 - 1).is_none())
        {
            raise(
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                "tensor dimension bounds exceed the range of integer",
            );
        }
        let count = dims
            .iter()
            .try_fold(if dims.is_empty() { 0usize } else { 1 }, |n, d| {
                n.checked_mul(d.len as usize)
            });
        let count = match count {
            Some(c) if c <= MAX_ARRAY_SIZE => c,
            _ => raise(
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "tensor has more than the {MAX_ARRAY_SIZE} elements a Postgres array can hold"
                ),
            ),
        };
        let bytes = count * dtype.size();
        if bytes != values.len() {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
                "tensor shape does not match its length",
            );
        }
        let head = overhead_nonulls(dims.len());
        let total = match bytes.checked_add(head) {
            Some(t) if t <= MAX_ALLOC => t,
            _ => raise(
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                "tensor is larger than the 1 GB limit of a Postgres array",
            ),
        };
        // SAFETY: palloc (guarded: raises rather than return NULL) gives `total` bytes, MAXALIGNed,
        // in the caller's memory context, which outlives the value (built and returned within one
        // function call). total <= MAX_ALLOC fits the header's i32. The header, then ndim
        // lengths and lower bounds (4-aligned int32s) fill the first `head` bytes, zeroed first;
        // the values, `bytes` long as checked above, fill [head, total) from a slice that cannot
        // overlap the fresh allocation.
        unsafe {
            let ptr = pg_sys::palloc(total) as *mut pg_sys::ArrayType;
            crate::pg::varlena::prefer_huge_pages(ptr as *mut u8, total);
            std::ptr::write_bytes(ptr as *mut u8, 0, head);
            pgrx::set_varsize_4b(ptr as *mut pg_sys::varlena, total as i32);
            (*ptr).ndim = dims.len() as i32;
            (*ptr).dataoffset = 0;
            (*ptr).elemtype = element_type(dtype);
            let d = (ptr as *mut u8).add(ARRAY_HEADER) as *mut i32;
            for (i, dim) in dims.iter().enumerate() {
                *d.add(i) = dim.len as i32;
                *d.add(dims.len() + i) = dim.lower;
            }
            std::ptr::copy_nonoverlapping(values.as_ptr(), (ptr as *mut u8).add(head), bytes);
            OwnedArray(ptr)
        }
    }

    /// The value bytes.
    pub fn values_mut(&mut self) -> &mut [u8] {
        // SAFETY: self.0 is the array `with_values` built, live in the memory context that was
        // current then (an OwnedArray is built and returned within one function call); its
        // values are the bytes from ARR_OVERHEAD_NONULLS(ndim) to its total size, and
        // `&mut self` makes this the only reference to them.
        unsafe {
            let ndim = (*self.0).ndim as usize;
            let head = overhead_nonulls(ndim);
            let total = pgrx::varsize_any(self.0 as *const pg_sys::varlena);
            std::slice::from_raw_parts_mut((self.0 as *mut u8).add(head), total - head)
        }
    }
}

/// Declares an array result type for one SQL array type.
macro_rules! array_ret {
    ($name:ident, $sql:literal) => {
        pub struct $name(pub OwnedArray);
        pgrx::impl_sql_translatable!($name, $sql);

        // SAFETY: returns the OwnedArray's datum, a complete array; every function returning
        // $name builds it with the dtype whose element type $sql has.
        unsafe impl BoxRet for $name {
            unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
                // SAFETY: a by-reference return of a valid array palloc'd in the memory context
                // that was current when the function built it (the caller's), so it lasts for
                // the caller.
                unsafe { fcinfo.return_raw_datum(pg_sys::Datum::from((self.0).0)) }
            }
        }
    };
}

array_ret!(RealArrayOut, "real[]");
array_ret!(Float8ArrayOut, "double precision[]");
array_ret!(SmallintArrayOut, "smallint[]");
array_ret!(IntegerArrayOut, "integer[]");
