//! A Rust value as a Postgres expanded object (utils/expandeddatum.h), for aggregate states
//! of a real varlena type that grow with the input: the aggregate keeps the value in memory
//! and updates it in place (Postgres and Citus keep a read-write expanded transition value
//! without copying it, nodeAgg.c `ExecAggTransReparent`, Citus `HandleTransition`), and the
//! value is flattened to its bytes only when it leaves the aggregate (a tuple, a parallel
//! worker's result, Citus's text output).

use pgrx::{pg_sys, PgMemoryContexts};

/// A value that can be an expanded object: its flat form (without the varlena header), and its
/// methods table, a `static` made with [`methods`] (a generic constant could be a temporary).
pub trait FlatForm: Sized + 'static {
    fn to_bytes(&self) -> Vec<u8>;
    fn methods() -> &'static pg_sys::ExpandedObjectMethods;
}

/// The methods table of `T`, for its `FlatForm::methods` static.
pub const fn methods<T: FlatForm>() -> pg_sys::ExpandedObjectMethods {
    pg_sys::ExpandedObjectMethods {
        get_flat_size: Some(get_flat_size::<T>),
        flatten_into: Some(flatten_into::<T>),
    }
}

/// Lives in the object's own memory context; the header must come first.
#[repr(C)]
struct Object<T> {
    header: pg_sys::ExpandedObjectHeader,
    inner: *mut Inner<T>,
}

/// Dropped (value and cached flat form) when the object's memory context is deleted.
struct Inner<T> {
    value: T,
    /// The flat form computed by `get_flat_size`, for the `flatten_into` that follows.
    flat: Option<Vec<u8>>,
}

unsafe fn inner<'a, T>(eoh: *mut pg_sys::ExpandedObjectHeader) -> &'a mut Inner<T> {
    unsafe { &mut *(*(eoh as *mut Object<T>)).inner }
}

unsafe extern "C-unwind" fn get_flat_size<T: FlatForm>(
    eoh: *mut pg_sys::ExpandedObjectHeader,
) -> pg_sys::Size {
    unsafe {
        let inner = inner::<T>(eoh);
        let flat = inner.flat.get_or_insert_with(|| inner.value.to_bytes());
        pg_sys::VARHDRSZ + flat.len()
    }
}

unsafe extern "C-unwind" fn flatten_into<T: FlatForm>(
    eoh: *mut pg_sys::ExpandedObjectHeader,
    result: *mut std::ffi::c_void,
    allocated_size: pg_sys::Size,
) {
    unsafe {
        let inner = inner::<T>(eoh);
        let flat = inner.flat.take().unwrap_or_else(|| inner.value.to_bytes());
        assert_eq!(allocated_size, pg_sys::VARHDRSZ + flat.len());
        pgrx::set_varsize_4b(result as *mut pg_sys::varlena, allocated_size as i32);
        std::ptr::copy_nonoverlapping(
            flat.as_ptr(),
            (result as *mut u8).add(pg_sys::VARHDRSZ),
            flat.len(),
        );
    }
}

/// Whether `d` points to a read-write expanded object (a varlena "external expanded" pointer).
pub unsafe fn is_read_write(d: pg_sys::Datum) -> bool {
    unsafe {
        let p = d.cast_mut_ptr::<u8>();
        // VARATT_IS_EXTERNAL (1-byte header 0x01) with tag VARTAG_EXPANDED_RW.
        *p == 0x01 && *p.add(1) as u32 == pg_sys::vartag_external::VARTAG_EXPANDED_RW
    }
}

/// `value` as a new read-write expanded object in a child context of `parent`.
pub unsafe fn new_in<T: FlatForm>(parent: pg_sys::MemoryContext, value: T) -> pg_sys::Datum {
    unsafe {
        let ctx = pg_sys::AllocSetContextCreateInternal(
            parent,
            c"encml expanded state".as_ptr(),
            0,
            1024,
            8 * 1024 * 1024,
        );
        let object =
            pg_sys::MemoryContextAllocZero(ctx, std::mem::size_of::<Object<T>>()) as *mut Object<T>;
        pg_sys::EOH_init_header(&mut (*object).header, T::methods(), ctx);
        (*object).inner =
            PgMemoryContexts::For(ctx).leak_and_drop_on_delete(Inner { value, flat: None });
        pg_sys::Datum::from((*object).header.eoh_rw_ptr.as_mut_ptr())
    }
}

/// The value of a read-write expanded object made by `new_in::<T>`, to update in place.
pub unsafe fn value_mut<'a, T: FlatForm>(d: pg_sys::Datum) -> &'a mut T {
    unsafe {
        let inner = inner::<T>(pg_sys::DatumGetEOHP(d));
        inner.flat = None;
        &mut inner.value
    }
}
