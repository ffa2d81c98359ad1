//! Writing audit rows: a saved SPI plan per statement, run with the extension owner's rights
//! (the caller may not touch the log), with the caller's role captured before the switch.

use crate::pg::catalog_access::extension_owner;
use crate::pg::errors::raise;
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
        unsafe {
            let mut user = pg_sys::InvalidOid;
            let mut sec = 0i32;
            pg_sys::GetUserIdAndSecContext(&mut user, &mut sec);
            struct Restore(pg_sys::Oid, i32);
            impl Drop for Restore {
                fn drop(&mut self) {
                    unsafe { pg_sys::SetUserIdAndSecContext(self.0, self.1) };
                }
            }
            let _restore = Restore(user, sec);
            pg_sys::SetUserIdAndSecContext(
                owner,
                sec | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
            );
            if pg_sys::SPI_connect() != pg_sys::SPI_OK_CONNECT as i32 {
                raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, "SPI_connect failed");
            }
            let mut plan = self.plan.with(|p| p.get());
            if plan.is_null() {
                let mut types = self.types.to_vec();
                plan =
                    pg_sys::SPI_prepare(self.sql.as_ptr(), types.len() as i32, types.as_mut_ptr());
                if plan.is_null() || pg_sys::SPI_keepplan(plan) != 0 {
                    raise(
                        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                        "could not prepare an audit statement",
                    );
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
                raise(
                    PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                    format!("audit statement failed ({rc})"),
                );
            }
            pg_sys::SPI_finish();
        }
    }
}

thread_local! {
    static INSERT_PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
}

/// One audit row before it is written.
pub struct Entry<'a> {
    pub kind: &'a str,
    pub operation: &'a str,
    pub table_oid: Option<pg_sys::Oid>,
    pub table_name: Option<&'a str>,
    pub old_row: Option<&'a str>,
    pub new_row: Option<&'a str>,
    pub changed_columns: Option<&'a str>,
    pub detail: Option<&'a str>,
}

static INSERT: SavedPlan = SavedPlan::new(
    c"INSERT INTO encml.audit_log (xact_id, effective_role, tenant, kind, operation, table_oid, \
       table_name, old_row, new_row, changed_columns, detail) \
      VALUES (pg_catalog.pg_current_xact_id(), $1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, \
       $9::text[], $10::jsonb)",
    &[
        pg_sys::TEXTOID,
        pg_sys::TEXTOID,
        pg_sys::TEXTOID,
        pg_sys::TEXTOID,
        pg_sys::OIDOID,
        pg_sys::TEXTOID,
        pg_sys::TEXTOID,
        pg_sys::TEXTOID,
        pg_sys::TEXTOID,
        pg_sys::TEXTOID,
    ],
    &INSERT_PLAN,
);

fn text(s: Option<&str>) -> Option<pg_sys::Datum> {
    use pgrx::datum::IntoDatum;
    s.and_then(|s| s.into_datum())
}

/// Appends `entry` to the log in the caller's transaction, as the current role and tenant.
pub fn append(entry: &Entry) {
    use pgrx::datum::IntoDatum;
    let role = crate::pg::catalog_access::role_name(unsafe { pg_sys::GetUserId() });
    let tenant = crate::pg::tenant::current();
    INSERT.run_as_owner(&[
        text(Some(&role)),
        text(tenant.as_deref()),
        text(Some(entry.kind)),
        text(Some(entry.operation)),
        entry.table_oid.and_then(|o| o.into_datum()),
        text(entry.table_name),
        text(entry.old_row),
        text(entry.new_row),
        text(entry.changed_columns),
        text(entry.detail),
    ]);
}
