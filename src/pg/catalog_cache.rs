//! A per-backend cache of what one of the extension's catalog tables says, dropped when that
//! table changes: a relcache invalidation of it (which `invalidate` queues, reaching every
//! backend at commit), or any invalidation while the table is not known yet (before CREATE
//! EXTENSION, or on a schema without it).

use pgrx::pg_sys;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

pub struct CatalogCache<T> {
    value: RefCell<Option<Rc<T>>>,
    table: Cell<pg_sys::Oid>,
}

impl<T> Default for CatalogCache<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> CatalogCache<T> {
    pub const fn new() -> Self {
        CatalogCache {
            value: RefCell::new(None),
            table: Cell::new(pg_sys::InvalidOid),
        }
    }

    /// The cached value, or `load(table())`'s, remembered as read from that table (InvalidOid
    /// where it does not exist). The table is looked up only on a miss: a hit, which every
    /// statement's hooks take, costs no catalog lookup. No borrow is held while `load` runs (its
    /// queries may invalidate).
    pub fn get(
        &self,
        table: impl FnOnce() -> pg_sys::Oid,
        load: impl FnOnce(pg_sys::Oid) -> T,
    ) -> Rc<T> {
        if let Some(v) = self.value.borrow().clone() {
            return v;
        }
        let table = table();
        self.table.set(table);
        let v = Rc::new(load(table));
        *self.value.borrow_mut() = Some(v.clone());
        v
    }

    /// From a relcache callback: drops the value if `relid` may be the table.
    pub fn forget(&self, relid: pg_sys::Oid) {
        let table = self.table.get();
        if table == pg_sys::InvalidOid || relid == pg_sys::InvalidOid || relid == table {
            if let Ok(mut v) = self.value.try_borrow_mut() {
                v.take();
            }
            self.table.set(pg_sys::InvalidOid);
        }
    }

    /// Drops the value here and queues an invalidation of `table` for every backend.
    pub fn invalidate(&self, table: pg_sys::Oid) {
        if table != pg_sys::InvalidOid {
            // SAFETY: queues an invalidation message for a relation that exists.
            unsafe { pg_sys::CacheInvalidateRelcacheByRelid(table) };
        }
        if let Ok(mut v) = self.value.try_borrow_mut() {
            v.take();
        }
    }
}
