//! Writing audit rows: a saved SPI plan per statement, run with the extension owner's rights
//! (the caller may not touch the log), with the caller's role captured before the switch.

use crate::pg::errors::raise;
use crate::pg::identity::extension_owner;
use pgrx::{pg_sys, PgSqlErrorCode};
use std::cell::Cell;
use std::ffi::CStr;

thread_local! {
    /// Set while the extension itself updates or deletes log rows (sealing, purging).
    static MAINTAINING: Cell<u32> = const { Cell::new(0) };
}

/// Whether the log's guard should let an UPDATE or DELETE through.
pub fn maintaining() -> bool {
    MAINTAINING.with(|m| m.get() > 0)
}

/// Runs `f` with log maintenance allowed.
pub fn while_maintaining<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            MAINTAINING.with(|m| m.set(m.get().saturating_sub(1)));
        }
    }
    MAINTAINING.with(|m| m.set(m.get() + 1));
    let _reset = Reset;
    f()
}

/// A statement prepared once per backend and kept (SPI_keepplan); Postgres re-plans it when the
/// objects it uses change.
pub struct SavedPlan {
    sql: &'static CStr,
    types: &'static [pg_sys::Oid],
    plan: &'static std::thread::LocalKey<Cell<pg_sys::SPIPlanPtr>>,
}

impl SavedPlan {
    pub const fn new(
        sql: &'static CStr,
        types: &'static [pg_sys::Oid],
        plan: &'static std::thread::LocalKey<Cell<pg_sys::SPIPlanPtr>>,
    ) -> Self {
        SavedPlan { sql, types, plan }
    }

    /// Executes the statement with the extension owner's rights; `None` values are NULL.
    pub fn run_as_owner(&self, values: &[Option<pg_sys::Datum>]) {
        assert_eq!(values.len(), self.types.len());
        let owner = extension_owner();
        // SAFETY: pgrx's guarded bindings throughout (an ERROR becomes a Rust panic, so `Restore`
        // puts the caller's user id and security context back on every exit). `user` and `sec`
        // are locals GetUserIdAndSecContext writes. The plan is prepared once and moved out of
        // SPI's procedure context by SPI_keepplan (checked), so the pointer cached in the
        // thread-local stays valid for the backend's life. `datums` and `nulls` both have
        // types.len() entries (asserted above), the argument count the plan was prepared with,
        // and live until SPI_execute_plan returns.
        unsafe {
            let mut user = pg_sys::InvalidOid;
            let mut sec = 0i32;
            pg_sys::GetUserIdAndSecContext(&mut user, &mut sec);
            struct Restore(pg_sys::Oid, i32);
            impl Drop for Restore {
                fn drop(&mut self) {
                    // SAFETY: restores the pair GetUserIdAndSecContext returned; it only sets two
                    // backend globals and cannot ERROR (so it is safe during an unwind too).
                    unsafe { pg_sys::SetUserIdAndSecContext(self.0, self.1) };
                }
            }
            let _restore = Restore(user, sec);
            pg_sys::SetUserIdAndSecContext(
                owner,
                sec | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
            );
            if pg_sys::SPI_connect() != pg_sys::SPI_OK_CONNECT as i32 {
                crate::pg::errors::internal("SPI_connect failed");
            }
            let mut plan = self.plan.with(|p| p.get());
            if plan.is_null() {
                let mut types = self.types.to_vec();
                plan =
                    pg_sys::SPI_prepare(self.sql.as_ptr(), types.len() as i32, types.as_mut_ptr());
                if plan.is_null() || pg_sys::SPI_keepplan(plan) != 0 {
                    crate::pg::errors::internal("could not prepare an audit statement");
                }
                self.plan.with(|p| p.set(plan));
            }
            let mut datums: Vec<pg_sys::Datum> = values
                .iter()
                .map(|v| v.unwrap_or(pg_sys::Datum::from(0usize)))
                .collect();
            let nulls: Vec<std::ffi::c_char> = values
                .iter()
                .map(|v| if v.is_some() { b' ' } else { b'n' } as std::ffi::c_char)
                .collect();
            let rc = pg_sys::SPI_execute_plan(plan, datums.as_mut_ptr(), nulls.as_ptr(), false, 0);
            if rc < 0 {
                crate::pg::errors::internal(format!("audit statement failed ({rc})"));
            }
            pg_sys::SPI_finish();
        }
    }
}

/// One audit row before it is written.
pub struct Entry<'a> {
    pub kind: &'a str,
    pub operation: &'a str,
    pub table_oid: Option<pg_sys::Oid>,
    pub table_name: Option<&'a str>,
    /// jsonb datums (the row trigger builds them).
    pub old_row: Option<pg_sys::Datum>,
    pub new_row: Option<pg_sys::Datum>,
    pub changed_columns: Option<&'a [&'a str]>,
    pub detail: Option<&'a str>,
}

