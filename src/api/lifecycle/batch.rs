//! One batch of a re-encryption job, in the background worker's transaction: the values of a
//! range of heap blocks (a TID range scan, no table lock beyond the rows it updates) moved to
//! the key's current version by the job's role, and the job's resume point advanced in the same
//! transaction, so that a crash loses nothing and repeats nothing.

use super::columns::{self, Kind};
use crate::keys::catalog::{self, uuid_string};
use crate::pg::catalog_reads::{arg, read_rows, select_one};
use crate::pg::errors::OrSpiFailed;
use pgrx::prelude::*;
use pgrx::{pg_sys, Uuid};
use serde_json::json;

/// A pass that moved values is followed by another (values that concurrent updates carried
/// behind the cursor); after this many the job gives up.
const MAX_PASSES: i32 = 20;

/// A live job as stored.
struct Job {
    rel: pg_sys::Oid,
    column: String,
    kind: Kind,
    key: [u8; 16],
    target_version: u32,
    aad: Option<String>,
    run_as: pg_sys::Oid,
    state: String,
    pass: i32,
    next_block: i64,
    pass_rows: i64,
}

/// What a batch did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Moved this many values; the job goes on.
    Worked(i64),
    /// The job ended (done or failed) with this batch.
    Finished { key: [u8; 16] },
    /// The job was no longer live (cancelled, finished by another worker).
    Gone,
    /// A Citus worker node could not be reached: the batch is to be run again (what the other
    /// placements moved is counted).
    Retry(String),
}

/// The live job to work on next: compromises first, or, with `any_priority` (every other
/// batch), the job that waited longest whatever its priority, so that no job waits behind
/// another's batches for long (any key's administrator may report it compromised: attacker
/// re-check of issue 31).
pub fn next_job(any_priority: bool) -> Option<(i64, bool)> {
    // Within a priority, the job that waited longest goes next: jobs take turns batch by batch,
    // so one slow table does not hold the others back. With whether it is still queued.
    read_rows(
        "SELECT id, state = 'queued' FROM encml.reencryption_jobs \
          WHERE state IN ('queued', 'running') \
          ORDER BY coalesce(retry_after > pg_catalog.clock_timestamp(), false), \
                   CASE WHEN $1 THEN 0 ELSE priority END DESC, updated_at NULLS FIRST, id LIMIT 1",
        &[arg(any_priority)],
        1,
        |row| {
            (
                row.get::<i64>(1).unwrap_or(0),
                row.get::<bool>(2).unwrap_or(false),
            )
        },
    )
    .into_iter()
    .next()
}

fn lock_job(id: i64) -> Option<Job> {
    Spi::connect_mut(|client| {
        let rows = client
            .update(
                "SELECT id, table_oid::oid, column_name::text, kind, key_id, target_version, aad, \
                        run_as::oid, state, pass, next_block, pass_rows \
                   FROM encml.reencryption_jobs \
                  WHERE id = $1 AND state IN ('queued', 'running') FOR UPDATE",
                Some(1),
                &[id.into()],
            )
            .or_spi_failed("could not read the re-encryption job");
        rows.into_iter().next().map(|row| Job {
            rel: row
                .get::<pg_sys::Oid>(2)
                .ok()
                .flatten()
                .unwrap_or(pg_sys::InvalidOid),
            column: row.get::<String>(3).ok().flatten().unwrap_or_default(),
            kind: row
                .get::<String>(4)
                .ok()
                .flatten()
                .and_then(|k| Kind::from_label(&k))
                .unwrap_or(Kind::EncBytea),
            key: row
                .get::<Uuid>(5)
                .ok()
                .flatten()
                .map(|u| *u.as_bytes())
                .unwrap_or_default(),
            target_version: row.get::<i32>(6).ok().flatten().unwrap_or(1) as u32,
            aad: row.get::<String>(7).ok().flatten(),
            run_as: row
                .get::<pg_sys::Oid>(8)
                .ok()
                .flatten()
                .unwrap_or(pg_sys::InvalidOid),
            state: row.get::<String>(9).ok().flatten().unwrap_or_default(),
            pass: row.get::<i32>(10).ok().flatten().unwrap_or(1),
            next_block: row.get::<i64>(11).ok().flatten().unwrap_or(0),
            pass_rows: row.get::<i64>(12).ok().flatten().unwrap_or(0),
        })
    })
}

fn run_sql(sql: &str, args: &[(pg_sys::Oid, Option<pg_sys::Datum>)]) {
    crate::pg::catalog_reads::execute(sql, args);
}

