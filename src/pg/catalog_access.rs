//! Running catalog queries as the extension owner, for a caller who may not read the catalog.
//!
//! The SQL functions are invoker-rights: they identify the calling role first (`caller()`), do
//! every permission check against it, and only then switch to the extension owner for the catalog
//! work itself, with `search_path` pinned to `pg_catalog, pg_temp` so that no object of the caller
//! can be resolved while running with the owner's rights. Postgres restores both the user id and
//! the GUC nest level on (sub)transaction abort; the guard restores them on success.

use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::Cell;

thread_local! {
    static OWNER: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
}

/// The role calling us (current_user at entry: SET ROLE and SECURITY DEFINER callers count).
pub fn caller() -> pg_sys::Oid {
    unsafe { pg_sys::GetUserId() }
}

pub fn is_superuser(role: pg_sys::Oid) -> bool {
    unsafe { pg_sys::superuser_arg(role) }
}

/// Whether `role` has the privileges of the role named `group` (inherited membership, as GRANT).
pub fn has_privs_of_role_named(role: pg_sys::Oid, group: &str) -> bool {
    let c = std::ffi::CString::new(group).expect("role names have no NUL");
    let group_oid = unsafe { pg_sys::get_role_oid(c.as_ptr(), true) };
    group_oid != pg_sys::InvalidOid && unsafe { pg_sys::has_privs_of_role(role, group_oid) }
}

pub fn role_name(role: pg_sys::Oid) -> String {
    unsafe {
        let p = pg_sys::GetUserNameFromId(role, true);
        if p.is_null() {
            format!("role {}", role.to_u32())
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// Forgets the cached owner (the extension may have been dropped and created again).
pub fn forget_owner() {
    OWNER.with(|o| o.set(pg_sys::InvalidOid));
}

fn extension_owner() -> pg_sys::Oid {
    let cached = OWNER.with(|o| o.get());
    if cached != pg_sys::InvalidOid {
        return cached;
    }
    let owner = select_one::<pg_sys::Oid>(
        "SELECT extowner FROM pg_catalog.pg_extension \
         WHERE extname OPERATOR(pg_catalog.=) 'pg_encrypt_ml'",
        &[],
    )
    .unwrap_or_else(|| {
        crate::pg::errors::raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            "extension pg_encrypt_ml is not installed in this database",
        )
    });
    OWNER.with(|o| o.set(owner));
    owner
}

/// The first column of the first row of a read-only query. Reads go through `select` (not
/// pgrx's `Spi::get_one`, which marks the transaction as writing and so fails in parallel workers).
pub fn select_one<T: pgrx::datum::FromDatum + pgrx::datum::IntoDatum>(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
) -> Option<T> {
    Spi::connect(|client| {
        client
            .select(sql, Some(1), args)
            .and_then(|t| {
                if t.is_empty() {
                    Ok(None)
                } else {
                    t.first().get::<T>(1)
                }
            })
            .unwrap_or_else(|e| {
                crate::pg::errors::raise(
                    PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                    format!("key catalog query failed: {e}"),
                )
            })
    })
}

struct Restore {
    user: pg_sys::Oid,
    sec_context: i32,
    guc_nest: i32,
}

impl Drop for Restore {
    fn drop(&mut self) {
        unsafe {
            if !std::thread::panicking() {
                pg_sys::AtEOXact_GUC(true, self.guc_nest);
            }
            pg_sys::SetUserIdAndSecContext(self.user, self.sec_context);
        }
    }
}

/// Runs `f` with the extension owner's rights and a pinned search_path.
pub fn as_extension_owner<R>(f: impl FnOnce() -> R) -> R {
    let owner = extension_owner();
    let mut user = pg_sys::InvalidOid;
    let mut sec_context = 0i32;
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut sec_context);
        let guc_nest = pg_sys::NewGUCNestLevel();
        let _restore = Restore {
            user,
            sec_context,
            guc_nest,
        };
        pg_sys::SetUserIdAndSecContext(
            owner,
            sec_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        );
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            c"pg_catalog, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        f()
    }
}
