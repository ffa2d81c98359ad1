//! Decryption auditing, by `encml.audit_decrypt`:
//! - `statement` (default): each backend counts decrypted values per key and, when a statement's
//!   executor ends, logs one `decrypt` event per key with the count;
//! - `row`: one `decrypt` event per value (costly; for tables where every read must be traced);
//! - `off`.
//!
//! The log row is written in the caller's transaction when it can write; in a parallel worker,
//! a read-only transaction or as a fallback it goes through the detached writer (its own
//! transaction); on a hot standby only to the server log. A statement that fails before its end
//! leaves its counts in the server log. The setting is superuser-only, so nobody turns off the
//! tracing of their own reads.

use crate::audit::{detached, events};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::{pg_sys, PostgresGucEnum};
use serde_json::json;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Off,
    Statement,
    Row,
}

/// `encml.audit_decrypt`, beside the mode it holds (defined from `_PG_init`, `register_guc`).
pub static AUDIT_DECRYPT: GucSetting<Mode> = GucSetting::<Mode>::new(Mode::Statement);

/// Defines `encml.audit_decrypt`.
pub fn register_guc() {
    GucRegistry::define_enum_guc(
        c"encml.audit_decrypt",
        c"Decryption auditing: off, statement (one audit row per statement and key) or row.",
        c"Superuser-only, so a role cannot stop the tracing of its own reads.",
        &AUDIT_DECRYPT,
        GucContext::Suset,
        GucFlags::default(),
    );
}

thread_local! {
    static COUNTS: RefCell<HashMap<[u8; 16], u64>> = RefCell::new(HashMap::new());
    static PENDING: Cell<bool> = const { Cell::new(false) };
}

fn can_write_here() -> bool {
    // SAFETY: plain reads of backend state (XactReadOnly is a C global of this single-threaded
    // backend, not written concurrently); the two functions take no arguments and cannot ERROR.
    unsafe { !pg_sys::IsInParallelMode() && !pg_sys::XactReadOnly && !pg_sys::RecoveryInProgress() }
}

/// Notes one decrypted value under `key_id` (through `security::exfil::decrypted`, which
/// applies the rate limits first).
#[inline]
pub fn count(key_id: &[u8; 16]) {
    match AUDIT_DECRYPT.get() {
        Mode::Off => {}
        Mode::Statement => COUNTS.with(|c| {
            *c.borrow_mut().entry(*key_id).or_insert(0) += 1;
            PENDING.with(|p| p.set(true));
        }),
        Mode::Row => {
            let detail = json!({ "key": uuid::Uuid::from_bytes(*key_id).to_string(), "values": 1 });
            if can_write_here() {
                events::record("decrypt", None, detail);
            } else {
                COUNTS.with(|c| *c.borrow_mut().entry(*key_id).or_insert(0) += 1);
                PENDING.with(|p| p.set(true));
            }
        }
    }
}

fn take() -> Vec<([u8; 16], u64)> {
    if !PENDING.with(|p| p.replace(false)) {
        return Vec::new();
    }
    COUNTS.with(|c| c.borrow_mut().drain().collect())
}

/// Logs the counts gathered so far (at the end of a statement's executor, where the statement's
/// snapshot is usually popped already: the insert gets a fresh one).
fn flush() {
    let counts = take();
    if counts.is_empty() {
        return;
    }
    // SAFETY: IsTransactionState takes no arguments, only reads the transaction state and cannot
    // ERROR.
    if !unsafe { pg_sys::IsTransactionState() } {
        for (key, values) in counts {
            crate::log_event!(
                "pg_encrypt_ml decrypt audit: key={} values={values}",
                uuid::Uuid::from_bytes(key)
            );
        }
        return;
    }
    crate::pg::guards::with_active_snapshot(|| {
        for (key, values) in counts {
            let detail =
                json!({ "key": uuid::Uuid::from_bytes(key).to_string(), "values": values });
            if can_write_here() {
                events::record("decrypt", None, detail);
            } else {
                detached::record("decrypt", detail);
            }
        }
    });
}

/// After a statement's executor ended (the hook in `hooks`): logs the decrypt counts it
/// gathered.
pub fn after_executor_end() {
    flush();
}

/// At each transaction event (the callback in `hooks`): a failed transaction leaves its counts
/// in the server log.
pub fn on_xact(event: pg_sys::XactEvent::Type) {
    if event == pg_sys::XactEvent::XACT_EVENT_ABORT
        || event == pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT
    {
        for (key, values) in take() {
            crate::log_event!(
                "pg_encrypt_ml decrypt audit (statement failed): key={} values={values}",
                uuid::Uuid::from_bytes(key)
            );
        }
    }
}
