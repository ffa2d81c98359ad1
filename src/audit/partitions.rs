//! The audit log's layout on disk: `encml.audit_log` is partitioned by whether a row is sealed.
//! Writers append to `audit_log_unsealed`; sealing moves rows into `audit_log_sealed`, itself
//! partitioned by ranges of `seq` into tables `audit_log_s<first seq>` that this module creates
//! as the chain grows and drops when a purge has passed them, so that retention returns disk
//! space instead of leaving dead rows behind (docs/formats.md, "Audit log").
//!
//! A database still on the 0.1.0 schema (the library updated, `ALTER EXTENSION` not yet run)
//! has one plain `audit_log`; every function here also serves that layout.

use crate::audit::ddl::while_configuring;
use crate::pg::catalog_reads::extension_relation;
use crate::pg::errors::OrSpiFailed;
use pgrx::pg_sys;
use pgrx::spi::SpiClient;

/// Each new range holds about this fraction of the rows kept since the last purge, so that a
/// purge leaves at most that much dead space in the range it cuts through.
const RANGE_FRACTION: i64 = 10;
/// Bounds on a range's size: few tables for a small log, none too large to leave half-dead.
const MIN_RANGE: i64 = 10_000;
const MAX_RANGE: i64 = 10_000_000;

/// Whether the log is partitioned (0.2.0 on).
pub fn partitioned() -> bool {
    extension_relation(c"audit_log_sealed") != pg_sys::InvalidOid
}

/// The table holding the sealed rows, for queries by `seq`.
pub fn sealed_table() -> &'static str {
    if partitioned() {
        "encml.audit_log_sealed"
    } else {
        "encml.audit_log"
    }
}

/// The table writers append unsealed rows to.
pub fn unsealed_relation() -> pg_sys::Oid {
    match extension_relation(c"audit_log_unsealed") {
        o if o != pg_sys::InvalidOid => o,
        _ => extension_relation(c"audit_log"),
    }
}

/// A range partition of the sealed rows: its table and the seqs it holds, `[from, to)` (`from`
/// is `None` for a range open below, as the 0.1.0 rows' one).
#[derive(Debug, Clone)]
pub struct Range {
    pub oid: pg_sys::Oid,
    pub table: String,
    pub from: Option<i64>,
    pub to: i64,
}

/// The range partitions, in seq order, read from the catalog (`pg_inherits` and each
/// partition's bound), not from their names.
pub fn ranges(client: &mut SpiClient) -> Vec<Range> {
    client
        .update(
            "SELECT c.oid::regclass::text, c.oid, \
                    substring(b.bound FROM 'FROM \\(''(-?[0-9]+)''\\)')::int8, \
                    substring(b.bound FROM 'TO \\(''(-?[0-9]+)''\\)')::int8 \
               FROM pg_catalog.pg_inherits i \
               JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid \
              CROSS JOIN LATERAL (SELECT pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound) b \
              WHERE i.inhparent = 'encml.audit_log_sealed'::regclass \
              ORDER BY 4",
            None,
            &[],
        )
        .or_spi_failed("audit log partitions")
        .filter_map(|r| {
            Some(Range {
                table: r.get::<String>(1).ok().flatten()?,
                oid: r.get::<pg_sys::Oid>(2).ok().flatten()?,
                from: r.get::<i64>(3).ok().flatten(),
                to: r.get::<i64>(4).ok().flatten()?,
            })
        })
        .collect()
}

/// Makes sure a range partition holds every seq up to `last`: new ranges start where the
/// highest one ends (or at `first` when there is none), each sized for `kept_from`, the first
/// seq kept since the last purge. Run by the sealer, as the extension owner, holding the seal
/// lock. Attaching (not `CREATE TABLE ... PARTITION OF`) takes only SHARE UPDATE EXCLUSIVE on
/// `audit_log_sealed`, so readers of the log are not blocked, and writers never touch it.
///
/// `top` is where the ranges end, if the caller knows it from an earlier call (a seal covers
/// batch after batch: the catalog is read once); returns where they end now.
pub fn cover(
    client: &mut SpiClient,
    first: i64,
    last: i64,
    kept_from: i64,
    top: Option<i64>,
) -> i64 {
    let mut top = top.unwrap_or_else(|| ranges(client).last().map(|r| r.to).unwrap_or(first));
    while top <= last {
        let size = ((top - kept_from) / RANGE_FRACTION).clamp(MIN_RANGE, MAX_RANGE);
        let name = format!("audit_log_s{top}");
        let table = format!("encml.{name}");
        while_configuring(|| {
            for sql in [
                format!("CREATE TABLE {table} (LIKE encml.audit_log_sealed)"),
                // Each range has its own index (none on the partitioned table: a restore attaches
                // the ranges to a table the extension created, and would find an index there
                // already); the ranges are disjoint, so seq is unique across them.
                format!("ALTER TABLE {table} ADD CONSTRAINT {name}_seq_key UNIQUE (seq)"),
                format!(
                    "ALTER TABLE encml.audit_log_sealed ATTACH PARTITION {table} \
                     FOR VALUES FROM ({top}) TO ({})",
                    top + size
                ),
                // Statement triggers are not inherited; the row guard is (cloned on attach).
                format!(
                    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON {table} \
                     FOR EACH STATEMENT EXECUTE FUNCTION encml.audit_log_guard()"
                ),
            ] {
                client
                    .update(&sql, None, &[])
                    .or_spi_failed("audit log partitions");
            }
        });
        top += size;
    }
    top
}

/// Drops the range partitions that hold only seqs up to `through`; the rows of the range it cuts
/// through, and of any range it could not lock, are left for the caller to delete. Returns how
/// many tables were dropped.
///
/// Dropping needs ACCESS EXCLUSIVE on `audit_log_sealed` and the range, which conflicts with the
/// ACCESS SHARE any role holds by merely naming them in a statement it may not run (an idle
/// `PREPARE` of a SELECT: parse analysis locks before the privilege check). So the locks are
/// only tried: a range that cannot be locked now is emptied by the caller's DELETE instead, and
/// dropped by a later purge; nobody can stall the purge.
pub fn drop_through(client: &mut SpiClient, through: i64) -> usize {
    let whole: Vec<Range> = ranges(client)
        .into_iter()
        .filter(|r| r.to <= through + 1)
        .collect();
    let lock = |relid: pg_sys::Oid| {
        // SAFETY: a conditional lock on a relation that exists, held to the end of the
        // transaction like DROP's own.
        unsafe { pg_sys::ConditionalLockRelationOid(relid, pg_sys::AccessExclusiveLock as i32) }
    };
    if whole.is_empty() || !lock(extension_relation(c"audit_log_sealed")) {
        return 0;
    }
    let mut dropped = 0;
    while_configuring(|| {
        for r in whole.iter().filter(|r| lock(r.oid)) {
            client
                .update(&format!("DROP TABLE {}", r.table), None, &[])
                .or_spi_failed("audit log partitions");
            dropped += 1;
        }
    });
    dropped
}
