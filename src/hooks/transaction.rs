//! The transaction and subtransaction callbacks (always): decrypt counts and rate alerts of a
//! failed transaction, alerts sent before commit, the nonce budget, read auditing's state.

use crate::{audit, events, keys, privacy, security};
use pgrx::prelude::*;

/// From `_PG_init`, preloaded or not.
pub fn install() {
    // SAFETY: _PG_init runs once per process, single-threaded; the callbacks are #[pg_guard]
    // functions that ignore their (null) `arg`.
    unsafe {
        pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(on_subxact), std::ptr::null_mut());
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    security::exfil::on_xact(event);
    audit::decrypts::on_xact(event);
    events::severity::on_xact(event);
    if event == pg_sys::XactEvent::XACT_EVENT_ABORT {
        keys::nonce_budget::flush_local(false);
    }
    if privacy::start::installed() {
        audit::reads::on_xact(event);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_subxact(
    event: pg_sys::SubXactEvent::Type,
    mine: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    events::severity::on_subxact(event, mine);
    if privacy::start::installed() {
        audit::reads::on_subxact(event, mine);
    }
}
