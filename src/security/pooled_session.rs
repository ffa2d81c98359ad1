//! Sessions of a transaction-pooling pooler's role (`encml.tenant_scope = 'transaction'`,
//! docs/operations.md "Connection poolers"): the role's later sessions serve other clients, so
//! a client (an application's SQL injection, say) must not leave settings behind for them.
//! `ALTER ROLE` (its settings, and the role itself: a role may change its own password, which
//! would lock the pooler out) and `ALTER DATABASE ... SET`/`RESET` are refused there (a setting
//! naming a schema of the attacker's in `search_path` ran the attacker's functions in every later
//! client's transactions). What a client leaves in the
//! server session itself (settings, temporary objects, prepared statements) the pooler's reset
//! query clears: `server_reset_query = DISCARD ALL` with `server_reset_query_always = 1`.

use crate::keys::tenant_context::{TenantScope, TENANT_SCOPE};
use crate::pg::errors::raise_full;
use pgrx::{is_a, pg_sys, PgSqlErrorCode};

/// Before a utility statement runs: refuses ALTER ROLE and persistent database settings in a
/// pooled session.
///
/// # Safety
/// `stmt` is the utility statement's parse tree (not NULL).
pub unsafe fn before_utility(stmt: *mut pg_sys::Node) {
    if TENANT_SCOPE.get() != TenantScope::Transaction {
        return;
    }
    // SAFETY: the statement's own parse tree; only its tag is read.
    let persistent = unsafe {
        is_a(stmt, pg_sys::NodeTag::T_AlterRoleSetStmt)
            || is_a(stmt, pg_sys::NodeTag::T_AlterRoleStmt)
            || is_a(stmt, pg_sys::NodeTag::T_AlterDatabaseSetStmt)
    };
    if persistent {
        raise_full(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "roles and database settings cannot be changed in a session with encml.tenant_scope = transaction",
            Some(
                "This is a transaction-pooling pooler's session: the settings would apply to the \
                 sessions that serve its other clients."
                    .into(),
            ),
            Some("Change them in a direct connection of an administrator.".into()),
        );
    }
}
