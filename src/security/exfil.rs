//! Bulk-decryption (exfiltration) detection: values decrypted per role and key per minute,
//! counted across all sessions in shared memory (`encml_core::rate_window`). Above
//! encml.decrypt_alert_threshold a critical event is logged at once and written, with a NOTIFY on
//! channel encml_alerts, by the detached writer (so it does not depend on the caller committing);
//! with encml.decrypt_limit_action = 'block', further decryptions fail while the rate stays above.
//!
//! The hot path stays cheap: each backend counts locally and adds to shared memory on the first
//! value of a statement and key, every BATCH values, and at the end of each statement, so a
//! blocked role gets at most BATCH - 1 values past the limit per backend.

use crate::keys::catalog::uuid_string;
use crate::pg::errors::raise_full;
use crate::pg::roles::role_name;
use crate::security::gucs::{LimitAction, DECRYPT_ALERT_THRESHOLD, DECRYPT_LIMIT_ACTION};
use encml_core::rate_window::Table;
use pgrx::prelude::*;
use pgrx::{PGRXSharedMemory, PgLwLock, PgSqlErrorCode};
use serde_json::json;
use std::cell::Cell;

pub const RATE_SLOTS: usize = 4096;
const BATCH: u64 = 64;

pub struct RateTable {
    pub table: Table<RATE_SLOTS>,
    pub blocked_total: u64,
}
// SAFETY: plain old data (encml_core::rate_window's Table: fixed arrays of Copy integers, bools
// and byte arrays, and a counter), no pointers and no Drop, so every process sees the same valid
// bytes; it is initialized with EMPTY by pg_shmem_init! and only reached through RATE_TABLE's
// LWLock.
unsafe impl PGRXSharedMemory for RateTable {}
impl RateTable {
    pub const EMPTY: RateTable = RateTable {
        table: Table::EMPTY,
        blocked_total: 0,
    };
}

// SAFETY: PgLwLock::new asks for a name no other lock uses: the extension's other locks are
// "... key use", "... auth lockout" and "... event queue".
pub static RATE_TABLE: PgLwLock<RateTable> =
    unsafe { PgLwLock::new(c"pg_encrypt_ml decrypt rates") };

/// (key, role, values not yet added to shared memory): an entry exists from the first value of a
/// statement with that key, which is added at once, to the statement's end. A statement uses few
/// keys, so a short list beats a hash map. Backend-local and on the path of every decrypted
/// value: a plain static (a backend is one thread) saves the thread-local lookup, which in a
/// shared library is a call per access.
static mut PENDING: Vec<([u8; 16], pg_sys::Oid, u64)> = Vec::new();

thread_local! {
    static WARNED: Cell<bool> = const { Cell::new(false) };
}

#[allow(static_mut_refs)]
fn pending() -> &'static mut Vec<([u8; 16], pg_sys::Oid, u64)> {
    // SAFETY: only the backend's one thread touches it, and no caller holds the reference across
    // a call that could re-enter (add() is called after the borrow ends).
    unsafe { &mut PENDING }
}

/// One value decrypted under `key`, as every decrypting function reports it: counted for the
/// rate limits (block mode refuses it here, before it is counted as decrypted) and then for the
/// decrypt audit.
#[inline]
pub fn decrypted(key: &[u8; 16]) {
    note(key);
    crate::audit::decrypts::count(key);
}

/// Counts one decrypted value under `key` by the current role; may raise in block mode.
#[inline]
fn note(key: &[u8; 16]) {
    let threshold = DECRYPT_ALERT_THRESHOLD.get();
    if threshold <= 0 {
        return;
    }
    if !crate::pg::preload::preloaded() {
        not_preloaded();
        return;
    }
    // SAFETY: GetUserId takes no arguments and only returns a backend global; it cannot ERROR.
    let role = unsafe { pg_sys::GetUserId() };
    let p = pending();
    let due = match p.iter_mut().find(|(k, r, _)| k == key && *r == role) {
        None => {
            p.push((*key, role, 0));
            Some(1)
        }
        Some((_, _, n)) => {
            *n += 1;
            (*n >= BATCH).then(|| std::mem::take(n))
        }
    };
    if let Some(n) = due {
        add(key, role, n, threshold as u64, true);
    }
}

