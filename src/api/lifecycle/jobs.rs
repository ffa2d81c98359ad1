//! Re-encryption jobs: `reencrypt_table`, `reencrypt_key`, `reencrypt_table_now` (in the
//! caller's statement, for small tables) and `cancel_reencryption`, and the queue the
//! background worker (`worker`) takes jobs from. A job is queued on the authority of a role
//! that may re-encrypt the column (`reencrypt_table`: rights on the column and the key) or
//! administers the key (`reencrypt_key`, policies, compromises); its batches run as the table's
//! owner in a security-restricted operation, the re-encryption authorized by the job
//! (`batch::as_owner_of`), as Postgres runs maintenance.

use super::columns::{self, Kind};
use crate::keys::catalog::{self, uuid_string};
use crate::keys::grants::{self, Privilege};
use crate::pg::catalog_reads::{arg, read_rows, select_one};
use crate::pg::errors::{raise, raise_full, OrSpiFailed};
use crate::pg::identity::{as_extension_owner, with_pinned_search_path};
use crate::pg::roles::{caller, role_name};
use crate::types::reg::{RegClass, SqlName};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode, Uuid};
use serde_json::json;

/// Runs `f` in the lifecycle worker as `role`, session user included (what reads
/// `session_user`, the audit log's rows too, sees the role a policy acts for, never the
/// bootstrap superuser the worker connected as), in a local user id change (no SET ROLE inside)
/// with a pinned search_path; the worker's own roles come back afterwards, also after an ERROR.
/// For a policy's rotations and retirements; batches run as the table's owner instead
/// (`batch::as_owner_of`).
pub fn acting_as<R>(role: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    crate::pg::session_worker::as_session_of(role, || crate::pg::identity::as_role(role, f))
}

/// Who asked for a job, and so how urgent it is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Reason {
    Manual,
    Policy,
    Compromise,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::Manual => "manual",
            Reason::Policy => "policy",
            Reason::Compromise => "compromise",
        }
    }

    /// Jobs of compromised keys run before all others.
    fn priority(self) -> i32 {
        match self {
            Reason::Compromise => 100,
            _ => 0,
        }
    }
}

/// The active versions of a key below its current one (the ones a job moves values off), and
/// the current version; None for a destroyed or missing key.
pub fn versions_behind(id: &[u8; 16]) -> Option<(Vec<u32>, u32)> {
    let (key, _) = catalog::load(id, None, false)?;
    if key.destroyed_at.is_some() {
        return None;
    }
    let old = catalog::usable_versions(id)
        .into_iter()
        .filter(|v| *v < key.current_version)
        .collect();
    Some((old, key.current_version))
}

/// Whether `role` may move the key's values to its current version: decrypt and encrypt with
/// it, act for its tenant, and be cleared for its labels (the checks a `reencrypt` call of the
/// role makes on every value).
pub fn may_reencrypt(id: &[u8; 16], role: pg_sys::Oid) -> bool {
    let Some((key, _)) = catalog::load(id, None, false) else {
        return false;
    };
    let ownership = grants::KeyOwnership {
        key_id: id,
        tenant: key.tenant.as_deref(),
        created_by: key.created_by,
        managed: key.managed,
    };
    grants::holds_as(&ownership, Privilege::Decrypt, role)
        && grants::holds_as(&ownership, Privilege::Encrypt, role)
        && key
            .tenant
            .as_deref()
            .is_none_or(|t| crate::keys::tenants::may_act_for(t, role))
        && crate::keys::clearances::allows_as(id, role)
}

/// The AAD template the last job of this column used, for jobs that are not given one (a
/// policy's, `reencrypt_key`'s): set once by `reencrypt_table(..., aad => ...)`.
fn remembered_aad(rel: pg_sys::Oid, column: &str) -> Option<String> {
    as_extension_owner(|| {
        select_one::<String>(
            "SELECT aad FROM encml.reencryption_jobs \
              WHERE table_oid = $1::pg_catalog.regclass AND column_name = $2::name \
                AND aad IS NOT NULL ORDER BY id DESC LIMIT 1",
            &[arg(rel), arg(column)],
        )
    })
}

/// One job to queue.
pub struct NewJob<'a> {
    pub rel: pg_sys::Oid,
    pub column: &'a str,
    pub kind: Kind,
    pub key: [u8; 16],
    pub target_version: u32,
    pub aad: Option<String>,
    pub run_as: pg_sys::Oid,
    pub reason: Reason,
}

