//! Key management: create, rotate, retire, destroy, and master-key rotation.
//!
//! Rights are checked against the calling role before any catalog work: a key is administered by
//! the role that created it (and its members), members of `encml_key_admin`, and superusers; a
//! tenant's key also by members of `encml_tenant_admin`. Keys made by `tenant_key()` belong to
//! their tenant: the member whose call created one does not administer it.

use crate::events;
use crate::keys::catalog::{self, uuid_string, KeyRow};
use crate::keys::grants::{self, Privilege};
use crate::keys::provider;
use crate::pg::errors::OrSpiFailed;
use crate::pg::errors::{notice, raise, raise_core, raise_full};
use crate::pg::roles::{
    caller, has_privs_of_role_named, is_superuser, role_name, KEY_ADMIN, TENANT_ADMIN,
};
use crate::types::reg::RegRole;
use encml_core::kdf::Purpose;
use encml_core::wrap;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode, Uuid};
use serde_json::json;

/// The longest name `create_key` accepts, in characters.
pub const MAX_KEY_NAME: usize = 256;

pub(crate) fn is_key_admin(role: pg_sys::Oid) -> bool {
    is_superuser(role) || has_privs_of_role_named(role, KEY_ADMIN)
}

fn require_admin_of(role: pg_sys::Oid, id: &[u8; 16], key: &KeyRow) {
    let ownership = grants::KeyOwnership {
        key_id: id,
        tenant: key.tenant.as_deref(),
        created_by: key.created_by,
        managed: key.managed,
    };
    if !grants::holds(&ownership, Privilege::Admin) {
        events::refused("key_admin_refused", json!({ "key": uuid_string(id) }));
        raise_full(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied to administer key {}", uuid_string(id)),
            None,
            Some(format!(
                "Only the role that created the key (not for keys made by encml.tenant_key()), roles \
                 granted 'admin' on it with encml.grant_key(), members of {KEY_ADMIN} (and of {} \
                 for a tenant's key), and superusers may rotate, retire, destroy, export or grant it \
                 (current role: {}).",
                TENANT_ADMIN,
                role_name(role)
            )),
        );
    }
}

/// Locks the key row and checks the caller may administer it. Refuses destroyed keys.
pub(crate) fn lock_for_admin(key: Uuid) -> ([u8; 16], KeyRow) {
    let role = caller();
    let id = *key.as_bytes();
    let missing = || -> ! {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("key {} does not exist", uuid_string(&id)),
        )
    };
    // Check rights on an unlocked read first, so a role without them cannot hold the lock.
    let Some((row, _)) = catalog::load(&id, None, false) else {
        missing()
    };
    require_admin_of(role, &id, &row);
    let Some((row, _)) = catalog::load(&id, None, true) else {
        missing()
    };
    if row.destroyed_at.is_some() {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("key {} was destroyed", uuid_string(&id)),
        );
    }
    (id, row)
}

/// A key purpose by its label, or an ERROR listing the known ones.
pub(crate) fn purpose_arg(label: &str) -> Purpose {
    Purpose::from_label(label).unwrap_or_else(|| {
        let known: Vec<&str> = Purpose::ALL.iter().map(|p| p.label()).collect();
        raise_full(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("unknown key purpose \"{label}\""),
            None,
            Some(format!("Known purposes: {}.", known.join(", "))),
        )
    })
}