/// Ends the job as failed with `error` (in the current transaction) and records it.
pub fn fail(id: i64, error: &str) {
    run_sql(
        "UPDATE encml.reencryption_jobs SET state = 'failed', error = $2, \
                finished_at = pg_catalog.clock_timestamp(), updated_at = pg_catalog.clock_timestamp() \
          WHERE id = $1 AND state IN ('queued', 'running')",
        &[arg(id), arg(error)],
    );
    crate::events::record(
        "reencryption_failed",
        None,
        json!({ "job": id, "error": error }),
    );
}

fn relation_blocks(rel: pg_sys::Oid) -> i64 {
    select_one::<i64>(
        "SELECT pg_catalog.pg_relation_size($1) / pg_catalog.current_setting('block_size')::bigint",
        &[arg(rel)],
    )
    .unwrap_or(0)
}

/// Values of the job's column still under its old versions (as the worker reads the table,
/// every row; a Citus table through a distributed query).
fn values_left(job: &Job, old: &[u32]) -> i64 {
    columns::count_behind(
        job.rel,
        job.kind,
        &job.column,
        &columns::behind_args(&job.key, old),
    )
}

/// Runs one batch of `blocks` heap blocks of job `id`, in the current transaction (the worker
/// commits it); with `start_only`, only starts a queued job (counts its values, marks it
/// running), in a transaction of its own, so that the progress view shows it running while its
/// first batch works. ERRORs (the role's rights, a wrong AAD, a unique violation) propagate: the
/// worker records them on the job in a new transaction.
pub fn run(id: i64, blocks: i64, start_only: bool) -> Outcome {
    let Some(job) = lock_job(id) else {
        return Outcome::Gone;
    };
    let exists = select_one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_class WHERE oid = $1)",
        &[arg(job.rel)],
    )
    .unwrap_or(false);
    if !exists {
        fail(id, "the table no longer exists");
        return Outcome::Finished { key: job.key };
    }
    let Some((key, _)) = catalog::load(&job.key, None, false) else {
        fail(id, "the key no longer exists");
        return Outcome::Finished { key: job.key };
    };
    if key.destroyed_at.is_some() {
        fail(id, "the key was destroyed");
        return Outcome::Finished { key: job.key };
    }
    let old: Vec<u32> = catalog::usable_versions(&job.key)
        .into_iter()
        .filter(|v| *v < job.target_version)
        .collect();
    // A Citus distributed table: its rows are in shards on the workers (`placements`).
    let citus = crate::pg::citus::is_citus_table(job.rel);
    let blocks_of = |rel| {
        if citus {
            super::placements::blocks(rel)
        } else {
            relation_blocks(rel)
        }
    };
    let nblocks = blocks_of(job.rel);
    let table = columns::relation_name(job.rel);
    if job.state == "queued" {
        let at_start = if old.is_empty() {
            0
        } else {
            values_left(&job, &old)
        };
        run_sql(
            "UPDATE encml.reencryption_jobs SET state = 'running', \
                    started_at = pg_catalog.clock_timestamp(), total_blocks = $2, rows_at_start = $3 \
              WHERE id = $1",
            &[arg(id), arg(nblocks), arg(at_start)],
        );
        crate::events::record(
            "reencryption_started",
            Some((job.rel, &job.column)),
            json!({ "job": id, "key": uuid_string(&job.key), "target_version": job.target_version,
                    "values": at_start }),
        );
    }
    if start_only {
        return Outcome::Worked(0);
    }
    let mut moved = 0i64;
    let end = (job.next_block + blocks.max(1)).min(nblocks);
    if !old.is_empty() && job.next_block < nblocks {
        let aad_sql = job
            .aad
            .as_deref()
            .map(|t| columns::aad_expression(job.rel, t));
        if citus {
            let update = super::placements::batch_update(
                job.kind,
                &job.column,
                aad_sql.as_deref(),
                &job.key,
                &old,
                job.next_block,
                end,
            );
            // As the table's owner (Citus connects to the workers as that role, whose key
            // privileges apply there: the job's authority does not travel with the command).
            let (done, failure) = as_owner_of(job.rel, &job.key, || {
                crate::pg::pause::point("reencrypt_batch");
                super::placements::run(job.rel, &update)
            });
            if let Some(failure) = failure {
                // Keep the count of what the other placements committed; the cursor stays.
                run_sql(
                    "UPDATE encml.reencryption_jobs SET rows_done = rows_done + $2, \
                            pass_rows = pass_rows + $2, updated_at = pg_catalog.clock_timestamp() \
                      WHERE id = $1",
                    &[arg(id), arg(done)],
                );
                if failure.unreachable {
                    return Outcome::Retry(failure.message);
                }
                fail(id, &failure.message);
                return Outcome::Finished { key: job.key };
            }
            moved = done;
        } else if job.kind == Kind::LargeObject {
            moved = move_objects(id, &job, &key, &old, (job.next_block, end));
        } else {
            let cond = columns::behind_condition(job.kind, &job.column);
            let guard = duplicate_guard(&job)
                .map(|(_, g)| format!(" AND {g}"))
                .unwrap_or_default();
            let sql = columns::counting_moves(
                &format!(
                    "UPDATE ONLY {table} SET {c} = {expr} WHERE {range} AND {cond}{guard}",
                    c = crate::pg::sql_text::quote_ident(&job.column),
                    expr = columns::reencrypt_expression(job.kind, &job.column, aad_sql.as_deref()),
                    range = columns::block_range("", job.next_block, end),
                ),
                &job.column,
                &cond,
            );
            moved = owner_statement(&job, &key, &sql, &columns::behind_args(&job.key, &old));
        }
    }
    let pass_rows = job.pass_rows + moved;
    let pass_ended = old.is_empty() || end >= nblocks;
    if !pass_ended {
        run_sql(
            "UPDATE encml.reencryption_jobs SET next_block = $2, rows_done = rows_done + $3, \
                    pass_rows = $4, updated_at = pg_catalog.clock_timestamp(), error = NULL, \
                    retry_after = NULL \
              WHERE id = $1",
            &[arg(id), arg(end), arg(moved), arg(pass_rows)],
        );
        return Outcome::Worked(moved);
    }
    if pass_rows > 0 {
        if job.pass >= MAX_PASSES {
            run_sql(
                "UPDATE encml.reencryption_jobs SET rows_done = rows_done + $2 WHERE id = $1",
                &[arg(id), arg(moved)],
            );
            fail(
                id,
                &format!("values under older versions still appeared after {MAX_PASSES} passes over the table"),
            );
            return Outcome::Finished { key: job.key };
        }
        // Another pass, for values concurrent updates carried behind the cursor.
        run_sql(
            "UPDATE encml.reencryption_jobs SET pass = pass + 1, next_block = 0, pass_rows = 0, \
                    rows_done = rows_done + $2, total_blocks = $3, error = NULL, retry_after = NULL, \
                    updated_at = pg_catalog.clock_timestamp() WHERE id = $1",
            &[arg(id), arg(moved), arg(blocks_of(job.rel))],
        );
        return Outcome::Worked(moved);
    }
    // A whole pass found nothing to move: done, unless values the role could not reach remain.
    let left = if old.is_empty() {
        0
    } else {
        values_left(&job, &old)
    };
    let objects_left = if job.kind == Kind::LargeObject {
        match unlink_replaced(&job) {
            Ok(n) => n,
            Err(table) => {
                fail(
                    id,
                    &format!(
                        "the large objects this job replaced were not unlinked: table {table} is \
                         locked by another transaction, so whether it names them is unknown; \
                         queue the job again to unlink them"
                    ),
                );
                return Outcome::Finished { key: job.key };
            }
        }
    } else {
        0
    };
    run_sql(
        "UPDATE encml.reencryption_jobs SET state = 'done', next_block = $2, error = NULL, retry_after = NULL, \
                finished_at = pg_catalog.clock_timestamp(), updated_at = pg_catalog.clock_timestamp() \
          WHERE id = $1",
        &[arg(id), arg(end)],
    );
    if objects_left > 0 {
        fail_done(
            id,
            &format!(
                "{objects_left} replaced large object(s) are owned by roles other than the table's \
                 owner {} and were not unlinked: unlink them as their owner (their oids are in \
                 encml.reencryption_large_objects)",
                crate::pg::roles::role_name(crate::pg::identity::table_owner(job.rel))
            ),
        );
    } else if let Some((index, n)) = (left > 0)
        .then(|| duplicates_left(&job, &key, &old))
        .flatten()
    {
        fail_done(
            id,
            &format!(
                "{n} value(s) under older versions were left: re-encrypted, each would equal a \
                 value written under the current version during the job, which unique index \
                 \"{index}\" forbids; resolve the duplicates and queue the job again"
            ),
        );
    } else if left > 0 {
        fail_done(
            id,
            &format!(
                "{left} value(s) under older versions remain that role {} could not update \
                 (row security hides them, a trigger of the table's owner kept them, or they \
                 belong to transactions still in progress)",
                crate::pg::roles::role_name(job.run_as)
            ),
        );
    } else {
        let done = select_one::<i64>(
            "SELECT rows_done FROM encml.reencryption_jobs WHERE id = $1",
            &[arg(id)],
        )
        .unwrap_or(0);
        crate::events::record(
            "reencryption_finished",
            Some((job.rel, &job.column)),
            json!({ "job": id, "key": uuid_string(&job.key), "target_version": job.target_version,
                    "rows": done, "passes": job.pass }),
        );
    }
    Outcome::Finished { key: job.key }
}

