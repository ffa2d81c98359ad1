//! What the extension grants to roles, by role oid: key grants, clearances, tenant memberships
//! and privacy budgets. Postgres keeps a role from being dropped while it holds privileges in a
//! database, and DROP OWNED BY revokes them; these follow the same rules (docs/keys.md "Roles
//! that are dropped"). Without them a dropped role's rows stayed behind with its oid, which a
//! role created later can get (oids wrap around), and with it the dropped role's keys.
//! Called from the ProcessUtility hook (`security::privilege_changes`), so with the library
//! preloaded.

use crate::pg::catalog_reads::{arg, extension_relation, read_rows};
use crate::pg::errors::raise_full;
use crate::pg::errors::OrSpiFailed;
use crate::pg::identity::as_extension_owner;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// (table, role column, what a row is) of everything granted to a role by oid.
const HELD: [(&str, &str, &str); 4] = [
    ("key_grants", "grantee", "key grant"),
    ("clearances", "grantee", "clearance"),
    ("tenant_members", "member", "tenant membership"),
    ("privacy_budgets", "analyst", "privacy budget"),
];

/// Whether the extension is installed in this database (its catalog is there) and this node
/// keeps it: on Citus the coordinator does, and its changes of the catalog (reference tables)
/// reach the workers; a DROP ROLE or DROP OWNED that Citus propagates to a worker is left alone
/// there.
fn installed() -> bool {
    extension_relation(c"key_grants") != pg_sys::InvalidOid
        && !crate::pg::citus::in_internal_connection()
        && !crate::pg::citus::is_worker()
}

fn database_name() -> String {
    // SAFETY: the current database's name from the syscache (palloc'd, copied out).
    unsafe {
        let name = pg_sys::get_database_name(pg_sys::MyDatabaseId);
        if name.is_null() {
            return String::new();
        }
        std::ffi::CStr::from_ptr(name)
            .to_string_lossy()
            .into_owned()
    }
}

/// (what, how many) the role holds in this database.
fn held_by(role: pg_sys::Oid) -> Vec<(&'static str, i64)> {
    as_extension_owner(|| {
        HELD.iter()
            .filter_map(|(table, column, what)| {
                let n = read_rows(
                    &format!(
                        "SELECT pg_catalog.count(*) FROM encml.{table} \
                          WHERE {column}::pg_catalog.oid OPERATOR(pg_catalog.=) $1"
                    ),
                    &[arg(role)],
                    1,
                    |r| r.get::<i64>(1).unwrap_or(0),
                )
                .into_iter()
                .next()
                .unwrap_or(0);
                (n > 0).then_some((*what, n))
            })
            .collect()
    })
}

/// Before DROP ROLE: 2BP01 if one of the roles still holds something of the extension in this
/// database, as Postgres does for its own privileges.
pub fn refuse_drop(roles: &[pg_sys::Oid]) {
    // Only for a caller that may drop roles at all: to others Postgres refuses DROP ROLE
    // itself, and the counts below would tell them what other roles hold.
    // SAFETY: a catalog check of the current user.
    let may_drop = unsafe { pg_sys::has_createrole_privilege(pg_sys::GetUserId()) };
    if roles.is_empty() || !may_drop || !installed() {
        return;
    }
    for role in roles {
        let held = held_by(*role);
        if held.is_empty() {
            continue;
        }
        let name = crate::pg::roles::role_name(*role);
        let list: Vec<String> = held
            .iter()
            .map(|(what, n)| format!("{n} {what}{}", if *n == 1 { "" } else { "s" }))
            .collect();
        raise_full(
            PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
            format!("role \"{name}\" cannot be dropped because pg_encrypt_ml grants it privileges"),
            Some(format!("In database {}: {}.", database_name(), list.join(", "))),
            Some(format!(
                "Revoke them (encml.revoke_key, encml.revoke_clearance, encml.revoke_tenant), or run DROP OWNED BY \"{name}\" in each database first: it removes them with the role's other privileges."
            )),
        );
    }
}

/// After DROP OWNED BY: removes what the roles held in this database, as Postgres revokes their
/// privileges; recorded as one security event.
pub fn drop_owned(roles: &[pg_sys::Oid]) {
    if roles.is_empty() || !installed() {
        return;
    }
    let mut removed = serde_json::Map::new();
    let names: Vec<String> = roles
        .iter()
        .map(|r| crate::pg::roles::role_name(*r))
        .collect();
    as_extension_owner(|| {
        for (table, column, what) in HELD {
            let mut n = 0;
            for name in &names {
                // By name (`encml.same_role`): on Citus the statement reaches every node's copy,
                // where the role has another oid.
                n += Spi::connect_mut(|client| {
                    client
                        .update(
                            &format!(
                                "DELETE FROM encml.{table} \
                                  WHERE encml.same_role({column}, $1::pg_catalog.text::pg_catalog.regrole)"
                            ),
                            None,
                            &[name.as_str().into()],
                        )
                        .map(|t| t.len())
                        .or_spi_failed("DROP OWNED")
                });
            }
            if n > 0 {
                removed.insert(format!("{what}s"), n.into());
            }
        }
    });
    if !removed.is_empty() {
        crate::keys::catalog::invalidate();
        crate::events::record(
            "drop_owned_privileges",
            None,
            serde_json::json!({ "roles": names, "removed": removed }),
        );
    }
}