#[cold]
fn not_preloaded() {
    if DECRYPT_LIMIT_ACTION.get() == LimitAction::Block {
        crate::pg::preload::require_preload("encml.decrypt_limit_action = 'block'");
    }
    if !WARNED.with(|w| w.replace(true)) {
        pgrx::warning!(
            "encml.decrypt_alert_threshold is set, but pg_encrypt_ml is not in shared_preload_libraries: decryption rates are not tracked"
        );
    }
}

/// Adds `n` values to the shared count; alerts when the threshold is first crossed in a minute
/// and, in block mode (when `may_raise`), refuses.
fn add(key: &[u8; 16], role: pg_sys::Oid, n: u64, threshold: u64, may_raise: bool) {
    let now = crate::security::auth::now();
    let block = DECRYPT_LIMIT_ACTION.get() == LimitAction::Block;
    let rate = {
        let mut t = RATE_TABLE.exclusive();
        let rate = t.table.add(role.to_u32(), key, n, now, threshold);
        if block && may_raise && rate.per_minute > threshold {
            t.blocked_total += 1;
        }
        rate
    };
    if rate.first_over {
        crate::events::record_detached(
            if block {
                "decrypt_rate_blocked"
            } else {
                "decrypt_rate_exceeded"
            },
            json!({ "key": uuid_string(key), "role": role_name(role), "values_per_minute": rate.per_minute,
                    "threshold": threshold, "action": if block { "block" } else { "alert" } }),
        );
    }
    if block && may_raise && rate.per_minute > threshold {
        pending().retain(|(k, r, _)| !(k == key && *r == role));
        raise_full(
            PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
            format!(
                "decryption with key {} blocked: {} values in the last minute exceed encml.decrypt_alert_threshold ({threshold})",
                uuid_string(key),
                rate.per_minute
            ),
            None,
            Some("The limit applies per role and key across sessions; wait, or ask a superuser.".into()),
        );
    }
}

/// At each transaction event (the callback in `hooks`): an aborted transaction's counts still
/// go to shared memory.
pub fn on_xact(event: pg_sys::XactEvent::Type) {
    if event == pg_sys::XactEvent::XACT_EVENT_ABORT
        || event == pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT
    {
        flush(false);
    }
}

/// Adds what this backend counted to shared memory (end of a statement, or abort: then without
/// alerting, since no transaction may run).
pub fn flush(alert: bool) {
    let threshold = DECRYPT_ALERT_THRESHOLD.get();
    let pending: Vec<_> = pending().drain(..).filter(|(_, _, n)| *n > 0).collect();
    if threshold <= 0 || !crate::pg::preload::preloaded() {
        return;
    }
    for (key, role, n) in pending {
        if alert {
            add(&key, role, n, threshold as u64, false);
        } else {
            RATE_TABLE.exclusive().table.add(
                role.to_u32(),
                &key,
                n,
                crate::security::auth::now(),
                0,
            );
        }
    }
}

/// Per (role, key): values in the last minute and in total since tracked.
pub fn snapshot() -> Vec<(pg_sys::Oid, [u8; 16], u64, u64)> {
    if !crate::pg::preload::preloaded() {
        return Vec::new();
    }
    let now = crate::security::auth::now();
    let t = RATE_TABLE.share();
    t.table
        .entries(now)
        .map(|(s, per_minute)| (pg_sys::Oid::from(s.role), s.key, per_minute, s.total))
        .collect()
}

pub fn totals() -> (u64, u64, u64) {
    if !crate::pg::preload::preloaded() {
        return (0, 0, 0);
    }
    let t = RATE_TABLE.share();
    (
        t.table.alerts_total,
        t.blocked_total,
        t.table.untracked_total,
    )
}
