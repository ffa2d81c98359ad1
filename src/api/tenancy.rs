//! Tenants, memberships and the tenant context (`set_tenant`, `current_tenant`, `reset_tenant`),
//! the tenant's own keys (`tenant_key`), erasure (`forget_tenant`) and schema-per-tenant
//! (`create_tenant_schema`). Membership is checked for the calling role; only `set_tenant` can
//! give the context a value.

use crate::events;
use crate::keys::tenant_context;
use crate::keys::{cache, catalog, provider, tenants};
use crate::pg::errors::{notice, raise, raise_full};
use crate::pg::roles::{caller, role_name, TENANT_ADMIN};
use crate::types::reg::RegRole;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode, Uuid};
use serde_json::json;

fn require_tenant_admin(what: &str) -> pg_sys::Oid {
    let role = caller();
    if !tenants::is_tenant_admin(role) {
        events::refused("tenant_admin_refused", json!({ "action": what }));
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied to {what}: needs superuser or {TENANT_ADMIN}"),
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

fn no_such_tenant(tenant: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
        format!("tenant \"{tenant}\" does not exist"),
    )
}

fn forgotten(tenant: &str, when: &str) -> ! {
    raise_full(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!("tenant \"{tenant}\" was forgotten"),
        Some(format!(
            "encml.forget_tenant() destroyed its keys at {when}; nothing new is made for it."
        )),
        Some("Drop it with encml.drop_tenant() and create a new tenant instead.".into()),
    )
}

/// Locks a tenant that exists and was not forgotten, for making keys, memberships or a schema
/// for it (`exclusive` for the schema; shared otherwise, so that such work runs in parallel).
pub(crate) fn lock_usable_tenant(tenant: &str, exclusive: bool) -> tenants::TenantRow {
    let Some(row) = tenants::lock(tenant, exclusive) else {
        no_such_tenant(tenant)
    };
    if let Some(when) = &row.forgotten_at {
        forgotten(tenant, when);
    }
    row
}

#[pg_extern(volatile, parallel_unsafe)]
fn create_tenant(tenant: Option<&str>) {
    crate::pg::recovery::refuse_during_recovery("encml.create_tenant()");
    let by = require_tenant_admin("create tenants");
    let tenant = tenant_arg(tenant);
    if tenants::exists(tenant) {
        raise(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!("tenant \"{tenant}\" already exists"),
        );
    }
    tenants::create(tenant, by);
    events::record("create_tenant", None, json!({ "tenant": tenant }));
}

#[pg_extern(volatile, parallel_unsafe)]
fn drop_tenant(tenant: Option<&str>) {
    crate::pg::recovery::refuse_during_recovery("encml.drop_tenant()");
    require_tenant_admin("drop tenants");
    let tenant = tenant_arg(tenant);
    let Some(row) = tenants::lock(tenant, true) else {
        no_such_tenant(tenant)
    };
    let live = catalog::live_keys_of_tenant(tenant);
    if live > 0 {
        // Dropping the name would leave keys that a new tenant of the same name could use.
        raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
            format!("tenant \"{tenant}\" still has {live} key(s)"),
            None,
            Some(
                "Erase them with encml.forget_tenant() (crypto-shredding) or destroy them with \
                 encml.destroy_key() first."
                    .into(),
            ),
        );
    }
    if let Some(schema) = &row.schema_name {
        for member in tenants::members(tenant) {
            tenants::schema_usage(schema, member, false);
        }
        notice(
            format!(
                "schema \"{schema}\" of tenant \"{tenant}\" is kept; its members lost USAGE on it"
            ),
            Some("Drop it with DROP SCHEMA when its data is no longer needed.".into()),
        );
    }
    tenants::drop(tenant);
    events::record("drop_tenant", None, json!({ "tenant": tenant }));
}

#[pg_extern(volatile, parallel_unsafe)]
fn grant_tenant(tenant: Option<&str>, member: Option<RegRole>) {
    crate::pg::recovery::refuse_during_recovery("encml.grant_tenant()");
    let by = require_tenant_admin("grant tenant membership");
    let tenant = tenant_arg(tenant);
    let Some(RegRole(member)) = member else {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "member must not be NULL",
        )
    };
    let row = lock_usable_tenant(tenant, false);
    tenants::grant(tenant, member, by);
    if let Some(schema) = &row.schema_name {
        tenants::schema_usage(schema, member, true);
    }
    events::record(
        "grant_tenant",
        None,
        json!({ "tenant": tenant, "member": role_name(member) }),
    );
}

#[pg_extern(volatile, parallel_unsafe)]
fn revoke_tenant(tenant: Option<&str>, member: Option<RegRole>) {
    crate::pg::recovery::refuse_during_recovery("encml.revoke_tenant()");
    require_tenant_admin("revoke tenant membership");
    let tenant = tenant_arg(tenant);
    let Some(RegRole(member)) = member else {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "member must not be NULL",
        )
    };
    let Some(row) = tenants::lock(tenant, false) else {
        no_such_tenant(tenant)
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
    if let Some(schema) = &row.schema_name {
        tenants::schema_usage(schema, member, false);
    }
    events::record(
        "revoke_tenant",
        None,
        json!({ "tenant": tenant, "member": role_name(member) }),
    );
}

