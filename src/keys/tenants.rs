//! Reads and writes of the tenant tables (`encml.tenants`, `encml.tenant_members`), as the
//! extension owner with a pinned search_path; callers check the calling role's rights first.

use crate::pg::catalog_reads::{arg, oid_arg, read_rows, select_one};
use crate::pg::errors::OrSpiFailed;
use crate::pg::identity::as_extension_owner;
use crate::pg::roles::TENANT_ADMIN;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;

fn run(sql: &str, args: &[DatumWithOid<'_>]) -> usize {
    as_extension_owner(|| {
        Spi::connect_mut(|client| {
            client
                .update(sql, None, args)
                .map(|t| t.len())
                .or_spi_failed("tenant catalog update failed")
        })
    })
}

/// Whether `role` acts for every tenant: a superuser or a member of encml_tenant_admin.
pub fn is_tenant_admin(role: pg_sys::Oid) -> bool {
    use crate::pg::roles::{has_privs_of_role_named, is_superuser};
    is_superuser(role) || has_privs_of_role_named(role, TENANT_ADMIN)
}

/// Whether `role` may act for `tenant`: the tenant exists and the role is a superuser, a
/// member of encml_tenant_admin or a member of the tenant (set_tenant, and tenant tokens
/// arriving on a Citus node).
pub fn may_act_for(tenant: &str, role: pg_sys::Oid) -> bool {
    exists(tenant) && (is_tenant_admin(role) || is_member(tenant, role))
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
        "DELETE FROM encml.tenant_members WHERE tenant = $1 AND encml.same_role(member, $2::text::regrole)",
        &[tenant.into(), crate::pg::roles::role_name(member).into()],
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

pub struct TenantRow {
    /// The schema made by `create_tenant_schema`, if any.
    pub schema_name: Option<String>,
    /// When `forget_tenant` erased the tenant's keys, if it did.
    pub forgotten_at: Option<String>,
}

fn parse_tenant_row(row: &crate::pg::catalog_reads::Row) -> TenantRow {
    TenantRow {
        schema_name: row.get::<String>(1),
        forgotten_at: row.get::<String>(2),
    }
}

pub fn load(tenant: &str) -> Option<TenantRow> {
    as_extension_owner(|| {
        read_rows(
            "SELECT schema_name::text, forgotten_at::text FROM encml.tenants WHERE name = $1",
            &[arg(tenant)],
            1,
            parse_tenant_row,
        )
        .into_iter()
        .next()
    })
}

/// Locks the tenant row and returns it: `exclusive` for forget/drop/schema changes; shared
/// while a key is made for the tenant, so that a concurrent `forget_tenant` either sees the new
/// key or makes its maker see the tenant forgotten.
pub fn lock(tenant: &str, exclusive: bool) -> Option<TenantRow> {
    let sql = format!(
        "SELECT schema_name::text, forgotten_at::text FROM encml.tenants WHERE name = $1 {}",
        if exclusive { "FOR UPDATE" } else { "FOR SHARE" }
    );
    as_extension_owner(|| {
        Spi::connect_mut(|client| {
            client
                .update(sql.as_str(), Some(1), &[tenant.into()])
                .or_spi_failed("tenant catalog query failed")
                .next()
                .map(|row| TenantRow {
                    schema_name: row.get::<String>(1).ok().flatten(),
                    forgotten_at: row.get::<String>(2).ok().flatten(),
                })
        })
    })
}

/// The roles granted membership of `tenant` directly.
pub fn members(tenant: &str) -> Vec<pg_sys::Oid> {
    as_extension_owner(|| {
        read_rows(
            "SELECT member::oid FROM encml.tenant_members WHERE tenant = $1 ORDER BY 1",
            &[arg(tenant)],
            0,
            |row| row.get::<pg_sys::Oid>(1).unwrap_or(pg_sys::InvalidOid),
        )
    })
}

/// Drops every membership of `tenant` and marks it forgotten. Returns the memberships dropped.
pub fn forget(tenant: &str) -> usize {
    let dropped = run(
        "DELETE FROM encml.tenant_members WHERE tenant = $1",
        &[tenant.into()],
    );
    run(
        "UPDATE encml.tenants SET forgotten_at = now() WHERE name = $1 AND forgotten_at IS NULL",
        &[tenant.into()],
    );
    dropped
}

pub fn set_schema(tenant: &str, schema: &str) {
    run(
        "UPDATE encml.tenants SET schema_name = $2 WHERE name = $1",
        &[tenant.into(), schema.into()],
    );
}

/// Runs the utility statement (GRANT, CREATE SCHEMA, ...) that a query built with `format()`, so
/// identifiers are quoted by Postgres itself; as the extension owner. Nothing runs when the
/// query returns no row.
pub fn run_formatted(format_sql: &str, args: &[(pg_sys::Oid, Option<pg_sys::Datum>)]) {
    as_extension_owner(|| {
        let Some(sql) = select_one::<String>(format_sql, args) else {
            return;
        };
        Spi::run(&sql).or_spi_failed("tenant schema statement failed")
    })
}

/// Gives (or takes back) USAGE on a tenant's schema to a member role; nothing if the schema was
/// dropped meanwhile.
pub fn schema_usage(schema: &str, member: pg_sys::Oid, grant: bool) {
    run_formatted(
        if grant {
            "SELECT format('GRANT USAGE ON SCHEMA %I TO %s', nspname, $2::oid::regrole) \
               FROM pg_namespace WHERE nspname = $1"
        } else {
            "SELECT format('REVOKE USAGE ON SCHEMA %I FROM %s', nspname, $2::oid::regrole) \
               FROM pg_namespace WHERE nspname = $1"
        },
        &[arg(schema), arg(member)],
    );
}