/// A batch of a large-object column: the rows of blocks `range` naming objects under the old
/// versions (found by the worker in pg_largeobject) are pointed at new objects by the table's
/// owner; the replaced objects and the new ones are recorded for `unlink_replaced`.
fn move_objects(
    id: i64,
    job: &Job,
    key: &crate::keys::catalog::KeyRow,
    old: &[u32],
    range: (i64, i64),
) -> i64 {
    let args = columns::behind_args(&job.key, old);
    let behind = super::objects::behind_in(job.rel, &job.column, Some(range), &args);
    if behind.is_empty() {
        return 0;
    }
    let sql = super::objects::move_sql(job.rel, &job.column, Some(range));
    let mut args = args.to_vec();
    args.push(arg(behind.clone()));
    let (moved, created) = super::objects::collecting(|| owner_statement(job, key, &sql, &args));
    let mut recorded = behind;
    recorded.extend(created);
    run_sql(
        "INSERT INTO encml.reencryption_large_objects (job_id, loid) \
         SELECT $1, o FROM pg_catalog.unnest($2::pg_catalog.oid[]) o ON CONFLICT DO NOTHING",
        &[arg(id), arg(recorded)],
    );
    moved
}

/// The unique index and duplicate guard of a non-Citus det_text job on a column with a unique
/// index of its own (`columns::duplicate_guard`). Citus tables and multi-column unique indexes
/// keep failing on a duplicate (23505, named on the job).
fn duplicate_guard(job: &Job) -> Option<(String, String)> {
    (job.kind == Kind::DetText && !crate::pg::citus::is_citus_table(job.rel))
        .then(|| columns::unique_alone(job.rel, &job.column))
        .flatten()
        .map(|index| (index, columns::duplicate_guard(job.rel, &job.column)))
}

