//! Audit events written outside the caller's transaction: the caller writes the event (as JSON)
//! into a dynamic shared memory segment and starts a short-lived background worker, which
//! connects as the extension owner, inserts the row in its own transaction and commits, while
//! the caller waits. The event also goes to the server log at once, which is all that can be
//! recorded on a hot standby. Used for refusals, which are followed by an ERROR that rolls back
//! everything the caller wrote, and for key exports, whose result the caller holds even if it
//! then rolls back.

use crate::audit::writer::SavedPlan;
use crate::pg::detached_worker;
use crate::pg::identity::extension_owner;
use crate::pg::roles::{caller, role_name};
use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::json;
use std::cell::{Cell, RefCell};

/// The most event bytes carried (a longer detail is replaced by a marker; the server log has it).
const MAX_EVENT: usize = 8192;

/// Who and where, as events record it (no query: cheap enough for every audited read).
pub fn session_fields() -> serde_json::Value {
    // SAFETY: GetSessionUserId takes no arguments and only returns a backend global; it cannot
    // ERROR.
    let session = role_name(unsafe { pg_sys::GetSessionUserId() });
    let effective = role_name(caller());
    // From the connection itself (no query: also called where SPI would be too costly).
    let client = crate::pg::client_address::current().map(|a| a.to_string());
    // SAFETY: application_name is the GUC's string variable, read by this single-threaded
    // backend only; the GUC machinery keeps it NUL-terminated and malloc'd until the next SET,
    // and it is tested for NULL and copied at once.
    let app = unsafe {
        let p = pg_sys::application_name;
        (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
    };
    json!({
        "session_role": session,
        "effective_role": effective,
        "client_addr": client,
        "application_name": app,
        "tenant": crate::keys::tenant_context::current(),
    })
}

/// Records `operation` with `detail` outside the current transaction (see the module comment).
/// Never raises: a failure to record is reported in the server log, and the caller's own ERROR
/// (the refusal) is what the client sees.
pub fn record(operation: &str, mut detail: serde_json::Value) {
    // From here until the worker is registered no interrupt is served: a statement_timeout or
    // cancel landing in between (the LOG lines below check for interrupts) would drop an event
    // the server log already shows. The wait for the worker stays interruptible.
    let launched = {
        let _held = crate::pg::held_interrupts::HeldInterrupts::new();
        crate::events::severity::tag(operation, &mut detail);
        let mut event = session_fields();
        event["operation"] = json!(operation);
        event["detail"] = detail;
        let mut text = event.to_string();
        crate::log_event!("pg_encrypt_ml security event: {text}");
        crate::events::severity::log_json(&event);
        if text.len() > MAX_EVENT {
            event["detail"] =
                json!({ "truncated": true, "severity": crate::events::severity::of(operation) });
            text = event.to_string();
        }
        launch(text)
    };
    finish(launched);
}

/// The event as `record` would send it (with this session's fields), for sending later with
/// `record_prepared`.
pub fn prepared_event(
    operation: &str,
    table: Option<(pg_sys::Oid, &str)>,
    detail: serde_json::Value,
) -> String {
    let mut event = session_fields();
    event["operation"] = json!(operation);
    if let Some((oid, name)) = table {
        event["table_oid"] = json!(oid.to_u32());
        event["table_name"] = json!(name);
    }
    event["detail"] = detail;
    event.to_string()
}

/// Inserts events that already carry their session fields (queued by `security::queue`),
/// in one worker run.
pub fn record_prepared(events: &[String]) {
    let parsed: Vec<serde_json::Value> = events
        .iter()
        .filter_map(|e| serde_json::from_str(e).ok())
        .collect();
    send(serde_json::Value::Array(parsed).to_string());
}

fn send(text: String) {
    let launched = {
        let _held = crate::pg::held_interrupts::HeldInterrupts::new();
        launch(text)
    };
    finish(launched);
}

/// What `launch` did with an event: started its worker, or nothing to do, or kept it for later.
enum Sent {
    Launched(String, detached_worker::Launched),
    Done,
}

/// Starts the worker that inserts `text` (one event, or an array of them); with no slot free,
/// keeps the events for this session to write itself (`finish` reports it).
fn launch(text: String) -> Sent {
    // SAFETY: RecoveryInProgress takes no arguments and only reads shared recovery state; it
    // cannot ERROR.
    if unsafe { pg_sys::RecoveryInProgress() } {
        return Sent::Done; // a standby writes nothing; the server log has it
    }
    match detached_worker::launch(
        "pg_encrypt_ml audit event",
        "encml_audit_event_worker_main",
        extension_owner(),
        text.as_bytes(),
    ) {
        Ok(launched) => Sent::Launched(text, launched),
        Err(failure) => {
            unsent(&text, failure);
            Sent::Done
        }
    }
}

/// Waits for a launched worker; if it did not finish, the session writes the events itself.
fn finish(sent: Sent) {
    if let Sent::Launched(text, launched) = sent {
        if let Err(failure) = launched.wait() {
            unsent(&text, failure);
        }
    }
}

/// Keeps events no worker wrote for the session's next transaction that can write; a parallel
/// worker, which has no next statement, parks them in shared memory for this database instead.
fn unsent(text: &str, failure: detached_worker::Failure) {
    let why = match failure {
        detached_worker::Failure::NoSlot => "no background worker slot free",
        _ => "the audit event worker did not finish",
    };
    let events: Vec<serde_json::Value> = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Array(events)) => events,
        Ok(event) => vec![event],
        Err(_) => Vec::new(),
    };
    // SAFETY: ParallelWorkerNumber is a backend global, >= 0 only in a parallel worker.
    if unsafe { pg_sys::ParallelWorkerNumber } >= 0 {
        // The worker exits at the end of its query: its own queue would die with it (attacker
        // re-check of issue 29: refusals in parallel workers that filled every slot were lost).
        // Every event is parked, also after one that could not be.
        let kept = events
            .into_iter()
            .map(crate::events::parked::park_here)
            .fold(true, |all, one| all & one);
        crate::log_event!(
            "pg_encrypt_ml: {why}; the event above {}",
            if kept {
                "waits in shared memory until security state is read in this database (encml.metrics(), security_summary(), forward_security_events())"
            } else {
                "could not be kept (library not preloaded): the server log is its only record"
            }
        );
        return;
    }
    crate::log_event!(
        "pg_encrypt_ml: {why}; the event above is written by this session at its next statement"
    );
    // (Any role can fill the worker slots: the session writes its events itself, in its next
    // transaction that can write, and again if that one rolls back.)
    UNSENT.with(|u| u.borrow_mut().extend(events.iter().map(|e| e.to_string())));
}

