//! Which relations are audited: the tables of `encml.audited_tables` and every table their scans
//! return (partitions, inheritance children), each with its audited table (the root) and whether
//! reads are audited. Cached per backend until `encml.audited_tables` changes (a relcache
//! invalidation that `invalidate` sends, also to every other backend at commit); the row trigger
//! and read auditing look relations up here.

use crate::pg::catalog_cache::CatalogCache;
use crate::pg::catalog_reads::{arg, read_rows, select_one};
use crate::pg::identity::as_extension_owner;
use pgrx::prelude::*;
use std::cell::Cell;
use std::rc::Rc;

#[derive(Clone, Debug)]
pub struct Audited {
    pub root: pg_sys::Oid,
    pub root_name: String,
    pub reads: bool,
}

type Map = rustc_hash::FxHashMap<pg_sys::Oid, Audited>;

thread_local! {
    static CACHE: CatalogCache<Map> = const { CatalogCache::new() };
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

pub fn audited_tables_oid() -> pg_sys::Oid {
    crate::pg::catalog_reads::extension_relation(c"audited_tables")
}

/// Tells every backend (at commit) and this one (now) that the audited tables may have changed.
pub fn invalidate() {
    CACHE.with(|c| c.invalidate(audited_tables_oid()));
}

#[pg_guard]
unsafe extern "C-unwind" fn on_relcache(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    CACHE.with(|c| c.forget(relid));
}

/// Registers the invalidation callback (from _PG_init, in every backend that loads the library).
pub fn register() {
    if !REGISTERED.with(|r| r.replace(true)) {
        crate::pg::invalidation::on_relcache(on_relcache);
    }
}

fn load(oid: pg_sys::Oid) -> Map {
    if oid == pg_sys::InvalidOid {
        return Map::default();
    }
    as_extension_owner(|| {
        // A schema older than 0.2.0 has no reads column.
        let has_reads = select_one::<bool>(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = $1 \
                AND attname = 'reads' AND NOT attisdropped)",
            &[arg(oid)],
        )
        .unwrap_or(false);
        let reads = if has_reads { "a.reads" } else { "false" };
        read_rows(
            &format!(
                "WITH RECURSIVE t(root, relid, reads) AS ( \
                     SELECT a.table_oid::oid, a.table_oid::oid, {reads} FROM encml.audited_tables a \
                     UNION SELECT t.root, i.inhrelid, t.reads FROM t \
                       JOIN pg_catalog.pg_inherits i ON i.inhparent OPERATOR(pg_catalog.=) t.relid) \
                 SELECT relid, root, root::pg_catalog.regclass::text, reads FROM t"
            ),
            &[],
            0,
            |r| {
                Some((
                    r.get::<pg_sys::Oid>(1)?,
                    Audited {
                        root: r.get::<pg_sys::Oid>(2)?,
                        root_name: r.get::<String>(3)?,
                        reads: r.get::<bool>(4).unwrap_or(false),
                    },
                ))
            },
        )
        .into_iter()
        .flatten()
        .collect()
    })
}

/// The audited relations (loaded on first use after an invalidation; empty where the extension
/// is not installed).
pub fn map() -> Rc<Map> {
    // (The table exists only where the extension is installed.)
    CACHE.with(|c| c.get(audited_tables_oid, load))
}

/// The audited table `relid` belongs to, if any.
pub fn lookup(relid: pg_sys::Oid) -> Option<Audited> {
    map().get(&relid).cloned()
}

/// The statement trigger on `encml.audited_tables`: a change made there by other means than
/// `audit_enable` and `audit_disable` (a restore's COPY, the owner's own DML) reaches every
/// backend's cache too.
unsafe fn audited_tables_changed(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: called by the trigger manager with trigger data (checked there).
    unsafe { crate::audit::trigger_data(fcinfo, "encml.audited_tables_changed") };
    invalidate();
    pg_sys::Datum::from(0usize)
}

crate::pg::c_functions! {
    /// encml.audited_tables_changed(): statement trigger invalidating the audited-relations cache
    encml_audited_tables_changed, pg_finfo_encml_audited_tables_changed => audited_tables_changed;
}
