//! Consent (docs/gdpr.md): `record_consent` appends a decision to the history
//! (`encml.consents`), `has_consent` answers from the latest decision per subject and purpose.
//!
//! `has_consent` runs once per row inside RLS policies and views, so each backend keeps, per
//! purpose, the set of subjects whose latest decision grants it: one query fills it, a hash
//! lookup answers. Any change of consents is sent as a relcache invalidation of the table, so
//! every session sees it from its next statement; an abort empties the sets too.

use crate::pg::catalog_reads::{arg, read_rows, select_one};
use crate::pg::errors::OrSpiFailed;
use crate::pg::errors::{raise, raise_full};
use crate::pg::identity::as_extension_owner;
use crate::pg::roles::{
    caller, has_privs_of_role_named, is_superuser, role_name, DPO, SUBJECT_PROCESSOR,
};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

thread_local! {
    /// purpose -> subjects whose latest decision for it is a grant.
    static GRANTED: RefCell<HashMap<String, Rc<HashSet<String>>>> = RefCell::new(HashMap::new());
    static LAST: RefCell<Option<(String, Rc<HashSet<String>>)>> = const { RefCell::new(None) };
    static CONSENT_TABLE: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
}

pub fn clear() {
    LAST.with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            *l = None;
        }
    });
    GRANTED.with(|g| {
        if let Ok(mut g) = g.try_borrow_mut() {
            g.clear();
        }
    });
}

/// Empties the consent sets with the key cache, and when `encml.consents` changes (from
/// `_PG_init`).
pub fn register_cache() {
    crate::keys::cache::also_clear(clear);
    crate::pg::invalidation::on_relcache(on_relcache_invalidation);
}

/// A change of `encml.consents` (or of every relation) empties the sets.
#[pg_guard]
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    if relid == pg_sys::InvalidOid || relid == CONSENT_TABLE.with(|c| c.get()) {
        clear();
        CONSENT_TABLE.with(|c| c.set(pg_sys::InvalidOid));
    }
}

fn consent_table() -> pg_sys::Oid {
    let known = CONSENT_TABLE.with(|c| c.get());
    if known != pg_sys::InvalidOid {
        return known;
    }
    let oid = as_extension_owner(|| {
        select_one::<pg_sys::Oid>("SELECT 'encml.consents'::regclass::oid", &[])
            .expect("the consent table exists")
    });
    CONSENT_TABLE.with(|c| c.set(oid));
    oid
}

/// Tells every backend (at commit) and this one (now) that consents changed.
fn invalidate() {
    // SAFETY: called inside a transaction (from SQL functions); the oid is the consent table's,
    // looked up just now. The guarded binding turns a lookup ERROR into a Rust panic.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(consent_table()) };
    clear();
}

fn may_record(role: pg_sys::Oid) -> bool {
    is_superuser(role)
        || has_privs_of_role_named(role, SUBJECT_PROCESSOR)
        || has_privs_of_role_named(role, DPO)
}

fn valid_purpose(purpose: &str) -> bool {
    let mut chars = purpose.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Records a consent decision (grant or withdrawal) of `subject` for `purpose`; earlier decisions
/// stay in the history. Returns the record's id. Members of encml_subject_processor and
/// encml_dpo, and superusers.
#[pg_extern(volatile, parallel_unsafe)]
fn record_consent(
    subject: Option<&str>,
    purpose: Option<&str>,
    granted: Option<bool>,
    source: default!(Option<&str>, "NULL"),
) -> i64 {
    crate::pg::recovery::refuse_during_recovery("encml.record_consent()");
    let (Some(subject), Some(purpose), Some(granted)) = (subject, purpose, granted) else {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "subject, purpose and granted must not be NULL",
        )
    };
    let role = caller();
    if !may_record(role) {
        crate::events::refused("record_consent_refused", json!({ "purpose": purpose }));
        raise_full(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "permission denied to record consent (role {})",
                role_name(role)
            ),
            None,
            Some(format!(
                "Members of {} or {} record consent.",
                SUBJECT_PROCESSOR, DPO
            )),
        );
    }
    if subject.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a subject needs a non-empty identifier",
        );
    }
    if !valid_purpose(purpose) {
        raise_full(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("invalid consent purpose \"{purpose}\""),
            None,
            Some("A purpose is a lower-case name: a letter, then letters, digits or _ (for example model_training).".into()),
        );
    }
    let id = as_extension_owner(|| {
        Spi::get_one_with_args::<i64>(
            "INSERT INTO encml.consents (subject, purpose, granted, source, recorded_by) \
             VALUES ($1, $2, $3, $4, $5::oid::regrole) RETURNING id",
            &[
                subject.into(),
                purpose.into(),
                granted.into(),
                source.into(),
                role.into(),
            ],
        )
        .or_spi_failed("consent catalog")
        .expect("INSERT .. RETURNING returns the id")
    });
    invalidate();
    id
}

