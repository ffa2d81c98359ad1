//! Tenants, memberships and the tenant context (`set_tenant`, `current_tenant`, `reset_tenant`).
//! Membership is checked for the calling role; only `set_tenant` can give the context a value.

use crate::keys::tenants;
use crate::pg::catalog_access::{caller, has_privs_of_role_named, is_superuser, role_name};
use crate::pg::errors::{raise, raise_full};
use crate::pg::tenant;
use crate::types::regrole::RegRole;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};

pub const TENANT_ADMIN_ROLE: &str = "encml_tenant_admin";

fn require_tenant_admin(what: &str) -> pg_sys::Oid {
    let role = caller();
    if !(is_superuser(role) || has_privs_of_role_named(role, TENANT_ADMIN_ROLE)) {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied to {what}: needs superuser or {TENANT_ADMIN_ROLE}"),
        );
    }
    role
}

fn tenant_arg(tenant: Option<&str>) -> &str {
    match tenant.map(str::trim) {
        Some(t) if !t.is_empty() => t,
        _ => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a tenant needs a non-empty name",
        ),
    }
}

fn require_exists(tenant: &str) {
    if !tenants::exists(tenant) {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("tenant \"{tenant}\" does not exist"),
        );
    }
}

#[pg_extern(volatile, parallel_unsafe)]
fn create_tenant(tenant: Option<&str>) {
    let by = require_tenant_admin("create tenants");
    let tenant = tenant_arg(tenant);
    if tenants::exists(tenant) {
        raise(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!("tenant \"{tenant}\" already exists"),
        );
    }
    tenants::create(tenant, by);
}

#[pg_extern(volatile, parallel_unsafe)]
fn drop_tenant(tenant: Option<&str>) {
    require_tenant_admin("drop tenants");
    let tenant = tenant_arg(tenant);
    if !tenants::drop(tenant) {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("tenant \"{tenant}\" does not exist"),
        );
    }
}

#[pg_extern(volatile, parallel_unsafe)]
fn grant_tenant(tenant: Option<&str>, member: Option<RegRole>) {
    let by = require_tenant_admin("grant tenant membership");
    let tenant = tenant_arg(tenant);
    let Some(RegRole(member)) = member else {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "member must not be NULL",
        )
    };
    require_exists(tenant);
    tenants::grant(tenant, member, by);
}

#[pg_extern(volatile, parallel_unsafe)]
fn revoke_tenant(tenant: Option<&str>, member: Option<RegRole>) {
    require_tenant_admin("revoke tenant membership");
    let tenant = tenant_arg(tenant);
    let Some(RegRole(member)) = member else {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "member must not be NULL",
        )
    };
    if !tenants::revoke(tenant, member) {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!(
                "{} is not a member of tenant \"{tenant}\"",
                role_name(member)
            ),
        );
    }
}

/// Makes `tenant` the current tenant if the calling role acts for it; otherwise ERROR 42501 and
/// the context is unchanged. `is_local` scopes it to the current transaction (for transaction
/// pooling).
#[pg_extern(volatile, parallel_unsafe)]
fn set_tenant(tenant: Option<&str>, is_local: default!(Option<bool>, false)) {
    let role = caller();
    let tenant = tenant_arg(tenant);
    let member = tenants::exists(tenant) && tenants::is_member(tenant, role);
    if !member {
        // Same answer whether or not the tenant exists: names are not probed this way.
        raise_full(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "role {} may not act for tenant \"{tenant}\"",
                role_name(role)
            ),
            None,
            Some("A tenant admin grants membership with encml.grant_tenant(tenant, role).".into()),
        );
    }
    tenant::set(tenant, is_local.unwrap_or(false));
}

/// The current tenant, or NULL.
#[pg_extern(stable, parallel_safe)]
fn current_tenant() -> Option<String> {
    tenant::current()
}

#[pg_extern(volatile, parallel_unsafe)]
fn reset_tenant() {
    tenant::reset();
}

/// The tenants the calling role may act for.
#[pg_extern(stable, parallel_safe)]
fn my_tenants() -> Vec<String> {
    tenants::of_role(caller())
}

pgrx::extension_sql_file!(
    "../../sql/tenancy.sql",
    name = "tenant_isolation",
    requires = [current_tenant]
);
