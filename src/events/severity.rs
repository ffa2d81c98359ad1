//! Severity of security events (the seed's alerting strategy: critical, warning, info), the
//! one-line JSON form written to the server log for SIEM collectors (`encml.log_events_json`),
//! and the NOTIFY alerts of critical events.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};

pub static LOG_EVENTS_JSON: GucSetting<bool> = GucSetting::<bool>::new(false);

/// From `_PG_init`.
pub fn register_guc() {
    GucRegistry::define_bool_guc(
        c"encml.log_events_json",
        c"Writes every security event to the server log as one JSON object per line.",
        c"For SIEM collectors: the line starts with 'pg_encrypt_ml event: '.",
        &LOG_EVENTS_JSON,
        GucContext::Suset,
        GucFlags::default(),
    );
}

/// The severity of an event kind: critical for what bypasses or defeats the controls (lockouts,
/// exfiltration alerts, superuser or admin roles granted, RLS or audit switched off); warning for
/// refusals, role changes, destruction and bulk reads; info for the rest (grants, rotations,
/// decrypt counts).
pub fn of(operation: &str) -> &'static str {
    match operation {
        "auth_lockout"
        | "decrypt_rate_exceeded"
        | "decrypt_rate_blocked"
        | "role_superuser"
        | "role_bypassrls"
        | "admin_role_granted"
        | "rls_disabled"
        | "audit_trigger_disabled"
        | "audit_trigger_dropped"
        | "replica_mode_write"
        | "event_trigger_altered"
        | "key_compromised" => "critical",
        "create_role"
        | "alter_role"
        | "drop_role"
        | "rename_role"
        | "grant_role"
        | "revoke_role"
        | "copy_to"
        | "large_result"
        | "destroy_key"
        | "forget_tenant"
        | "audit_disable"
        | "audited_table_dropped"
        | "table_rewrite"
        | "audit_purge"
        | "rotate_master_key"
        | "export_key"
        | "auth_unlock"
        | "login_without_tls"
        | "tls_service_role"
        | "ore_input_forged"
        | "key_nonce_budget_exceeded"
        | "reencryption_failed"
        | "key_compromise_cleared" => "warning",
        op if op.ends_with("_refused") => "warning",
        _ => "info",
    }
}

/// Adds the severity to an event's detail (an object; anything else is wrapped).
pub fn tag(operation: &str, detail: &mut serde_json::Value) {
    if !detail.is_object() {
        *detail = serde_json::json!({ "value": detail.take() });
    }
    detail["severity"] = serde_json::json!(of(operation));
}

/// Writes the event to the server log as one JSON line when encml.log_events_json is on.
pub fn log_json(event: &serde_json::Value) {
    if LOG_EVENTS_JSON.get() {
        crate::log_event!("pg_encrypt_ml event: {event}");
    }
}

thread_local! {
    /// Alerts of this transaction not yet sent: (subtransaction that raised it, operation).
    static PENDING: std::cell::RefCell<Vec<(pgrx::pg_sys::SubTransactionId, String)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// NOTIFY encml_alerts for the event, if it is critical, when the current transaction commits
/// (callers that must not depend on the caller's commit use the detached writer, whose own
/// transaction sends it). Queued here and sent just before the commit: a NOTIFY made at once would
/// make a transaction that is then prepared fail, as Citus prepares the workers' part of every
/// distributed transaction (a GRANT of encml_dpo on a coordinator failed on the workers).
///
/// The payload is a wake-up, not the event: `{"operation", "severity", "xact_id"}`. PostgreSQL has
/// no privileges on channels, so every role may LISTEN (the event's roles, tables and addresses
/// are for auditors only) and NOTIFY (a forged alert): a monitor reads the event from
/// `encml.audit_log` by its transaction id, where a forged one has none (docs/monitoring.md).
pub fn notify_if_critical(event: &serde_json::Value) {
    if event["detail"]["severity"] != "critical" {
        return;
    }
    let operation = event["operation"].as_str().unwrap_or("").to_string();
    // SAFETY: reads the current subtransaction's id.
    let sub = unsafe { pgrx::pg_sys::GetCurrentSubTransactionId() };
    PENDING.with(|p| p.borrow_mut().push((sub, operation)));
}

/// From the transaction callback: sends the queued alerts before the commit (NOTIFY is still
/// allowed then, and delivered at the commit); drops them when the transaction aborts or is
/// prepared (on a Citus worker the coordinator, which made the same change, sends its own alert;
/// an alert is not delivered by COMMIT PREPARED, its audit row stays).
pub fn on_xact(event: pgrx::pg_sys::XactEvent::Type) {
    use pgrx::pg_sys::XactEvent::*;
    match event {
        XACT_EVENT_PRE_COMMIT => {
            let pending = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
            // The transaction that wrote the events' rows (their `xact_id`); it has an id, as
            // it wrote.
            // SAFETY: reads this backend's transaction state; cannot ERROR.
            let xid = unsafe { pgrx::pg_sys::GetTopFullTransactionIdIfAny() }.value;
            for (_, operation) in pending {
                let payload = std::ffi::CString::new(
                    serde_json::json!({
                        "operation": operation,
                        "severity": "critical",
                        "xact_id": xid.to_string(),
                    })
                    .to_string(),
                )
                .unwrap_or_default();
                // SAFETY: top level of a committing transaction; the payload outlives the call
                // (Postgres copies it).
                unsafe {
                    pgrx::pg_sys::ffi::pg_guard_ffi_boundary(|| {
                        Async_Notify(c"encml_alerts".as_ptr(), payload.as_ptr())
                    })
                };
            }
        }
        XACT_EVENT_PRE_PREPARE | XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT => {
            PENDING.with(|p| p.borrow_mut().clear())
        }
        _ => {}
    }
}

/// From the subtransaction callback: an aborted subtransaction's alerts (and those of the
/// subtransactions begun inside it, whose ids are larger) are dropped, as its NOTIFYs would be.
pub fn on_subxact(event: pgrx::pg_sys::SubXactEvent::Type, mine: pgrx::pg_sys::SubTransactionId) {
    if event == pgrx::pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        PENDING.with(|p| p.borrow_mut().retain(|(sub, _)| *sub < mine));
    }
}

extern "C-unwind" {
    // commands/async.h, not in pgrx's bindings.
    fn Async_Notify(channel: *const std::ffi::c_char, payload: *const std::ffi::c_char);
}
