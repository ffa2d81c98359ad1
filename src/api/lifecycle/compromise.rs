//! Incident response: `compromise_key` rotates a key at once, records its versions until then as
//! compromised (nothing new is encrypted or searched under them), queues the re-encryption of
//! every value under them ahead of all other jobs, and raises a critical security event and
//! alert; `check_cleared` reports when no value depends on them any more.

use super::jobs::{self, Reason};
use crate::keys::catalog::{self, uuid_string};
use crate::pg::catalog_reads::{arg, read_rows};
use crate::pg::identity::as_extension_owner;
use crate::pg::roles::caller;
use pgrx::prelude::*;
use pgrx::Uuid;
use serde_json::json;

/// Reports the key compromised: rotates it, marks its versions until now compromised, queues
/// priority re-encryption jobs run as the caller (who must administer the key), and raises a
/// critical event. Returns the new current version.
#[pg_extern(volatile, parallel_unsafe)]
fn compromise_key(key: Option<Uuid>, reason: Option<&str>) -> i32 {
    crate::pg::recovery::refuse_during_recovery("encml.compromise_key()");
    let key = crate::pg::errors::not_null(key, "key");
    let reason = crate::pg::errors::not_null(reason, "reason");
    if reason.trim().is_empty() {
        crate::pg::errors::raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "reason must not be empty: say what happened, for the audit log",
        );
    }
    let (id, _) = crate::api::keys::lock_for_admin(key);
    let compromised = catalog::usable_versions(&id);
    let role = caller();
    as_extension_owner(|| {
        crate::pg::catalog_reads::execute(
            "INSERT INTO encml.key_compromises (key_id, version, reason, reported_by) \
             SELECT $1, v, $3, $4::pg_catalog.regrole FROM pg_catalog.unnest($2::integer[]) v \
             ON CONFLICT (key_id, version) DO NOTHING",
            &[
                arg(Uuid::from_bytes(id)),
                arg(compromised.iter().map(|v| *v as i32).collect::<Vec<i32>>()),
                arg(reason),
                arg(role),
            ],
        )
    });
    let version = crate::api::keys::rotate(key, Some("compromise"));
    let queued = jobs::queue_key_jobs(&id, role, Reason::Compromise);
    crate::events::record(
        "key_compromised",
        None,
        json!({ "key": uuid_string(&id), "reason": reason, "versions": compromised,
                "new_version": version, "jobs": queued.iter().map(|j| j.0).collect::<Vec<_>>() }),
    );
    if queued.is_empty() {
        check_cleared(&id);
    }
    version as i32
}

/// Marks the key's compromised versions that no value of this database depends on any more
/// (no live job, no column or large object under them), or whose material was erased
/// (`retire_key_version`, with `force` when forged or unreachable values kept them in use), as
/// cleared, with an event each.
pub fn check_cleared(key: &[u8; 16]) {
    let open: Vec<(i32, bool)> = as_extension_owner(|| {
        read_rows(
            "SELECT c.version, coalesce(v.status <> 'active', true) FROM encml.key_compromises c \
               LEFT JOIN encml.data_key_versions v ON v.key_id = c.key_id AND v.version = c.version \
              WHERE c.key_id = $1 AND c.cleared_at IS NULL ORDER BY c.version",
            &[arg(Uuid::from_bytes(*key))],
            0,
            |row| {
                (
                    row.get::<i32>(1).unwrap_or(0),
                    row.get::<bool>(2).unwrap_or(false),
                )
            },
        )
    });
    if open.is_empty() || as_extension_owner(|| super::batch::live_jobs_of(key)) > 0 {
        return;
    }
    for (v, erased) in open {
        let v = v as u32;
        if !erased && !super::columns::users_of(key, v).is_empty() {
            continue;
        }
        as_extension_owner(|| {
            crate::pg::catalog_reads::execute(
                "UPDATE encml.key_compromises SET cleared_at = pg_catalog.now() \
                  WHERE key_id = $1 AND version = $2",
                &[arg(Uuid::from_bytes(*key)), arg(v as i32)],
            )
        });
        crate::events::record(
            "key_compromise_cleared",
            None,
            json!({ "key": uuid_string(key), "version": v, "retired": erased }),
        );
    }
}

/// Keys with a compromised version not yet cleared: looked at every round of the worker, since a
/// value that kept one in use (a locked table, a forged value) may go away without a job.
pub fn keys_uncleared() -> Vec<[u8; 16]> {
    read_rows(
        "SELECT DISTINCT key_id FROM encml.key_compromises WHERE cleared_at IS NULL",
        &[],
        0,
        |row| {
            row.get::<Uuid>(1)
                .map(|u| *u.as_bytes())
                .unwrap_or_default()
        },
    )
}
