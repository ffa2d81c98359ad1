//! The key lifecycle worker: one background worker per database at a time applies the rotation
//! policies that are due and runs re-encryption jobs batch by batch, throttled, until nothing is
//! left, then exits. It is started
//! - by the launcher (a static worker, with the library in shared_preload_libraries) for every
//!   database that allows connections, every `encml.key_lifecycle_naptime` seconds: this is what
//!   applies policies on time and resumes jobs after a restart;
//! - at the commit of a transaction that queued a job (`wake_after_commit`), and by
//!   `encml.run_key_lifecycle()`, with or without preloading.
//!
//! A second worker for the same database exits at once (a session advisory lock); a database
//! without the extension, or at a schema older than 0.2.0, is left at once too.

use super::{batch, compromise, policies};
use crate::pg::catalog_reads::select_one;
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgTryBuilder};
use std::cell::Cell;
use std::time::{Duration, Instant};

/// Seconds between the launcher's rounds (0: no launcher rounds; policies then run only when
/// `encml.run_key_lifecycle()` is called).
pub static NAPTIME: GucSetting<i32> = GucSetting::<i32>::new(60);
/// Lifecycle workers the launcher keeps running at once (each serves one database).
pub static MAX_WORKERS: GucSetting<i32> = GucSetting::<i32>::new(2);
/// Seconds a batch's statement may run (the table owner's triggers included) before it is
/// cancelled and its job fails.
pub static BATCH_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(60);
/// Heap blocks per batch.
pub static BATCH_BLOCKS: GucSetting<i32> = GucSetting::<i32>::new(64);
/// Share of the time a job works: after a batch of t ms it sleeps t * (1 - d) / d ms.
pub static DUTY_CYCLE: GucSetting<f64> = GucSetting::<f64>::new(0.25);

/// The session lock a database's lifecycle worker holds: an advisory lock tag whose fourth
/// field (3) no SQL function makes (pg_advisory_lock uses 1 and 2), so that no session can
/// take it and keep the worker out (attacker re-check of issue 31: a role holding
/// pg_advisory_lock(1701733229, 31) stopped every job of the database).
const LOCK_CLASS: u32 = 0x656e_636d; // "encm"
const LOCK_OBJECT: u32 = 31;
const LOCK_KIND: u16 = 3;

fn worker_lock_tag() -> pg_sys::LOCKTAG {
    pg_sys::LOCKTAG {
        // SAFETY: a backend global set when the worker connected.
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: LOCK_CLASS,
        locktag_field3: LOCK_OBJECT,
        locktag_field4: LOCK_KIND,
        locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
        locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
    }
}

/// Takes this database's worker lock for the session, without waiting; false if taken.
fn try_worker_lock() -> bool {
    let tag = worker_lock_tag();
    // SAFETY: `tag` is a local LockAcquire copies; a session lock outlives transactions and is
    // released by `release_worker_lock` or at process exit.
    let result = unsafe { pg_sys::LockAcquire(&tag, pg_sys::ExclusiveLock as i32, true, true) };
    result != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
}

fn release_worker_lock() {
    let tag = worker_lock_tag();
    // SAFETY: releases the session lock `try_worker_lock` took (false if not held).
    unsafe { pg_sys::LockRelease(&tag, pg_sys::ExclusiveLock as i32, true) };
}

pub fn register_gucs() {
    GucRegistry::define_int_guc(
        c"encml.key_lifecycle_naptime",
        c"Seconds between the key lifecycle launcher's rounds over the databases (0: none).",
        c"Each round starts a worker in every database that applies due rotation policies and \
          runs re-encryption jobs. Needs the library in shared_preload_libraries.",
        &NAPTIME,
        0,
        86_400,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"encml.key_lifecycle_max_workers",
        c"Key lifecycle workers the launcher runs at once, one database each.",
        c"A round visits every database as workers finish; each worker takes a slot of \
          max_worker_processes while it runs.",
        &MAX_WORKERS,
        1,
        64,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"encml.reencrypt_batch_timeout",
        c"Seconds a re-encryption batch may run before it is cancelled and its job fails.",
        c"Bounds what a table owner's triggers can hold the database's lifecycle worker for.",
        &BATCH_TIMEOUT,
        1,
        86_400,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"encml.reencrypt_batch_blocks",
        c"Heap blocks a re-encryption job works through per transaction.",
        c"Each batch is one short transaction that locks only the rows it updates.",
        &BATCH_BLOCKS,
        1,
        1 << 20,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"encml.reencrypt_duty_cycle",
        c"Share of the time a re-encryption job works; it sleeps the rest between batches.",
        c"1 runs batches back to back; the default 0.25 leaves three quarters of a core to the \
          workload.",
        &DUTY_CYCLE,
        0.01,
        1.0,
        GucContext::Sighup,
        GucFlags::default(),
    );
}

