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
    // SAFETY: callers pass the header of an Object<T> made by `new_in::<T>`: the header is its
    // first field (repr(C)), so the cast recovers the Object, whose `inner` was set there to a
    // live Inner<T> in the object's own memory context.
    unsafe { &mut *(*(eoh as *mut Object<T>)).inner }
}

// Guarded: Postgres calls these directly, and a panic (the size assertion) must become an ERROR
// rather than unwind through its C frames.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn get_flat_size<T: FlatForm>(
    eoh: *mut pg_sys::ExpandedObjectHeader,
) -> pg_sys::Size {
    // SAFETY: Postgres calls this through the methods table that `new_in::<T>` put in the
    // object's header (T::methods() is methods::<T>()), so eoh is the header of a live
    // Object<T>; nothing else holds a reference to its Inner during the call.
    unsafe {
        let inner = inner::<T>(eoh);
        let flat = inner.flat.get_or_insert_with(|| inner.value.to_bytes());
        pg_sys::VARHDRSZ + flat.len()
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn flatten_into<T: FlatForm>(
    eoh: *mut pg_sys::ExpandedObjectHeader,
    result: *mut std::ffi::c_void,
    allocated_size: pg_sys::Size,
) {
    // SAFETY: as in get_flat_size, eoh is a live Object<T>'s header. `result` is Postgres's
    // buffer of allocated_size bytes, the size get_flat_size returned (asserted equal to the
    // header plus the flat form before writing): the 4-byte header and flat.len() bytes after
    // it fit, and a Vec of ours cannot overlap it.
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
///
/// # Safety
/// `d` must be a non-null datum of a varlena type, valid for the call.
pub unsafe fn is_read_write(d: pg_sys::Datum) -> bool {
    // SAFETY: d points to a varlena (the caller's contract), so its first byte is readable;
    // the second is read only when the first is 0x01, an external pointer, which is at least
    // its header byte and its tag byte long.
    unsafe {
        let p = d.cast_mut_ptr::<u8>();
        // VARATT_IS_EXTERNAL (1-byte header 0x01) with tag VARTAG_EXPANDED_RW.
        *p == 0x01 && *p.add(1) as u32 == pg_sys::vartag_external::VARTAG_EXPANDED_RW
    }
}

/// `value` as a new read-write expanded object in a child context of `parent`.
///
/// # Safety
/// `parent` must be a valid memory context that outlives every use of the datum returned
/// (for an aggregate state: the aggregate context).
pub unsafe fn new_in<T: FlatForm>(parent: pg_sys::MemoryContext, value: T) -> pg_sys::Datum {
    // SAFETY: parent is a live context (the caller's contract); the guarded calls raise on out
    // of memory instead of returning NULL. The zeroed, MAXALIGN'd allocation in the new child
    // context holds an Object<T> (alignment at most 8); EOH_init_header fills its header with
    // the static methods table of T and that context; `inner` is a value moved into the same
    // context and dropped when it is deleted, so the object and its value share one lifetime.
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
///
/// # Safety
/// `d` must be a read-write expanded datum made by `new_in::<T>` with this very `T`, whose
/// memory context outlives `'a`, and no other reference to its value may be live meanwhile.
pub unsafe fn value_mut<'a, T: FlatForm>(d: pg_sys::Datum) -> &'a mut T {
    // SAFETY: as the caller guarantees: DatumGetEOHP gives the header of an Object<T> made by
    // new_in::<T>, and this is the only reference to its value.
    unsafe {
        let inner = inner::<T>(pg_sys::DatumGetEOHP(d));
        inner.flat = None;
        &mut inner.value
    }
}
