//! Encryptions per data-key version against the random-nonce limit (`encml_core::nonce_budget`,
//! docs/keys.md "Encryption counts"). Every AES-GCM encryption under a data key draws its nonce
//! through [`nonce_for`], which counts it.
//!
//! - Each backend counts locally and adds to shared memory on the first encryption of a statement
//!   with a key version, every `LOCAL_BATCH` encryptions, and at the end of each statement.
//! - When a version's unrecorded count in shared memory reaches `encml.key_use_record_every`, the
//!   call or statement end that brings it there adds it to `encml.key_encryptions` through a
//!   short background worker (its own transaction, whatever the caller's transaction does). On a
//!   standby nothing is recorded: the counts wait in shared memory.
//! - A count not yet recorded never leaves the table but by being recorded: a version whose
//!   window is full makes room by recording the window's counts in one worker run
//!   (`make_room`), or else this backend keeps its count and records what it kept in one batch
//!   at the statement's end.
//! - Counts still in shared memory are lost at a restart (at most `key_use_record_every` per
//!   version); without the library preloaded each backend keeps its own table, lost at its exit.
//! - Past `WARN_AT` every backend warns once per version, the crossing is a security event, and
//!   `compliance_report()` fails.

use crate::keys::catalog::uuid_string;
use crate::pg::catalog_reads::{arg, extension_relation};
use crate::pg::detached_worker;
use crate::pg::identity::{as_extension_owner, extension_owner};
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

// SAFETY: PgLwLock::new asks for a name no other lock uses: the extension's other locks are
// "... auth lockout", "... event queue" and "... decrypt rates".
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

/// What this backend counted goes to the table: at the end of each statement (`may_record`:
/// counts due are recorded) and of a failed transaction or the process (nothing is recorded).
pub fn flush_local(may_record: bool) {
    // Not from the statements `add` itself runs (its catalog read ends in ExecutorEnd too).
    if IN_ADD.with(|a| a.get()) {
        return;
    }
    let p = pending();
    for (key, version, n) in std::mem::take(p) {
        if n > 0 {
            add(&key, version, n, may_record);
        }
    }
    if may_record && KEPT.with(|k| !k.borrow().is_empty()) && self::may_record() {
        record_kept();
    }
}

fn database() -> u32 {
    // SAFETY: MyDatabaseId is a plain C global of this single-threaded backend, set once when
    // it connects to its database; reading it cannot race.
    unsafe { pg_sys::MyDatabaseId }.to_u32()
}

/// Whether this backend may record now: a primary with the catalog table (a database still at
/// schema 0.1.0 has none). Recording runs in a background worker of its own, so parallel
/// workers and read-only transactions record too.
fn may_record() -> bool {
    // SAFETY: plain read of process state.
    let standby = unsafe { pg_sys::RecoveryInProgress() };
    !standby && extension_relation(c"key_encryptions") != pg_sys::InvalidOid
}

/// Runs `$body` with `$t` bound to the table in use: shared memory when preloaded, else this
/// backend's own (a smaller table of the same kind).
macro_rules! with_table {
    (|$t:ident| $body:expr) => {
        if crate::pg::preload::preloaded() {
            let $t = &mut KEY_USE.exclusive().table;
            $body
        } else {
            LOCAL_TABLE.with(|cell| {
                let $t = &mut **cell.borrow_mut();
                $body
            })
        }
    };
}

/// Adds `n` to the table; `in_call`: inside a call or statement, where counts may be recorded
/// (and a WARNING given).
fn add(key: &[u8; 16], version: u32, n: u64, in_call: bool) {
    IN_ADD.with(|a| {
        let outer = a.replace(true);
        // Reset however this ends (an ERROR from a catalog read unwinds through here).
        let _reset = Reset(a, outer);
        add_inner(key, version, n, in_call)
    })
}

struct Reset<'a>(&'a std::cell::Cell<bool>, bool);
impl Drop for Reset<'_> {
    fn drop(&mut self) {
        self.0.set(self.1);
    }
}

fn add_inner(key: &[u8; 16], version: u32, n: u64, in_call: bool) {
    keep_at_exit();
    let db = database();
    let recording = in_call && may_record();
    let every = if recording {
        crate::pg::gucs::KEY_USE_RECORD_EVERY.get().max(1) as u64
    } else {
        u64::MAX
    };
    let add = || with_table!(|t| t.add(db, key, version, n, every));
    let mut added = add();
    if added.full && recording && make_room(key, version) {
        added = add();
    }
    if added.full {
        // No room: this backend keeps the count and records it with its others at the
        // statement's end (no other session can touch it).
        keep(key, version, n);
        if recording && KEPT.with(|k| k.borrow().len()) >= KEPT_BATCH {
            record_kept();
        }
        return;
    }
    let mut total = added.total;
    if added.new_slot && recording {
        if let Some(recorded) = read_recorded(key, version) {
            with_table!(|t| t.set_recorded(db, key, version, recorded));
            total = total.saturating_add(recorded);
        }
    }
    if added.to_record > 0 {
        let mut batch = InFlight::new(vec![(*key, version, added.to_record)]);
        if let Some(totals) = batch.record() {
            total = total.max(totals[0]);
        }
    }
    if in_call && total >= WARN_AT {
        warn_once(key, version, total);
    }
}

