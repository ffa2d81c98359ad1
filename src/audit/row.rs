//! The trigger `encml.audit_enable` puts on a table: AFTER INSERT, UPDATE, DELETE (per row) and
//! TRUNCATE (per statement). Rows are logged as jsonb built straight from the tuple by `to_jsonb`
//! (each column through its type's output, so encrypted columns appear as their ciphertext text
//! and nothing is decrypted). The trigger's arguments name the columns to redact; their values
//! are replaced by keyed hashes of their text (`encml_core::audit::redact`). Changed columns of an
//! UPDATE are found by comparing the stored values.

use crate::audit::writer::{append, Entry};
use crate::pg::c_functions;
use crate::pg::errors::raise;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;

extern "C-unwind" {
    /// fmgr entry points themselves (pgrx's `pg_sys::…` of these are guarded Rust wrappers).
    #[link_name = "jsonb_in"]
    fn jsonb_in_fmgr(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum;
    #[link_name = "jsonb_concat"]
    fn jsonb_concat_fmgr(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum;
}

thread_local! {
    /// Set while `subject_forget` deletes or anonymizes a subject's rows: the trigger then logs
    /// each change without its row images (which would copy the erased data into the log), with
    /// the erasure's id in the detail.
    static ERASURE: RefCell<Option<String>> = const { RefCell::new(None) };
    /// The tables whose rows the erasure's current statement deletes or anonymizes (a registered
    /// table and the tables under it): only their rows are logged without images.
    static ERASING: RefCell<Vec<pg_sys::Oid>> = const { RefCell::new(Vec::new()) };
    /// `to_jsonb` call info per row type, kept in TopMemoryContext: `to_jsonb` reads its argument
    /// type from the call expression, so each row type gets one with a matching expression.
    static TO_JSONB: RefCell<HashMap<u32, usize>> = RefCell::new(HashMap::new());
}

unsafe fn to_jsonb_for(rowtype: pg_sys::Oid) -> *mut pg_sys::FmgrInfo {
    if let Some(p) = TO_JSONB.with(|m| m.borrow().get(&rowtype.to_u32()).copied()) {
        return p as *mut pg_sys::FmgrInfo;
    }
    // SAFETY: everything here is allocated in TopMemoryContext (palloc0, fmgr_info's fn_mcxt,
    // makeNullConst, the list, makeFuncExpr), which lives as long as the process, so the cached
    // pointer never dangles; the context is switched back before the block ends. The calls go
    // through pgrx's guarded bindings (an ERROR becomes a Rust panic), and F_TO_JSONB is a
    // built-in function, so fmgr_info finds it.
    unsafe {
        let old = pg_sys::MemoryContextSwitchTo(pg_sys::TopMemoryContext);
        let flinfo =
            pg_sys::palloc0(std::mem::size_of::<pg_sys::FmgrInfo>()) as *mut pg_sys::FmgrInfo;
        pg_sys::fmgr_info(pg_sys::Oid::from(pg_sys::F_TO_JSONB), flinfo);
        let arg = pg_sys::makeNullConst(rowtype, -1, pg_sys::InvalidOid);
        let mut args = pgrx::PgList::<pg_sys::Node>::new();
        args.push(arg as *mut pg_sys::Node);
        (*flinfo).fn_expr = pg_sys::makeFuncExpr(
            pg_sys::Oid::from(pg_sys::F_TO_JSONB),
            pg_sys::JSONBOID,
            args.into_pg(),
            pg_sys::InvalidOid,
            pg_sys::InvalidOid,
            pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
        ) as *mut pg_sys::Node;
        pg_sys::MemoryContextSwitchTo(old);
        TO_JSONB.with(|m| m.borrow_mut().insert(rowtype.to_u32(), flinfo as usize));
        flinfo
    }
}

/// The attributes of a tuple, deformed.
struct Row {
    values: Vec<pg_sys::Datum>,
    nulls: Vec<bool>,
}

unsafe fn deform(tuple: pg_sys::HeapTuple, desc: pg_sys::TupleDesc) -> Row {
    // SAFETY: the only caller, audit_row_trigger, passes the trigger relation's rd_att, valid
    // for the trigger call.
    let n = unsafe { (*desc).natts as usize };
    let mut row = Row {
        values: vec![pg_sys::Datum::from(0usize); n],
        nulls: vec![true; n],
    };
    // SAFETY: `tuple` is the trigger's old or new tuple of that relation (so it matches
    // `desc`); heap_deform_tuple writes exactly natts entries, the length of both buffers (a
    // tuple with fewer attributes gets the missing values from the descriptor).
    unsafe {
        pg_sys::heap_deform_tuple(tuple, desc, row.values.as_mut_ptr(), row.nulls.as_mut_ptr())
    };
    row
}

unsafe fn attr(desc: pg_sys::TupleDesc, i: usize) -> *mut pg_sys::FormData_pg_attribute {
    // SAFETY: `desc` is the trigger relation's valid descriptor and every caller passes
    // i < natts (it iterates over a deformed row of natts values), so the pointer stays within
    // the attrs flexible array.
    unsafe { (*desc).attrs.as_mut_ptr().add(i) }
}

unsafe fn attname(desc: pg_sys::TupleDesc, i: usize) -> String {
    // SAFETY: attr's conditions (valid desc, i < natts) hold for every caller; attname is a
    // NameData, always NUL-terminated within NAMEDATALEN, and is copied at once.
    unsafe {
        CStr::from_ptr((*attr(desc, i)).attname.data.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}

/// The value as its type's output text (what to_jsonb shows, and what a redaction token hashes).
unsafe fn output_text(desc: pg_sys::TupleDesc, i: usize, value: pg_sys::Datum) -> Vec<u8> {
    // SAFETY: attr's conditions hold (valid desc, i < natts), and callers pass only non-NULL
    // values of column i, so the column type's output function gets a datum of its type. The
    // calls are pgrx's guarded bindings (an ERROR of the output function becomes a Rust panic);
    // the output string is palloc'd in the current (trigger call's) memory context and copied
    // before it can be reset.
    unsafe {
        let mut func = pg_sys::InvalidOid;
        let mut varlena = false;
        pg_sys::getTypeOutputInfo((*attr(desc, i)).atttypid, &mut func, &mut varlena);
        let s = pg_sys::OidOutputFunctionCall(func, value);
        CStr::from_ptr(s).to_bytes().to_vec()
    }
}

/// Whether two stored values are the same bytes (after detoasting).
unsafe fn same_value(
    desc: pg_sys::TupleDesc,
    i: usize,
    a: pg_sys::Datum,
    b: pg_sys::Datum,
) -> bool {
    // SAFETY: attr's conditions hold (valid desc, i < natts), and the only caller passes two
    // non-NULL values of column i, from tuples deformed with `desc`: by value they are compared
    // as datums, otherwise they point to a varlena (detoasted or unpacked by
    // pg_detoast_datum_packed, whose copy lives in the current memory context until the bytes
    // are copied), a cstring, or attlen bytes, as attlen says.
    unsafe {
        let att = attr(desc, i);
        if (*att).attbyval {
            return a == b;
        }
        let bytes = |d: pg_sys::Datum| -> Vec<u8> {
            match (*att).attlen {
                -1 => {
                    let v = pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr());
                    pgrx::varlena::varlena_to_byte_slice(v).to_vec()
                }
                -2 => CStr::from_ptr(d.cast_mut_ptr()).to_bytes().to_vec(),
                n => std::slice::from_raw_parts(d.cast_mut_ptr::<u8>(), n as usize).to_vec(),
            }
        };
        bytes(a) == bytes(b)
    }
}

thread_local! {
    /// `json_cast_may_apply` per type, asked for every user-typed column of every audited row
    /// (encrypted columns are): cleared when a cast or a type changes, in any session.
    static CAST_RISK: RefCell<HashMap<u32, bool>> = RefCell::new(HashMap::new());
    static CAST_RISK_REGISTERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[pg_guard]
unsafe extern "C-unwind" fn forget_cast_risk(
    _arg: pg_sys::Datum,
    _cache: std::ffi::c_int,
    _hash: u32,
) {
    CAST_RISK.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            c.clear();
        }
    });
}

/// Registers the invalidation of `CAST_RISK` (from _PG_init, once per process).
pub fn register() {
    if !CAST_RISK_REGISTERED.with(|r| r.replace(true)) {
        for cache in [
            pg_sys::SysCacheIdentifier::CASTSOURCETARGET,
            pg_sys::SysCacheIdentifier::TYPEOID,
        ] {
            // SAFETY: registers a callback once per process, for a valid cache id.
            unsafe {
                pg_sys::CacheRegisterSyscacheCallback(
                    cache as i32,
                    Some(forget_cast_risk),
                    pg_sys::Datum::from(0usize),
                )
            };
        }
    }
}

/// `json_cast_may_apply`, cached until a cast or type changes.
fn json_cast_risk(typoid: pg_sys::Oid) -> bool {
    if let Some(known) = CAST_RISK.with(|c| c.borrow().get(&typoid.to_u32()).copied()) {
        return known;
    }
    // SAFETY: catalog lookups by oid.
    let risk = unsafe { json_cast_may_apply(typoid) };
    CAST_RISK.with(|c| c.borrow_mut().insert(typoid.to_u32(), risk));
    risk
}

/// Whether `to_jsonb` would convert a value of `typoid` with a cast to json or jsonb (which
/// anyone owning a type can create: the cast's function would run inside the audit trigger and
/// decide what the log says). `to_jsonb` looks through domains and into arrays and composite
/// types, and consults casts only for types that are not built in.
unsafe fn json_cast_may_apply(typoid: pg_sys::Oid) -> bool {
    // SAFETY: syscache lookups by oid.
    unsafe {
        let base = pg_sys::getBaseType(typoid);
        if base.to_u32() < pg_sys::FirstNormalObjectId {
            return false;
        }
        let element = pg_sys::get_element_type(base);
        if element != pg_sys::InvalidOid {
            return json_cast_may_apply(element);
        }
        if pg_sys::type_is_rowtype(base) {
            return true;
        }
        [pg_sys::JSONBOID, pg_sys::JSONOID].iter().any(|target| {
            pg_sys::SearchSysCacheExists(
                pg_sys::SysCacheIdentifier::CASTSOURCETARGET as i32,
                pg_sys::Datum::from(base),
                pg_sys::Datum::from(*target),
                pg_sys::Datum::from(0usize),
                pg_sys::Datum::from(0usize),
            )
        })
    }
}

/// The row as jsonb, with the `redact` columns' non-NULL values replaced by keyed hashes.
/// Columns whose types `to_jsonb` would convert by a cast are logged as their type's output
/// text instead, and the cast never runs (`to_jsonb` sees them as NULL).
unsafe fn row_jsonb(
    tuple: pg_sys::HeapTuple,
    desc: pg_sys::TupleDesc,
    row: &Row,
    redact: &[String],
    key: &encml_core::service_key::ServiceKey,
) -> pg_sys::Datum {
    // SAFETY: `tuple` and `row` are a trigger tuple of the relation whose descriptor is `desc`
    // and its deformed values (the only caller, audit_row_trigger); every index is < natts, and
    // values reach output_text only when non-NULL. heap_form_tuple gets natts values and nulls.
    // The to_jsonb call info lives in TopMemoryContext (to_jsonb_for); `text` outlives the
    // jsonb_in call that reads it. Every call is a guarded pgrx binding (jsonb_in and
    // jsonb_concat run inside DirectFunctionCall's guard), and all results are palloc'd in the
    // trigger call's memory context, which outlives the returned datum's use by `append`.
    unsafe {
        let mut by_output: Vec<usize> = Vec::new();
        for i in 0..row.values.len() {
            let att = attr(desc, i);
            if !(*att).attisdropped
                && !row.nulls[i]
                && (*att).atttypid.to_u32() >= pg_sys::FirstNormalObjectId
                && json_cast_risk((*att).atttypid)
            {
                by_output.push(i);
            }
        }
        let composite = if by_output.is_empty() {
            pg_sys::heap_copy_tuple_as_datum(tuple, desc)
        } else {
            let mut values = row.values.clone();
            let mut nulls = row.nulls.clone();
            for &i in &by_output {
                values[i] = pg_sys::Datum::from(0usize);
                nulls[i] = true;
            }
            let copy = pg_sys::heap_form_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr());
            pg_sys::heap_copy_tuple_as_datum(copy, desc)
        };
        let mut jsonb = pg_sys::FunctionCall1Coll(
            to_jsonb_for((*desc).tdtypeid),
            pg_sys::InvalidOid,
            composite,
        );
        // Which columns are logged as text: the redacted ones (as tokens) and by_output's.
        let as_text: Vec<(usize, String, bool)> = (0..row.values.len())
            .filter(|&i| !(*attr(desc, i)).attisdropped && !row.nulls[i])
            .filter_map(|i| {
                let name = attname(desc, i);
                let redacted = redact.contains(&name);
                (redacted || by_output.contains(&i)).then_some((i, name, redacted))
            })
            .collect();
        let mut tokens = serde_json::Map::new();
        if !as_text.is_empty() {
            // Tokens are HMACs of the output text, which must not depend on the writer's
            // session: equal values give equal tokens whatever its DateStyle or TimeZone.
            let types: Vec<pg_sys::Oid> = as_text
                .iter()
                .map(|(i, _, _)| (*attr(desc, *i)).atttypid)
                .collect();
            crate::audit::canonical_output::with_canonical_output(types, || {
                for (i, name, redacted) in as_text {
                    // (i < natts, and the value of column i is not NULL: filtered above.)
                    let text = output_text(desc, i, row.values[i]);
                    let value = if redacted {
                        encml_core::audit::redact(key, &text)
                    } else {
                        String::from_utf8_lossy(&text).into_owned()
                    };
                    tokens.insert(name, serde_json::Value::String(value));
                }
            });
        }
        if !tokens.is_empty() {
            let text = std::ffi::CString::new(serde_json::Value::Object(tokens).to_string())
                .expect("JSON has no NUL");
            let overlay = pg_sys::DirectFunctionCall1Coll(
                Some(jsonb_in_fmgr),
                pg_sys::InvalidOid,
                pg_sys::Datum::from(text.as_ptr()),
            );
            jsonb = pg_sys::DirectFunctionCall2Coll(
                Some(jsonb_concat_fmgr),
                pg_sys::InvalidOid,
                jsonb,
                overlay,
            );
        }
        jsonb
    }
}

