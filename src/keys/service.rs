//! Service keys in the catalog (`encml.service_keys`, format in docs/formats.md): the audit
//! chain's and the redaction's HMAC keys, wrapped by the master key, rewrapped by
//! `rotate_master_key()`, never deleted (a guard refuses it), cached per backend once unwrapped
//! (a version's key never changes).
//!
//! The first seal (or master-key rotation) creates them (in the caller's transaction, as the
//! extension owner; the audit trigger never writes them, see `redaction_key`):
//! - audit-chain: one imported version per configured master key (each equal to that master
//!   key's pre-0.2.0 derivation, so that rows sealed under it stay verifiable after it is
//!   removed), then a fresh random key, the current one;
//! - audit-redact: one version imported from the current master key, so that tokens continue
//!   those of 0.1.0 and are equal on every node of a cluster configured with that master key;
//!   from then on, master-key rotations no longer change them.

use crate::pg::c_functions;
use crate::pg::catalog_reads::{arg, read_rows};
use crate::pg::errors::OrSpiFailed;
use crate::pg::errors::{raise, raise_full};
use crate::pg::identity::as_extension_owner;
use encml_core::master::MasterKey;
use encml_core::service_key::{self, ServiceKey, ServicePurpose};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

thread_local! {
    static UNWRAPPED: RefCell<HashMap<(ServicePurpose, u32), Rc<ServiceKey>>> = RefCell::new(HashMap::new());
    static CURRENT: RefCell<HashMap<ServicePurpose, u32>> = RefCell::new(HashMap::new());
    /// The redaction key derived while the catalog has none yet (see `redaction_key`).
    static DERIVED_REDACTION: RefCell<Option<Rc<ServiceKey>>> = const { RefCell::new(None) };
}

/// Forgets the cached keys (the extension may have been dropped and created again).
pub fn clear() {
    UNWRAPPED.with(|c| c.borrow_mut().clear());
    CURRENT.with(|c| c.borrow_mut().clear());
    DERIVED_REDACTION.with(|d| d.borrow_mut().take());
}

struct Row {
    version: u32,
    wrapped: Vec<u8>,
    fingerprint: String,
}

fn row(purpose: ServicePurpose, version: Option<u32>, derived_from: Option<&str>) -> Option<Row> {
    as_extension_owner(|| {
        read_rows(
            "SELECT version, wrapped_key, master_key_fingerprint FROM encml.service_keys \
              WHERE purpose = $1 AND ($2::int4 IS NULL OR version = $2) \
                AND ($3::text IS NULL OR derived_from = $3) \
              ORDER BY version DESC LIMIT 1",
            &[
                arg(purpose.label()),
                arg(version.map(|v| v as i32)),
                arg(derived_from),
            ],
            1,
            |r| {
                Some(Row {
                    version: r.get::<i32>(1)? as u32,
                    wrapped: r.get::<Vec<u8>>(2)?,
                    fingerprint: r.get::<String>(3)?,
                })
            },
        )
        .into_iter()
        .flatten()
        .next()
    })
}

fn unwrap_row(purpose: ServicePurpose, r: &Row) -> Rc<ServiceKey> {
    if let Some(k) = UNWRAPPED.with(|c| c.borrow().get(&(purpose, r.version)).cloned()) {
        return k;
    }
    let find = |keys: &[MasterKey]| keys.iter().position(|k| k.fingerprint() == r.fingerprint);
    let mut masters = crate::keys::provider::master_keys();
    if find(&masters).is_none() {
        masters = crate::keys::provider::reload();
    }
    let Some(i) = find(&masters) else {
        raise_full(
            PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
            format!(
                "the service key {}:{} is wrapped by master key {}, which the provider does not offer",
                purpose.label(),
                r.version,
                r.fingerprint
            ),
            None,
            Some("Add that master key to the provider's output (or run encml.rotate_master_key() while it is still there).".into()),
        );
    };
    let key = ServiceKey::unwrap(&masters[i], purpose, r.version, &r.wrapped).unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            service_key::unwrap_error(purpose, r.version, e),
        )
    });
    let key = Rc::new(key);
    UNWRAPPED.with(|c| c.borrow_mut().insert((purpose, r.version), key.clone()));
    key
}

/// The key of `purpose` at `version`, if the catalog has it.
pub fn version(purpose: ServicePurpose, version: u32) -> Option<Rc<ServiceKey>> {
    if let Some(k) = UNWRAPPED.with(|c| c.borrow().get(&(purpose, version)).cloned()) {
        return Some(k);
    }
    row(purpose, Some(version), None).map(|r| unwrap_row(purpose, &r))
}

