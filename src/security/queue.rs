//! Security events raised where the audit log cannot be written: during authentication (no
//! database yet), in databases without the extension (role changes are cluster-wide), and in
//! parallel workers that found no worker slot free. Each is written to the server log at once and
//! kept in a shared-memory ring (`events::parked`); a backend of a database with the extension
//! forwards them to its audit log (own transaction) whenever security state is read:
//! encml.metrics(), encml.security_summary(), encml.auth_failures(),
//! encml.forward_security_events(), encml.compliance_report(). A scraper calling metrics()
//! therefore brings them in within one scrape interval.

use crate::events::parked;
use crate::events::severity;
use pgrx::prelude::*;
use serde_json::json;
use std::net::IpAddr;

/// Logs an event of `role` from `addr` and queues it for the audit log. The JSON has the shape
/// the detached writer inserts (`audit::detached`).
pub fn push_event(
    operation: &str,
    role: &str,
    addr: Option<IpAddr>,
    mut detail: serde_json::Value,
) {
    severity::tag(operation, &mut detail);
    detail["at"] = json!(crate::security::auth::timestamp_text(
        crate::security::auth::now()
    ));
    let event = json!({
        "session_role": role,
        "effective_role": role,
        "client_addr": addr.map(|a| a.to_string()),
        "application_name": null,
        "tenant": null,
        "operation": operation,
        "detail": detail,
    });
    crate::log_event!("pg_encrypt_ml security event: {event}");
    severity::log_json(&event);
    parked::park(event);
}

/// Whether this database has the extension (and its log) and can write.
fn can_forward() -> bool {
    // SAFETY: guarded bindings reading backend state (get_extension_oid with missing_ok only
    // looks the name up); creating_extension is a plain global of this single-threaded backend.
    // The catalog lookup runs only inside a transaction, the first condition.
    unsafe {
        pg_sys::IsTransactionState()
            && !pg_sys::RecoveryInProgress()
            && !pg_sys::creating_extension
            && pg_sys::get_extension_oid(c"pg_encrypt_ml".as_ptr(), true) != pg_sys::InvalidOid
    }
}

/// Moves the queued events to this database's audit log, committed by the detached writer
/// whatever the caller's transaction does. Returns how many were forwarded.
pub fn forward() -> usize {
    if !crate::pg::preload::preloaded() || !can_forward() {
        return 0;
    }
    let events = parked::take_for_this_database();
    if events.is_empty() {
        return 0;
    }
    let n = events.len();
    crate::audit::detached::record_prepared(&events);
    n
}

/// Waiting events and events dropped because the ring was full.
pub fn stats() -> (usize, u64) {
    parked::stats()
}

/// Forwards events raised before a database was connected (failed logins, lockouts) or in
/// databases without the extension to this database's audit log; returns how many.
#[pg_extern(volatile, parallel_unsafe)]
fn forward_security_events() -> i32 {
    crate::pg::recovery::refuse_during_recovery("encml.forward_security_events()");
    forward() as i32
}