unsafe fn trigger_args(trigger: *const pg_sys::Trigger) -> Vec<String> {
    // SAFETY: `trigger` is the firing trigger's tg_trigger (the only caller), valid for the
    // call; tgargs holds tgnargs NUL-terminated strings (trigger.h), each copied at once.
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

struct ErasureScope;

impl Drop for ErasureScope {
    fn drop(&mut self) {
        ERASURE.with(|e| e.borrow_mut().take());
    }
}

/// Runs `f` (the erasure) with `erasure_id` tagging the audit rows of what `erasing_in` erases.
pub fn during_erasure<R>(erasure_id: &str, f: impl FnOnce() -> R) -> R {
    ERASURE.with(|e| *e.borrow_mut() = Some(erasure_id.to_string()));
    let _scope = ErasureScope; // cleared on return and on ERROR (unwinding)
    f()
}

/// Runs `f` (the erasure's DELETE or UPDATE of `rel`) with the row images of `rel` and the
/// tables under it left out of the audit log. Rows the owners' triggers change elsewhere
/// meanwhile keep their images (attacker round 8 follow-up: every audited table's images were
/// left out during an erasure, so an owner's trigger could change any of them unseen).
pub fn erasing_in<R>(rel: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    let tables: Vec<pg_sys::Oid> = crate::audit::triggers::tree(rel)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    ERASING.with(|e| *e.borrow_mut() = tables);
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            ERASING.with(|e| e.borrow_mut().clear());
        }
    }
    let _clear = Clear;
    f()
}