/// The key audit rows sealed before 0.2.0 under the master key `fingerprint` need: imported, or
/// derived from that master key while the provider still has it.
pub fn legacy(purpose: ServicePurpose, fingerprint: &str) -> Option<Rc<ServiceKey>> {
    if let Some(r) = catalog_exists()
        .then(|| row(purpose, None, Some(fingerprint)))
        .flatten()
    {
        return Some(unwrap_row(purpose, &r));
    }
    let masters = crate::keys::provider::master_keys();
    masters
        .iter()
        .find(|m| m.fingerprint() == fingerprint)
        .map(|m| Rc::new(ServiceKey::derived_from(m, purpose, 0)))
}

/// Whether the installed schema has the service key catalog (0.2.0 on); a 0.1.0 schema under
/// this library, until ALTER EXTENSION ... UPDATE, keeps the keys derived from the master key.
fn catalog_exists() -> bool {
    crate::pg::catalog_reads::extension_relation(c"service_keys") != pgrx::pg_sys::InvalidOid
}

/// The current key of `purpose`, created on first use, and the label audit rows record for it
/// (its `svc:` label; under a 0.1.0 schema, the master key it is derived from, as 0.1.0 did).
pub fn current_labelled(purpose: ServicePurpose) -> (Rc<ServiceKey>, String) {
    if !catalog_exists() {
        let masters = crate::keys::provider::master_keys();
        let m = &masters[0];
        return (
            Rc::new(ServiceKey::derived_from(m, purpose, 0)),
            m.fingerprint().to_string(),
        );
    }
    let key = current(purpose);
    let label = key.label();
    (key, label)
}

/// The current key of `purpose`, created on first use (the schema must have the catalog: see
/// `current_labelled`).
pub fn current(purpose: ServicePurpose) -> Rc<ServiceKey> {
    if let Some(v) = CURRENT.with(|c| c.borrow().get(&purpose).copied()) {
        if let Some(k) = UNWRAPPED.with(|c| c.borrow().get(&(purpose, v)).cloned()) {
            return k;
        }
    }
    if !catalog_exists() {
        return current_labelled(purpose).0;
    }
    let r = row(purpose, None, None).unwrap_or_else(|| {
        create(purpose);
        row(purpose, None, None).unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
                format!(
                    "the service key {} was created by a concurrent transaction this snapshot does not see",
                    purpose.label()
                ),
            )
        })
    });
    let key = unwrap_row(purpose, &r);
    CURRENT.with(|c| c.borrow_mut().insert(purpose, r.version));
    key
}

/// The current redaction key for the audit trigger, which must not write the catalog: the
/// trigger fires inside the writer's transaction, and on Citus in several connections of one
/// distributed transaction, where two first uses would wait for each other. Until a seal (or a
/// master-key rotation) has created it, the key is what its first version will be: the current
/// master key's derivation.
pub fn redaction_key() -> Rc<ServiceKey> {
    let purpose = ServicePurpose::AuditRedact;
    if !catalog_exists() {
        return current_labelled(purpose).0;
    }
    if let Some(v) = CURRENT.with(|c| c.borrow().get(&purpose).copied()) {
        if let Some(k) = UNWRAPPED.with(|c| c.borrow().get(&(purpose, v)).cloned()) {
            return k;
        }
    }
    // Cached too (every audited row asks): the same bytes the catalog's first version will hold.
    if let Some(k) = DERIVED_REDACTION.with(|d| d.borrow().clone()) {
        return k;
    }
    match row(purpose, None, None) {
        Some(r) => {
            let key = unwrap_row(purpose, &r);
            CURRENT.with(|c| c.borrow_mut().insert(purpose, r.version));
            key
        }
        None => {
            let masters = crate::keys::provider::master_keys();
            let key = Rc::new(ServiceKey::derived_from(&masters[0], purpose, 1));
            DERIVED_REDACTION.with(|d| *d.borrow_mut() = Some(key.clone()));
            key
        }
    }
}

/// Makes sure every purpose has its keys (before a master-key rotation, so that the keys of
/// rows sealed under the old master key are imported while it is still configured).
pub fn ensure_all() {
    if !catalog_exists() {
        return;
    }
    for p in ServicePurpose::ALL {
        current(p);
    }
}

