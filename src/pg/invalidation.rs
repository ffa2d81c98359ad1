//! One relcache invalidation callback for the whole library, which calls each cache's own:
//! Postgres allows a process ten of them (MAX_RELCACHE_CALLBACKS), and Citus takes several, so
//! one per cache ran out ("out of relcache_callback_list slots") with Citus loaded.

use pgrx::pg_sys;
use std::cell::{Cell, RefCell};

/// A cache's relcache callback: the changed relation, or InvalidOid for all.
pub type RelcacheCallback = unsafe extern "C-unwind" fn(pg_sys::Datum, pg_sys::Oid);

thread_local! {
    static LISTENERS: RefCell<Vec<RelcacheCallback>> = const { RefCell::new(Vec::new()) };
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn dispatch(arg: pg_sys::Datum, relid: pg_sys::Oid) {
    // (A copy: a listener may register another while this runs.)
    let listeners: Vec<RelcacheCallback> = LISTENERS.with(|l| l.borrow().clone());
    for f in listeners {
        // SAFETY: each listener is a relcache callback, called as Postgres would call it.
        unsafe { f(arg, relid) };
    }
}

/// Calls `f` on every relcache invalidation in this process (once per `f`).
pub fn on_relcache(f: RelcacheCallback) {
    if !REGISTERED.with(|r| r.replace(true)) {
        // SAFETY: registers one callback per process.
        unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(dispatch), pg_sys::Datum::from(0)) };
    }
    LISTENERS.with(|l| {
        let mut l = l.borrow_mut();
        if !l.iter().any(|g| *g as usize == f as usize) {
            l.push(f);
        }
    });
}