#[pg_extern(volatile, parallel_unsafe)]
fn create_key(
    name: Option<&str>,
    purpose: default!(Option<&str>, "'aead'"),
    tenant: default!(Option<&str>, "NULL"),
) -> Uuid {
    crate::pg::recovery::refuse_during_recovery("encml.create_key()");
    let role = caller();
    let name = match name.map(str::trim) {
        Some(n) if !n.is_empty() => n,
        _ => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a key needs a non-empty name",
        ),
    };
    // Names appear in messages, events and views: long enough for any real label, short enough
    // that no one fills the audit log through them.
    if name.chars().count() > MAX_KEY_NAME {
        raise(
            PgSqlErrorCode::ERRCODE_NAME_TOO_LONG,
            format!("a key name has at most {MAX_KEY_NAME} characters"),
        );
    }
    let purpose = purpose_arg(purpose.unwrap_or("aead"));
    if name.starts_with(catalog::MANAGED_NAME_PREFIX)
        || name.starts_with(catalog::SUBJECT_KEY_PREFIX)
    {
        raise_full(
            PgSqlErrorCode::ERRCODE_RESERVED_NAME,
            format!("key name \"{name}\" is reserved"),
            Some(format!(
                "Names starting with \"{}\" or \"{}\" are kept for the keys encml.tenant_key() \
                 and encml.subject_key() make.",
                catalog::MANAGED_NAME_PREFIX,
                catalog::SUBJECT_KEY_PREFIX
            )),
            None,
        );
    }
    if let Some(t) = tenant {
        // A key for a tenant is made by someone acting for it (or administering tenants), while
        // the tenant row is locked against a concurrent forget_tenant.
        crate::api::tenancy::lock_usable_tenant(t, false);
        if !crate::keys::tenants::is_tenant_admin(role) && !crate::keys::tenants::is_member(t, role)
        {
            events::refused("create_key_refused", json!({ "tenant": t, "name": name }));
            raise(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!(
                    "role {} may not create keys for tenant \"{t}\"",
                    role_name(role)
                ),
            );
        }
    }
    if catalog::name_taken(name, tenant) {
        raise(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            match tenant {
                Some(t) => format!("a key named \"{name}\" already exists for tenant \"{t}\""),
                None => format!("a key named \"{name}\" already exists"),
            },
        );
    }
    let id = *uuid::Uuid::new_v4().as_bytes();
    let (wrapped, fingerprint) = provider::new_wrapped_data_key(&id, 1);
    catalog::insert_key(&id, name, purpose, tenant, role, &wrapped, &fingerprint);
    events::record(
        "create_key",
        None,
        json!({ "key": uuid_string(&id), "name": name, "purpose": purpose.label(), "tenant": tenant }),
    );
    Uuid::from_bytes(id)
}

#[pg_extern(volatile, strict, parallel_unsafe)]
fn rotate_key(key: Uuid) -> i32 {
    crate::pg::recovery::refuse_during_recovery("encml.rotate_key()");
    rotate(key, None) as i32
}

/// Adds a version to the key and makes it current, as the current user (who must administer
/// the key); `why` (a rotation policy, a compromise) goes into the audit event.
pub(crate) fn rotate(key: Uuid, why: Option<&str>) -> u32 {
    let (id, row) = lock_for_admin(key);
    if row.purpose == Purpose::Fpe {
        // Tokens carry no key version: a new version would silently stop detokenizing them.
        raise_full(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "key {} has purpose 'fpe', whose tokens carry no key version",
                uuid_string(&id)
            ),
            None,
            Some(
                "Rotate format-preserving tokens to a new key: create one and re-tokenize with \
                 encml.retokenize_pan() or fpe_decrypt/fpe_encrypt (docs/tokenization.md)."
                    .into(),
            ),
        );
    }
    let version = row.current_version + 1;
    let (wrapped, fingerprint) = provider::new_wrapped_data_key(&id, version);
    catalog::add_version(&id, version, &wrapped, &fingerprint);
    crate::pg::pause::point("rotate_key");
    let mut detail = json!({ "key": uuid_string(&id), "version": version });
    if let Some(why) = why {
        detail["by"] = json!(why);
    }
    events::record("rotate_key", None, detail);
    version
}

#[pg_extern(volatile, strict, parallel_unsafe)]
fn retire_key_version(key: Uuid, version: i32, force: default!(bool, false)) {
    crate::pg::recovery::refuse_during_recovery("encml.retire_key_version()");
    let in_use = if force { InUse::Forced } else { InUse::Check };
    retire(key, version, in_use, None);
}

