//! Rotation policies: `set_rotation_policy`, `drop_rotation_policy`, and what the lifecycle
//! worker does with them: rotate a key whose current version is older than the policy's
//! interval (or has made `max_encryptions` AES-GCM encryptions), queue the re-encryption of its
//! older values, and retire older versions once no value uses them and `retire_after` has
//! passed. Every action runs as the role that set the policy, with its rights, and is audited.

use super::jobs::{self, Reason};
use crate::keys::catalog::uuid_string;
use crate::pg::catalog_reads::{arg, read_rows};
use crate::pg::errors::{raise_full, OrSpiFailed};
use crate::pg::identity::as_extension_owner;
use crate::pg::roles::caller;
use encml_core::kdf::Purpose;
use pgrx::datum::Interval;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode, Uuid};
use serde_json::json;

/// Sets (or replaces) the rotation policy of a key; its administrators only. The policy's
/// actions run as the caller.
#[pg_extern(volatile, parallel_unsafe)]
fn set_rotation_policy(
    key: Option<Uuid>,
    rotate_every: Option<Interval>,
    reencrypt: default!(bool, true),
    retire_after: default!(Option<Interval>, "NULL"),
    max_encryptions: default!(Option<i64>, "NULL"),
) {
    crate::pg::recovery::refuse_during_recovery("encml.set_rotation_policy()");
    let key = crate::pg::errors::not_null(key, "key");
    let every = crate::pg::errors::not_null(rotate_every, "rotate_every");
    let too_short = crate::pg::catalog_reads::select_one::<bool>(
        "SELECT $1 OPERATOR(pg_catalog.<) interval '1 minute'",
        &[arg(every)],
    )
    .unwrap_or(true);
    if too_short {
        crate::pg::errors::raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "rotate_every must be at least 1 minute",
        );
    }
    let negative = retire_after.is_some_and(|r| {
        crate::pg::catalog_reads::select_one::<bool>(
            "SELECT $1 OPERATOR(pg_catalog.<) interval '0'",
            &[arg(r)],
        )
        .unwrap_or(true)
    });
    if negative || max_encryptions.is_some_and(|m| m <= 0) {
        crate::pg::errors::raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "retire_after must not be negative, and max_encryptions must be positive",
        );
    }
    let (id, row) = crate::api::keys::lock_for_admin(key);
    if row.purpose == Purpose::Fpe {
        raise_full(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "key {} has purpose 'fpe', whose tokens carry no key version and are never rotated",
                uuid_string(&id)
            ),
            None,
            Some("Re-tokenize under a new key instead (docs/tokenization.md).".into()),
        );
    }
    if max_encryptions.is_some() && row.purpose != Purpose::Aead {
        raise_full(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "max_encryptions applies to keys of purpose 'aead' only",
            Some(
                "Only AES-GCM encryptions with random nonces are counted (encml.key_usage).".into(),
            ),
            None,
        );
    }
    let role = caller();
    let every_text = every.to_string();
    let retire_text = retire_after.as_ref().map(|i| i.to_string());
    as_extension_owner(|| {
        Spi::connect_mut(|client| {
            let args = [
                Uuid::from_bytes(id).into(),
                every.into(),
                reencrypt.into(),
                retire_after.into(),
                max_encryptions.into(),
                crate::pg::catalog_reads::oid_arg(role),
            ];
            client
                .update(
                    "INSERT INTO encml.rotation_policies \
                        (key_id, rotate_every, reencrypt, retire_after, max_encryptions, set_by) \
                     VALUES ($1, $2, $3, $4, $5, $6::pg_catalog.regrole) \
                     ON CONFLICT (key_id) DO UPDATE SET rotate_every = EXCLUDED.rotate_every, \
                        reencrypt = EXCLUDED.reencrypt, retire_after = EXCLUDED.retire_after, \
                        max_encryptions = EXCLUDED.max_encryptions, set_by = EXCLUDED.set_by, \
                        set_at = pg_catalog.now(), checked_at = NULL, last_error = NULL",
                    None,
                    &args,
                )
                .or_spi_failed("could not set the rotation policy");
        })
    });
    crate::events::record(
        "set_rotation_policy",
        None,
        json!({ "key": uuid_string(&id), "rotate_every": every_text, "reencrypt": reencrypt,
                "retire_after": retire_text, "max_encryptions": max_encryptions }),
    );
}

/// Removes the rotation policy of a key; its administrators only. Jobs already queued go on.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn drop_rotation_policy(key: Uuid) -> bool {
    crate::pg::recovery::refuse_during_recovery("encml.drop_rotation_policy()");
    let (id, _) = crate::api::keys::lock_for_admin(key);
    let dropped = as_extension_owner(|| {
        crate::pg::catalog_reads::execute(
            "DELETE FROM encml.rotation_policies WHERE key_id = $1",
            &[arg(Uuid::from_bytes(id))],
        ) > 0
    });
    if dropped {
        crate::events::record(
            "drop_rotation_policy",
            None,
            json!({ "key": uuid_string(&id) }),
        );
    }
    dropped
}

/// A policy whose key is due for rotation.
pub struct Due {
    pub key: [u8; 16],
    pub set_by: pg_sys::Oid,
    pub reencrypt: bool,
    pub why: &'static str,
}

