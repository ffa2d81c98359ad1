//! Encryptions per data-key version against the random-nonce limit (`encml_core::nonce_budget`,
//! docs/keys.md "Encryption counts"). Every AES-GCM encryption under a data key draws its nonce
//! through [`nonce_for`], which counts it.
//!
//! - Each backend counts locally and adds to shared memory on the first encryption of a statement
//!   with a key version, every `LOCAL_BATCH` encryptions, and at the end of each statement.
//! - When a version's unrecorded count in shared memory reaches `encml.key_use_record_every`, the
//!   backend that brings it there adds it to `encml.key_encryptions` through a short background
//!   worker (its own transaction, whatever the caller's transaction does). On a standby or in a
//!   parallel worker nothing is recorded: the counts wait in shared memory.
//! - Counts still in shared memory are lost at a restart (at most `key_use_record_every` per
//!   version); without the library preloaded each backend keeps its own table, lost at its exit.
//! - Past `WARN_AT` every backend warns once per version, the crossing is a security event, and
//!   `compliance_report()` fails.

use crate::keys::catalog::uuid_string;
use crate::pg::catalog_access::{arg, as_extension_owner, extension_owner, extension_relation};
use crate::pg::detached_worker;
use encml_core::format::NONCE_LEN;
use encml_core::nonce_budget::{Table, NONCE_LIMIT, WARN_AT};
use pgrx::prelude::*;
use pgrx::{PGRXSharedMemory, PgLwLock, Uuid};
use serde_json::json;
use std::cell::RefCell;

pub const SLOTS: usize = 4096;
/// Encryptions a backend counts before adding them to shared memory.
const LOCAL_BATCH: u64 = 256;
/// A backend's own table when the library is not preloaded.
const LOCAL_SLOTS: usize = 64;

pub struct UseTable {
    pub table: Table<SLOTS>,
}
// SAFETY: plain old data (fixed arrays of Copy values), no pointers.
unsafe impl PGRXSharedMemory for UseTable {}
impl UseTable {
    pub const EMPTY: UseTable = UseTable {
        table: Table::EMPTY,
    };
}

pub static KEY_USE: PgLwLock<UseTable> = unsafe { PgLwLock::new(c"pg_encrypt_ml key use") };

/// (key, version, encryptions not yet added to the table): like `security::exfil`, a plain
/// static on the path of every encryption (a backend is one thread).
static mut PENDING: Vec<([u8; 16], u32, u64)> = Vec::new();

thread_local! {
    static LOCAL_TABLE: RefCell<Box<Table<LOCAL_SLOTS>>> = RefCell::new(Box::new(Table::EMPTY));
    /// Versions this backend already warned about.
    static WARNED: RefCell<Vec<([u8; 16], u32)>> = const { RefCell::new(Vec::new()) };
}

#[allow(static_mut_refs)]
fn pending() -> &'static mut Vec<([u8; 16], u32, u64)> {
    // SAFETY: only the backend's one thread touches it, and no caller holds the reference across
    // a call that could re-enter (add() runs after the borrow ends).
    unsafe { &mut PENDING }
}

/// From `_PG_init` while preloading.
// pg_shmem_init! tests pgrx's version features, which this crate does not declare.
#[allow(unexpected_cfgs)]
pub fn init_shared_memory() {
    pgrx::pg_shmem_init!(KEY_USE = UseTable::EMPTY);
}

/// A fresh random nonce for one AES-GCM encryption under `key`/`version`, counted.
#[inline]
pub fn nonce_for(key: &[u8; 16], version: u32) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    crate::pg::random::fill(&mut nonce);
    count(key, version);
    nonce
}

#[inline]
fn count(key: &[u8; 16], version: u32) {
    let p = pending();
    let due = match p.iter_mut().find(|(k, v, _)| *v == version && k == key) {
        None => {
            p.push((*key, version, 0));
            Some(1)
        }
        Some((_, _, n)) => {
            *n += 1;
            (*n >= LOCAL_BATCH).then(|| std::mem::take(n))
        }
    };
    if let Some(n) = due {
        add(key, version, n, true);
    }
}

