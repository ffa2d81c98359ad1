//! Privilege escalation as security events: role changes (CREATE/ALTER/DROP/RENAME ROLE, GRANT
//! and REVOKE of roles), role attributes that bypass controls (SUPERUSER, BYPASSRLS, ...),
//! grants of the extension's admin roles and of Postgres's powerful predefined roles, and the
//! disabling of row-level security on classified or audited tables. (Changes to audit triggers
//! are seen by the event triggers of `audit::ddl`, which need no preloading.)
//! Event triggers do not fire for role commands, so this is called from the ProcessUtility hook
//! (`hooks::process_utility`) and needs shared_preload_libraries. Also COPY TO of a classified
//! table (`large_results`).
//!
//! Statements are described before they run (names copied out of the parse tree; never the
//! query text or an option's value: ALTER ROLE ... PASSWORD carries the password) and recorded
//! after they succeed, in the same transaction (DDL is transactional: a rolled-back CREATE ROLE
//! did not happen). In a database without the extension, or while it is being created, the
//! event goes to the server log and the shared queue (`queue`).

use crate::pg::roles::role_name;
use crate::security::queue;
use pgrx::prelude::*;
use pgrx::{is_a, PgList};
use serde_json::{json, Value};
use std::cell::Cell;
use std::ffi::CStr;

thread_local! {
    /// Set while a COPY statement runs, so the executor check does not count it twice.
    static IN_COPY: Cell<bool> = const { Cell::new(false) };
}

pub fn in_copy() -> bool {
    IN_COPY.with(|c| c.get())
}

/// Marks the statement as a COPY (or keeps an outer COPY's mark) until the guard is dropped.
pub fn copy_scope(copy: bool) -> CopyScope {
    CopyScope(IN_COPY.with(|c| c.replace(copy || c.get())))
}

/// Restores the COPY mark of the statement around, by return or by error.
pub struct CopyScope(bool);

impl Drop for CopyScope {
    fn drop(&mut self) {
        IN_COPY.with(|c| c.set(self.0));
    }
}

/// Attributes whose grant lets a role bypass the extension's controls.
const CRITICAL_ATTRIBUTES: [&str; 2] = ["superuser", "bypassrls"];
/// Predefined roles that read or write any data or the server's files.
const POWERFUL_ROLES: [&str; 6] = [
    "pg_read_all_data",
    "pg_write_all_data",
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
    "pg_signal_backend",
];

