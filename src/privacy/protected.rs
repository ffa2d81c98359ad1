//! Which tables are DP-only (`encml.dp_protect`), with their privacy unit and contribution
//! bound, cached per backend until `encml.dp_protected_tables` changes (a relcache invalidation of
//! that table, which `invalidate` sends, reaching every backend at commit). The planner hook
//! (`dp_only`) looks every statement's relations up here, so the empty case costs one lookup.

use crate::pg::catalog_access::{as_extension_owner, read_rows};
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// One DP-only table's settings.
#[derive(Clone, Debug)]
pub struct Protected {
    /// The privacy unit column (its number; names are resolved when protecting).
    pub unit_attnum: i16,
    pub max_rows_per_unit: i32,
}

pub type Map = HashMap<pg_sys::Oid, Protected>;

thread_local! {
    static CACHE: RefCell<Option<Rc<Map>>> = const { RefCell::new(None) };
    static TABLE_OID: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
    static LOADING: Cell<bool> = const { Cell::new(false) };
}

/// The catalog table, or InvalidOid where the installed schema has none (0.1.0).
pub fn catalog_oid() -> pg_sys::Oid {
    crate::pg::catalog_access::extension_relation(c"dp_protected_tables")
}

/// Tells every backend (at commit) and this one (now) that the protected tables may have changed.
pub fn invalidate() {
    let oid = catalog_oid();
    if oid != pg_sys::InvalidOid {
        // SAFETY: queues an invalidation message for a relation that exists.
        unsafe { pg_sys::CacheInvalidateRelcacheByRelid(oid) };
    }
    CACHE.with(|c| c.borrow_mut().take());
}

#[pg_guard]
unsafe extern "C-unwind" fn on_relcache(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let ours = TABLE_OID.with(|t| t.get());
    if ours == pg_sys::InvalidOid || relid == pg_sys::InvalidOid || relid == ours {
        CACHE.with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                c.take();
            }
        });
        TABLE_OID.with(|t| t.set(pg_sys::InvalidOid));
    }
}

fn register() {
    if !REGISTERED.with(|r| r.replace(true)) {
        crate::pg::invalidation::on_relcache(on_relcache);
    }
}

fn load() -> Map {
    let oid = catalog_oid();
    TABLE_OID.with(|t| t.set(oid));
    if oid == pg_sys::InvalidOid {
        return Map::new();
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
    if let Some(m) = CACHE.with(|c| c.borrow().clone()) {
        return m;
    }
    if LOADING.with(|l| l.get()) {
        return Rc::new(Map::new());
    }
    // SAFETY: a catalog lookup by a static name.
    let installed =
        unsafe { pg_sys::get_extension_oid(c"pg_encrypt_ml".as_ptr(), true) } != pg_sys::InvalidOid;
    let m = if installed {
        LOADING.with(|l| l.set(true));
        struct Done;
        impl Drop for Done {
            fn drop(&mut self) {
                LOADING.with(|l| l.set(false));
            }
        }
        let _done = Done;
        Rc::new(load())
    } else {
        Rc::new(Map::new())
    };
    CACHE.with(|c| *c.borrow_mut() = Some(m.clone()));
    m
}