/// Events no worker could write (no slot free), for the session to write itself.
pub fn take_unsent() -> Vec<String> {
    UNSENT.with(|u| std::mem::take(&mut *u.borrow_mut()))
}

/// Puts events back for the session to write later (it cannot write now).
pub fn requeue(events: Vec<String>) {
    UNSENT.with(|u| u.borrow_mut().extend(events));
}

/// Whether events wait for the session to write them.
pub fn has_unsent() -> bool {
    UNSENT.with(|u| !u.borrow().is_empty())
}

thread_local! {
    static EVENT_PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
    static UNSENT: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

static INSERT_EVENT: SavedPlan = SavedPlan::new(
    c"INSERT INTO encml.audit_log (xact_id, session_role, effective_role, client_addr, \
       application_name, tenant, kind, operation, table_oid, table_name, detail) \
      SELECT pg_catalog.pg_current_xact_id(), e->>'session_role', e->>'effective_role', \
             (e->>'client_addr')::inet, e->>'application_name', e->>'tenant', 'event', \
             e->>'operation', (e->>'table_oid')::oid, e->>'table_name', e->'detail' \
        FROM (SELECT $1::jsonb AS e) s",
    &[pg_sys::TEXTOID],
    &EVENT_PLAN,
);

/// Inserts an event (the JSON `record` builds) in the current transaction, as the owner, and
/// sends a critical one on channel encml_alerts (delivered when this transaction commits).
pub fn insert_event_json(text: &str) {
    use pgrx::datum::IntoDatum;
    INSERT_EVENT.run_as_owner(&[text.into_datum()]);
    if let Ok(event) = serde_json::from_str::<serde_json::Value>(text) {
        crate::events::severity::notify_if_critical(&event);
    }
}

/// The worker: inserts the event (or each of an array of events) in its own transaction.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn encml_audit_event_worker_main(arg: pg_sys::Datum) {
    detached_worker::serve(arg, |request| {
        let text = String::from_utf8_lossy(&request);
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Array(events)) => {
                for e in events {
                    insert_event_json(&e.to_string());
                }
            }
            _ => insert_event_json(&text),
        }
        request
    });
}
