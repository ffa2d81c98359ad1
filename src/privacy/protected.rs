//! Which tables are DP-only (`encml.dp_protect`), with their privacy unit and contribution
//! bound, cached per backend until `encml.dp_protected_tables` changes (a relcache invalidation of
//! that table, which `invalidate` sends, reaching every backend at commit). The planner hook
//! (`dp_only`) looks every statement's relations up here, so the empty case costs one lookup.

use crate::pg::catalog_cache::CatalogCache;
use crate::pg::catalog_reads::read_rows;
use crate::pg::identity::as_extension_owner;
use pgrx::prelude::*;
use std::cell::Cell;
use std::rc::Rc;

/// One DP-only table's settings.
#[derive(Clone, Debug)]
pub struct Protected {
    /// The privacy unit column (its number; names are resolved when protecting).
    pub unit_attnum: i16,
    pub max_rows_per_unit: i32,
}

pub type Map = rustc_hash::FxHashMap<pg_sys::Oid, Protected>;

thread_local! {
    static CACHE: CatalogCache<Map> = const { CatalogCache::new() };
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
    static LOADING: Cell<bool> = const { Cell::new(false) };
}

/// The catalog table, or InvalidOid where the installed schema has none (0.1.0).
pub fn catalog_oid() -> pg_sys::Oid {
    crate::pg::catalog_reads::extension_relation(c"dp_protected_tables")
}

/// Tells every backend (at commit) and this one (now) that the protected tables may have changed.
pub fn invalidate() {
    CACHE.with(|c| c.invalidate(catalog_oid()));
}

#[pg_guard]
unsafe extern "C-unwind" fn on_relcache(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    CACHE.with(|c| c.forget(relid));
}

fn register() {
    if !REGISTERED.with(|r| r.replace(true)) {
        crate::pg::invalidation::on_relcache(on_relcache);
    }
}

fn load(oid: pg_sys::Oid) -> Map {
    if oid == pg_sys::InvalidOid {
        return Map::default();
    }
    as_extension_owner(|| {
        read_rows(
            "SELECT p.table_oid::pg_catalog.oid, a.attnum, p.max_rows_per_unit \
               FROM encml.dp_protected_tables p \
               JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) p.table_oid \
                AND a.attname OPERATOR(pg_catalog.=) p.privacy_unit AND NOT a.attisdropped",
            &[],
            0,
            |r| {
                Some((
                    r.get::<pg_sys::Oid>(1)?,
                    Protected {
                        unit_attnum: r.get::<i16>(2)?,
                        max_rows_per_unit: r.get::<i32>(3)?,
                    },
                ))
            },
        )
        .into_iter()
        .flatten()
        .collect()
    })
}

/// The DP-only tables (empty where the extension is not installed, and while the map is being
/// loaded: its own query passes through the planner hook).
pub fn map() -> Rc<Map> {
    register();
    if LOADING.with(|l| l.get()) {
        return Rc::new(Map::default());
    }
    CACHE.with(|c| {
        // (The table exists only where the extension is installed.)
        c.get(catalog_oid, |oid| {
            LOADING.with(|l| l.set(true));
            struct Done;
            impl Drop for Done {
                fn drop(&mut self) {
                    LOADING.with(|l| l.set(false));
                }
            }
            let _done = Done;
            load(oid)
        })
    })
}