/// Queues the job, or joins the live job of the same column and key (raising its target and
/// priority); returns the job's id. The worker is woken when the transaction commits.
pub fn queue(job: NewJob<'_>) -> i64 {
    let aad = job
        .aad
        .clone()
        .or_else(|| remembered_aad(job.rel, job.column));
    let id = as_extension_owner(|| {
        Spi::connect_mut(|client| {
            let args = [
                crate::pg::catalog_reads::oid_arg(job.rel),
                job.column.into(),
                job.kind.label().into(),
                Uuid::from_bytes(job.key).into(),
                (job.target_version as i32).into(),
                aad.clone().into(),
                crate::pg::catalog_reads::oid_arg(job.run_as),
                job.reason.label().into(),
                job.reason.priority().into(),
            ];
            client
                .update(
                    "INSERT INTO encml.reencryption_jobs AS j \
                        (table_oid, column_name, kind, key_id, target_version, aad, run_as, reason, priority) \
                     VALUES ($1::pg_catalog.regclass, $2::name, $3, $4, $5, $6, $7::pg_catalog.regrole, $8, $9) \
                     ON CONFLICT (table_oid, column_name, key_id) WHERE state IN ('queued', 'running') \
                     DO UPDATE SET target_version = GREATEST(j.target_version, EXCLUDED.target_version), \
                                   aad = coalesce(EXCLUDED.aad, j.aad), \
                                   priority = GREATEST(j.priority, EXCLUDED.priority), \
                                   reason = CASE WHEN EXCLUDED.priority > j.priority \
                                                 THEN EXCLUDED.reason ELSE j.reason END \
                     RETURNING id",
                    Some(1),
                    &args,
                )
                .or_spi_failed("could not queue the re-encryption job")
                .first()
                .get_one::<i64>()
                .or_spi_failed("could not queue the re-encryption job")
                .unwrap_or(0)
        })
    });
    super::worker::wake_after_commit();
    id
}

/// Leaf tables of `rel`: itself if it is a plain table, its leaf partitions if partitioned;
/// 42809 for anything else.
fn leaf_tables(rel: pg_sys::Oid) -> Vec<pg_sys::Oid> {
    let relkind = select_one::<i8>(
        "SELECT relkind::\"char\" FROM pg_catalog.pg_class WHERE oid = $1",
        &[arg(rel)],
    )
    .map(|k| k as u8 as char);
    if rel.to_u32() < pg_sys::FirstNormalObjectId {
        raise(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!(
                "{} is a system catalog: re-encryption jobs work on user tables",
                columns::relation_name(rel)
            ),
        );
    }
    match relkind {
        Some('r') => vec![rel],
        Some('p') => read_rows(
            "SELECT t.relid FROM pg_catalog.pg_partition_tree($1) t \
               JOIN pg_catalog.pg_class c ON c.oid = t.relid \
              WHERE t.isleaf AND c.relkind = 'r'",
            &[arg(rel)],
            0,
            |row| row.get::<pg_sys::Oid>(1).unwrap_or(pg_sys::InvalidOid),
        ),
        _ => raise(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!(
                "{} is not a table: re-encryption jobs work on plain and partitioned tables",
                columns::relation_name(rel)
            ),
        ),
    }
}

/// 0A000 for large objects named from a Citus table (they live on the node that wrote them),
/// or when the extension owner cannot read pg_largeobject (where the jobs find the objects under
/// old versions).
fn require_large_objects_readable(rel: pg_sys::Oid) {
    if crate::pg::citus::is_citus_table(rel) {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "{} is a Citus table: re-encryption jobs do not move large objects named from one",
                columns::relation_name(rel)
            ),
        );
    }
    if !as_extension_owner(crate::keys::catalog::large_objects_readable) {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "re-encryption jobs on large objects need an extension owner that may read \
             pg_catalog.pg_largeobject (a superuser)",
        );
    }
}

/// The caller may update the column (the job's statement): 42501 otherwise.
fn require_column_rights(rel: pg_sys::Oid, column: &str) {
    let allowed = select_one::<bool>(
        "SELECT pg_catalog.has_column_privilege($1, $2::text, 'SELECT') \
            AND pg_catalog.has_column_privilege($1, $2::text, 'UPDATE')",
        &[arg(rel), arg(column)],
    )
    .unwrap_or(false);
    if !allowed {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "permission denied to re-encrypt column \"{column}\" of {}: SELECT and UPDATE on it are needed",
                columns::relation_name(rel)
            ),
        );
    }
}

