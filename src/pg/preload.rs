//! Whether the library was loaded by `shared_preload_libraries` (and so has its shared memory and
//! its every-statement hooks in every backend) or on first use.

use crate::pg::errors::raise_full;
use pgrx::PgSqlErrorCode;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set in `_PG_init` when the library is loaded by shared_preload_libraries (inherited by every
/// backend the postmaster forks); false when loaded on first use.
static PRELOADED: AtomicBool = AtomicBool::new(false);

/// From `_PG_init`, while preloading.
pub fn mark_preloaded() {
    PRELOADED.store(true, Ordering::Relaxed);
}

pub fn preloaded() -> bool {
    PRELOADED.load(Ordering::Relaxed)
}

/// ERROR 55000 saying that `what` needs the library preloaded.
pub fn require_preload(what: &str) {
    if !preloaded() {
        raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("{what} needs pg_encrypt_ml in shared_preload_libraries"),
            None,
            Some(
                "Add pg_encrypt_ml to shared_preload_libraries in postgresql.conf and restart the server."
                    .into(),
            ),
        );
    }
}