/// At the end of a det_text job with values left: how many of them the duplicate guard left,
/// with the unique index's name (counted as the table's owner, with the job's authority).
fn duplicates_left(
    job: &Job,
    key: &crate::keys::catalog::KeyRow,
    old: &[u32],
) -> Option<(String, i64)> {
    let (index, guard) = duplicate_guard(job)?;
    let sql = format!(
        "SELECT pg_catalog.count(*) FROM ONLY {} WHERE {} AND NOT ({guard})",
        columns::relation_name(job.rel),
        columns::behind_condition(job.kind, &job.column)
    );
    let n = owner_statement(job, key, &sql, &columns::behind_args(&job.key, old));
    (n > 0).then_some((index, n))
}

/// Runs a batch's statement as the table's owner (`as_owner_of`) with a lock timeout (a batch
/// waits 5 s at most for a row lock) and, when the requester may act for the key's tenant, that
/// tenant set: the number its statement returns.
fn owner_statement(
    job: &Job,
    key: &crate::keys::catalog::KeyRow,
    sql: &str,
    args: &[(pg_sys::Oid, Option<pg_sys::Datum>)],
) -> i64 {
    let tenant = key
        .tenant
        .clone()
        .filter(|t| crate::keys::tenants::may_act_for(t, job.run_as));
    as_owner_of(job.rel, &job.key, || {
        // SAFETY: inside the GUC nest level as_table_owner opened (and closes).
        unsafe { crate::pg::identity::save_setting(c"lock_timeout", c"5s") };
        if let Some(t) = &tenant {
            crate::keys::tenant_context::set(t, true);
        }
        crate::pg::pause::point("reencrypt_batch");
        crate::pg::catalog_reads::execute(sql, args)
    })
}

/// When a large-object job has moved every row: unlinks, as the table's owner, the objects
/// recorded by the jobs of its column (this one and earlier ones that failed or were
/// cancelled) that no column names any more; returns how many it could not (owned by others),
/// or Err with a table whose references could not be read (nothing unlinked, nothing forgotten).
fn unlink_replaced(job: &Job) -> Result<usize, String> {
    let recorded = read_rows(
        "SELECT o.loid FROM encml.reencryption_large_objects o \
           JOIN encml.reencryption_jobs j ON j.id = o.job_id \
          WHERE j.table_oid = $1 AND j.column_name = $2::name",
        &[arg(job.rel), arg(job.column.as_str())],
        0,
        |row| row.get::<pg_sys::Oid>(1).unwrap_or(pg_sys::InvalidOid),
    );
    if recorded.is_empty() {
        return Ok(0);
    }
    let left = as_owner_of(job.rel, &job.key, || {
        super::objects::unlink_replaced(&recorded)
    })?;
    run_sql(
        "DELETE FROM encml.reencryption_large_objects o USING encml.reencryption_jobs j \
          WHERE j.id = o.job_id AND j.table_oid = $1 AND j.column_name = $2::name \
            AND o.loid <> ALL ($3)",
        &[arg(job.rel), arg(job.column.as_str()), arg(left.clone())],
    );
    Ok(left.len())
}

