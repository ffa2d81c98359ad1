//! Which relations are audited: the tables of `encml.audited_tables` and every table their scans
//! return (partitions, inheritance children), each with its audited table (the root) and whether
//! reads are audited. Cached per backend until `encml.audited_tables` changes (a relcache
//! invalidation that `invalidate` sends, also to every other backend at commit); the row trigger
//! and read auditing look relations up here.

use crate::pg::catalog_access::{arg, as_extension_owner, read_rows, select_one};
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

#[derive(Clone, Debug)]
pub struct Audited {
    pub root: pg_sys::Oid,
    pub root_name: String,
    pub reads: bool,
}

type Map = HashMap<pg_sys::Oid, Audited>;

thread_local! {
    static CACHE: RefCell<Option<Rc<Map>>> = const { RefCell::new(None) };
    static TABLE_OID: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

pub fn audited_tables_oid() -> pg_sys::Oid {
    crate::pg::catalog_access::extension_relation(c"audited_tables")
}

/// Tells every backend (at commit) and this one (now) that the audited tables may have changed.
pub fn invalidate() {
    let oid = audited_tables_oid();
    if oid != pg_sys::InvalidOid {
        // SAFETY: queues an invalidation message for a relation that exists.
        unsafe { pg_sys::CacheInvalidateRelcacheByRelid(oid) };
    }
    CACHE.with(|c| c.borrow_mut().take());
}

#[pg_guard]
unsafe extern "C-unwind" fn on_relcache(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    // (Before the extension's table is known, any relation may be it: CREATE EXTENSION.)
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

/// Registers the invalidation callback (from _PG_init, in every backend that loads the library).
pub fn register() {
    if !REGISTERED.with(|r| r.replace(true)) {
        crate::pg::invalidation::on_relcache(on_relcache);
    }
}

fn load() -> Map {
    let oid = audited_tables_oid();
    TABLE_OID.with(|t| t.set(oid));
    if oid == pg_sys::InvalidOid {
        return Map::new();
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
    if let Some(m) = CACHE.with(|c| c.borrow().clone()) {
        return m;
    }
    // SAFETY: a catalog lookup by a static name.
    let installed =
        unsafe { pg_sys::get_extension_oid(c"pg_encrypt_ml".as_ptr(), true) } != pg_sys::InvalidOid;
    let m = Rc::new(if installed { load() } else { Map::new() });
    CACHE.with(|c| *c.borrow_mut() = Some(m.clone()));
    m
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
