//! The data subjects' own keys (`subject_key`): made on first use, owned by the extension and
//! destroyed by the erasure; looked up once per subject and purpose in a session, in a cache
//! emptied with the key cache.

use super::may_process_subjects;
use crate::events;
use crate::keys::{cache, catalog, provider};
use crate::pg::errors::{raise, raise_full};
use crate::pg::roles::{caller, role_name, SUBJECT_PROCESSOR};
use encml_core::kdf::Purpose;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode, Uuid};
use serde_json::json;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// subject -> (purpose, the subject's key) for each purpose looked up.
type SubjectKeys = HashMap<String, Vec<(Purpose, [u8; 16])>>;

thread_local! {
    /// subject -> (purpose, the subject's key): `subject_key()` runs once per row in bulk loads.
    static SUBJECT_KEYS: RefCell<SubjectKeys> = RefCell::new(HashMap::new());
    /// The role last found allowed to use subject keys.
    static ALLOWED_ROLE: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
}

/// Has the subject-key cache emptied with the key cache (from `_PG_init`).
pub fn register_cache() {
    crate::keys::cache::also_clear(clear_cache);
}

/// Dropped with the key cache (any change of keys or of role memberships, an abort): a
/// forgotten subject's key is looked up again, a revoked membership checked again.
pub(super) fn clear_cache() {
    ALLOWED_ROLE.with(|r| r.set(pg_sys::InvalidOid));
    SUBJECT_KEYS.with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            m.clear();
        }
    });
}

fn cached_subject_key(subject: &str, purpose: Purpose) -> Option<[u8; 16]> {
    SUBJECT_KEYS.with(|m| {
        m.borrow()
            .get(subject)?
            .iter()
            .find(|(p, _)| *p == purpose)
            .map(|(_, id)| *id)
    })
}

/// The data subject's own key for `purpose`, made on first use and owned by the extension (not
/// by the caller); members of encml_subject_processor encrypt and decrypt with it, and
/// `subject_forget` destroys it. STABLE like `tenant_key`, so that a lookup by a det_text under
/// it can use an index.
#[pg_extern(stable, strict, parallel_safe)]
fn subject_key(
    subject: &str,
    purpose: default!(&str, "'aead'"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Uuid {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    let role = caller();
    if ALLOWED_ROLE.with(|r| r.get()) != role {
        require_subject_processor(role, purpose);
        ALLOWED_ROLE.with(|r| r.set(role));
    }
    if subject.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a subject needs a non-empty identifier",
        );
    }
    let purpose = crate::api::keys::purpose_arg(purpose);
    if let Some(id) = cached_subject_key(subject, purpose) {
        return Uuid::from_bytes(id);
    }
    let id = catalog::subject_key(subject, purpose, false)
        .unwrap_or_else(|| make_subject_key(subject, purpose));
    SUBJECT_KEYS.with(|m| {
        let mut m = m.borrow_mut();
        let keys = m.entry(subject.to_string()).or_default();
        keys.retain(|(p, _)| *p != purpose);
        keys.push((purpose, id));
    });
    Uuid::from_bytes(id)
}

fn require_subject_processor(role: pg_sys::Oid, purpose: &str) {
    if !may_process_subjects(role) {
        events::refused("subject_key_refused", json!({ "purpose": purpose }));
        raise_full(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "permission denied for subject keys (role {})",
                role_name(role)
            ),
            None,
            Some(format!("Members of {SUBJECT_PROCESSOR} use subject keys.")),
        );
    }
}

fn make_subject_key(subject: &str, purpose: Purpose) -> [u8; 16] {
    crate::pg::recovery::refuse_during_recovery("encml.subject_key() for a new subject key");
    // SAFETY: reads this backend's transaction state (a plain getter, never raises).
    if unsafe { pg_sys::IsInParallelMode() } {
        raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "the subject has no key of purpose '{}' yet, and none can be made during a parallel query",
                purpose.label()
            ),
            None,
            Some("Make the keys first (SELECT encml.subject_key(s, purpose) for each subject), or SET max_parallel_workers_per_gather = 0.".into()),
        );
    }
    let id = *uuid::Uuid::new_v4().as_bytes();
    let (wrapped, fingerprint) = provider::new_wrapped_data_key(&id, 1);
    // No cache invalidation: no session caches a key that does not exist yet, and emptying this
    // backend's key cache would re-unwrap every other key a bulk load uses, once per new subject.
    if catalog::insert_subject_key(&id, subject, purpose, caller(), &wrapped, &fingerprint) {
        events::record(
            "create_subject_key",
            None,
            json!({ "key": catalog::uuid_string(&id), "purpose": purpose.label() }),
        );
        return id;
    }
    catalog::subject_key(subject, purpose, true).unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
            "the subject's key was made by a concurrent transaction; retry",
        )
    })
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
pub mod tests {
    use pgrx::prelude::*;

    /// One key per subject, made on first use. (Its destruction by `subject_forget`, which runs
    /// and commits in a worker of its own, is in tests/pg_regress/sql/gdpr.sql.)
    #[pg_test]
    fn subject_key_is_made_once() {
        let k = Spi::get_one::<pgrx::Uuid>("SELECT encml.subject_key('pgtest-s1')")
            .unwrap()
            .unwrap();
        assert_eq!(
            Spi::get_one::<pgrx::Uuid>("SELECT encml.subject_key('pgtest-s1')"),
            Ok(Some(k))
        );
    }
}