/// What `retire` knows of the values under the version.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum InUse {
    /// Look (`lifecycle::columns::users_of`) and refuse if any value uses it.
    Check,
    /// The caller looked in this transaction and found none (a rotation policy).
    NoneFound,
    /// `force => true`: retire whatever uses it.
    Forced,
}

/// Retires a version of the key as the current user (who must administer it), refusing while
/// values use it unless forced; `why` (a rotation policy) goes into the audit event.
pub(crate) fn retire(key: Uuid, version: i32, in_use: InUse, why: Option<&str>) {
    let force = in_use == InUse::Forced;
    let (id, row) = lock_for_admin(key);
    if version < 1 || version as u32 > row.current_version {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("key {} has no version {version}", uuid_string(&id)),
        );
    }
    if version as u32 == row.current_version {
        raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "version {version} is the current version of key {}",
                uuid_string(&id)
            ),
            None,
            Some("Rotate the key and re-encrypt its values first.".into()),
        );
    }
    if in_use == InUse::Check {
        let users = crate::api::lifecycle::columns::users_of(&id, version as u32);
        if !users.is_empty() {
            let total: i64 = users.iter().map(|(_, n)| n).sum();
            raise_full(
                PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
                if users.iter().any(|(c, _)| c.ends_with("not counted)")) {
                    format!(
                        "version {version} of key {} may still be in use: a table that could hold its values is locked",
                        uuid_string(&id)
                    )
                } else {
                    format!(
                        "version {version} of key {} still encrypts {total} value(s)",
                        uuid_string(&id)
                    )
                },
                Some(format!(
                    "Used by: {}.",
                    users
                        .iter()
                        .map(|(c, n)| format!("{c} ({n})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                Some(format!(
                    "Re-encrypt them first: SELECT * FROM encml.reencrypt_key('{}') queues a job for \
                     every column using older versions (large objects named by no row are not found: \
                     re-encrypt or unlink them). Or pass force => true to retire it anyway (those \
                     values become unreadable).",
                    uuid_string(&id)
                )),
            );
        }
    }
    catalog::retire(&id, version as u32);
    let mut detail = json!({ "key": uuid_string(&id), "version": version, "force": force });
    if let Some(why) = why {
        detail["by"] = json!(why);
    }
    events::record("retire_key_version", None, detail);
}

#[pg_extern(volatile, strict, parallel_unsafe)]
fn destroy_key(key: Uuid) -> i64 {
    crate::pg::recovery::refuse_during_recovery("encml.destroy_key()");
    let (id, _) = lock_for_admin(key);
    // The rows of a subject column under it could never be found again, and erasures would
    // fail there (attacker round 11).
    if let Some(column) = crate::api::subjects::registration::registered_with_id_key(key) {
        raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("key {} is the identifier key of subject column {column}", uuid_string(&id)),
            Some("Its rows could no longer be found by subject_export or subject_forget.".into()),
            Some("Erase or move the rows, then unregister the column (encml.unregister_subject_column) before destroying its key.".into()),
        );
    }
    let erased = catalog::destroy(&id);
    crate::pg::pause::point("destroy_key");
    events::record(
        "destroy_key",
        None,
        json!({ "key": uuid_string(&id), "versions_erased": erased }),
    );
    notice(
        format!("key {} destroyed: {erased} key version(s) erased", uuid_string(&id)),
        Some(
            "Backups taken before now still hold the wrapped key. Run encml.rotate_master_key() and \
             remove the old master key from the provider to make them unrecoverable too."
                .into(),
        ),
    );
    erased
}

