//! Attribute-based decryption: a key may carry classification labels (pii, phi, pci, secret, ...);
//! decrypting with it needs, besides the per-key privilege (`grants`), a clearance for every label
//! of the key, held by the role or a role it inherits from, and the context conditions of those
//! labels (client network, hours of the day, application_name) must hold.
//!
//! Labels go on keys rather than columns because a decrypt function receives a value, not a
//! column: the value's key is the one thing known for certain at decryption, whatever view,
//! subquery or copy the value came through. The compliance report flags classified columns whose
//! values use keys without the column's label.
//!
//! Superusers are exempt (they can read the master key anyway). Answers per (key, role) are
//! cached and dropped with the key cache; the conditions are evaluated once per statement.

use crate::keys::catalog::uuid_string;
use crate::pg::catalog_reads::{arg, read_rows};
use crate::pg::errors::raise_full;
use crate::pg::identity::as_extension_owner;
use crate::pg::roles::{is_superuser, statement_start};
use pgrx::{pg_sys, PgSqlErrorCode};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// What a role's clearances say about one key.
#[derive(Debug, Default)]
struct Standing {
    /// A label of the key the role is not cleared for (the first, alphabetically).
    missing: Option<String>,
    /// Labels of the key that have context conditions.
    conditional: Vec<String>,
}

/// The outcome for the current statement.
#[derive(Clone)]
enum Verdict {
    Cleared,
    /// The role lacks a clearance for the label.
    NotCleared(String),
    /// A condition of the label failed; the reason names which.
    Context(String, String),
}

type KeyRole = ([u8; 16], pg_sys::Oid);
/// The last verdict: key, role, the statement start it holds for (None: any statement, when the
/// key's labels have no conditions), verdict.
type LastVerdict = Option<([u8; 16], pg_sys::Oid, Option<i64>, Verdict)>;

thread_local! {
    static MEMO: RefCell<HashMap<KeyRole, Rc<Standing>>> = RefCell::new(HashMap::new());
    static LAST: RefCell<LastVerdict> = const { RefCell::new(None) };
}

pub fn clear() {
    LAST.with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            *l = None;
        }
    });
    MEMO.with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            m.clear();
        }
    });
}

fn standing(key: &[u8; 16], role: pg_sys::Oid) -> Rc<Standing> {
    if let Some(s) = MEMO.with(|m| m.borrow().get(&(*key, role)).cloned()) {
        return s;
    }
    let s = Rc::new(crate::pg::catalog_reads::with_latest_snapshot(|| {
        as_extension_owner(|| {
            read_rows(
            "SELECT (SELECT min(l.label) FROM encml.key_labels l \
                      WHERE l.key_id = $1 \
                        AND NOT EXISTS (SELECT FROM encml.clearances c \
                                         WHERE c.label = l.label \
                                           AND pg_catalog.pg_has_role($2::oid, c.grantee::oid, 'USAGE'))), \
                    (SELECT pg_catalog.array_agg(l.label ORDER BY l.label) \
                       FROM encml.key_labels l JOIN encml.clearance_conditions c USING (label) \
                      WHERE l.key_id = $1)",
            &[arg(pgrx::Uuid::from_bytes(*key)), arg(role)],
            1,
            |row| Standing {
                missing: row.get::<String>(1),
                conditional: row.get::<Vec<String>>(2).unwrap_or_default(),
            },
        )
        .pop()
        .unwrap_or_default()
        })
    }));
    MEMO.with(|m| m.borrow_mut().insert((*key, role), s.clone()));
    s
}