/// The batch's statement timeout (`encml.reencrypt_batch_timeout`). A background worker has no
/// client loop arming `statement_timeout` at each statement, so the batch arms the timer itself
/// (the attacker re-check found a 100 s trigger sleep running to its end); when it fires, the
/// worker's SIGINT handler cancels the statement (57014) and the job fails. Disarmed when the
/// batch ends, also by an ERROR.
struct BatchTimeout;

/// utils/timeout.h (not in pgrx's bindings): TimeoutId STATEMENT_TIMEOUT.
const STATEMENT_TIMEOUT: std::ffi::c_int = 3;

unsafe extern "C-unwind" {
    fn enable_timeout_after(id: std::ffi::c_int, delay_ms: std::ffi::c_int);
    fn disable_timeout(id: std::ffi::c_int, keep_indicator: bool);
}

impl BatchTimeout {
    fn arm() -> BatchTimeout {
        let ms = super::worker::BATCH_TIMEOUT
            .get()
            .max(1)
            .saturating_mul(1000);
        // SAFETY: the STATEMENT_TIMEOUT timer, registered for every backend by InitPostgres;
        // enabling it only schedules a SIGALRM.
        unsafe { enable_timeout_after(STATEMENT_TIMEOUT, ms) };
        BatchTimeout
    }
}

impl Drop for BatchTimeout {
    fn drop(&mut self) {
        // SAFETY: disarms the timer armed in `arm` (harmless if it already fired).
        unsafe { disable_timeout(STATEMENT_TIMEOUT, false) };
    }
}

/// Runs a batch's statement as the table's owner, session user included, in a
/// security-restricted operation with a pinned search_path, as Postgres runs maintenance: code
/// the owner attached to the table (triggers, row security policies, defaults) runs with the
/// owner's rights, never with those of the role that queued the job or of the worker (attacker
/// pass of issue 31: a table with a forged header under a victim's key made the victim's job run
/// the attacker's policy as the victim). The re-encryption itself is authorized by the job
/// (`cache::with_reencrypt_authority`): only the re-encryption functions, which return a
/// ciphertext of the same key, may use the key without the owner's grants.
fn as_owner_of<R>(rel: pg_sys::Oid, key: &[u8; 16], f: impl FnOnce() -> R) -> R {
    let _timeout = BatchTimeout::arm();
    let owner = crate::pg::identity::table_owner(rel);
    crate::pg::session_worker::as_session_of(owner, || {
        crate::pg::identity::as_table_owner(rel, || {
            crate::keys::cache::with_reencrypt_authority(*key, f)
        })
    })
}

/// Marks a job that ran to its end as failed after all (values it could not reach remain).
fn fail_done(id: i64, error: &str) {
    run_sql(
        "UPDATE encml.reencryption_jobs SET state = 'failed', error = $2 WHERE id = $1",
        &[arg(id), arg(error)],
    );
    crate::events::record(
        "reencryption_failed",
        None,
        json!({ "job": id, "error": error }),
    );
}

/// Live jobs of a key (queued or running).
pub fn live_jobs_of(key: &[u8; 16]) -> i64 {
    read_rows(
        "SELECT count(*) FROM encml.reencryption_jobs WHERE key_id = $1 AND state IN ('queued', 'running')",
        &[arg(Uuid::from_bytes(*key))],
        1,
        |row| row.get::<i64>(1).unwrap_or(0),
    )
    .into_iter()
    .next()
    .unwrap_or(0)
}

/// Puts a job whose batch hit a transient error (a lock held elsewhere, a deadlock) at the end of
/// the line for `seconds`: the other jobs go first meanwhile (it runs at once if none waits).
pub fn postpone(id: i64, why: &str, seconds: f64) {
    run_sql(
        "UPDATE encml.reencryption_jobs SET updated_at = pg_catalog.clock_timestamp(), error = $2, \
                retry_after = pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => $3) \
          WHERE id = $1 AND state IN ('queued', 'running')",
        &[arg(id), arg(format!("retrying: {why}")), arg(seconds)],
    );
}