/// 42501 unless the caller may re-encrypt the key's values.
fn require_key_rights(id: &[u8; 16]) {
    let role = caller();
    if may_reencrypt(id, role) {
        return;
    }
    crate::events::refused("reencryption_refused", json!({ "key": uuid_string(id) }));
    raise_full(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!(
            "permission denied to re-encrypt values of key {}",
            uuid_string(id)
        ),
        None,
        Some(format!(
            "Re-encrypting needs the decrypt and encrypt privileges on the key (encml.grant_key), \
             its tenant, and its labels' clearances (current role: {}).",
            role_name(role)
        )),
    );
}

/// The keys with values of the column under versions older than their current one, as the
/// caller reads the table (its row security applies): (key, old versions, current).
fn keys_behind_in(rel: pg_sys::Oid, column: &str, kind: Kind) -> Vec<([u8; 16], Vec<u32>, u32)> {
    if matches!(kind, Kind::Jsonb | Kind::LargeObject) {
        raise_full(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "re-encrypting a {} column needs the key: pass key => ...",
                kind.label()
            ),
            Some(
                "The keys of encrypt_jsonb fields and of large objects are not found without \
                 reading every value."
                    .into(),
            ),
            None,
        );
    }
    let c = crate::pg::sql_text::quote_ident(column);
    let ids = with_pinned_search_path(|| {
        read_rows(
            &format!(
                "SELECT DISTINCT encml.key_id({c}) FROM {} WHERE {c} IS NOT NULL",
                columns::scanned(rel)
            ),
            &[],
            0,
            |row| row.get::<Uuid>(1).map(|u| *u.as_bytes()),
        )
    });
    ids.into_iter()
        .flatten()
        .filter_map(|id| {
            let (old, current) = versions_behind(&id)?;
            (!old.is_empty()).then_some((id, old, current))
        })
        .collect()
}

/// What `reencrypt_table` and `reencrypt_table_now` work on: per leaf table, the keys.
struct TableWork {
    rel: pg_sys::Oid,
    kind: Kind,
    keys: Vec<([u8; 16], Vec<u32>, u32)>,
    aad_sql: Option<String>,
}

/// (Every query with the caller's rights and a pinned search_path: no operator or function of
/// the caller's resolves in them.)
fn table_work(
    tbl: Option<RegClass>,
    col: Option<SqlName>,
    key: Option<Uuid>,
    aad: Option<&str>,
) -> (String, Vec<TableWork>) {
    with_pinned_search_path(|| table_work_pinned(tbl, col, key, aad))
}

fn table_work_pinned(
    tbl: Option<RegClass>,
    col: Option<SqlName>,
    key: Option<Uuid>,
    aad: Option<&str>,
) -> (String, Vec<TableWork>) {
    let rel = crate::pg::errors::not_null(tbl, "tbl").0;
    let column = crate::pg::errors::not_null(col, "col").0;
    let mut work = Vec::new();
    // Citus: distributed tables run on their shards (`placements`); reference tables and
    // Citus local tables are refused.
    if crate::pg::citus::is_citus_table(rel) && !crate::pg::citus::is_distributed_table(rel) {
        raise_full(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "{} is a Citus reference or local table: re-encryption jobs run on distributed tables only",
                columns::relation_name(rel)
            ),
            None,
            Some("Move its values with one UPDATE ... SET c = encml.reencrypt(c) (docs/citus.md).".into()),
        );
    }
    for leaf in leaf_tables(rel) {
        let kind = columns::kind_of(leaf, &column);
        if kind == Kind::LargeObject {
            require_large_objects_readable(leaf);
        }
        if aad.is_some() && !kind.takes_aad() {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("{} values take no AAD", kind.label()),
            );
        }
        require_column_rights(leaf, &column);
        let aad_sql = aad.map(|t| columns::aad_expression(leaf, t));
        let keys = match key {
            Some(k) => {
                let id = *k.as_bytes();
                let Some((old, current)) = versions_behind(&id) else {
                    raise(
                        PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                        format!("key {} does not exist or was destroyed", uuid_string(&id)),
                    );
                };
                if old.is_empty() {
                    Vec::new()
                } else {
                    vec![(id, old, current)]
                }
            }
            None => keys_behind_in(leaf, &column, kind),
        };
        for (id, _, _) in &keys {
            require_key_rights(id);
        }
        work.push(TableWork {
            rel: leaf,
            kind,
            keys,
            aad_sql,
        });
    }
    (column, work)
}