/// Wraps a version of a data key (the current one by default) for a client holding the X25519
/// private key matching `recipient_public_key`, with HPKE (`encml_core::export`). Only who may
/// administer the key may export it; every export is audited outside the caller's transaction,
/// since the caller holds the wrapped key even if it then rolls back.
#[pg_extern(volatile, parallel_unsafe)]
fn export_key(
    key: Option<Uuid>,
    recipient_public_key: Option<&[u8]>,
    version: default!(Option<i32>, "NULL"),
) -> Option<Vec<u8>> {
    crate::pg::recovery::refuse_during_recovery("encml.export_key()");
    let (key, recipient) = (key?, recipient_public_key?);
    // Rights first, then the key row locked, so a concurrent destroy_key waits for the export
    // (or the export sees the key destroyed).
    let (id, row) = lock_for_admin(key);
    let number = match version {
        Some(v) if v < 1 => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "version must be positive",
        ),
        Some(v) => v as u32,
        None => row.current_version,
    };
    let Some((_, Some(v))) = catalog::load(&id, Some(number), false) else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("key {} has no version {number}", uuid_string(&id)),
        )
    };
    let (Some(wrapped), Some(fingerprint)) = (&v.wrapped, &v.fingerprint) else {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "version {number} of key {} was {}",
                uuid_string(&id),
                v.status
            ),
        )
    };
    let root = provider::unwrap_data_key(fingerprint, &id, number, wrapped);
    let exported =
        encml_core::export::wrap_for(recipient, &id, number, &root).unwrap_or_else(|e| {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                e.to_string().replace("malformed ciphertext: ", ""),
            )
        });
    use sha2::Digest;
    crate::events::record_detached(
        "export_key",
        json!({
            "key": uuid_string(&id),
            "version": number,
            "recipient_sha256": hex::encode(&sha2::Sha256::digest(recipient)[..16]),
        }),
    );
    Some(exported)
}

fn privilege_arg(label: &str) -> Privilege {
    Privilege::from_label(label).unwrap_or_else(|| {
        raise_full(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("unknown key privilege \"{label}\""),
            None,
            Some("Key privileges: encrypt, decrypt, admin.".into()),
        )
    })
}

/// Grants a per-key privilege to a role (and, through inheritance, its members). Only who may
/// administer the key grants; effective in every session from its next statement.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn grant_key(key: Uuid, grantee: RegRole, privilege: &str) -> bool {
    crate::pg::recovery::refuse_during_recovery("encml.grant_key()");
    let privilege = privilege_arg(privilege);
    let (id, _) = lock_for_admin(key);
    let RegRole(grantee) = grantee;
    let added = catalog::grant(&id, grantee, privilege.label(), caller());
    events::record(
        "grant_key",
        None,
        json!({ "key": uuid_string(&id), "grantee": role_name(grantee), "privilege": privilege.label() }),
    );
    added
}

/// Revokes a privilege granted with grant_key (implicit holders, such as the key's creator,
/// keep theirs).
#[pg_extern(volatile, strict, parallel_unsafe)]
fn revoke_key(key: Uuid, grantee: RegRole, privilege: &str) -> bool {
    crate::pg::recovery::refuse_during_recovery("encml.revoke_key()");
    let privilege = privilege_arg(privilege);
    let (id, _) = lock_for_admin(key);
    let RegRole(grantee) = grantee;
    let removed = catalog::revoke(&id, grantee, privilege.label());
    events::record(
        "revoke_key",
        None,
        json!({ "key": uuid_string(&id), "grantee": role_name(grantee), "privilege": privilege.label() }),
    );
    removed
}

