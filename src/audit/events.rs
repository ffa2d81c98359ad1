//! Security events in the audit log. A successful operation is logged in its own transaction
//! (if it rolls back, it did not happen). A refusal is logged through `detached`: at once to the
//! server log, and to the audit log by a background worker in its own transaction, so the record
//! survives the ERROR that follows it.

use crate::audit::detached;
use crate::audit::writer::{append, Entry};
use crate::pg::roles::role_name;
use pgrx::pg_sys;

/// Logs a successful security operation in the caller's transaction.
pub fn record(operation: &str, table: Option<(pg_sys::Oid, &str)>, mut detail: serde_json::Value) {
    crate::events::severity::tag(operation, &mut detail);
    // A hot standby writes nothing (and cannot NOTIFY): there the server log has the event.
    let in_recovery = crate::pg::recovery::in_recovery();
    let critical = detail["severity"] == "critical";
    if crate::events::severity::LOG_EVENTS_JSON.get() || critical || in_recovery {
        let event = serde_json::json!({
            // SAFETY: GetSessionUserId takes no arguments and only returns a backend global; it
            // cannot ERROR.
            "session_role": role_name(unsafe { pg_sys::GetSessionUserId() }),
            // SAFETY: as above, GetUserId only returns a backend global.
            "effective_role": role_name(unsafe { pg_sys::GetUserId() }),
            "tenant": crate::keys::tenant_context::current(),
            "operation": operation,
            "table": table.map(|t| t.1),
            "detail": &detail,
        });
        if critical || in_recovery {
            // (Always in the server log: a superuser can delete the row before it is sealed.)
            // (The JSON line encml.log_events_json writes, whether it is on or not.)
            crate::log_event!("pg_encrypt_ml event: {event}");
        } else {
            crate::events::severity::log_json(&event);
        }
        if !in_recovery {
            crate::events::severity::notify_if_critical(&event);
        }
    }
    if in_recovery {
        return;
    }
    append(&Entry::without_rows(
        "event",
        operation,
        table,
        Some(&detail.to_string()),
    ));
}

/// Logs a refusal so that it outlives the ERROR the caller raises next.
pub fn refused(operation: &str, detail: serde_json::Value) {
    detached::record(operation, detail);
}

/// ERROR 42501 unless the calling role owns the table (or has the privileges of its owner, as a
/// superuser does); the refusal is logged as `refusal` outside the caller's transaction. (Here,
/// beside `refused`, rather than in `pg`: a check that logs is above the audit log.)
pub fn require_table_owner(rel: pgrx::pg_sys::Oid, refusal: &str) {
    // SAFETY: a catalog check of an existing relation by oid for a role oid; no pointers kept.
    if unsafe { pgrx::pg_sys::pg_class_ownercheck(rel, crate::pg::roles::caller()) } {
        return;
    }
    let table = crate::audit::table_name(rel);
    refused(refusal, serde_json::json!({ "table": table }));
    crate::pg::errors::raise(
        pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("must be owner of table {table}"),
    );
}
