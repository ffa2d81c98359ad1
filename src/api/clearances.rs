//! The SQL surface of attribute-based decryption (`keys::clearances`): labels on keys, clearances
//! of roles, and context conditions of labels. Labelling a key is for who administers the key;
//! clearances and conditions apply across keys, so they are for superusers and encml_key_admin.

use crate::api::keys::{is_key_admin, lock_for_admin};
use crate::events;
use crate::keys::catalog::{invalidate, uuid_string};
use crate::pg::catalog_reads::{arg, oid_arg, select_one};
use crate::pg::errors::OrSpiFailed;
use crate::pg::errors::{raise, raise_full};
use crate::pg::identity::as_extension_owner;
use crate::pg::roles::{caller, role_name, KEY_ADMIN};
use crate::types::reg::RegRole;
use pgrx::datum::Range;
use pgrx::prelude::*;
use pgrx::{PgSqlErrorCode, Uuid};
use serde_json::json;

fn label_arg(label: &str) -> &str {
    let ok = label.len() < 64
        && label.starts_with(|c: char| c.is_ascii_lowercase())
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        raise_full(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("invalid label \"{label}\""),
            None,
            Some("Labels are lower-case identifiers such as pii, phi, pci or secret.".into()),
        );
    }
    label
}

fn require_clearance_admin(what: &str) {
    if !is_key_admin(caller()) {
        events::refused("clearance_admin_refused", json!({ "operation": what }));
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied: {what} needs superuser or {KEY_ADMIN}"),
        );
    }
}

/// Runs a catalog write as the extension owner; returns whether a row changed. Every backend
/// drops its cached answers.
fn write(sql: &str, args: Vec<pgrx::datum::DatumWithOid<'_>>) -> bool {
    let changed = as_extension_owner(|| {
        Spi::get_one_with_args::<bool>(sql, &args)
            .or_spi_failed("clearance catalog query failed")
            .unwrap_or(false)
    });
    invalidate();
    changed
}

/// Labels a key: decrypting with it then needs a clearance for the label.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn label_key(key: Uuid, label: &str) -> bool {
    crate::pg::recovery::refuse_during_recovery("encml.label_key()");
    let label = label_arg(label);
    let (id, _) = lock_for_admin(key);
    let added = write(
        "WITH i AS (INSERT INTO encml.key_labels (key_id, label, labeled_by) \
                    VALUES ($1, $2, $3::oid::regrole) ON CONFLICT DO NOTHING RETURNING 1) \
         SELECT EXISTS (SELECT FROM i)",
        vec![Uuid::from_bytes(id).into(), label.into(), oid_arg(caller())],
    );
    events::record(
        "label_key",
        None,
        json!({ "key": uuid_string(&id), "label": label }),
    );
    added
}

/// Removes a label from a key.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn unlabel_key(key: Uuid, label: &str) -> bool {
    crate::pg::recovery::refuse_during_recovery("encml.unlabel_key()");
    let (id, _) = lock_for_admin(key);
    let removed = write(
        "WITH d AS (DELETE FROM encml.key_labels WHERE key_id = $1 AND label = $2 RETURNING 1) \
         SELECT EXISTS (SELECT FROM d)",
        vec![Uuid::from_bytes(id).into(), label.into()],
    );
    events::record(
        "unlabel_key",
        None,
        json!({ "key": uuid_string(&id), "label": label }),
    );
    removed
}

/// The labels of a key, for its users (no material, no grants).
#[pg_extern(stable, strict, parallel_safe)]
fn key_labels(key: Uuid) -> Vec<String> {
    as_extension_owner(|| {
        select_one::<Vec<String>>(
            "SELECT coalesce(pg_catalog.array_agg(label ORDER BY label), '{}') \
               FROM encml.key_labels WHERE key_id = $1",
            &[arg(key)],
        )
        .unwrap_or_default()
    })
}