/// Why the first failing condition of `labels` fails now, if one does. The client address is the
/// session's (a parallel worker asks for its leader's). In a connection Citus opened from the
/// coordinator, the client is the coordinator itself: conditions on the client fail there.
fn failed_condition(labels: &[String]) -> Option<(String, String)> {
    as_extension_owner(|| {
        read_rows(
            "WITH client AS ( \
               SELECT coalesce(pg_catalog.inet_client_addr(), \
                        (SELECT a.client_addr FROM pg_catalog.pg_stat_get_activity(NULL) a \
                          WHERE a.pid = (SELECT s.leader_pid FROM pg_catalog.pg_stat_get_activity(pg_catalog.pg_backend_pid()) s \
                                          WHERE s.leader_pid <> pg_catalog.pg_backend_pid()))) AS addr) \
             SELECT c.label, \
                    CASE WHEN $2 AND (c.client_networks IS NOT NULL OR c.application_names IS NOT NULL) \
                         THEN 'the client''s address and application_name are known only on the Citus coordinator (decrypt there, docs/citus.md)' \
                         WHEN c.client_networks IS NOT NULL \
                              AND NOT coalesce((SELECT addr FROM client) <<= ANY (c.client_networks), false) \
                         THEN pg_catalog.format('client address %s is not in the allowed networks', \
                                 coalesce(pg_catalog.host((SELECT addr FROM client)), '(local socket)')) \
                         WHEN c.hours IS NOT NULL \
                              AND NOT c.hours @> pg_catalog.date_part('hour', pg_catalog.timezone(c.time_zone, pg_catalog.statement_timestamp()))::integer \
                         THEN pg_catalog.format('hour %s (%s) is outside the allowed hours %s', \
                                 pg_catalog.date_part('hour', pg_catalog.timezone(c.time_zone, pg_catalog.statement_timestamp())), \
                                 c.time_zone, c.hours) \
                         WHEN c.application_names IS NOT NULL \
                              AND NOT pg_catalog.current_setting('application_name') = ANY (c.application_names) \
                         THEN pg_catalog.format('application_name %L is not allowed', \
                                 pg_catalog.current_setting('application_name')) \
                    END \
               FROM encml.clearance_conditions c \
              WHERE c.label = ANY ($1) ORDER BY c.label",
            &[
                arg(labels.to_vec()),
                arg(crate::pg::citus::in_internal_connection()),
            ],
            labels.len() as i64,
            |row| row.get::<String>(1).zip(row.get::<String>(2)),
        )
        .into_iter()
        .flatten()
        .next()
    })
}

fn verdict(key: &[u8; 16], role: pg_sys::Oid) -> Verdict {
    let hit = LAST.with(|l| match &*l.borrow() {
        Some((k, r, statement, v)) if k == key && *r == role => match statement {
            None => Some(v.clone()),
            Some(t) if *t == statement_start() => Some(v.clone()),
            Some(_) => None,
        },
        _ => None,
    });
    if let Some(v) = hit {
        return v;
    }
    let (v, statement) = if is_superuser(role) {
        (Verdict::Cleared, None)
    } else {
        let s = standing(key, role);
        if let Some(label) = &s.missing {
            (Verdict::NotCleared(label.clone()), None)
        } else if s.conditional.is_empty() {
            (Verdict::Cleared, None)
        } else {
            let statement = statement_start();
            match failed_condition(&s.conditional) {
                Some((label, reason)) => (Verdict::Context(label, reason), Some(statement)),
                None => (Verdict::Cleared, Some(statement)),
            }
        }
    };
    LAST.with(|l| *l.borrow_mut() = Some((*key, role, statement, v.clone())));
    v
}

/// Whether `role` may decrypt with the key now, as far as labels go.
pub fn allows_as(key: &[u8; 16], role: pg_sys::Oid) -> bool {
    matches!(verdict(key, role), Verdict::Cleared)
}

/// ERROR 42501 unless `role` is cleared for every label of the key and their conditions hold;
/// the refusal is recorded outside the caller's transaction. Returns for which statement the
/// answer holds (None: any, when no conditions are involved), so the caller may remember it.
pub fn check_as(key: &[u8; 16], role: pg_sys::Oid) -> Option<i64> {
    match verdict(key, role) {
        Verdict::Cleared => LAST.with(|l| {
            l.borrow()
                .as_ref()
                .and_then(|(_, _, statement, _)| *statement)
        }),
        Verdict::NotCleared(label) => {
            let id = uuid_string(key);
            crate::events::refused(
                "clearance_refused",
                serde_json::json!({ "key": id, "label": label }),
            );
            raise_full(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!(
                    "permission denied to decrypt with key {id}: no clearance for label '{label}'"
                ),
                None,
                Some(format!(
                    "A member of encml_key_admin can run encml.grant_clearance('{}', '{label}').",
                    crate::pg::roles::role_name(role)
                )),
            );
        }
        Verdict::Context(label, reason) => {
            let id = uuid_string(key);
            crate::events::refused(
                "clearance_condition_refused",
                serde_json::json!({ "key": id, "label": label, "reason": reason }),
            );
            raise_full(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("permission denied to decrypt with key {id}: the conditions of label '{label}' do not hold"),
                Some(format!("{reason}.")),
                Some(format!(
                    "The conditions of '{label}' are set with encml.set_clearance_condition()."
                )),
            );
        }
    }
}