fn granted_subjects(purpose: &str) -> Rc<HashSet<String>> {
    // Policies ask about one purpose row after row.
    if let Some(set) = LAST.with(|l| {
        l.borrow()
            .as_ref()
            .filter(|(p, _)| p == purpose)
            .map(|(_, s)| s.clone())
    }) {
        return set;
    }
    if let Some(set) = GRANTED.with(|g| g.borrow().get(purpose).cloned()) {
        LAST.with(|l| *l.borrow_mut() = Some((purpose.to_string(), set.clone())));
        return set;
    }
    consent_table(); // so the invalidation callback recognizes the table
    let subjects = crate::pg::catalog_reads::with_latest_snapshot(|| {
        as_extension_owner(|| {
            read_rows(
                "SELECT subject FROM ( \
                 SELECT DISTINCT ON (subject) subject, granted FROM encml.consents \
                  WHERE purpose = $1 ORDER BY subject, id DESC) s \
              WHERE granted",
                &[arg(purpose)],
                0,
                |r| r.get::<String>(1).unwrap_or_default(),
            )
        })
    });
    let set = Rc::new(subjects.into_iter().collect::<HashSet<_>>());
    GRANTED.with(|g| g.borrow_mut().insert(purpose.to_string(), set.clone()));
    LAST.with(|l| *l.borrow_mut() = Some((purpose.to_string(), set.clone())));
    set
}

/// Whether the latest decision of `subject` for `purpose` is a grant (false with none): for RLS
/// policies and views that keep processing to consenting subjects.
#[pg_extern(stable, strict, parallel_safe)]
fn has_consent(subject: &str, purpose: &str, fcinfo: pg_sys::FunctionCallInfo) -> bool {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { crate::keys::cache::accept_invalidations_once_per_query(fcinfo) };
    granted_subjects(purpose).contains(subject)
}

/// The subject's consent history, oldest first (for `subject_export`).
pub fn history(subject: &str) -> Value {
    let rows = as_extension_owner(|| {
        read_rows(
            "SELECT purpose, granted, source, recorded_by::text, recorded_at::text \
               FROM encml.consents WHERE subject = $1 ORDER BY id",
            &[arg(subject)],
            0,
            |r| {
                json!({
                    "purpose": r.get::<String>(1),
                    "granted": r.get::<bool>(2),
                    "source": r.get::<String>(3),
                    "recorded_by": r.get::<String>(4),
                    "recorded_at": r.get::<String>(5),
                })
            },
        )
    });
    Value::Array(rows)
}

/// Deletes the subject's consent records (`subject_forget`). Returns how many.
pub fn forget(subject: &str) -> i64 {
    let n = as_extension_owner(|| {
        Spi::connect_mut(|client| {
            client
                .update(
                    "DELETE FROM encml.consents WHERE subject = $1",
                    None,
                    &[subject.into()],
                )
                .or_spi_failed("consent catalog")
                .len() as i64
        })
    });
    invalidate();
    n
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
pub mod tests {
    use pgrx::prelude::*;

    fn consent(subject: &str) -> Option<bool> {
        Spi::get_one::<bool>(&format!(
            "SELECT encml.has_consent('{subject}', 'model_training')"
        ))
        .unwrap()
    }

    #[pg_test]
    fn the_latest_decision_holds() {
        assert_eq!(consent("pgtest-c1"), Some(false));
        Spi::run("SELECT encml.record_consent('pgtest-c1', 'model_training', true)").unwrap();
        assert_eq!(consent("pgtest-c1"), Some(true));
        Spi::run("SELECT encml.record_consent('pgtest-c1', 'model_training', false, 'web')")
            .unwrap();
        assert_eq!(consent("pgtest-c1"), Some(false));
        assert_eq!(
            Spi::get_one::<i64>(
                "SELECT count(*) FROM encml.consent_history WHERE subject = 'pgtest-c1'"
            ),
            Ok(Some(2))
        );
    }

    #[pg_test(error = "invalid consent purpose \"Model Training\"")]
    fn purposes_are_lower_case_names() {
        Spi::run("SELECT encml.record_consent('pgtest-c2', 'Model Training', true)").unwrap();
    }
}
