//! The append-only guard on `encml.audit_log` and `encml.audit_witness`: UPDATE, DELETE and
//! TRUNCATE are refused unless the extension's own sealing or purging code is running.

use crate::audit::writer::maintaining;
use crate::pg::c_functions;
use crate::pg::errors::raise_full;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};

unsafe fn audit_log_guard(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: called only through the #[pg_guard] wrapper c_functions! generates, with the
    // trigger manager's fcinfo; trigger_data checks that its context is a TriggerData, valid for
    // this call. For a row event the trigger tuple is set, and for an UPDATE the new tuple too
    // (trigger.h), so the tuple returned is the one the executor expects back.
    unsafe {
        let td = crate::audit::trigger_data(fcinfo, "encml.audit_log_guard");
        if !maintaining() {
            raise_full(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                "the audit log is append-only",
                None,
                Some("Old rows are removed with encml.audit_purge(before), which keeps the chain verifiable.".into()),
            );
        }
        // Let the change through: the row being updated (new version) or deleted.
        let event = (*td).tg_event;
        if event & pg_sys::TRIGGER_EVENT_ROW == 0 {
            return pg_sys::Datum::from(0usize);
        }
        let tuple = if event & pg_sys::TRIGGER_EVENT_OPMASK == pg_sys::TRIGGER_EVENT_UPDATE {
            (*td).tg_newtuple
        } else {
            (*td).tg_trigtuple
        };
        pg_sys::Datum::from(tuple)
    }
}

c_functions! {
    /// encml.audit_log_guard(): refuses UPDATE, DELETE and TRUNCATE of the log
    encml_audit_log_guard, pg_finfo_encml_audit_log_guard => audit_log_guard;
}