/// Counts taken out of the table to be recorded. Until `record` succeeds, dropping it (also
/// when an ERROR or a cancel unwinds through the wait for the worker) gives them back: to the
/// table if their slot is still there, else to this backend's kept counts.
struct InFlight {
    entries: Vec<([u8; 16], u32, u64)>,
    done: bool,
}

impl InFlight {
    fn new(entries: Vec<([u8; 16], u32, u64)>) -> Self {
        InFlight {
            entries,
            done: false,
        }
    }

    /// Records every entry in one worker run; the new totals (and the table updated), or None.
    fn record(&mut self) -> Option<Vec<u64>> {
        if self.entries.is_empty() {
            self.done = true;
            return Some(Vec::new());
        }
        let mut job: Vec<Entry> = self
            .entries
            .iter()
            .map(|&(key, version, n)| Entry {
                key,
                version,
                n,
                total: -1,
            })
            .collect();
        if !run_job(extension_owner(), &mut job) {
            return None;
        }
        let db = database();
        let totals: Vec<u64> = job.iter().map(|e| e.total.max(0) as u64).collect();
        for (e, &t) in job.iter().zip(&totals) {
            with_table!(|tb| tb.set_recorded(db, &e.key, e.version, t));
            crossed(&e.key, e.version, e.n, t);
        }
        self.done = true;
        Some(totals)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let db = database();
        for &(key, version, n) in &self.entries {
            let back = with_table!(|t| t.recorded_failed(db, &key, version, n));
            if !back {
                keep(&key, version, n);
            }
        }
    }
}

/// A version's window is full: records the counts of the window's slots of this database in
/// one worker run, which frees them. False if nothing could be taken or recorded (the counts
/// then stay in their slots).
fn make_room(key: &[u8; 16], version: u32) -> bool {
    let db = database();
    let live = |other: u32| {
        // SAFETY: a syscache lookup by oid.
        unsafe {
            pg_sys::SearchSysCacheExists(
                pg_sys::SysCacheIdentifier::DATABASEOID as i32,
                pg_sys::Datum::from(pg_sys::Oid::from(other)),
                pg_sys::Datum::from(0),
                pg_sys::Datum::from(0),
                pg_sys::Datum::from(0),
            )
        }
    };
    let taken = with_table!(|t| t.take_window(db, key, version, live));
    if taken.is_empty() {
        // Perhaps a dropped database's slots were freed.
        return true;
    }
    InFlight::new(taken).record().is_some()
}

/// Counts this backend holds to record in one batch at the end of the statement (no room in
/// the table for them): one background worker per statement, not one per version, when more
/// versions are in use than the table holds.
fn keep(key: &[u8; 16], version: u32, n: u64) {
    KEPT.with(|k| {
        let mut k = k.borrow_mut();
        match k.iter_mut().find(|e| e.1 == version && e.0 == *key) {
            Some(e) => e.2 = e.2.saturating_add(n),
            None => k.push((*key, version, n)),
        }
    });
}

/// Records what `keep` holds, in one worker run; kept again if that fails.
fn record_kept() {
    let batch = KEPT.with(|k| std::mem::take(&mut *k.borrow_mut()));
    // Not in the table: on failure (or an ERROR) InFlight's drop keeps them again.
    let _ = InFlight::new(batch).record();
}

/// A `key_nonce_budget_exceeded` event if recording `n` took the version past `WARN_AT`.
fn crossed(key: &[u8; 16], version: u32, n: u64, recorded: u64) {
    let before = recorded.saturating_sub(n);
    if before < WARN_AT && recorded >= WARN_AT {
        crate::events::record_detached(
            "key_nonce_budget_exceeded",
            json!({ "key": uuid_string(key), "version": version,
                    "encryptions": recorded, "warn_at": WARN_AT, "limit": NONCE_LIMIT }),
        );
    }
}

/// Kept counts recorded at once when this many versions wait (else at the statement's end).
const KEPT_BATCH: usize = 1024;

