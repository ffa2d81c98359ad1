//! Encryption in transit (docs/zero-trust.md, "Encryption in transit"): a login over TCP without
//! TLS (or GSSAPI encryption) by a role that holds key privileges is a security event, raised
//! once per session at its first statement that runs with a snapshot (the authentication hook
//! runs before the database's catalog can be read, and `SET`, `SHOW` and transaction control
//! run without a snapshot, which the lookup needs; they read no data and use no key); and roles
//! marked as services, whose connections
//! `compliance_report()` requires to present a verified client certificate.

use crate::pg::catalog_reads::{arg, select_one};
use crate::pg::errors::OrSpiFailed;
use crate::pg::identity::as_extension_owner;
use crate::pg::roles::{caller, role_name};
use crate::types::reg::RegRole;
use pgrx::prelude::*;
use std::cell::Cell;

thread_local! {
    /// Whether this session's transport was looked at (once per backend).
    static CHECKED: Cell<bool> = const { Cell::new(false) };
}

/// Whether `role` (or a role it may become with SET ROLE) holds a privilege on a live key: a
/// grant, the key's creation, a tenant's membership or administration, key administration, or
/// superuser (docs/zero-trust.md, "Implicit holders").
const HOLDS_KEY_PRIVILEGES: &str = "SELECT r.rolsuper \
      OR pg_catalog.pg_has_role($1, 'encml_key_admin', 'MEMBER') \
      OR EXISTS (SELECT FROM encml.key_grants g JOIN encml.data_keys k ON k.id OPERATOR(pg_catalog.=) g.key_id \
                  WHERE k.destroyed_at IS NULL AND pg_catalog.pg_has_role($1, g.grantee, 'MEMBER')) \
      OR EXISTS (SELECT FROM encml.data_keys k \
                  WHERE k.destroyed_at IS NULL AND pg_catalog.pg_has_role($1, k.created_by, 'MEMBER')) \
      OR EXISTS (SELECT FROM encml.data_keys k WHERE k.destroyed_at IS NULL AND k.tenant IS NOT NULL \
                    AND (pg_catalog.pg_has_role($1, 'encml_tenant_admin', 'MEMBER') \
                         OR EXISTS (SELECT FROM encml.tenant_members m \
                                     WHERE m.tenant OPERATOR(pg_catalog.=) k.tenant \
                                       AND pg_catalog.pg_has_role($1, m.member, 'MEMBER')))) \
      FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) $1";

/// From the post-parse and utility hooks: at the session's first statement that runs with a
/// snapshot in a transaction of a database with the extension, records `login_without_tls` if
/// the client came over TCP in the clear and the login role holds key privileges. Every
/// statement that reads data (queries, DML, COPY, the queries inside DO and CALL) has a
/// snapshot by then; one without (SET, SHOW, BEGIN) leaves the check to the next statement: it
/// must not take a snapshot itself (a `BEGIN ISOLATION LEVEL ...` would then be refused).
pub fn after_parse() {
    if CHECKED.with(Cell::get) {
        return;
    }
    let Some(transport) = crate::pg::transport::current() else {
        CHECKED.with(|c| c.set(true));
        return;
    };
    if !transport.plaintext_over_network() {
        CHECKED.with(|c| c.set(true));
        return;
    }
    // SAFETY: reads backend-local transaction and snapshot state; cannot ERROR.
    let usable = unsafe {
        pg_sys::IsTransactionState()
            && !pg_sys::IsAbortedTransactionBlockState()
            && pg_sys::ActiveSnapshotSet()
    };
    if !usable {
        return;
    }
    CHECKED.with(|c| c.set(true));
    if crate::pg::catalog_reads::extension_relation(c"key_grants") == pg_sys::InvalidOid {
        return;
    }
    // SAFETY: reads the session user set at login; cannot ERROR.
    let login = unsafe { pg_sys::GetSessionUserId() };
    let holds = as_extension_owner(|| {
        select_one::<bool>(HOLDS_KEY_PRIVILEGES, &[arg(login)]).unwrap_or(false)
    });
    if holds {
        crate::events::record_detached(
            "login_without_tls",
            serde_json::json!({
                "role": role_name(login),
                "hint": "this role holds key privileges: connect with sslmode=verify-full and admit it only through hostssl lines",
            }),
        );
    }
}

/// Marks a role as a service (or unmarks it): `compliance_report()` then requires every
/// pg_hba.conf line that admits it from the network to be `hostssl` with a verified client
/// certificate (`clientcert=verify-full` or `cert`). Security administrators only.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn mark_tls_service_role(role: RegRole, service: default!(bool, "true")) -> bool {
    crate::pg::recovery::refuse_during_recovery("encml.mark_tls_service_role()");
    crate::security::auth::require_security_admin("mark_tls_service_role");
    let who = caller();
    let changed = as_extension_owner(|| {
        let sql = if service {
            "INSERT INTO encml.tls_service_roles (role, marked_by) VALUES ($1, $2) \
             ON CONFLICT (role) DO NOTHING RETURNING true"
        } else {
            "DELETE FROM encml.tls_service_roles WHERE role OPERATOR(pg_catalog.=) $1 \
               AND $2 IS NOT NULL RETURNING true"
        };
        Spi::get_one_with_args::<bool>(sql, &[role.0.into(), who.into()])
            .or_spi_failed("could not update encml.tls_service_roles")
            .unwrap_or(false)
    });
    crate::events::record(
        "tls_service_role",
        None,
        serde_json::json!({ "role": role_name(role.0), "service": service, "changed": changed }),
    );
    changed
}