/// Queues background jobs moving the column's values under older key versions to the current
/// ones (one job per leaf table and key); returns them. The worker starts at commit.
#[pg_extern(volatile, parallel_unsafe)]
fn reencrypt_table(
    tbl: Option<RegClass>,
    col: Option<SqlName>,
    key: default!(Option<Uuid>, "NULL"),
    aad: default!(Option<&str>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(job, i64),
        name!(table_name, RegClass),
        name!(key_id, Uuid),
        name!(target_version, i32),
    ),
> {
    crate::pg::recovery::refuse_during_recovery("encml.reencrypt_table()");
    let (column, work) = table_work(tbl, col, key, aad);
    let mut out = Vec::new();
    for w in work {
        for (id, _, current) in w.keys {
            let job = queue(NewJob {
                rel: w.rel,
                column: &column,
                kind: w.kind,
                key: id,
                target_version: current,
                aad: aad.map(str::to_string),
                run_as: caller(),
                reason: Reason::Manual,
            });
            crate::events::record(
                "reencryption_queued",
                Some((w.rel, &column)),
                json!({ "job": job, "key": uuid_string(&id), "target_version": current }),
            );
            out.push((job, RegClass(w.rel), Uuid::from_bytes(id), current as i32));
        }
    }
    TableIterator::new(out)
}

/// Moves the column's values under older key versions to the current ones in one UPDATE in
/// the caller's transaction, and returns how many it moved: for small tables.
#[pg_extern(volatile, parallel_unsafe)]
fn reencrypt_table_now(
    tbl: Option<RegClass>,
    col: Option<SqlName>,
    key: default!(Option<Uuid>, "NULL"),
    aad: default!(Option<&str>, "NULL"),
) -> i64 {
    crate::pg::recovery::refuse_during_recovery("encml.reencrypt_table_now()");
    let (column, work) = table_work(tbl, col, key, aad);
    let mut total = 0i64;
    for w in work {
        for (id, old, _) in &w.keys {
            if w.kind == Kind::LargeObject {
                let moved = move_objects_now(w.rel, &column, id, old);
                crate::events::record(
                    "reencrypt_table",
                    Some((w.rel, &column)),
                    json!({ "key": uuid_string(id), "rows": moved }),
                );
                total += moved;
                continue;
            }
            let cond = columns::behind_condition(w.kind, &column);
            let sql = columns::counting_moves(
                &format!(
                    "UPDATE ONLY {} SET {} = {} WHERE {cond}",
                    columns::relation_name(w.rel),
                    crate::pg::sql_text::quote_ident(&column),
                    columns::reencrypt_expression(w.kind, &column, w.aad_sql.as_deref()),
                ),
                &column,
                &cond,
            );
            let args = columns::behind_args(id, old);
            let moved = with_pinned_search_path(|| crate::pg::catalog_reads::execute(&sql, &args));
            crate::events::record(
                "reencrypt_table",
                Some((w.rel, &column)),
                json!({ "key": uuid_string(id), "rows": moved }),
            );
            total += moved;
        }
    }
    total
}

/// `reencrypt_table_now` on a large-object column: the rows naming objects under `old` versions
/// point at new objects, and the replaced objects no column names any more are unlinked if the
/// caller owns them (a WARNING counts those it does not).
fn move_objects_now(rel: pg_sys::Oid, column: &str, id: &[u8; 16], old: &[u32]) -> i64 {
    let args = columns::behind_args(id, old);
    let behind = as_extension_owner(|| super::objects::behind_in(rel, column, None, &args));
    if behind.is_empty() {
        return 0;
    }
    let sql = super::objects::move_sql(rel, column, None);
    let mut args = args.to_vec();
    args.push(arg(behind.clone()));
    let (moved, created) = super::objects::collecting(|| {
        with_pinned_search_path(|| crate::pg::catalog_reads::execute(&sql, &args))
    });
    let mut recorded = behind;
    recorded.extend(created);
    let left = with_pinned_search_path(|| super::objects::unlink_replaced(&recorded))
        .unwrap_or_else(|table| {
            raise(
                PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
                format!(
                    "table {table} is locked by another transaction: whether it names the large \
                     objects replaced is unknown"
                ),
            )
        });
    if !left.is_empty() {
        pgrx::warning!(
            "{} replaced large object(s) are owned by other roles and were not unlinked: {:?}",
            left.len(),
            left.iter().map(|o| o.to_u32()).collect::<Vec<_>>()
        );
    }
    moved
}

/// Queues jobs for every column of the database holding values under older versions of the key
/// (enc_bytea including tensors, det_text, ORE, jsonb fields), on the authority of the caller,
/// who must administer the key; the batches run as each table's owner. Columns bound to an AAD
/// use the template their last `reencrypt_table(..., aad => ...)` gave.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn reencrypt_key(
    key: Uuid,
) -> TableIterator<
    'static,
    (
        name!(job, i64),
        name!(table_name, RegClass),
        name!(column_name, String),
        name!(target_version, i32),
    ),