thread_local! {
    static KEPT: RefCell<Vec<([u8; 16], u32, u64)>> = const { RefCell::new(Vec::new()) };
    /// Inside `add` (which may run queries): `flush_local` waits for the outer call.
    static IN_ADD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static EXIT_CALLBACK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Registers (once per process) the callback that puts this backend's counts back into the
/// table when it exits.
fn keep_at_exit() {
    if EXIT_CALLBACK.with(|c| c.replace(true)) {
        return;
    }
    // SAFETY: registers a callback of this library for the current process; Postgres calls it
    // once, while shared memory is still attached.
    unsafe { pg_sys::before_shmem_exit(Some(at_exit), pg_sys::Datum::from(0)) };
}

#[pg_guard]
unsafe extern "C-unwind" fn at_exit(_code: std::ffi::c_int, _arg: pg_sys::Datum) {
    flush_local(false);
    let lost: u64 = pending().drain(..).map(|(_, _, n)| n).sum::<u64>()
        + KEPT.with(|k| k.borrow_mut().drain(..).map(|e| e.2).sum::<u64>());
    if lost > 0 {
        crate::log_event!(
            "pg_encrypt_ml: {lost} AES-GCM encryptions could not be counted (the key-use table was full and nothing could be recorded)"
        );
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
        crate::pg::catalog_reads::select_one::<i64>(
            "SELECT encryptions FROM encml.key_encryptions WHERE key_id OPERATOR(pg_catalog.=) $1 \
               AND version OPERATOR(pg_catalog.=) $2",
            &[arg(Uuid::from_bytes(*key)), arg(version as i32)],
        )
    })
    .map(|n| n.max(0) as u64)
}

/// One version's count in a recording job: request and answer of the worker.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Entry {
    key: [u8; 16],
    version: u32,
    n: u64,
    /// Set by the worker: the catalog's total afterwards, or -1.
    total: i64,
}

/// Runs one recording job in a background worker connected to `database` as `role`; false
/// (logged) if no worker ran it to its end. The worker fills in each entry's total.
fn run_job(role: pg_sys::Oid, entries: &mut [Entry]) -> bool {
    // SAFETY: Entry is plain old data (repr(C), Copy); the entries travel as bytes and come back
    // whole.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            entries.as_ptr() as *const u8,
            std::mem::size_of_val(entries),
        )
    };
    match detached_worker::run(
        "pg_encrypt_ml key use",
        "encml_key_use_worker_main",
        role,
        bytes,
    ) {
        Ok(back) if back.len() == bytes.len() => {
            for (i, e) in entries.iter_mut().enumerate() {
                // SAFETY: the worker leaves the entries in place, same size and layout.
                *e = unsafe {
                    std::ptr::read_unaligned(
                        back.as_ptr().add(i * std::mem::size_of::<Entry>()) as *const Entry
                    )
                };
            }
            entries.iter().all(|e| e.total >= 0)
        }
        failure => {
            let n: u64 = entries.iter().map(|e| e.n).sum();
            crate::log_event!(
                "pg_encrypt_ml: {n} encryptions under {} key version(s) not recorded yet ({:?}); they stay counted in memory",
                entries.len(),
                failure.err()
            );
            false
        }
    }
}

/// The worker: adds each count in its own transaction and answers with the totals.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn encml_key_use_worker_main(arg: pg_sys::Datum) {
    detached_worker::serve(arg, |request| {
        let size = std::mem::size_of::<Entry>();
        // SAFETY: the request is the caller's entries, byte for byte.
        let mut entries: Vec<Entry> = request
            .chunks_exact(size)
            .map(|c| unsafe { std::ptr::read_unaligned(c.as_ptr() as *const Entry) })
            .collect();
        Spi::connect_mut(|client| {
            if client
                .update("SET LOCAL search_path = pg_catalog, pg_temp", None, &[])
                .is_err()
            {
                return;
            }
            for e in entries.iter_mut() {
                e.total = client
                    .update(
                        "INSERT INTO encml.key_encryptions AS e (key_id, version, encryptions) \
                         VALUES ($1, $2, $3) \
                         ON CONFLICT (key_id, version) DO UPDATE \
                            SET encryptions = e.encryptions + excluded.encryptions, recorded_at = now() \
                         RETURNING e.encryptions",
                        Some(1),
                        &[
                            Uuid::from_bytes(e.key).into(),
                            (e.version as i32).into(),
                            (e.n.min(i64::MAX as u64) as i64).into(),
                        ],
                    )
                    .ok()
                    .and_then(|t| t.into_iter().next())
                    .and_then(|row| row.get::<i64>(1).ok().flatten())
                    .unwrap_or(-1);
            }
        });
        // SAFETY: as above, the entries as bytes.
        unsafe { std::slice::from_raw_parts(entries.as_ptr() as *const u8, size * entries.len()) }
            .to_vec()
    });
}

/// Encryptions counted on this server (shared memory, or this backend's table without preload,
/// plus what this backend has not added yet) and not recorded in the catalog: (key, version, n)
/// for the current database.
pub fn unrecorded() -> Vec<([u8; 16], u32, u64)> {
    let db = database();
    let mut rows: Vec<([u8; 16], u32, u64)> = if crate::pg::preload::preloaded() {
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
    let kept: Vec<([u8; 16], u32, u64)> = KEPT.with(|k| k.borrow().clone());
    for (key, version, n) in pending().iter().chain(kept.iter()) {
        match rows.iter_mut().find(|(k, v, _)| k == key && v == version) {
            Some(row) => row.2 += n,
            None => rows.push((*key, *version, *n)),
        }
    }
    rows.retain(|r| r.2 > 0);
    rows
}