/// What to record once the statement succeeded.
pub enum Pending {
    Event {
        operation: &'static str,
        table: Option<pg_sys::Oid>,
        detail: Value,
    },
    /// ALTER TABLE: which table and what was disabled; checked against the classification after.
    Table {
        relid: pg_sys::Oid,
        disabled: Vec<(&'static str, String)>,
    },
    Copy {
        relid: pg_sys::Oid,
    },
}

unsafe fn cstr(p: *const std::ffi::c_char) -> Option<String> {
    // SAFETY: read only when non-null; every caller passes a string field of the parse tree
    // being described (NUL-terminated, alive for the hook call), and it is copied at once.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

unsafe fn role_spec(spec: *mut pg_sys::RoleSpec) -> String {
    if spec.is_null() {
        return String::new();
    }
    // SAFETY: `spec` is non-null (tested above) and a RoleSpec node of the parse tree being
    // described, alive for the call (every caller takes it from a RoleSpec field or list); its
    // rolename is read through cstr. GetSessionUserId and GetUserId only return globals.
    unsafe {
        match (*spec).roletype {
            pg_sys::RoleSpecType::ROLESPEC_CSTRING => cstr((*spec).rolename).unwrap_or_default(),
            pg_sys::RoleSpecType::ROLESPEC_SESSION_USER => role_name(pg_sys::GetSessionUserId()),
            pg_sys::RoleSpecType::ROLESPEC_PUBLIC => "public".into(),
            _ => role_name(pg_sys::GetUserId()),
        }
    }
}

/// The oids of the roles a DROP ROLE or DROP OWNED names (those that do not exist left out).
///
/// # Safety
/// `list` is NULL or a List of RoleSpec nodes of a parse tree that lives for the call.
pub unsafe fn role_oids(list: *mut pg_sys::List) -> Vec<pg_sys::Oid> {
    // SAFETY: per the contract, `list` is NULL (an empty PgList) or a List of non-null RoleSpec
    // pointers alive for the call; get_rolespec_oid with missing_ok returns InvalidOid for a
    // missing role instead of raising, and is a guarded binding.
    unsafe {
        PgList::<pg_sys::RoleSpec>::from_pg(list)
            .iter_ptr()
            .filter(|r| (**r).roletype != pg_sys::RoleSpecType::ROLESPEC_PUBLIC)
            .map(|r| pg_sys::get_rolespec_oid(r, true))
            .filter(|oid| *oid != pg_sys::InvalidOid)
            .collect()
    }
}

unsafe fn role_list(list: *mut pg_sys::List) -> Vec<String> {
    // SAFETY: every caller passes a RoleSpec list of the parse tree being described (DROP ROLE's
    // roles, GRANT's grantees, or a role-list option checked to be a T_List), or NULL, which
    // PgList reads as empty; each element is a non-null RoleSpec alive for the call.
    unsafe {
        PgList::<pg_sys::RoleSpec>::from_pg(list)
            .iter_ptr()
            .map(|r| role_spec(r))
            .collect()
    }
}

/// Role options by name: `superuser`, `nosuperuser`, `password`, `rolemembers: [...]` (values of
/// passwords and limits are never copied).
unsafe fn role_options(list: *mut pg_sys::List) -> (Vec<Value>, Vec<String>) {
    let mut options = Vec::new();
    let mut granted = Vec::new();
    // SAFETY: `list` is the options List of a CREATE or ALTER ROLE parse tree (its only callers,
    // in describe), NULL or DefElem nodes alive for the call. Each `arg` is tested for NULL and
    // its node tag before the cast: a T_Boolean is a Boolean node, and a T_List under the role
    // list options is a List of RoleSpec (gram.y's role_list).
    unsafe {
        for d in PgList::<pg_sys::DefElem>::from_pg(list).iter_ptr() {
            let name = cstr((*d).defname).unwrap_or_default();
            let arg = (*d).arg;
            if !arg.is_null() && is_a(arg, pg_sys::NodeTag::T_Boolean) {
                let on = (*(arg as *mut pg_sys::Boolean)).boolval;
                if on && CRITICAL_ATTRIBUTES.contains(&name.as_str()) {
                    granted.push(name.clone());
                }
                options.push(json!(if on { name } else { format!("no{name}") }));
            } else if !arg.is_null()
                && is_a(arg, pg_sys::NodeTag::T_List)
                && matches!(name.as_str(), "rolemembers" | "addroleto" | "adminmembers")
            {
                options.push(json!({ name: role_list(arg as *mut pg_sys::List) }));
            } else {
                options.push(json!(name));
            }
        }
    }
    (options, granted)
}

/// What the statement will change that is worth an event, described before it runs (the hook in
/// `hooks::process_utility`).
///
/// # Safety
/// `stmt` is a utility statement's parse tree that lives for the call.
pub unsafe fn describe(stmt: *mut pg_sys::Node) -> Option<Pending> {
    use pg_sys::NodeTag::*;
    // SAFETY: `stmt` is a parse tree alive for the call (the contract); is_a tests for NULL
    // and reads the tag, and each cast is to the struct that tag names. The lists read are the
    // ones those structs declare: DefElem options, RoleSpec lists, GrantRoleStmt's AccessPriv
    // granted_roles and AlterTableStmt's AlterTableCmd cmds, all non-null elements; string and
    // RangeVar fields are tested for NULL before use. The catalog lookups are guarded bindings.
    unsafe {
        if is_a(stmt, T_CreateRoleStmt) {
            let s = stmt as *mut pg_sys::CreateRoleStmt;
            let (options, granted) = role_options((*s).options);
            let role = cstr((*s).role).unwrap_or_default();
            return Some(Pending::Event {
                operation: if granted.contains(&"superuser".to_string()) {
                    "role_superuser"
                } else {
                    "create_role"
                },
                table: None,
                detail: json!({ "statement": "CREATE ROLE", "role": role, "options": options, "attributes_granted": granted }),
            });
        }
        if is_a(stmt, T_AlterRoleStmt) {
            let s = stmt as *mut pg_sys::AlterRoleStmt;
            let (options, granted) = role_options((*s).options);
            let operation = if granted.contains(&"superuser".to_string()) {
                "role_superuser"
            } else if !granted.is_empty() {
                "role_bypassrls"
            } else {
                "alter_role"
            };
            return Some(Pending::Event {
                operation,
                table: None,
                detail: json!({ "statement": "ALTER ROLE", "role": role_spec((*s).role), "options": options,
                                "attributes_granted": granted }),
            });
        }
        if is_a(stmt, T_DropRoleStmt) {
            let s = stmt as *mut pg_sys::DropRoleStmt;
            return Some(Pending::Event {
                operation: "drop_role",
                table: None,
                detail: json!({ "statement": "DROP ROLE", "roles": role_list((*s).roles) }),
            });
        }
        if is_a(stmt, T_RenameStmt) {
            let s = stmt as *mut pg_sys::RenameStmt;
            if (*s).renameType == pg_sys::ObjectType::OBJECT_ROLE {
                return Some(Pending::Event {
                    operation: "rename_role",
                    table: None,
                    detail: json!({ "statement": "ALTER ROLE RENAME", "role": cstr((*s).subname),
                                    "new_name": cstr((*s).newname) }),
                });
            }
            return None;
        }
        if is_a(stmt, T_GrantRoleStmt) {
            let s = stmt as *mut pg_sys::GrantRoleStmt;
            let roles: Vec<String> = PgList::<pg_sys::AccessPriv>::from_pg((*s).granted_roles)
                .iter_ptr()
                .filter_map(|p| cstr((*p).priv_name))
                .collect();
            let grantees = role_list((*s).grantee_roles);
            let powerful = (*s).is_grant
                && roles
                    .iter()
                    .any(|r| r.starts_with("encml_") || POWERFUL_ROLES.contains(&r.as_str()));
            return Some(Pending::Event {
                operation: if powerful {
                    "admin_role_granted"
                } else if (*s).is_grant {
                    "grant_role"
                } else {
                    "revoke_role"
                },
                table: None,
                detail: json!({ "statement": if (*s).is_grant { "GRANT" } else { "REVOKE" },
                                "roles": roles, "grantees": grantees, "admin_option": (*s).admin_opt }),
            });
        }
        if is_a(stmt, T_AlterTableStmt) {
            let s = stmt as *mut pg_sys::AlterTableStmt;
            let mut disabled = Vec::new();
            for c in PgList::<pg_sys::AlterTableCmd>::from_pg((*s).cmds).iter_ptr() {
                let what = match (*c).subtype {
                    pg_sys::AlterTableType::AT_DisableRowSecurity => {
                        ("rls_disabled", "DISABLE ROW LEVEL SECURITY".to_string())
                    }
                    pg_sys::AlterTableType::AT_NoForceRowSecurity => {
                        ("rls_disabled", "NO FORCE ROW LEVEL SECURITY".to_string())
                    }
                    _ => continue,
                };
                disabled.push(what);
            }
            if disabled.is_empty() || (*s).relation.is_null() {
                return None;
            }
            return crate::pg::catalog_reads::relation_named((*s).relation)
                .map(|relid| Pending::Table { relid, disabled });
        }
        if is_a(stmt, T_CopyStmt) {
            let s = stmt as *mut pg_sys::CopyStmt;
            if (*s).is_from || (*s).relation.is_null() {
                return None;
            }
            return crate::pg::catalog_reads::relation_named((*s).relation)
                .map(|relid| Pending::Copy { relid });
        }
        None
    }
}

fn extension_here() -> bool {
    // SAFETY: creating_extension is a plain global of this single-threaded backend; the other
    // calls are guarded bindings reading backend state, and the catalog lookup (missing_ok, so
    // InvalidOid rather than an ERROR) runs only inside a transaction, tested just before it.
    unsafe {
        !pg_sys::creating_extension
            && pg_sys::IsTransactionState()
            && !pg_sys::RecoveryInProgress()
            && pg_sys::get_extension_oid(c"pg_encrypt_ml".as_ptr(), true) != pg_sys::InvalidOid
    }
}

fn emit(operation: &str, table: Option<(pg_sys::Oid, &str)>, mut detail: Value) {
    if extension_here() {
        crate::events::record(operation, table, detail);
    } else {
        if let Some((_, name)) = table {
            detail["table"] = json!(name);
        }
        let addr = crate::pg::client_address::current();
        // SAFETY: GetUserId takes no arguments and only returns a backend global; it cannot
        // ERROR.
        queue::push_event(
            operation,
            &role_name(unsafe { pg_sys::GetUserId() }),
            addr,
            detail,
        );
    }
}

/// Whether the table is audited or has classified columns.
fn protected(relid: pg_sys::Oid) -> bool {
    if !extension_here() {
        return false;
    }
    crate::pg::identity::as_extension_owner(|| {
        crate::pg::catalog_reads::select_one::<bool>(
            "SELECT EXISTS (SELECT FROM encml.column_classes WHERE table_oid = $1) \
                 OR EXISTS (SELECT FROM encml.audited_tables WHERE table_oid = $1)",
            &[crate::pg::catalog_reads::arg(relid)],
        )
        .unwrap_or(false)
    })
}

/// Records what `describe` found, once the statement succeeded with `rows` rows processed.
pub fn record(pending: Pending, rows: u64) {
    match pending {
        Pending::Event {
            operation,
            table,
            detail,
        } => {
            let name = table.map(crate::audit::table_name);
            emit(operation, table.zip(name.as_deref()), detail);
        }
        Pending::Table { relid, disabled } => {
            if !protected(relid) {
                return;
            }
            let name = crate::audit::table_name(relid);
            for (operation, what) in disabled {
                emit(
                    operation,
                    Some((relid, &name)),
                    json!({ "statement": "ALTER TABLE", "action": what }),
                );
            }
        }
        Pending::Copy { relid } => {
            if extension_here() {
                crate::security::large_results::record_if_classified("copy_to", &[relid], rows);
                crate::audit::reads::check_copy(relid, rows);
            }
        }
    }
}
