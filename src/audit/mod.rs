//! Auditing: row changes of audited tables and security events go to `encml.audit_log`; a
//! sealing step chains them with a keyed MAC in commit order, so writers never wait for each
//! other; `audit_verify` checks the chain and the newest witness of its head.
//!
//! - [`audited`]: which relations are audited (cached per backend);
//! - [`row`]: the trigger on audited tables (old/new rows as jsonb, redaction, changed columns);
//! - [`triggers`]: installing it on a table and the tables under it;
//! - [`state`]: the catalog state auditing needs, checked by verification and the report;
//! - [`ddl`]: event triggers logging DDL on audited tables and refusing to weaken it;
//! - [`classes`]: column classifications following renames and drops;
//! - [`replica`]: writes in replica mode, where no trigger fires (preloaded);
//! - [`reads`]: statements that read read-audited tables (preloaded);
//! - [`maintenance`]: utility statements before they run: maintenance that reads, locks that stall the log (preloaded);
//! - [`chain`]: sealing, verification, the head and purging;
//! - [`events`], [`detached`]: security events, refusals written outside the transaction;
//! - [`guard`]: the append-only trigger on the log;
//! - [`writer`]: inserting log rows with the extension owner's rights through saved plans.

pub mod audited;
pub mod canonical_output;
pub mod chain;
pub mod classes;
pub mod ddl;
pub mod decrypts;
pub mod detached;
pub mod events;
pub mod guard;
pub mod maintenance;
pub mod partitions;
pub mod reads;
pub mod replica;
pub mod row;
pub mod state;
pub mod triggers;
pub mod writer;

use crate::pg::errors::raise;
use pgrx::{pg_sys, PgSqlErrorCode};
use std::ffi::CStr;

/// The trigger data of a call, or ERROR if the function was not called as a trigger.
///
/// # Safety
/// `fcinfo` must be the valid, non-null FunctionCallInfo of the running C-function call (as
/// fmgr passes it); the returned pointer is valid only for that call.
pub unsafe fn trigger_data(
    fcinfo: pg_sys::FunctionCallInfo,
    name: &str,
) -> *mut pg_sys::TriggerData {
    // SAFETY: fcinfo is the running call's, valid and non-null (the contract above).
    let ctx = unsafe { (*fcinfo).context };
    // SAFETY: `||` reads the tag only of a non-null context, and fmgr's context is always a
    // Node (fmgr.h), so its first field is a NodeTag.
    if ctx.is_null() || unsafe { (*ctx).type_ } != pg_sys::NodeTag::T_TriggerData {
        raise(
            PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
            format!("{name} must be called as a trigger"),
        );
    }
    ctx as *mut pg_sys::TriggerData
}

/// The audit log's event writers, for `crate::events` (registered from `_PG_init`).
pub fn event_sink() -> crate::events::Sink {
    crate::events::Sink {
        record: events::record,
        record_detached: detached::record,
    }
}

/// The schema-qualified, quoted name of a relation (as it is called now).
pub fn table_name(rel: pg_sys::Oid) -> String {
    // SAFETY: syscache lookups through pgrx's guarded bindings (an ERROR becomes a Rust panic).
    // `name` is tested for NULL before use; a NULL namespace name (a concurrently dropped
    // schema) is accepted by quote_qualified_identifier, which then leaves the name unqualified.
    // The strings are palloc'd in the current memory context, which outlives this call, and
    // copied into a Rust String before returning.
    unsafe {
        let name = pg_sys::get_rel_name(rel);
        if name.is_null() {
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                format!("relation {} does not exist", rel.to_u32()),
            );
        }
        let nsp = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(rel));
        CStr::from_ptr(pg_sys::quote_qualified_identifier(nsp, name))
            .to_string_lossy()
            .into_owned()
    }
}

/// The labels whose columns are redacted in the log by default.
pub const SENSITIVE_LABELS: [&str; 4] = ["pii", "phi", "pci", "secret"];

pgrx::extension_sql_file!("../../sql/schema/audit.sql", name = "audit_log");
pgrx::extension_sql_file!(
    "../../sql/schema/audit_ddl.sql",
    name = "audit_ddl",
    requires = ["audit_log"]
);
pgrx::extension_sql_file!(
    "../../sql/schema/compliance.sql",
    name = "compliance_report",
    requires = ["audit_log"]
);
