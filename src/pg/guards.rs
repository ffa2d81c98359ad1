//! Scopes the hooks and callbacks share: an active snapshot for catalog reads where the
//! statement's own may be gone, and a flag that keeps a check from running inside itself (its
//! own queries pass through the same hooks).

use pgrx::pg_sys;
use std::cell::Cell;
use std::thread::LocalKey;

/// Runs `f` with an active snapshot: the current one, or the transaction snapshot pushed for
/// the call (popped after it; an ERROR's abort empties the stack anyway).
pub fn with_active_snapshot<R>(f: impl FnOnce() -> R) -> R {
    struct Pop(bool);
    impl Drop for Pop {
        fn drop(&mut self) {
            if self.0 && !std::thread::panicking() {
                // SAFETY: pops the snapshot pushed below, in the same scope.
                unsafe { pg_sys::PopActiveSnapshot() };
            }
        }
    }
    // SAFETY: called inside a transaction; the pushed snapshot is popped by the guard.
    let pushed = unsafe {
        if crate::pg::nothrow::active_snapshot_set() {
            false
        } else {
            pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
            true
        }
    };
    let _pop = Pop(pushed);
    f()
}

/// Runs `f` with `flag` set, unless it is set already (a call nested in one running): then None.
pub fn unless_nested<R>(flag: &'static LocalKey<Cell<bool>>, f: impl FnOnce() -> R) -> Option<R> {
    if flag.with(|c| c.replace(true)) {
        return None;
    }
    struct Reset(&'static LocalKey<Cell<bool>>);
    impl Drop for Reset {
        fn drop(&mut self) {
            self.0.with(|c| c.set(false));
        }
    }
    let _reset = Reset(flag);
    Some(f())
}

/// Calls `func(arg)` when memory context `cxt` is reset or deleted (the end of an execution,
/// or its abort): how per-execution memos in thread-locals are forgotten.
///
/// # Safety
/// `cxt` must be a live memory context, and `func` must accept `arg` for as long as it lives.
pub unsafe fn on_reset(
    cxt: pg_sys::MemoryContext,
    func: unsafe extern "C-unwind" fn(*mut std::ffi::c_void),
    arg: *mut std::ffi::c_void,
) {
    // SAFETY: the callback struct is allocated in the context it watches, so it lives exactly
    // as long as the registration.
    unsafe {
        let cb = pg_sys::MemoryContextAllocZero(
            cxt,
            std::mem::size_of::<pg_sys::MemoryContextCallback>(),
        ) as *mut pg_sys::MemoryContextCallback;
        (*cb).func = Some(func);
        (*cb).arg = arg;
        pg_sys::MemoryContextRegisterResetCallback(cxt, cb);
    }
}