/// At the end of each statement: what this backend counted goes to the table (never recorded
/// here: this may run at the end of a failed transaction).
pub fn flush_local() {
    let p = pending();
    if p.is_empty() {
        return;
    }
    for (key, version, n) in std::mem::take(p) {
        if n > 0 {
            add(&key, version, n, false);
        }
    }
}

fn database() -> u32 {
    unsafe { pg_sys::MyDatabaseId }.to_u32()
}

/// Whether this backend may record now: a primary, not a parallel worker, with the catalog table
/// (a database still at schema 0.1.0 has none).
fn may_record() -> bool {
    // SAFETY: plain reads of process state.
    let standby_or_worker =
        unsafe { pg_sys::RecoveryInProgress() || pg_sys::ParallelWorkerNumber >= 0 };
    !standby_or_worker && extension_relation(c"key_encryptions") != pg_sys::InvalidOid
}

fn with_table<R>(
    f: impl FnOnce(&mut Table<SLOTS>) -> R,
    g: impl FnOnce(&mut Table<LOCAL_SLOTS>) -> R,
) -> R {
    if crate::security::preloaded() {
        f(&mut KEY_USE.exclusive().table)
    } else {
        LOCAL_TABLE.with(|t| g(&mut t.borrow_mut()))
    }
}

fn add(key: &[u8; 16], version: u32, n: u64, in_call: bool) {
    let db = database();
    let recording = in_call && may_record();
    let every = if recording {
        crate::pg::gucs::KEY_USE_RECORD_EVERY.get().max(1) as u64
    } else {
        u64::MAX
    };
    let added = with_table(
        |t| t.add(db, key, version, n, every),
        |t| t.add(db, key, version, n, every),
    );
    let mut total = added.total;
    if added.new_slot && recording {
        if let Some(recorded) = read_recorded(key, version) {
            with_table(
                |t| t.set_recorded(db, key, version, recorded),
                |t| t.set_recorded(db, key, version, recorded),
            );
            total = total.saturating_add(recorded);
        }
    }
    if added.to_record > 0 {
        if !recording {
            // A full table handed the count out: keep it for this backend's next call.
            pending().push((*key, version, added.to_record));
            return;
        }
        match record(key, version, added.to_record) {
            Some(recorded) => {
                with_table(
                    |t| t.set_recorded(db, key, version, recorded),
                    |t| t.set_recorded(db, key, version, recorded),
                );
                let before = recorded.saturating_sub(added.to_record);
                if before < WARN_AT && recorded >= WARN_AT {
                    crate::audit::detached::record(
                        "key_nonce_budget_exceeded",
                        json!({ "key": uuid_string(key), "version": version,
                                "encryptions": recorded, "warn_at": WARN_AT, "limit": NONCE_LIMIT }),
                    );
                }
                total = total.max(recorded);
            }
            None => with_table(
                |t| t.recorded_failed(db, key, version, added.to_record),
                |t| t.recorded_failed(db, key, version, added.to_record),
            ),
        }
    }
    if in_call && total >= WARN_AT {
        warn_once(key, version, total);
    }
}

#[cold]
fn warn_once(key: &[u8; 16], version: u32, total: u64) {
    let first = WARNED.with(|w| {
        let mut w = w.borrow_mut();
        let new = !w.iter().any(|(k, v)| k == key && *v == version);
        if new {
            w.push((*key, version));
        }
        new
    });
    if first {
        // The key id goes in the hint, so the message itself stays the same for every key.
        crate::pg::errors::warning(
            format!(
                "a key version has made about {total} AES-GCM encryptions with random nonces, past half of the 2^32 that NIST SP 800-38D allows"
            ),
            Some(format!(
                "Rotate key {} (version {version}) with encml.rotate_key so that new values use a fresh version, and re-encrypt.",
                uuid_string(key)
            )),
        );
    }
}

/// The catalog's count for a version (None without the table or the row).
fn read_recorded(key: &[u8; 16], version: u32) -> Option<u64> {
    as_extension_owner(|| {
        crate::pg::catalog_access::select_one::<i64>(
            "SELECT encryptions FROM encml.key_encryptions WHERE key_id OPERATOR(pg_catalog.=) $1 \
               AND version OPERATOR(pg_catalog.=) $2",
            &[arg(Uuid::from_bytes(*key)), arg(version as i32)],
        )
    })
    .map(|n| n.max(0) as u64)
}