thread_local! {
    static WAKE_REGISTERED: Cell<bool> = const { Cell::new(false) };
    static STOPPING: Cell<bool> = const { Cell::new(false) };
}

/// Starts this database's lifecycle worker when the current transaction commits (once per
/// transaction): a job queued now is then visible to it.
pub fn wake_after_commit() {
    if WAKE_REGISTERED.with(|w| w.replace(true)) {
        return;
    }
    // SAFETY: a backend global set when the session connected.
    let database = unsafe { pg_sys::MyDatabaseId };
    pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Commit, move || {
        WAKE_REGISTERED.with(|w| w.set(false));
        start_for(database);
    });
    pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Abort, || {
        WAKE_REGISTERED.with(|w| w.set(false));
    });
}

/// Starts a lifecycle worker for `database`; without a free worker slot it logs and leaves the
/// work to the next start (the launcher's next round, the next queued job).
pub fn start_for(database: pg_sys::Oid) -> bool {
    launch(database).is_some()
}

fn launch(database: pg_sys::Oid) -> Option<pgrx::bgworkers::DynamicBackgroundWorker> {
    let started = BackgroundWorkerBuilder::new("pg_encrypt_ml key lifecycle")
        .set_type("pg_encrypt_ml key lifecycle")
        .set_library("pg_encrypt_ml")
        .set_function("encml_key_lifecycle_worker")
        .set_argument(Some(pg_sys::Datum::from(database)))
        .enable_spi_access()
        .set_restart_time(None)
        .load_dynamic();
    if started.is_err() {
        pgrx::log!(
            "pg_encrypt_ml: no background worker slot free for the key lifecycle worker \
             (max_worker_processes); queued re-encryption jobs wait for the next start"
        );
    }
    started.ok()
}

/// Registers the launcher, from `_PG_init` while shared_preload_libraries is loaded.
pub fn register_launcher() {
    BackgroundWorkerBuilder::new("pg_encrypt_ml key lifecycle launcher")
        .set_type("pg_encrypt_ml key lifecycle launcher")
        .set_library("pg_encrypt_ml")
        .set_function("encml_key_lifecycle_launcher")
        .enable_spi_access()
        .set_start_time(pgrx::bgworkers::BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(10)))
        .load();
}

/// Starts one lifecycle worker for the current database now (as the launcher would), for
/// databases whose server does not preload the library or to apply policies at once; returns
/// whether a worker slot was free. Key admins only.
#[pg_extern(volatile, parallel_unsafe)]
fn run_key_lifecycle() -> bool {
    crate::pg::recovery::refuse_during_recovery("encml.run_key_lifecycle()");
    let role = crate::pg::roles::caller();
    if !crate::api::keys::is_key_admin(role) {
        crate::pg::errors::raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "permission denied to run the key lifecycle worker: superusers and members of \
             encml_key_admin only",
        );
    }
    // SAFETY: a backend global set when the session connected.
    start_for(unsafe { pg_sys::MyDatabaseId })
}

fn stopping() -> bool {
    if STOPPING.with(|s| s.get()) {
        return true;
    }
    let stop = BackgroundWorker::sigterm_received();
    if stop {
        STOPPING.with(|s| s.set(true));
    }
    stop
}

/// Sleeps up to `d`, waking for SIGTERM (then returns false) or the postmaster's death.
fn nap(d: Duration) -> bool {
    let alive = BackgroundWorker::wait_latch(Some(d));
    // SAFETY: resets this process's own latch after a wake-up, as every wait loop does.
    unsafe { pg_sys::ResetLatch(pg_sys::MyLatch) };
    if !alive {
        STOPPING.with(|s| s.set(true));
    }
    alive && !stopping()
}

/// An ERROR caught in the worker: its SQLSTATE and message.
pub struct Caught {
    pub sqlstate: PgSqlErrorCode,
    pub message: String,
}

