//! The subject worker: an export or erasure runs in a session of its own (`pg::session_worker`)
//! with the caller's roles, so that code which the owners of registered tables attach to them
//! never reaches the caller's session (`in_own_session`); that code runs as the table's owner
//! (`as_owner_of`). A caller holding a lock the worker would wait for is refused first
//! (`refuse_with_conflicting_locks`).

use super::erasure::forget_here;
use super::export::export_here;
use super::Registration;
use crate::pg::erasure_guard;
use crate::pg::errors::raise_full;
use crate::pg::errors::OrSpiFailed;
use crate::pg::identity::{as_extension_owner, as_table_owner};
use pgrx::prelude::*;
use pgrx::{pg_sys, JsonB, PgSqlErrorCode};
use serde_json::{json, Value};

/// Runs `f` as the table's owner, in a security-restricted operation (`as_table_owner`), with
/// the owner as the worker's session role too (`session_worker::as_session_of`); what the
/// owner's code raises meanwhile reaches the caller marked as raised `doing` in that table.
pub(super) fn as_owner_of<R>(reg: &Registration, doing: &str, f: impl FnOnce() -> R) -> R {
    let owner = crate::pg::identity::table_owner(reg.rel);
    crate::pg::session_worker::foreign(&format!("while {doing} {} as its owner", reg.table), || {
        crate::pg::session_worker::as_session_of(owner, || as_table_owner(reg.rel, f))
    })
}

/// 55000 while this transaction holds a lock on a registered table (or a table under one, or
/// the subject keys) in one of `modes`, those the subject worker's own locks wait for: it would
/// wait for this transaction, which waits for it. (An UPDATE that changed no row holds ROW
/// EXCLUSIVE without having written.)
pub(super) fn refuse_with_conflicting_locks(what: &str, modes: &[&str]) {
    let modes: Vec<String> = modes.iter().map(|m| m.to_string()).collect();
    // As the extension: the caller may not read the registry (the locks are this backend's).
    let held = as_extension_owner(|| {
        Spi::get_two_with_args::<String, String>(
            "WITH RECURSIVE tree(relid) AS ( \
                 SELECT s.tbl::pg_catalog.oid FROM encml.subject_columns s \
                 UNION SELECT 'encml.subject_keys'::pg_catalog.regclass::pg_catalog.oid \
                 UNION SELECT 'encml.consents'::pg_catalog.regclass::pg_catalog.oid \
                 UNION SELECT 'encml.subject_columns'::pg_catalog.regclass::pg_catalog.oid \
                 UNION SELECT i.inhrelid FROM tree t JOIN pg_catalog.pg_inherits i \
                   ON i.inhparent OPERATOR(pg_catalog.=) t.relid) \
             SELECT l.relation::pg_catalog.regclass::pg_catalog.text, l.mode FROM pg_catalog.pg_locks l \
              WHERE l.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid() AND l.granted \
                AND l.locktype OPERATOR(pg_catalog.=) 'relation' \
                AND l.database OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_database \
                     WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database()) \
                AND l.mode OPERATOR(pg_catalog.=) ANY ($1) \
                AND l.relation IN (SELECT relid FROM tree) LIMIT 1",
            &[modes.into()],
        )
    });
    if let Ok((Some(table), Some(mode))) = held {
        raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("{what} refuses to run while this transaction holds a {mode} on {table}"),
            Some(
                "It runs in a session of its own, which would wait for this transaction's lock."
                    .into(),
            ),
            Some("Call it in a transaction of its own.".into()),
        );
    }
}

/// Runs an export or erasure in a session of its own (`pg::session_worker`), with the caller's
/// roles: code the owners of registered tables attach to them runs there, and never reaches this
/// session's large objects, advisory locks, sequences or cursors (attacker round 5). An erasure
/// commits there, on its own.
pub(super) fn in_own_session(mut request: Value) -> JsonB {
    // The caller's lock_timeout bounds the worker's lock waits too (it waits for the caller
    // only as a whole, where statement_timeout applies).
    // SAFETY: reads the GUC's current value in this backend.
    request["lock_timeout_ms"] = json!(unsafe { pg_sys::LockTimeout });
    let answer = crate::pg::session_worker::run(
        "pg_encrypt_ml subject",
        "encml_subject_worker_main",
        request.to_string().as_bytes(),
    );
    JsonB(serde_json::from_str(&answer).unwrap_or(Value::Null))
}

/// The subject worker: runs `export_here` or `forget_here` for the request.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn encml_subject_worker_main(arg: pg_sys::Datum) {
    erasure_guard::install();
    crate::pg::session_worker::serve(arg, |request| {
        let request: Value = serde_json::from_slice(&request).unwrap_or(Value::Null);
        let subject = request["subject"].as_str().unwrap_or_default().to_string();
        if let Some(ms) = request["lock_timeout_ms"].as_i64().filter(|ms| *ms > 0) {
            Spi::run(&format!(
                "SELECT pg_catalog.set_config('lock_timeout', '{}ms', true)",
                ms.min(i32::MAX as i64)
            ))
            .or_spi_failed("");
        }
        let answer = if request["op"] == "forget" {
            forget_here(&subject)
        } else {
            if let Some(tenant) = request["tenant"].as_str() {
                crate::keys::tenant_context::set(tenant, true);
            }
            export_here(&subject)
        };
        answer.to_string()
    });
}