/// Makes `tenant` the current tenant if the calling role acts for it; otherwise ERROR 42501 and
/// the context is unchanged. `is_local` scopes it to the current transaction (for transaction
/// pooling).
#[pg_extern(volatile, parallel_unsafe)]
fn set_tenant(tenant: Option<&str>, is_local: default!(Option<bool>, false)) {
    let role = caller();
    let tenant = tenant_arg(tenant);
    // Tenant admins and superusers act for every tenant; others through membership.
    if !tenants::may_act_for(tenant, role) {
        events::refused("set_tenant_refused", json!({ "tenant": tenant }));
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
    tenant_context::set(tenant, is_local.unwrap_or(false));
}

#[pg_extern(volatile, parallel_unsafe)]
fn reset_tenant() {
    tenant_context::reset();
}

/// The tenants the calling role may act for.
#[pg_extern(stable, parallel_safe)]
fn my_tenants() -> Vec<String> {
    tenants::of_role(caller())
}

/// The key of the current tenant for `purpose`, made on first use. It belongs to the tenant:
/// only superusers, `encml_key_admin` and `encml_tenant_admin` may rotate or destroy it.
///
/// STABLE so that `col = encml.det_encrypt('x', encml.tenant_key('deterministic'))` can use an
/// index. Making the key is its only write, happens once per tenant and purpose, and is refused
/// inside a parallel query (where Postgres forbids writes) with a hint.
#[pg_extern(stable, strict, parallel_safe)]
fn tenant_key(purpose: default!(&str, "'aead'"), fcinfo: pg_sys::FunctionCallInfo) -> Uuid {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    let purpose = crate::api::keys::purpose_arg(purpose);
    let hit = tenant_context::with_current(|t| t.map(|t| cache::tenant_key(t, purpose)));
    match hit {
        Some(Some(id)) => return Uuid::from_bytes(id),
        Some(None) => {}
        None => raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "encml.tenant_key() needs a current tenant",
            None,
            Some("Call encml.set_tenant(tenant) first.".into()),
        ),
    }
    let tenant = tenant_context::current().expect("checked above");
    let id =
        catalog::managed_key(&tenant, purpose).unwrap_or_else(|| make_tenant_key(&tenant, purpose));
    cache::remember_tenant_key(&tenant, purpose, id);
    Uuid::from_bytes(id)
}

fn make_tenant_key(tenant: &str, purpose: encml_core::kdf::Purpose) -> [u8; 16] {
    crate::pg::recovery::refuse_during_recovery("encml.tenant_key() for a new tenant key");
    // SAFETY: reads this backend's transaction state (a plain global, never raises).
    if unsafe { pg_sys::XactReadOnly } {
        raise_full(
            PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            format!(
                "tenant \"{tenant}\" has no key of purpose '{}' yet, and none can be made in a read-only transaction",
                purpose.label()
            ),
            None,
            Some(format!(
                "Call SELECT encml.tenant_key('{}') once in a read-write transaction first.",
                purpose.label()
            )),
        );
    }
    // SAFETY: reads this backend's transaction state (a plain getter, never raises).
    if unsafe { pg_sys::IsInParallelMode() } {
        raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "tenant \"{tenant}\" has no key of purpose '{}' yet, and none can be made during a parallel query",
                purpose.label()
            ),
            None,
            Some(format!(
                "Call SELECT encml.tenant_key('{}') once on its own first.",
                purpose.label()
            )),
        );
    }
    lock_usable_tenant(tenant, false);
    let id = *uuid::Uuid::new_v4().as_bytes();
    let (wrapped, fingerprint) = provider::new_wrapped_data_key(&id, 1);
    if catalog::insert_managed_key(&id, tenant, purpose, caller(), &wrapped, &fingerprint) {
        return id;
    }
    // Another transaction made it first and has committed (the insert waited for it).
    catalog::managed_key_latest(tenant, purpose).unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
            format!(
                "the key of tenant \"{tenant}\" for purpose '{}' was made by a concurrent transaction; retry",
                purpose.label()
            ),
        )
    })
}

/// GDPR erasure and off-boarding: crypto-shreds every key of the tenant and drops its
/// memberships. Returns the number of keys destroyed.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn forget_tenant(tenant: &str) -> i64 {
    crate::pg::recovery::refuse_during_recovery("encml.forget_tenant()");
    require_tenant_admin("forget tenants");
    let tenant = tenant_arg(Some(tenant));
    let Some(row) = tenants::lock(tenant, true) else {
        no_such_tenant(tenant)
    };
    let (keys, versions) = catalog::destroy_tenant_keys(tenant);
    if let Some(schema) = &row.schema_name {
        for member in tenants::members(tenant) {
            tenants::schema_usage(schema, member, false);
        }
    }
    let memberships = tenants::forget(tenant);
    events::record(
        "forget_tenant",
        None,
        json!({ "tenant": tenant, "keys_destroyed": keys, "versions_erased": versions, "memberships_dropped": memberships }),
    );
    notice(
        format!(
            "tenant \"{tenant}\" forgotten: {keys} key(s) destroyed ({versions} version(s) erased), \
             {memberships} membership(s) dropped"
        ),
        Some(
            "Backups taken before now still hold the wrapped keys. Run encml.rotate_master_key() \
             and remove the old master key from the provider to make them unrecoverable too."
                .into(),
        ),
    );
    keys
}

