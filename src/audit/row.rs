//! The trigger `encml.audit_enable` puts on a table: AFTER INSERT, UPDATE, DELETE (per row) and
//! TRUNCATE (per statement). Rows are logged as jsonb through `row_to_json`, so encrypted columns
//! appear as their ciphertext text and nothing is decrypted. The trigger's arguments name the
//! columns to redact; their values become keyed hashes (`encml_core::audit::redact`).

use crate::audit::writer::{append, Entry};
use crate::pg::c_functions;
use crate::pg::errors::raise;
use encml_core::audit::RowJson;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use std::ffi::CStr;

extern "C-unwind" {
    /// The fmgr entry point itself (pgrx's `pg_sys::row_to_json` is a guarded Rust wrapper).
    #[link_name = "row_to_json"]
    fn row_to_json_fmgr(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum;
}

/// The row as JSON text (`row_to_json`), using each column type's output function.
unsafe fn row_json(tuple: pg_sys::HeapTuple, desc: pg_sys::TupleDesc) -> String {
    unsafe {
        let composite = pg_sys::heap_copy_tuple_as_datum(tuple, desc);
        let json =
            pg_sys::DirectFunctionCall1Coll(Some(row_to_json_fmgr), pg_sys::InvalidOid, composite);
        String::from_datum(json, false).unwrap_or_default()
    }
}

fn parse(json: &str) -> RowJson<'_> {
    RowJson::parse(json).unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("could not read a row for the audit log: {e}"),
        )
    })
}

unsafe fn trigger_args(trigger: *const pg_sys::Trigger) -> Vec<String> {
    unsafe {
        (0..(*trigger).tgnargs as usize)
            .map(|i| {
                CStr::from_ptr(*(*trigger).tgargs.add(i))
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }
}

unsafe fn qualified_name(rel: pg_sys::Relation) -> String {
    unsafe {
        let nsp = pg_sys::get_namespace_name((*(*rel).rd_rel).relnamespace);
        let name = (*(*rel).rd_rel).relname.data.as_ptr();
        CStr::from_ptr(pg_sys::quote_qualified_identifier(nsp, name))
            .to_string_lossy()
            .into_owned()
    }
}

unsafe fn audit_row_trigger(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let ctx = (*fcinfo).context;
        if ctx.is_null() || (*ctx).type_ != pg_sys::NodeTag::T_TriggerData {
            raise(
                PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
                "encml.audit_row_trigger must be called as a trigger",
            );
        }
        let td = ctx as *mut pg_sys::TriggerData;
        let event = (*td).tg_event;
        let rel = (*td).tg_relation;
        let desc = (*rel).rd_att;
        let op = match event & pg_sys::TRIGGER_EVENT_OPMASK {
            pg_sys::TRIGGER_EVENT_INSERT => "INSERT",
            pg_sys::TRIGGER_EVENT_UPDATE => "UPDATE",
            pg_sys::TRIGGER_EVENT_DELETE => "DELETE",
            _ => "TRUNCATE",
        };
        let table = qualified_name(rel);
        let table_oid = Some((*rel).rd_id);
        if op == "TRUNCATE" {
            append(&Entry {
                kind: "row",
                operation: op,
                table_oid,
                table_name: Some(&table),
                old_row: None,
                new_row: None,
                changed_columns: None,
                detail: None,
            });
            return pg_sys::Datum::from(0usize);
        }
        let redact = trigger_args((*td).tg_trigger);
        let masters = crate::keys::provider::master_keys();
        let master = &masters[0];
        let (old, new) = match op {
            "INSERT" => (None, Some((*td).tg_trigtuple)),
            "DELETE" => (Some((*td).tg_trigtuple), None),
            _ => (Some((*td).tg_trigtuple), Some((*td).tg_newtuple)),
        };
        let old_json = old.map(|t| row_json(t, desc));
        let new_json = new.map(|t| row_json(t, desc));
        let old_obj = old_json.as_deref().map(parse);
        let new_obj = new_json.as_deref().map(parse);
        let changed = match (&old_obj, &new_obj) {
            (Some(o), Some(n)) => Some(o.changed(n)),
            _ => None,
        };
        let old_out = old_obj.as_ref().map(|o| o.render(&redact, master));
        let new_out = new_obj.as_ref().map(|o| o.render(&redact, master));
        append(&Entry {
            kind: "row",
            operation: op,
            table_oid,
            table_name: Some(&table),
            old_row: old_out.as_deref(),
            new_row: new_out.as_deref(),
            changed_columns: changed.as_deref(),
            detail: None,
        });
        // An AFTER trigger's result is ignored.
        pg_sys::Datum::from(0usize)
    }
}

c_functions! {
    /// encml.audit_row_trigger(): logs row changes of an audited table
    encml_audit_row_trigger, pg_finfo_encml_audit_row_trigger => audit_row_trigger;
}