impl<'a> Entry<'a> {
    /// A row without row images: an event, an anchor, a checkpoint, a TRUNCATE.
    pub fn without_rows(
        kind: &'a str,
        operation: &'a str,
        table: Option<(pg_sys::Oid, &'a str)>,
        detail: Option<&'a str>,
    ) -> Self {
        Entry {
            kind,
            operation,
            table_oid: table.map(|t| t.0),
            table_name: table.map(|t| t.1),
            old_row: None,
            new_row: None,
            changed_columns: None,
            detail,
        }
    }
}

extern "C-unwind" {
    // Not in pgrx's bindings (commands/sequence.h); `check_permissions = false` because the
    // extension writes its own table on behalf of a caller who may not.
    fn nextval_internal(relid: pg_sys::Oid, check_permissions: bool) -> i64;
    #[link_name = "jsonb_in"]
    fn jsonb_in_fmgr(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum;
    #[link_name = "inet_in"]
    fn inet_in_fmgr(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum;
}

/// The columns of encml.audit_log, in order (checked against the table on first use).
const COLUMNS: [&str; 20] = [
    "id",
    "logged_at",
    "xact_started_at",
    "xact_id",
    "session_role",
    "effective_role",
    "client_addr",
    "application_name",
    "tenant",
    "kind",
    "operation",
    "table_oid",
    "table_name",
    "old_row",
    "new_row",
    "changed_columns",
    "detail",
    "seq",
    "mac",
    "mac_key",
];

thread_local! {
    /// The client address of this session, as text (it does not change while connected).
    static CLIENT_ADDR: std::cell::RefCell<Option<Option<String>>> = const { std::cell::RefCell::new(None) };
    static LAYOUT_CHECKED: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
}

thread_local! {
    /// encml.audit_log and its identity sequence, until a relcache invalidation of the table
    /// (or a full reset) says they may have changed (the extension dropped and created again).
    static LOG_REL: Cell<(pg_sys::Oid, pg_sys::Oid)> =
        const { Cell::new((pg_sys::InvalidOid, pg_sys::InvalidOid)) };
    static CALLBACK_REGISTERED: Cell<bool> = const { Cell::new(false) };
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn forget_log_relation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    LOG_REL.with(|c| {
        if relid == pg_sys::InvalidOid || relid == c.get().0 {
            c.set((pg_sys::InvalidOid, pg_sys::InvalidOid));
        }
    });
}

fn log_relation() -> (pg_sys::Oid, pg_sys::Oid) {
    let cached = LOG_REL.with(|c| c.get());
    if cached.0 != pg_sys::InvalidOid {
        return cached;
    }
    // SAFETY: catalog lookups through pgrx's guarded bindings (getIdentitySequence raises, as a
    // Rust panic, if the log has no identity column); the relcache callback is registered once
    // per process (CALLBACK_REGISTERED) and is a #[pg_guard] function.
    unsafe {
        if !CALLBACK_REGISTERED.with(|c| c.replace(true)) {
            crate::pg::invalidation::on_relcache(forget_log_relation);
        }
        // Rows go to the unsealed partition (or, on a 0.1.0 schema, the one table); ids come
        // from the log's identity sequence.
        let log = crate::pg::catalog_reads::extension_relation(c"audit_log");
        let relid = crate::audit::partitions::unsealed_relation();
        if log == pg_sys::InvalidOid || relid == pg_sys::InvalidOid {
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                "encml.audit_log is missing",
            );
        }
        let seq = pg_sys::getIdentitySequence(log, 1, false);
        LOG_REL.with(|c| c.set((relid, seq)));
        (relid, seq)
    }
}

/// The client's address, from the connection's socket (no query: an SPI query here ran the
/// executor hooks again, whose read auditing wrote a row and came back here while the cache was
/// borrowed: "RefCell already borrowed" on the first decrypt of a read-audited table).
fn client_addr() -> Option<String> {
    if let Some(addr) = CLIENT_ADDR.with(|c| c.borrow().clone()) {
        return addr;
    }
    let addr = crate::pg::client_address::current().map(|a| a.to_string());
    CLIENT_ADDR.with(|c| *c.borrow_mut() = Some(addr.clone()));
    addr
}

unsafe fn cstring_in(
    f: unsafe extern "C-unwind" fn(pg_sys::FunctionCallInfo) -> pg_sys::Datum,
    s: &str,
) -> pg_sys::Datum {
    let c = std::ffi::CString::new(s).unwrap_or_default();
    // SAFETY: every caller passes a type's fmgr input function (inet_in, jsonb_in), which
    // takes one cstring; `c` is NUL-terminated and outlives the call. DirectFunctionCall1Coll is
    // a guarded binding, so the input function's ERROR on bad text becomes a Rust panic.
    unsafe {
        pg_sys::DirectFunctionCall1Coll(
            Some(f),
            pg_sys::InvalidOid,
            pg_sys::Datum::from(c.as_ptr()),
        )
    }
}

fn text_datum(s: &str) -> pg_sys::Datum {
    use pgrx::datum::IntoDatum;
    s.into_datum().expect("text")
}

/// Appends `entry` to the log in the caller's transaction, as the current role and tenant.
///
/// The hot path of every audited row change: the row is formed here and inserted with
/// `CatalogTupleInsert` (heap insert, WAL and TOAST; the unsealed partition has no index), without planning or
/// executing an INSERT statement, which costs several times more than the write itself.
pub fn append(entry: &Entry) {
    use pgrx::datum::IntoDatum;
    // SAFETY: `rel` comes from table_open (ERRORs rather than returning NULL) and stays open,
    // locked, until table_close, so rd_att is valid. The layout check (re-run whenever natts
    // differs) ensures the relation has exactly the 20 columns `values` and `nulls` hold, so
    // heap_form_tuple reads within them; attribute indexes are < natts. application_name is the
    // GUC's NUL-terminated string, tested for NULL and copied at once. nextval_internal, not
    // a pgrx binding, is called through pg_guard_ffi_boundary like the bindings are, so its
    // ERROR (a read-only transaction, a lock wait cancelled) unwinds these frames instead of
    // longjmp-ing over them. The datums are palloc'd in the current memory context and are
    // copied by heap_form_tuple before this returns.
    unsafe {
        let (relid, seq) = log_relation();
        let rel = pg_sys::table_open(relid, pg_sys::RowExclusiveLock as i32);
        let desc = (*rel).rd_att;
        if LAYOUT_CHECKED.with(|c| c.get()) != relid || (*desc).natts as usize != COLUMNS.len() {
            let names: Vec<String> = (0..(*desc).natts as usize)
                .map(|i| {
                    let att = (*desc).attrs.as_ptr().add(i);
                    CStr::from_ptr((*att).attname.data.as_ptr())
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            if names != COLUMNS {
                crate::pg::errors::raise_full(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    "encml.audit_log does not have the columns this library writes",
                    Some(format!(
                        "The loaded library is version {}; the table was changed by hand or belongs to another schema version.",
                        env!("CARGO_PKG_VERSION")
                    )),
                    Some("Run ALTER EXTENSION pg_encrypt_ml UPDATE; a column added by hand must be dropped.".into()),
                );
            }
            LAYOUT_CHECKED.with(|c| c.set(relid));
        }
        let role = crate::pg::roles::role_name(pg_sys::GetUserId());
        let session = crate::pg::roles::role_name(pg_sys::GetSessionUserId());
        let tenant = crate::keys::tenant_context::current();
        let app = {
            let p = pg_sys::application_name;
            (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
        };
        let mut values = [pg_sys::Datum::from(0usize); 20];
        let mut nulls = [true; 20];
        let mut set = |i: usize, v: Option<pg_sys::Datum>| {
            if let Some(d) = v {
                values[i] = d;
                nulls[i] = false;
            }
        };
        set(
            0,
            Some(pg_sys::Datum::from(pg_sys::ffi::pg_guard_ffi_boundary(
                || nextval_internal(seq, false),
            ))),
        );
        set(1, Some(pg_sys::Datum::from(pg_sys::GetCurrentTimestamp())));
        set(
            2,
            Some(pg_sys::Datum::from(
                pg_sys::GetCurrentTransactionStartTimestamp(),
            )),
        );
        set(
            3,
            Some(pg_sys::Datum::from(pg_sys::GetTopFullTransactionId().value)),
        );
        set(4, Some(text_datum(&session)));
        set(5, Some(text_datum(&role)));
        set(6, client_addr().map(|a| cstring_in(inet_in_fmgr, &a)));
        set(7, app.as_deref().map(text_datum));
        set(8, tenant.as_deref().map(text_datum));
        set(9, Some(text_datum(entry.kind)));
        set(10, Some(text_datum(entry.operation)));
        set(11, entry.table_oid.map(pg_sys::Datum::from));
        set(12, entry.table_name.map(text_datum));
        set(13, entry.old_row);
        set(14, entry.new_row);
        set(
            15,
            entry.changed_columns.map(|c| {
                c.iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<String>>()
                    .into_datum()
                    .expect("text[]")
            }),
        );
        set(16, entry.detail.map(|j| cstring_in(jsonb_in_fmgr, j)));
        let tuple = pg_sys::heap_form_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr());
        pg_sys::CatalogTupleInsert(rel, tuple);
        pg_sys::heap_freetuple(tuple);
        pg_sys::table_close(rel, pg_sys::NoLock as i32);
    }
}