fn insert(key: &ServiceKey, master: &MasterKey, derived_from: Option<&str>) {
    let wrapped = key
        .wrap(master)
        .unwrap_or_else(|e| crate::pg::errors::raise_core(e));
    as_extension_owner(|| {
        // A concurrent first use inserts the same versions: the loser's rows are skipped.
        Spi::run_with_args(
            "INSERT INTO encml.service_keys (purpose, version, wrapped_key, master_key_fingerprint, derived_from) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (purpose, version) DO NOTHING",
            &[
                key.purpose().label().into(),
                (key.version() as i32).into(),
                wrapped.into(),
                master.fingerprint().into(),
                derived_from.into(),
            ],
        )
        .or_spi_failed("service key catalog")
    });
}

fn create(purpose: ServicePurpose) {
    let masters = crate::keys::provider::reload();
    let current = &masters[0];
    match purpose {
        ServicePurpose::AuditChain => {
            // Older master keys first: the newest version is the random current key.
            let mut version = 0;
            for m in masters.iter().rev() {
                version += 1;
                insert(
                    &ServiceKey::derived_from(m, purpose, version),
                    current,
                    Some(m.fingerprint()),
                );
            }
            let fresh = ServiceKey::generate(purpose, version + 1)
                .unwrap_or_else(|e| crate::pg::errors::raise_core(e));
            insert(&fresh, current, None);
        }
        ServicePurpose::AuditRedact => insert(
            &ServiceKey::derived_from(current, purpose, 1),
            current,
            Some(current.fingerprint()),
        ),
    }
}

/// Rewraps every service key not wrapped by `current` (master-key rotation); returns how many.
pub fn rewrap_all(current: &MasterKey) -> i32 {
    if !catalog_exists() {
        return 0;
    }
    let stale: Vec<(ServicePurpose, Row)> = as_extension_owner(|| {
        read_rows(
            "SELECT purpose, version, wrapped_key, master_key_fingerprint FROM encml.service_keys \
              WHERE master_key_fingerprint <> $1 ORDER BY purpose, version",
            &[arg(current.fingerprint())],
            0,
            |r| {
                Some((
                    ServicePurpose::from_label(&r.get::<String>(1)?)?,
                    Row {
                        version: r.get::<i32>(2)? as u32,
                        wrapped: r.get::<Vec<u8>>(3)?,
                        fingerprint: r.get::<String>(4)?,
                    },
                ))
            },
        )
        .into_iter()
        .flatten()
        .collect()
    });
    for (purpose, r) in &stale {
        let key = unwrap_row(*purpose, r);
        let wrapped = key
            .wrap(current)
            .unwrap_or_else(|e| crate::pg::errors::raise_core(e));
        as_extension_owner(|| {
            Spi::run_with_args(
                "UPDATE encml.service_keys SET wrapped_key = $3, master_key_fingerprint = $4 \
                  WHERE purpose = $1 AND version = $2",
                &[
                    purpose.label().into(),
                    (r.version as i32).into(),
                    wrapped.into(),
                    current.fingerprint().into(),
                ],
            )
            .or_spi_failed("service key catalog")
        });
    }
    stale.len() as i32
}

/// The key that sealed an audit row, by the row's `mac_key`: a service key label, or (rows
/// sealed before 0.2.0) a master key's fingerprint. None if the catalog and the provider lack it.
pub fn audit_chain_key_named(mac_key: &str) -> Option<Rc<ServiceKey>> {
    match service_key::parse_label(mac_key) {
        Some((ServicePurpose::AuditChain, v)) => catalog_exists()
            .then(|| version(ServicePurpose::AuditChain, v))
            .flatten(),
        Some(_) => None,
        None => legacy(ServicePurpose::AuditChain, mac_key),
    }
}

/// Refuses DELETE and TRUNCATE of `encml.service_keys`, to everyone: old audit rows need every
/// version for as long as the log is kept.
unsafe fn service_keys_guard(_fcinfo: pgrx::pg_sys::FunctionCallInfo) -> pgrx::pg_sys::Datum {
    raise_full(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        "service keys are never deleted",
        Some("Audit rows sealed with a service key need it for as long as the log is kept.".into()),
        None,
    )
}

c_functions! {
    /// encml.service_keys_guard(): refuses DELETE and TRUNCATE of the service keys
    encml_service_keys_guard, pg_finfo_encml_service_keys_guard => service_keys_guard;
}

pgrx::extension_sql_file!(
    "../../sql/schema/service_keys.sql",
    name = "service_keys",
    requires = ["bootstrap"]
);
