//! Batches of a re-encryption job on a Citus distributed table: the coordinator's lifecycle
//! worker runs each batch's UPDATE on every shard placement (`run_command_on_placements`), the
//! same heap-block range on each shard, as the job's role. Each placement commits on its own
//! node; the coordinator advances the job only after every placement succeeded, and a batch
//! that is run again moves nothing twice (moved values no longer match its condition).

use super::columns::{self, Kind};
use crate::pg::catalog_reads::{arg, read_rows, select_one};
use pgrx::pg_sys;

/// `text` escaped for `format()`, which `run_command_on_placements` applies to the command to
/// put the shard's name where `%s` stands.
fn escape_format(text: &str) -> String {
    text.replace('%', "%%")
}

/// `columns::behind_condition` with its arguments written into the text (a command run on the
/// placements takes no parameters).
pub fn inline_condition(kind: Kind, column: &str, key: &[u8; 16], versions: &[u32]) -> String {
    let c = crate::pg::sql_text::quote_ident(column);
    match kind {
        Kind::Jsonb => {
            let patterns: Vec<String> = columns::jsonb_patterns(key, versions)
                .iter()
                .map(|p| crate::pg::sql_text::quote_literal(p))
                .collect();
            format!(
                "({c})::pg_catalog.text OPERATOR(pg_catalog.~~) ANY (ARRAY[{}]::pg_catalog.text[])",
                patterns.join(", ")
            )
        }
        // Refused before a job is queued (`jobs::require_large_objects_readable`).
        Kind::LargeObject => crate::pg::errors::internal(
            "large objects named from a Citus table are not re-encrypted by jobs",
        ),
        _ => {
            let list: Vec<String> = versions.iter().map(|v| v.to_string()).collect();
            format!(
                "encml.key_id({c}) OPERATOR(pg_catalog.=) '{}'::pg_catalog.uuid \
                 AND encml.key_version({c}) OPERATOR(pg_catalog.=) ANY ('{{{}}}'::pg_catalog.int4[])",
                uuid::Uuid::from_bytes(*key),
                list.join(",")
            )
        }
    }
}

/// The largest shard of `rel`, in heap blocks (a batch's block range is the same on every shard).
pub fn blocks(rel: pg_sys::Oid) -> i64 {
    select_one::<i64>(
        "SELECT coalesce(max(result::bigint), 0) FROM pg_catalog.run_command_on_placements($1, \
           'SELECT pg_catalog.pg_relation_size(''%s'') / pg_catalog.current_setting(''block_size'')::bigint') \
          WHERE success",
        &[arg(rel)],
    )
    .unwrap_or(0)
}

/// A placement whose UPDATE failed.
pub struct PlacementFailure {
    /// Its node could not be reached: the batch is retried.
    pub unreachable: bool,
    pub message: String,
}

/// Runs `update` (an UPDATE of the shard `%s`, `%` escaped otherwise) on every placement of
/// `rel`; returns the values moved, and the first placement that failed if any (the others
/// committed on their nodes: what they moved is counted either way).
pub fn run(rel: pg_sys::Oid, update: &str) -> (i64, Option<PlacementFailure>) {
    let rows = read_rows(
        "SELECT shardid, nodename || ':' || nodeport, success, result \
           FROM pg_catalog.run_command_on_placements($1, $2)",
        &[arg(rel), arg(update)],
        0,
        |row| {
            (
                row.get::<i64>(1).unwrap_or(0),
                row.get::<String>(2).unwrap_or_default(),
                row.get::<bool>(3).unwrap_or(false),
                row.get::<String>(4).unwrap_or_default(),
            )
        },
    );
    let mut moved = 0i64;
    let mut failure = None;
    for (shard, node, success, result) in rows {
        if success {
            moved += result.trim().parse::<i64>().unwrap_or(0);
        } else if failure.is_none() {
            let lower = result.to_lowercase();
            failure = Some(PlacementFailure {
                unreachable: [
                    "connect",
                    "connection",
                    "terminat",
                    "shut down",
                    "recovery mode",
                ]
                .iter()
                .any(|w| lower.contains(w)),
                message: format!("on shard {shard} at {node}: {result}"),
            });
        }
    }
    (moved, failure)
}

/// Stands for the shard's name while the command is escaped for `format()`.
const SHARD: &str = "\u{1}shard\u{1}";

/// The UPDATE of one batch on a shard, counting the values it moved: escaped for `format()` throughout (a `%` in a column
/// name, an AAD template or a jsonb pattern stays itself), with `%s` where the shard's name goes.
pub fn batch_update(
    kind: Kind,
    column: &str,
    aad_sql: Option<&str>,
    key: &[u8; 16],
    versions: &[u32],
    from: i64,
    to: i64,
) -> String {
    let cond = inline_condition(kind, column, key, versions);
    let sql = columns::counting_moves(
        &format!(
            "UPDATE ONLY {SHARD} SET {c} = {expr} WHERE {range} AND {cond}",
            c = crate::pg::sql_text::quote_ident(column),
            expr = columns::reencrypt_expression(kind, column, aad_sql),
            range = columns::block_range("", from, to),
        ),
        column,
        &cond,
    );
    escape_format(&sql).replace(SHARD, "%s")
}