/// The policies due now: the current version older than `rotate_every`, or past
/// `max_encryptions` (recorded and unrecorded counts, as encml.key_usage shows them).
pub fn due() -> Vec<Due> {
    read_rows(
        "SELECT p.key_id, p.set_by::oid, p.reencrypt, \
                v.created_at + p.rotate_every <= pg_catalog.now() AS old_enough, \
                coalesce(p.max_encryptions <= (SELECT u.encryptions FROM encml.key_usage u \
                          WHERE u.key_id = k.id AND u.version = k.current_version), false) AS worn \
           FROM encml.rotation_policies p \
           JOIN encml.data_keys k ON k.id = p.key_id \
           JOIN encml.data_key_versions v ON v.key_id = k.id AND v.version = k.current_version \
          WHERE k.destroyed_at IS NULL ORDER BY p.key_id",
        &[],
        0,
        |row| {
            let old_enough = row.get::<bool>(4).unwrap_or(false);
            let worn = row.get::<bool>(5).unwrap_or(false);
            (old_enough || worn).then(|| Due {
                key: row
                    .get::<Uuid>(1)
                    .map(|u| *u.as_bytes())
                    .unwrap_or_default(),
                set_by: row.get::<pg_sys::Oid>(2).unwrap_or(pg_sys::InvalidOid),
                reencrypt: row.get::<bool>(3).unwrap_or(true),
                why: if old_enough {
                    "rotation policy (interval)"
                } else {
                    "rotation policy (max_encryptions)"
                },
            })
        },
    )
    .into_iter()
    .flatten()
    .collect()
}

/// Rotates a due key as the policy's role and queues the re-encryption of its older values.
pub fn apply(due: &Due) {
    jobs::acting_as(due.set_by, || {
        crate::api::keys::rotate(Uuid::from_bytes(due.key), Some(due.why));
    });
    if due.reencrypt {
        jobs::queue_key_jobs(&due.key, due.set_by, Reason::Policy);
    }
    mark_checked(&due.key, None);
}

/// Records when the worker last acted on the key's policy, and what went wrong then.
pub fn mark_checked(key: &[u8; 16], error: Option<&str>) {
    crate::pg::catalog_reads::execute(
        "UPDATE encml.rotation_policies SET checked_at = pg_catalog.now(), last_error = $2 \
          WHERE key_id = $1",
        &[arg(Uuid::from_bytes(*key)), arg(error)],
    );
}

/// Retires the key's older versions that its policy says to retire: replaced more than
/// `retire_after` ago, no live job left, and no value in the database under them. As the
/// policy's role.
pub fn retire_due(key: &[u8; 16]) {
    let policy = as_extension_owner(|| {
        read_rows(
            "SELECT p.set_by::oid, \
                    (SELECT pg_catalog.array_agg(v.version ORDER BY v.version) \
                       FROM encml.data_key_versions v \
                       JOIN encml.data_key_versions n ON n.key_id = v.key_id AND n.version = v.version + 1 \
                      WHERE v.key_id = p.key_id AND v.status = 'active' AND v.version < k.current_version \
                        AND n.created_at + p.retire_after <= pg_catalog.now()) \
               FROM encml.rotation_policies p JOIN encml.data_keys k ON k.id = p.key_id \
              WHERE p.key_id = $1 AND p.retire_after IS NOT NULL AND k.destroyed_at IS NULL",
            &[arg(Uuid::from_bytes(*key))],
            1,
            |row| {
                (
                    row.get::<pg_sys::Oid>(1).unwrap_or(pg_sys::InvalidOid),
                    row.get::<Vec<i32>>(2).unwrap_or_default(),
                )
            },
        )
    });
    let Some((set_by, versions)) = policy.into_iter().next() else {
        return;
    };
    if versions.is_empty() || super::batch::live_jobs_of(key) > 0 {
        return;
    }
    let mut blocked = Vec::new();
    for v in versions {
        let users = super::columns::users_of(key, v as u32);
        if !users.is_empty() {
            // Shown in rotation_policy_status.last_error: why a version due for retirement stays.
            let list: Vec<String> = users.iter().map(|(c, n)| format!("{c} ({n})")).collect();
            blocked.push(format!("version {v} still used by {}", list.join(", ")));
            continue;
        }
        jobs::acting_as(set_by, || {
            crate::api::keys::retire(
                Uuid::from_bytes(*key),
                v,
                crate::api::keys::InUse::NoneFound,
                Some("rotation policy"),
            );
        });
    }
    if blocked.is_empty() {
        // A block reported earlier is over (another error, of a rotation, stays).
        crate::pg::catalog_reads::execute(
            "UPDATE encml.rotation_policies SET last_error = NULL \
              WHERE key_id = $1 AND last_error LIKE 'retirement blocked: %'",
            &[arg(Uuid::from_bytes(*key))],
        );
    } else {
        mark_checked(
            key,
            Some(&format!("retirement blocked: {}", blocked.join("; "))),
        );
    }
}

/// Keys with a policy that retires versions: looked at every round, for versions whose
/// `retire_after` passed after their jobs ended.
pub fn keys_retiring() -> Vec<[u8; 16]> {
    read_rows(
        "SELECT p.key_id FROM encml.rotation_policies p \
           JOIN encml.data_keys k ON k.id = p.key_id \
          WHERE p.retire_after IS NOT NULL AND k.destroyed_at IS NULL \
            AND EXISTS (SELECT FROM encml.data_key_versions v \
                         WHERE v.key_id = k.id AND v.status = 'active' AND v.version < k.current_version)",
        &[],
        0,
        |row| row.get::<Uuid>(1).map(|u| *u.as_bytes()).unwrap_or_default(),
    )
}
