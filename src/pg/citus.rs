//! Facts about the Citus cluster this backend is part of, if any (docs/citus.md).

use crate::pg::errors::raise_full;
use pgrx::{pg_sys, PgSqlErrorCode};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::CStr;

thread_local! {
    static LOADED: Cell<Option<bool>> = const { Cell::new(None) };
    /// (statement start, answer) of the last `is_worker` lookup.
    static IS_WORKER: Cell<Option<(i64, bool)>> = const { Cell::new(None) };
    /// Shard relation -> (its distributed table's qualified name, shard id), or None.
    static SHARDS: RefCell<HashMap<u32, Option<(String, i64)>>> = RefCell::new(HashMap::new());
}

/// Whether Citus is loaded in this server. Citus only works preloaded, so the answer is fixed
/// for the life of the backend.
pub fn loaded() -> bool {
    LOADED.with(|l| {
        if let Some(v) = l.get() {
            return v;
        }
        // SAFETY: a static NUL-terminated name; with missing_ok = true GetConfigOption returns
        // NULL for an unknown setting instead of raising, and only the pointer's nullness is
        // used. Guarded by pgrx's wrapper.
        let v = unsafe {
            !pg_sys::GetConfigOption(
                c"citus.allow_nested_distributed_execution".as_ptr(),
                true,
                false,
            )
            .is_null()
        };
        l.set(Some(v));
        v
    })
}

/// Whether this backend serves a connection Citus opened from another node (a query pushed
/// down to a shard, a replicated write): Citus names those connections
/// `citus_internal gpid=...`. A client could claim that name too; it is only used to refuse.
pub fn in_internal_connection() -> bool {
    if !loaded() {
        return false;
    }
    // SAFETY: GetConfigOption returns NULL (checked) or the setting's current value, a
    // NUL-terminated string owned by the GUC machinery that stays valid until the setting
    // changes; it is read at once, with nothing in between that could change it.
    unsafe {
        let name = pg_sys::GetConfigOption(c"application_name".as_ptr(), true, false);
        !name.is_null()
            && CStr::from_ptr(name)
                .to_bytes()
                .starts_with(b"citus_internal")
    }
}

/// Whether Citus is installed in this database (a catalog lookup: for rare paths).
pub fn in_database() -> bool {
    // SAFETY: a static NUL-terminated name; missing_ok = true gives InvalidOid when Citus is
    // not installed; a catalog lookup in the caller's transaction, guarded by pgrx's wrapper.
    loaded() && unsafe { pg_sys::get_extension_oid(c"citus".as_ptr(), true) } != pg_sys::InvalidOid
}

/// Whether `rel` is a Citus table (distributed, reference or Citus local): its rows are in shards,
/// not in the relation itself.
pub fn is_citus_table(rel: pg_sys::Oid) -> bool {
    in_database()
        && crate::pg::catalog_reads::select_one::<bool>(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1::pg_catalog.regclass)",
            &[crate::pg::catalog_reads::arg(rel)],
        )
        .unwrap_or(false)
}

/// Whether `rel` is a Citus distributed table (hash, range or append): its rows are spread over
/// shards; reference tables and Citus local tables are not.
pub fn is_distributed_table(rel: pg_sys::Oid) -> bool {
    in_database()
        && crate::pg::catalog_reads::select_one::<bool>(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition \
              WHERE logicalrelid = $1::pg_catalog.regclass AND partmethod <> 'n')",
            &[crate::pg::catalog_reads::arg(rel)],
        )
        .unwrap_or(false)
}

/// Whether this database is a Citus worker: Citus is installed here and this node's group is
/// not the coordinator's (0). Looked up once per statement (a grouped dp query asks per group).
pub fn is_worker() -> bool {
    if !loaded() {
        return false;
    }
    let statement = crate::pg::roles::statement_start();
    if let Some(answer) = IS_WORKER.with(|w| w.get()).filter(|(s, _)| *s == statement) {
        return answer.1;
    }
    // Read-only SPI: a dp final function runs in parallel mode (above a Gather), where a
    // query that asks for a transaction id fails.
    let answer = in_database()
        && crate::pg::identity::as_extension_owner(|| {
            crate::pg::catalog_reads::select_one::<bool>(
                "SELECT groupid <> 0 FROM pg_catalog.pg_dist_local_group",
                &[],
            )
            .unwrap_or(false)
        });
    IS_WORKER.with(|w| w.set(Some((statement, answer))));
    answer
}

/// Refuses `what` on a Citus worker: it must run on the coordinator, whose ledgers count.
pub fn refuse_on_worker(what: &str, hint: &str) {
    if is_worker() {
        raise_full(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{what} runs only on the Citus coordinator"),
            None,
            Some(hint.to_string()),
        );
    }
}

/// Refuses a key-catalog write inside a query Citus pushed down to a shard: the catalog is a
/// reference table, and writing it there would start a distributed transaction from inside
/// another one.
pub fn refuse_catalog_write_in_task(what: &str) {
    if in_internal_connection() {
        raise_full(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{what} cannot run in a query that Citus pushed down to a worker"),
            None,
            Some(
                "Create keys on the coordinator first (for a tenant key: SELECT \
                 encml.tenant_key() once on the coordinator); docs/citus.md."
                    .into(),
            ),
        );
    }
}

/// If `rel` (named `name`) is a Citus shard, its distributed table's qualified name and the
/// shard id: a row trigger on a distributed table runs on the shards, and the audit log names
/// the table users know. Looked up once per relation and backend (shards keep their oid).
pub fn shard_of(rel: pg_sys::Oid, name: &str) -> Option<(String, i64)> {
    if !loaded() {
        return None;
    }
    // Shards are named <table>_<shard id>.
    let id: i64 = name.rsplit_once('_')?.1.parse().ok()?;
    if let Some(known) = SHARDS.with(|s| s.borrow().get(&rel.to_u32()).cloned()) {
        return known;
    }
    let found = in_database()
        .then(|| {
            use crate::pg::catalog_reads::{arg, select_one};
            use crate::pg::identity::as_extension_owner;
            as_extension_owner(|| {
                select_one::<String>(
                    "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) \
                       FROM pg_catalog.pg_dist_shard s \
                       JOIN pg_catalog.pg_class c ON c.oid = s.logicalrelid \
                       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                      WHERE s.shardid = $1 AND c.relnamespace = $2 \
                        AND c.relname || '_' || s.shardid = $3",
                    &[
                        arg(id),
                        // SAFETY: a syscache lookup of any oid (InvalidOid if the relation is
                        // gone); guarded by pgrx's wrapper.
                        arg(unsafe { pg_sys::get_rel_namespace(rel) }),
                        arg(name),
                    ],
                )
            })
        })
        .flatten()
        .map(|table| (table, id));
    SHARDS.with(|s| s.borrow_mut().insert(rel.to_u32(), found.clone()));
    found
}
