//! Security events: what every layer calls to record one, below the layers that raise them.
//!
//! The key catalog, the types' input functions and the checks above them refuse operations and
//! must leave a record that outlives the ERROR they raise next. The audit log that stores the
//! record sits above them (it signs its rows with service keys from the key catalog), so the
//! recording functions are registered here by `audit` from `_PG_init`
//! ([`register_sink`]) and called through this module: calls point down, the audit log is reached
//! through the sink.
//! - [`record`]: a successful operation, in the caller's transaction (rolled back with it);
//! - [`record_detached`] (and [`refused`], its name for refusals): outside the caller's
//!   transaction, so the record survives the ERROR that follows a refusal;
//! - [`severity`]: the severity of every event kind, the JSON line for SIEMs and the alerts;
//! - [`parked`]: the shared-memory ring of events no audit log could take yet.

pub mod parked;
pub mod severity;

use pgrx::pg_sys;
use std::sync::OnceLock;

/// Where events go: the audit log's writers (`audit::events::record`, `audit::detached::record`).
pub struct Sink {
    pub record: fn(&str, Option<(pg_sys::Oid, &str)>, serde_json::Value),
    pub record_detached: fn(&str, serde_json::Value),
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// From `_PG_init`, once per process.
pub fn register_sink(sink: Sink) {
    // (A second registration, impossible from _PG_init, keeps the first.)
    let _ = SINK.set(sink);
}

fn sink() -> &'static Sink {
    // _PG_init registers the sink before any SQL function can run.
    SINK.get()
        .expect("pg_encrypt_ml: the audit log's event sink is registered in _PG_init")
}

/// Logs a successful security operation in the caller's transaction.
pub fn record(operation: &str, table: Option<(pg_sys::Oid, &str)>, detail: serde_json::Value) {
    (sink().record)(operation, table, detail)
}

/// Logs an event the caller's transaction must not take back (an export whose result the
/// caller already holds, an alert) outside that transaction. Never raises.
pub fn record_detached(operation: &str, detail: serde_json::Value) {
    (sink().record_detached)(operation, detail)
}

/// Logs a refusal outside the caller's transaction, so that it outlives the ERROR the caller
/// raises next. Never raises.
pub fn refused(operation: &str, detail: serde_json::Value) {
    record_detached(operation, detail)
}
