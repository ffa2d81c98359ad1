//! Reads and writes of the tenant tables (`encml.tenants`, `encml.tenant_members`), as the
//! extension owner with a pinned search_path; callers check the calling role's rights first.

use crate::pg::catalog_access::{arg, as_extension_owner, oid_arg, read_rows, select_one};
use crate::pg::errors::raise;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;

fn run(sql: &str, args: &[DatumWithOid<'_>]) -> usize {
    as_extension_owner(|| {
        Spi::connect_mut(|client| {
            client
                .update(sql, None, args)
                .map(|t| t.len())
                .unwrap_or_else(|e| {
                    raise(
                        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                        format!("tenant catalog update failed: {e}"),
                    )
                })
        })
    })
}

pub fn exists(tenant: &str) -> bool {
    as_extension_owner(|| {
        select_one::<bool>(
            "SELECT EXISTS (SELECT FROM encml.tenants WHERE name = $1)",
            &[arg(tenant)],
        )
        .unwrap_or(false)
    })
}

/// Whether `role` has the privileges of a role that is a member of `tenant` (inheritance
/// counts, as for GRANT; superusers pass, as they do for every privilege).
pub fn is_member(tenant: &str, role: pg_sys::Oid) -> bool {
    as_extension_owner(|| {
        select_one::<bool>(
            "SELECT EXISTS (SELECT FROM encml.tenant_members m \
                             WHERE m.tenant = $1 AND pg_has_role($2::oid, m.member::oid, 'USAGE'))",
            &[arg(tenant), arg(role)],
        )
        .unwrap_or(false)
    })
}

pub fn create(tenant: &str, by: pg_sys::Oid) {
    run(
        "INSERT INTO encml.tenants (name, created_by) VALUES ($1, $2::regrole)",
        &[tenant.into(), oid_arg(by)],
    );
}

/// Drops the tenant and its memberships; returns false if it did not exist.
pub fn drop(tenant: &str) -> bool {
    run(
        "DELETE FROM encml.tenants WHERE name = $1",
        &[tenant.into()],
    ) > 0
}

pub fn grant(tenant: &str, member: pg_sys::Oid, by: pg_sys::Oid) {
    run(
        "INSERT INTO encml.tenant_members (tenant, member, granted_by) VALUES ($1, $2::regrole, $3::regrole) \
         ON CONFLICT (tenant, member) DO NOTHING",
        &[tenant.into(), oid_arg(member), oid_arg(by)],
    );
}

pub fn revoke(tenant: &str, member: pg_sys::Oid) -> bool {
    run(
        "DELETE FROM encml.tenant_members WHERE tenant = $1 AND member = $2::regrole",
        &[tenant.into(), oid_arg(member)],
    ) > 0
}

/// The tenants whose members include `role` (directly or by inheritance).
pub fn of_role(role: pg_sys::Oid) -> Vec<String> {
    as_extension_owner(|| {
        read_rows(
            "SELECT DISTINCT tenant FROM encml.tenant_members \
              WHERE pg_has_role($1::oid, member::oid, 'USAGE') ORDER BY 1",
            &[arg(role)],
            0,
            |row| row.get::<String>(1).unwrap_or_default(),
        )
    })
}