/// Schema-per-tenant: a schema owned by `encml_tenant_admin`, with USAGE for the tenant's
/// members (kept in step by grant_tenant/revoke_tenant) and nobody else. Returns its name.
#[pg_extern(volatile, parallel_unsafe)]
fn create_tenant_schema(
    tenant: Option<&str>,
    schema_name: default!(Option<&str>, "NULL"),
) -> String {
    crate::pg::recovery::refuse_during_recovery("encml.create_tenant_schema()");
    require_tenant_admin("create tenant schemas");
    let tenant = tenant_arg(tenant);
    let row = lock_usable_tenant(tenant, true);
    if let Some(existing) = &row.schema_name {
        raise(
            PgSqlErrorCode::ERRCODE_DUPLICATE_SCHEMA,
            format!("tenant \"{tenant}\" already has schema \"{existing}\""),
        );
    }
    let schema = schema_name
        .map(str::to_string)
        .unwrap_or_else(|| format!("tenant_{tenant}"));
    if schema.is_empty() || schema.len() >= pg_sys::NAMEDATALEN as usize {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_NAME,
            format!(
                "schema name \"{schema}\" must have 1 to {} bytes",
                pg_sys::NAMEDATALEN - 1
            ),
        );
    }
    tenants::run_formatted(
        "SELECT format('CREATE SCHEMA %I AUTHORIZATION %I', $1::text, $2::text)",
        &[
            crate::pg::catalog_reads::arg(schema.as_str()),
            crate::pg::catalog_reads::arg(TENANT_ADMIN),
        ],
    );
    for member in tenants::members(tenant) {
        tenants::schema_usage(&schema, member, true);
    }
    tenants::set_schema(tenant, &schema);
    schema
}

pgrx::extension_sql_file!(
    "../../sql/schema/tenancy.sql",
    name = "tenant_isolation",
    requires = ["current_tenant"]
);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
pub mod tests {
    use pgrx::prelude::*;

    fn count(sql: &str) -> i64 {
        Spi::get_one::<i64>(sql).unwrap().unwrap()
    }

    #[pg_test]
    fn tenant_key_is_made_once_and_usable_in_the_statement_that_makes_it() {
        Spi::run("SELECT encml.create_tenant('pgtest-t1')").unwrap();
        Spi::run("SELECT encml.set_tenant('pgtest-t1')").unwrap();
        assert_eq!(
            Spi::get_one::<String>(
                "SELECT encml.decrypt_text(encml.encrypt('v', encml.tenant_key())) \
                   || encml.det_decrypt(encml.det_encrypt('w', encml.tenant_key('deterministic')))"
            ),
            Ok(Some("vw".into()))
        );
        Spi::run("SELECT encml.tenant_key(), encml.tenant_key('deterministic')").unwrap();
        assert_eq!(
            count("SELECT count(*) FROM encml.keys WHERE tenant = 'pgtest-t1' AND managed"),
            2
        );
    }

    #[pg_test]
    fn forget_tenant_destroys_every_key_of_the_tenant() {
        Spi::run("SELECT encml.create_tenant('pgtest-t2')").unwrap();
        Spi::run("SELECT encml.set_tenant('pgtest-t2')").unwrap();
        Spi::run("SELECT encml.tenant_key(), encml.create_key('own', 'ore', 'pgtest-t2')").unwrap();
        assert_eq!(count("SELECT encml.forget_tenant('pgtest-t2')"), 2);
        assert_eq!(
            count(
                "SELECT count(*) FROM encml.keys WHERE tenant = 'pgtest-t2' AND status <> 'destroyed'"
            ),
            0
        );
        assert_eq!(
            count(
                "SELECT count(*) FROM encml.key_versions v JOIN encml.keys k ON k.id = v.key_id \
                    WHERE k.tenant = 'pgtest-t2' AND v.status <> 'destroyed'"
            ),
            0
        );
    }

    #[pg_test(error = "tenant \"pgtest-t3\" was forgotten")]
    fn a_forgotten_tenant_gets_no_new_key() {
        Spi::run("SELECT encml.create_tenant('pgtest-t3')").unwrap();
        Spi::run("SELECT encml.forget_tenant('pgtest-t3')").unwrap();
        Spi::run("SELECT encml.set_tenant('pgtest-t3')").unwrap();
        Spi::run("SELECT encml.tenant_key()").unwrap();
    }
}