/// Request and answer of the recording worker.
#[repr(C)]
#[derive(Clone, Copy)]
struct Job {
    key: [u8; 16],
    version: u32,
    n: u64,
    /// Set by the worker: the catalog's total afterwards, or -1.
    total: i64,
}

/// Adds `n` to the catalog outside the caller's transaction; the new total, or None (logged).
fn record(key: &[u8; 16], version: u32, n: u64) -> Option<u64> {
    let job = Job {
        key: *key,
        version,
        n,
        total: -1,
    };
    // SAFETY: Job is plain old data (repr(C), Copy); it travels as bytes and comes back whole.
    let bytes = unsafe {
        std::slice::from_raw_parts(&job as *const Job as *const u8, std::mem::size_of::<Job>())
    };
    match detached_worker::run(
        "pg_encrypt_ml key use",
        "encml_key_use_worker_main",
        extension_owner(),
        bytes,
    ) {
        Ok(back) => {
            // SAFETY: the worker leaves a Job of the same size in place.
            let done = unsafe { std::ptr::read_unaligned(back.as_ptr() as *const Job) };
            (done.total >= 0).then_some(done.total as u64)
        }
        Err(failure) => {
            crate::log_event!(
                "pg_encrypt_ml: {n} encryptions under key {} version {version} not recorded yet ({failure:?}); they stay counted in memory",
                uuid_string(key)
            );
            None
        }
    }
}

/// The worker: adds the count in its own transaction and answers with the total.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn encml_key_use_worker_main(arg: pg_sys::Datum) {
    detached_worker::serve(arg, |request| {
        // SAFETY: the request is the caller's Job, byte for byte.
        let mut job = unsafe { std::ptr::read_unaligned(request.as_ptr() as *const Job) };
        let total = Spi::connect_mut(|client| {
            client
                .update("SET LOCAL search_path = pg_catalog, pg_temp", None, &[])
                .ok()?;
            client
                .update(
                    "INSERT INTO encml.key_encryptions AS e (key_id, version, encryptions) \
                     VALUES ($1, $2, $3) \
                     ON CONFLICT (key_id, version) DO UPDATE \
                        SET encryptions = e.encryptions + excluded.encryptions, recorded_at = now() \
                     RETURNING e.encryptions",
                    Some(1),
                    &[
                        Uuid::from_bytes(job.key).into(),
                        (job.version as i32).into(),
                        (job.n.min(i64::MAX as u64) as i64).into(),
                    ],
                )
                .ok()?
                .into_iter()
                .next()?
                .get::<i64>(1)
                .ok()?
        });
        job.total = total.unwrap_or(-1);
        // SAFETY: as above, the Job as bytes.
        unsafe {
            std::slice::from_raw_parts(&job as *const Job as *const u8, std::mem::size_of::<Job>())
        }
        .to_vec()
    });
}

/// Encryptions counted on this server (shared memory, or this backend's table without preload,
/// plus what this backend has not added yet) and not recorded in the catalog: (key, version, n)
/// for the current database.
pub fn unrecorded() -> Vec<([u8; 16], u32, u64)> {
    let db = database();
    let mut rows: Vec<([u8; 16], u32, u64)> = if crate::security::preloaded() {
        KEY_USE
            .share()
            .table
            .of_database(db)
            .map(|s| (s.key, s.version, s.unrecorded))
            .collect()
    } else {
        LOCAL_TABLE.with(|t| {
            t.borrow()
                .of_database(db)
                .map(|s| (s.key, s.version, s.unrecorded))
                .collect()
        })
    };
    for (key, version, n) in pending().iter() {
        match rows.iter_mut().find(|(k, v, _)| k == key && v == version) {
            Some(row) => row.2 += n,
            None => rows.push((*key, *version, *n)),
        }
    }
    rows.retain(|r| r.2 > 0);
    rows
}