/// Clears a role (and its members) to decrypt with keys labelled `label`.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn grant_clearance(grantee: RegRole, label: &str) -> bool {
    crate::pg::recovery::refuse_during_recovery("encml.grant_clearance()");
    let label = label_arg(label);
    require_clearance_admin("grant_clearance");
    let RegRole(grantee) = grantee;
    let added = write(
        "WITH i AS (INSERT INTO encml.clearances (grantee, label, granted_by) \
                    VALUES ($1::oid::regrole, $2, $3::oid::regrole) ON CONFLICT DO NOTHING RETURNING 1) \
         SELECT EXISTS (SELECT FROM i)",
        vec![oid_arg(grantee), label.into(), oid_arg(caller())],
    );
    events::record(
        "grant_clearance",
        None,
        json!({ "grantee": role_name(grantee), "label": label }),
    );
    added
}

/// Withdraws a clearance; effective in every session from its next statement.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn revoke_clearance(grantee: RegRole, label: &str) -> bool {
    crate::pg::recovery::refuse_during_recovery("encml.revoke_clearance()");
    require_clearance_admin("revoke_clearance");
    let RegRole(grantee) = grantee;
    let removed = write(
        "WITH d AS (DELETE FROM encml.clearances WHERE encml.same_role(grantee, $1::text::regrole) AND label = $2 RETURNING 1) \
         SELECT EXISTS (SELECT FROM d)",
        vec![crate::pg::roles::role_name(grantee).into(), label.into()],
    );
    events::record(
        "revoke_clearance",
        None,
        json!({ "grantee": role_name(grantee), "label": label }),
    );
    removed
}

/// Sets the context conditions of a label, checked at every decryption with a key of the label
/// (whoever holds the clearance): allowed client networks (cidr text, e.g. '{10.1.0.0/16}'), hours of the day [from, to) in
/// `time_zone`, allowed application_name values. NULL leaves a condition out; all NULL removes
/// the label's conditions.
#[pg_extern(volatile, parallel_unsafe)]
fn set_clearance_condition(
    label: &str,
    client_networks: default!(Option<Vec<Option<String>>>, "NULL"),
    hours: default!(Option<Range<i32>>, "NULL"),
    application_names: default!(Option<Vec<Option<String>>>, "NULL"),
    time_zone: default!(&str, "'UTC'"),
) -> bool {
    crate::pg::recovery::refuse_during_recovery("encml.set_clearance_condition()");
    let label = label_arg(label);
    require_clearance_admin("set_clearance_condition");
    let strip = |v: Option<Vec<Option<String>>>, what: &str| {
        v.map(|v| crate::pg::errors::no_nulls(v, what))
    };
    let networks = strip(client_networks, "client_networks");
    let apps = strip(application_names, "application_names");
    // The time zone must be known to Postgres (an ERROR from the cast otherwise).
    select_one::<bool>(
        "SELECT pg_catalog.now() AT TIME ZONE $1 IS NOT NULL",
        &[arg(time_zone)],
    );
    let all_null = networks.is_none() && hours.is_none() && apps.is_none();
    let changed = if all_null {
        write(
            "WITH d AS (DELETE FROM encml.clearance_conditions WHERE label = $1 RETURNING 1) \
             SELECT EXISTS (SELECT FROM d)",
            vec![label.into()],
        )
    } else {
        write(
            "WITH u AS (INSERT INTO encml.clearance_conditions \
                          (label, client_networks, hours, time_zone, application_names, set_by) \
                        VALUES ($1, $2::cidr[], $3, $4, $5, $6::oid::regrole) \
                        ON CONFLICT (label) DO UPDATE SET client_networks = EXCLUDED.client_networks, \
                          hours = EXCLUDED.hours, time_zone = EXCLUDED.time_zone, \
                          application_names = EXCLUDED.application_names, set_by = EXCLUDED.set_by, \
                          set_at = EXCLUDED.set_at \
                        RETURNING 1) \
             SELECT EXISTS (SELECT FROM u)",
            vec![
                label.into(),
                networks.clone().into(),
                hours.clone().into(),
                time_zone.into(),
                apps.clone().into(),
                oid_arg(caller()),
            ],
        )
    };
    let hours_text = hours.and_then(|h| select_one::<String>("SELECT $1::text", &[arg(h)]));
    events::record(
        "set_clearance_condition",
        None,
        json!({ "label": label, "client_networks": networks, "hours": hours_text,
                "time_zone": time_zone, "application_names": apps }),
    );
    changed
}