unsafe fn audit_row_trigger(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: called only through the #[pg_guard] wrapper c_functions! generates, with the
    // trigger manager's fcinfo; trigger_data checks that its context is a TriggerData. Its
    // relation (with rd_att and rd_rel) is open and valid for the call. The timing and level
    // are checked before any tuple is read: a row event has tg_trigtuple, an UPDATE also
    // tg_newtuple (trigger.h), both of that relation, and TRUNCATE returns before touching
    // them. The helpers' conditions (desc is rd_att, i < natts, non-NULL values only) hold at
    // each call below.
    unsafe {
        let td = crate::audit::trigger_data(fcinfo, "encml.audit_row_trigger");
        let event = (*td).tg_event;
        let rel = (*td).tg_relation;
        let desc = (*rel).rd_att;
        let op = match event & pg_sys::TRIGGER_EVENT_OPMASK {
            pg_sys::TRIGGER_EVENT_INSERT => "INSERT",
            pg_sys::TRIGGER_EVENT_UPDATE => "UPDATE",
            pg_sys::TRIGGER_EVENT_DELETE => "DELETE",
            _ => "TRUNCATE",
        };
        // Only as audit_enable creates it: AFTER, per row for INSERT/UPDATE/DELETE, per
        // statement for TRUNCATE. Fired otherwise it would log a change that a later BEFORE
        // trigger cancels, or read a row that a statement trigger does not have.
        let after = event & pg_sys::TRIGGER_EVENT_TIMINGMASK == 0;
        let per_row = event & pg_sys::TRIGGER_EVENT_ROW != 0;
        if !after || per_row == (op == "TRUNCATE") {
            raise(
                PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
                "encml.audit_row_trigger must fire AFTER INSERT, UPDATE or DELETE FOR EACH ROW, or AFTER TRUNCATE FOR EACH STATEMENT",
            );
        }
        let own_name = crate::audit::table_name((*rel).rd_id);
        let relname = pgrx::name_data_to_str(&(*(*rel).rd_rel).relname);
        // On a Citus shard: the distributed table's name, and the shard in the detail.
        let shard = crate::pg::citus::shard_of((*rel).rd_id, relname);
        // Only on audited tables (a shard's table is audited on the coordinator): on any other
        // table the trigger would let whoever can create it compute redaction tokens of guesses.
        if shard.is_none() && crate::audit::audited::lookup((*rel).rd_id).is_none() {
            raise(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("{own_name} is not audited: encml.audit_row_trigger fires only on tables audited with encml.audit_enable"),
            );
        }
        let (table, shard_detail) = match &shard {
            Some((table, id)) => (table.clone(), Some(format!(r#"{{"citus_shard": {id}}}"#))),
            None => (own_name, None),
        };
        // (Only the rows the erasure deletes or anonymizes: an INSERT, or a row of another
        // table, changed by an owner's trigger meanwhile is logged as usual.)
        let erased_here = op != "INSERT" && ERASING.with(|e| e.borrow().contains(&(*rel).rd_id));
        let erasure = ERASURE.with(|e| e.borrow().clone()).filter(|_| erased_here);
        let erasure_detail = erasure.map(|id| {
            let mut d = serde_json::json!({ "erasure": id });
            if let Some((_, shard)) = &shard {
                d["citus_shard"] = serde_json::json!(shard);
            }
            d.to_string()
        });
        let detail = erasure_detail.as_deref().or(shard_detail.as_deref());
        let table_oid = Some((*rel).rd_id);
        if op == "TRUNCATE" || erasure_detail.is_some() {
            append(&Entry::without_rows(
                "row",
                op,
                Some(((*rel).rd_id, &table)),
                detail,
            ));
            return pg_sys::Datum::from(0usize);
        }
        let redact = trigger_args((*td).tg_trigger);
        let key = crate::keys::service::redaction_key();
        let (old, new) = match op {
            "INSERT" => (None, Some((*td).tg_trigtuple)),
            "DELETE" => (Some((*td).tg_trigtuple), None),
            _ => (Some((*td).tg_trigtuple), Some((*td).tg_newtuple)),
        };
        let old_row = old.map(|t| deform(t, desc));
        let new_row = new.map(|t| deform(t, desc));
        let changed: Option<Vec<String>> = match (&old_row, &new_row) {
            (Some(o), Some(n)) => Some(
                (0..n.values.len())
                    .filter(|&i| {
                        !(*attr(desc, i)).attisdropped
                            && (o.nulls[i] != n.nulls[i]
                                || (!n.nulls[i] && !same_value(desc, i, o.values[i], n.values[i])))
                    })
                    .map(|i| attname(desc, i))
                    .collect(),
            ),
            _ => None,
        };
        let changed_refs: Option<Vec<&str>> = changed
            .as_ref()
            .map(|c| c.iter().map(String::as_str).collect());
        let old_out = old
            .zip(old_row.as_ref())
            .map(|(t, r)| row_jsonb(t, desc, r, &redact, &key));
        let new_out = new
            .zip(new_row.as_ref())
            .map(|(t, r)| row_jsonb(t, desc, r, &redact, &key));
        append(&Entry {
            kind: "row",
            operation: op,
            table_oid,
            table_name: Some(&table),
            old_row: old_out,
            new_row: new_out,
            changed_columns: changed_refs.as_deref(),
            detail,
        });
        // An AFTER trigger's result is ignored.
        pg_sys::Datum::from(0usize)
    }
}

c_functions! {
    /// encml.audit_row_trigger(): logs row changes of an audited table
    encml_audit_row_trigger, pg_finfo_encml_audit_row_trigger => audit_row_trigger;
}