/// Runs `f` in a transaction of its own (READ COMMITTED), committing it, or aborting it and
/// returning the ERROR.
pub fn in_transaction<R>(f: impl FnOnce() -> R) -> Result<R, Caught> {
    // SAFETY: the worker is connected and has no transaction open; the calls follow Postgres's
    // own sequence for a statement in its own transaction, and each is pgrx's guarded wrapper,
    // so an ERROR becomes a panic that catch_others turns into Err, after which the transaction
    // is aborted below. The snapshot pushed is popped before the commit.
    let outcome = PgTryBuilder::new(std::panic::AssertUnwindSafe(move || unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        let r = f();
        pg_sys::PopActiveSnapshot();
        pg_sys::CommitTransactionCommand();
        Ok(r)
    }))
    .catch_others(|e| {
        let report = crate::pg::session_worker::report_of(&e);
        Err(Caught {
            sqlstate: report.sql_error_code(),
            message: report.message().to_string(),
        })
    })
    .execute();
    if outcome.is_err() {
        // SAFETY: the ERROR was caught above; abort what is left of the transaction, as
        // Postgres's main loop does after an error.
        unsafe { pg_sys::AbortOutOfAnyTransaction() };
    }
    outcome
}

/// Sets a setting of this worker process at the highest source, so that no later configuration
/// source (nor the code of a table's owner that a batch runs) replaces it.
fn pin_setting(name: &std::ffi::CStr, value: &std::ffi::CStr) {
    // SAFETY: sets a setting of this process by name with NUL-terminated strings.
    unsafe {
        pg_sys::SetConfigOption(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_OVERRIDE,
        )
    };
}

/// The five characters of a SQLSTATE (MAKE_SQLSTATE packs six bits per character, the first
/// lowest).
fn sqlstate_text(code: pgrx::PgSqlErrorCode) -> String {
    let packed = code as i32;
    (0..5)
        .map(|i| (((packed >> (6 * i)) & 0x3F) as u8 + b'0') as char)
        .collect()
}

/// Whether an ERROR is worth retrying later rather than failing the job: serialization
/// failures, deadlocks, lock timeouts, cancels, and the like.
fn transient(code: PgSqlErrorCode) -> bool {
    // The class is the SQLSTATE's first two characters, its low 12 bits (MAKE_SQLSTATE packs
    // six bits per character, the first lowest): 40 (transaction rollback: serialization
    // failures, deadlocks), 53 (insufficient resources); and 55P03 (lock not available: the
    // batch's lock_timeout). Not 57014: a batch past encml.reencrypt_batch_timeout fails its job
    // (a table owner's trigger that sleeps must not hold the database's worker forever).
    // Class 08 (connection exception): a Citus worker node that is down or restarting.
    let class = |c: PgSqlErrorCode| (c as i32) & 0x0FFF;
    code == PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE
        || class(code) == class(PgSqlErrorCode::ERRCODE_TRANSACTION_ROLLBACK)
        || class(code) == class(PgSqlErrorCode::ERRCODE_INSUFFICIENT_RESOURCES)
        || class(code) == class(PgSqlErrorCode::ERRCODE_CONNECTION_EXCEPTION)
}