> {
    crate::pg::recovery::refuse_during_recovery("encml.reencrypt_key()");
    let (id, _) = crate::api::keys::lock_for_admin(key);
    let rows = queue_key_jobs(&id, caller(), Reason::Manual);
    TableIterator::new(
        rows.into_iter()
            .map(|(job, rel, column, v)| (job, RegClass(rel), column, v as i32)),
    )
}

/// Queues a job for each column holding values under older versions of the key, on the
/// authority of `requested_by` (an administrator of the key: the batches run as each table's
/// owner, `batch::as_owner_of`).
pub fn queue_key_jobs(
    id: &[u8; 16],
    requested_by: pg_sys::Oid,
    reason: Reason,
) -> Vec<(i64, pg_sys::Oid, String, u32)> {
    let Some((old, current)) = versions_behind(id) else {
        return Vec::new();
    };
    columns::holding(id, &old)
        .into_iter()
        .map(|b| {
            let job = queue(NewJob {
                rel: b.rel,
                column: &b.column,
                kind: b.kind,
                key: *id,
                target_version: current,
                aad: None,
                run_as: requested_by,
                reason,
            });
            crate::events::record(
                "reencryption_queued",
                Some((b.rel, &b.column)),
                json!({ "job": job, "key": uuid_string(id), "target_version": current,
                        "reason": reason.label(), "values": b.values }),
            );
            (job, b.rel, b.column, current)
        })
        .collect()
}

/// Cancels a queued or running job (a batch in progress finishes first); its values stay
/// readable, part on the old version. The job's role, the table's owner and key administrators
/// may cancel it.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn cancel_reencryption(job: i64) -> bool {
    crate::pg::recovery::refuse_during_recovery("encml.cancel_reencryption()");
    let role = caller();
    let found = as_extension_owner(|| {
        read_rows(
            "SELECT table_oid::oid, run_as::oid, key_id FROM encml.reencryption_jobs WHERE id = $1",
            &[arg(job)],
            1,
            |row| {
                (
                    row.get::<pg_sys::Oid>(1).unwrap_or(pg_sys::InvalidOid),
                    row.get::<pg_sys::Oid>(2).unwrap_or(pg_sys::InvalidOid),
                    row.get::<Uuid>(3),
                )
            },
        )
    });
    let Some((rel, run_as, key)) = found.into_iter().next() else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("re-encryption job {job} does not exist"),
        );
    };
    let may = crate::pg::roles::has_privs_of_role(role, run_as)
        || crate::api::keys::is_key_admin(role)
        // SAFETY: an ownership check of a relation by oid (false if it no longer exists).
        || unsafe { pg_sys::pg_class_ownercheck(rel, role) };
    if !may {
        crate::events::refused("reencryption_cancel_refused", json!({ "job": job }));
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied to cancel re-encryption job {job}"),
        );
    }
    let cancelled = as_extension_owner(|| {
        crate::pg::catalog_reads::execute(
            "UPDATE encml.reencryption_jobs SET state = 'cancelled', \
                    finished_at = pg_catalog.clock_timestamp() \
              WHERE id = $1 AND state IN ('queued', 'running')",
            &[arg(job)],
        ) > 0
    });
    if cancelled {
        crate::events::record(
            "reencryption_cancelled",
            None,
            json!({ "job": job, "key": key.map(|k| uuid_string(k.as_bytes())) }),
        );
    }
    cancelled
}
