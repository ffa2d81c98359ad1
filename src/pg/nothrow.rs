//! Calls into Postgres for the paths every statement takes (the hooks' first checks), without
//! pgrx's FFI guard: each guarded call saves a jump buffer with `sigsetjmp` and swaps the error
//! stack, which the hooks paid dozens of times per statement (docs/benchmarks.md). Only
//! functions that cannot raise an ERROR (no `ereport`, no allocation, no catalog access) are
//! declared here, so no `longjmp` can cross the Rust frames that call them.

use pgrx::pg_sys;

mod raw {
    use pgrx::pg_sys::Oid;
    extern "C" {
        // xact.c: reads the transaction state.
        pub fn IsTransactionState() -> bool;
        // miscinit.c: returns CurrentUserId.
        pub fn GetUserId() -> Oid;
        // snapmgr.c: whether the active-snapshot stack is non-empty.
        pub fn ActiveSnapshotSet() -> bool;
    }
}

/// `IsTransactionState()`.
#[inline]
pub fn is_transaction_state() -> bool {
    // SAFETY: reads backend state; never raises.
    unsafe { raw::IsTransactionState() }
}

/// `GetUserId()`: the current user.
#[inline]
pub fn current_user() -> pg_sys::Oid {
    // SAFETY: returns a backend global; never raises (an assertion only, in debug builds).
    unsafe { raw::GetUserId() }
}

/// `ActiveSnapshotSet()`.
#[inline]
pub fn active_snapshot_set() -> bool {
    // SAFETY: reads the snapshot stack's head; never raises.
    unsafe { raw::ActiveSnapshotSet() }
}

/// The pointers of a `List` (NULL is the empty list), read directly from its cells (Postgres
/// 13 on: one array of cells) rather than through a guarded call per element.
///
/// # Safety
/// `list` must be NULL or a pointer list (not an integer or oid list) that outlives the
/// iterator and is not modified while it is used.
pub unsafe fn list_ptrs<T>(list: *mut pg_sys::List) -> impl Iterator<Item = *mut T> {
    // SAFETY: as the caller guarantees; `length` cells are valid.
    let (cells, n) = unsafe {
        if list.is_null() {
            (std::ptr::null_mut(), 0)
        } else {
            ((*list).elements, (*list).length.max(0) as usize)
        }
    };
    // SAFETY: i < n, the list's length; ptr_value is the member a pointer list uses.
    (0..n).map(move |i| unsafe { (*cells.add(i)).ptr_value as *mut T })
}