/// The databases that allow connections (not templates), read from pg_database with a catalog
/// scan as autovacuum's launcher does: without a database, SQL cannot be parsed.
fn database_list() -> Vec<pg_sys::Oid> {
    let mut out = Vec::new();
    // SAFETY: inside a transaction with a snapshot (in_transaction); pg_database is a shared
    // catalog, readable without a database. Each tuple's data is a FormData_pg_database while
    // the scan is open; only its oid and flags are copied out. The scan and the relation are
    // closed before returning (an ERROR aborts the transaction, which releases both).
    unsafe {
        let rel = pg_sys::table_open(pg_sys::DatabaseRelationId, pg_sys::AccessShareLock as i32);
        let scan = pg_sys::table_beginscan_catalog(rel, 0, std::ptr::null_mut());
        loop {
            let tuple = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
            if tuple.is_null() {
                break;
            }
            let db = &*(pg_sys::GETSTRUCT(tuple) as *const pg_sys::FormData_pg_database);
            if db.datallowconn && !db.datistemplate {
                out.push(db.oid);
            }
        }
        pg_sys::table_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as i32);
    }
    out
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn encml_key_lifecycle_launcher(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // No database: only the shared catalogs (pg_database) are read.
    BackgroundWorker::connect_worker_to_spi(None, None);
    // A round visits every database, at most encml.key_lifecycle_max_workers at a time (a long
    // job in one database keeps one worker busy; the others go on serving the rest).
    let mut running: Vec<(pg_sys::Oid, pgrx::bgworkers::DynamicBackgroundWorker)> = Vec::new();
    let mut pending: std::collections::VecDeque<pg_sys::Oid> = Default::default();
    let mut next_round = Instant::now();
    loop {
        if BackgroundWorker::sighup_received() {
            // SAFETY: rereads the configuration files, as a backend does at SIGHUP.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        running.retain(|(_, w)| w.pid().is_ok());
        let naptime = NAPTIME.get();
        if naptime > 0 && Instant::now() >= next_round {
            next_round = Instant::now() + Duration::from_secs(naptime as u64);
            for db in in_transaction(database_list).unwrap_or_default() {
                if !pending.contains(&db) {
                    pending.push_back(db);
                }
            }
        }
        while running.len() < MAX_WORKERS.get().max(1) as usize {
            let Some(db) = pending.pop_front() else {
                break;
            };
            if running.iter().any(|(d, _)| *d == db) {
                continue;
            }
            match launch(db) {
                Some(worker) => running.push((db, worker)),
                None => {
                    pending.push_front(db);
                    break;
                }
            }
        }
        if !nap(Duration::from_secs(1)) {
            return;
        }
    }
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn encml_key_lifecycle_worker(arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let database = pg_sys::Oid::from(arg.value() as u32);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(database), None);
    // READ COMMITTED whatever the database's default: each batch sees what committed before it.
    // SAFETY: a backend global of this worker, read when each transaction starts.
    unsafe { pg_sys::DefaultXactIsoLevel = pg_sys::XACT_READ_COMMITTED as i32 };
    // The worker connected as the bootstrap superuser, whose search_path ("$user", public) holds
    // schemas other roles may create objects in: every statement of the worker resolves names
    // in pg_catalog (and its own temporary schema) only, whatever the database or role settings
    // say. (The jobs' own statements pin it again, as the job's role: `identity::as_role`.)
    pin_setting(c"search_path", c"pg_catalog, pg_temp");
    // No statement of the worker waits long for a lock: a table some role keeps locked in an
    // idle transaction stalled every job and policy of the database (attacker re-check of issue
    // 31). A wait past this is a transient error: the job goes to the end of the line.
    pin_setting(c"lock_timeout", c"5s");
    let ready = in_transaction(|| {
        let schema = crate::pg::schema_version::installed();
        let current = schema
            .as_deref()
            .and_then(crate::pg::schema_version::Release::parse)
            .is_some_and(|r| r >= crate::pg::schema_version::Release(0, 2, 0));
        current
            && crate::pg::catalog_reads::extension_relation(c"rotation_policies")
                != pg_sys::InvalidOid
            && try_worker_lock()
    });
    match ready {
        Ok(true) => run_until_idle(),
        // Another worker serves this database: have it look at the policies now (a call of
        // run_key_lifecycle, a job queued while it slept between batches).
        Ok(false) => {
            let _ = in_transaction(nudge_holder);
        }
        Err(_) => {}
    }
}

/// When the queue looked empty: gives up this database's lock, then looks again, so that a job
/// queued meanwhile (whose wake-up found the lock still taken and left) is not left waiting for
/// the launcher's next round. True if there is work again and the lock was taken back.
fn still_needed() -> bool {
    in_transaction(|| {
        release_worker_lock();
        (batch::next_job(false).is_some() || !policies::due().is_empty()) && try_worker_lock()
    })
    .unwrap_or(false)
}

/// Sends SIGHUP to the worker holding this database's lock: it rereads its settings and looks
/// at the rotation policies at once instead of at its next round.
fn nudge_holder() {
    let holder = select_one::<i32>(
        &format!(
            "SELECT pid FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND granted \
               AND classid = {LOCK_CLASS}::oid AND objid = {LOCK_OBJECT}::oid \
               AND objsubid = {LOCK_KIND} \
               AND database = (SELECT oid FROM pg_catalog.pg_database \
                                WHERE datname = pg_catalog.current_database())"
        ),
        &[],
    );
    if let Some(pid) = holder {
        // SAFETY: kill(2) with a pid read from the lock table, a process of this server
        // (the same OS user); a pid that exited meanwhile gives ESRCH, ignored.
        unsafe { libc::kill(pid, libc::SIGHUP) };
    }
}

/// Each due policy in a transaction of its own (a failure is recorded on its policy and the
/// others go on), then the retirements policies allow.
fn apply_policies() {
    let due = match in_transaction(policies::due) {
        Ok(due) => due,
        Err(e) => {
            pgrx::log!("pg_encrypt_ml: rotation policies: {}", e.message);
            return;
        }
    };
    for d in due {
        if let Err(e) = in_transaction(|| policies::apply(&d)) {
            let message = e.message;
            let _ = in_transaction(|| policies::mark_checked(&d.key, Some(&message)));
        }
    }
    for key in in_transaction(policies::keys_retiring).unwrap_or_default() {
        if let Err(e) = in_transaction(|| policies::retire_due(&key)) {
            let message = e.message;
            let _ = in_transaction(|| policies::mark_checked(&key, Some(&message)));
        }
    }
    // Compromises whose last values went away without a job (a locked table read again, a
    // forged value deleted, a version retired).
    for key in in_transaction(compromise::keys_uncleared).unwrap_or_default() {
        if let Err(e) = in_transaction(|| compromise::check_cleared(&key)) {
            pgrx::log!("pg_encrypt_ml: compromised key versions: {}", e.message);
        }
    }
}

/// Policies, then jobs batch by batch, until no job is left (policies are looked at again every
/// naptime meanwhile).
fn run_until_idle() {
    let mut policies_at: Option<Instant> = None;
    let mut retried = 0u32;
    // Transient failures per job: it is tried again after the other jobs, up to this many times.
    let mut postponed: std::collections::HashMap<i64, u32> = std::collections::HashMap::new();
    let mut turn = 0u64;
    loop {
        if stopping() {
            return;
        }
        if BackgroundWorker::sighup_received() {
            // SAFETY: rereads the configuration files, as a backend does at SIGHUP.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
            // Also sent by a worker that found this one serving the database (`nudge_holder`).
            policies_at = None;
        }
        let every = Duration::from_secs(NAPTIME.get().max(1) as u64);
        if policies_at.is_none_or(|t| t.elapsed() >= every) {
            policies_at = Some(Instant::now());
            apply_policies();
        }
        turn += 1;
        let (job, queued) = match in_transaction(|| batch::next_job(turn.is_multiple_of(2))) {
            Ok(Some(job)) => job,
            Ok(None) if still_needed() => continue,
            _ => return,
        };
        let started = Instant::now();
        let blocks = BATCH_BLOCKS.get() as i64;
        let outcome = if queued {
            in_transaction(|| batch::run(job, blocks, true))
        } else {
            in_transaction(|| batch::run(job, blocks, false))
        };
        match outcome {
            Ok(batch::Outcome::Finished { key }) => {
                retried = 0;
                if let Err(e) = in_transaction(|| {
                    compromise::check_cleared(&key);
                    policies::retire_due(&key);
                }) {
                    pgrx::log!(
                        "pg_encrypt_ml: after re-encryption job {job}: {}",
                        e.message
                    );
                }
            }
            Ok(batch::Outcome::Retry(why)) if retried < 300 => {
                retried += 1;
                pgrx::log!("pg_encrypt_ml: re-encryption job {job} will retry its batch: {why}");
                if !nap(Duration::from_secs(1)) {
                    return;
                }
            }
            Ok(batch::Outcome::Retry(why)) => {
                retried = 0;
                let _ = in_transaction(|| batch::fail(job, &why));
            }
            Ok(_) => retried = 0,
            Err(e) if transient(e.sqlstate) && postponed.get(&job).copied().unwrap_or(0) < 100 => {
                *postponed.entry(job).or_default() += 1;
                pgrx::log!(
                    "pg_encrypt_ml: re-encryption job {job} will retry its batch after the other jobs: {}",
                    e.message
                );
                // Longer each time, up to a minute.
                let tries = postponed.get(&job).copied().unwrap_or(1);
                let wait = (5.0 * tries as f64).min(60.0);
                let _ = in_transaction(|| batch::postpone(job, &e.message, wait));
                if !nap(Duration::from_secs(1)) {
                    return;
                }
            }
            Err(e) => {
                retried = 0;
                // With its SQLSTATE: the message may come from the table owner's own code (a
                // trigger's RAISE), which the operator reading it should know.
                let message = format!("{} (SQLSTATE {})", e.message, sqlstate_text(e.sqlstate));
                if let Err(again) = in_transaction(|| batch::fail(job, &message)) {
                    pgrx::log!(
                        "pg_encrypt_ml: could not record the failure of re-encryption job {job}: {}",
                        again.message
                    );
                    return;
                }
            }
        }
        let worked = started.elapsed();
        let duty = DUTY_CYCLE.get().clamp(0.01, 1.0);
        if duty < 1.0 {
            let rest = worked.mul_f64((1.0 - duty) / duty);
            if !nap(rest.max(Duration::from_millis(1))) {
                return;
            }
        }
    }
}