#[pg_extern(volatile, parallel_unsafe)]
fn rotate_master_key() -> i32 {
    crate::pg::recovery::refuse_during_recovery("encml.rotate_master_key()");
    let role = caller();
    if !is_key_admin(role) {
        events::refused("rotate_master_key_refused", json!({}));
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied: rotating the master key needs superuser or {KEY_ADMIN}"),
        );
    }
    // The service keys first exist (imported from every master key still configured), then are
    // rewrapped with the data keys: audit rows stay verifiable once the old master key is gone.
    crate::keys::service::ensure_all();
    let masters = provider::reload();
    let current = &masters[0];
    let services = crate::keys::service::rewrap_all(current);
    let stale = catalog::versions_not_under(current.fingerprint());
    for v in &stale {
        let data_key = provider::unwrap_data_key(&v.fingerprint, &v.key_id, v.version, &v.wrapped);
        let rewrapped =
            wrap::wrap(current, &v.key_id, v.version, &data_key).unwrap_or_else(|e| raise_core(e));
        catalog::set_wrapped(v, &rewrapped, current.fingerprint());
        crate::pg::pause::point("rotate_master_key");
    }
    catalog::log_master_rotation(current.fingerprint(), stale.len() as i32, role);
    events::record(
        "rotate_master_key",
        None,
        json!({ "master_key": current.fingerprint(), "versions_rewrapped": stale.len(),
                "service_keys_rewrapped": services }),
    );
    stale.len() as i32
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
pub mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn rotate_keeps_old_versions_decryptable() {
        let k = Spi::get_one::<pgrx::Uuid>("SELECT encml.create_key('pgtest-rotate')")
            .unwrap()
            .unwrap();
        Spi::run(&format!(
            "CREATE TEMP TABLE t AS SELECT encml.encrypt('v1', '{k}') AS c"
        ))
        .unwrap();
        assert_eq!(
            Spi::get_one::<i32>(&format!("SELECT encml.rotate_key('{k}')")),
            Ok(Some(2))
        );
        Spi::run(&format!("INSERT INTO t SELECT encml.encrypt('v2', '{k}')")).unwrap();
        assert_eq!(
            Spi::get_one::<String>("SELECT string_agg(encml.key_version(c) || ':' || encml.decrypt_text(c), ',' ORDER BY 1) FROM t"),
            Ok(Some("1:v1,2:v2".into()))
        );
        Spi::run("UPDATE t SET c = encml.reencrypt(c)").unwrap();
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM t WHERE encml.key_version(c) = 2"),
            Ok(Some(2))
        );
    }

    #[pg_test(error = "a key named \"dup\" already exists")]
    fn duplicate_names_are_refused() {
        Spi::run("SELECT encml.create_key('dup')").unwrap();
        Spi::run("SELECT encml.create_key('dup')").unwrap();
    }

    #[pg_test(error = "unknown key purpose \"nope\"")]
    fn unknown_purpose_is_refused() {
        Spi::run("SELECT encml.create_key('p', 'nope')").unwrap();
    }
}

/// Encryptions counted on this server and not yet recorded in `encml.key_encryptions`, per key
/// version of the current database (docs/keys.md "Encryption counts"). Read by the
/// `encml.key_usage` view. Only the keys the caller may see in `encml.keys` (it is PUBLIC: the
/// ids of another tenant's keys are not the caller's business).
#[pg_extern(volatile, parallel_restricted)]
fn key_encryptions_unrecorded() -> TableIterator<
    'static,
    (
        name!(key_id, Uuid),
        name!(version, i32),
        name!(unrecorded, i64),
    ),
> {
    let visible: std::collections::HashSet<[u8; 16]> =
        crate::pg::identity::with_pinned_search_path(|| {
            Spi::connect(|client| {
                client
                    .select("SELECT id FROM encml.keys", None, &[])
                    .or_spi_failed("could not read encml.keys")
                    .filter_map(|r| r.get::<Uuid>(1).ok().flatten())
                    .map(|u| *u.as_bytes())
                    .collect()
            })
        });
    TableIterator::new(
        crate::keys::nonce_budget::unrecorded()
            .into_iter()
            .filter(move |(k, _, _)| visible.contains(k))
            .map(|(k, v, n)| (Uuid::from_bytes(k), v as i32, n.min(i64::MAX as u64) as i64)),
    )
}
