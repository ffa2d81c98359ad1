//! Sealing and verifying the audit chain.
//!
//! Writers append unsealed rows (no lock beyond the identity sequence). Sealing takes a lock on
//! the witness table that only the extension owner can take (only sealers wait for it), reads
//! the committed unsealed rows in id order, gives each the next `seq` and its MAC over the previous MAC and the row's
//! canonical encoding, and records the new head in `encml.audit_witness` (and, at commit, in the
//! server log). A row that commits late is sealed by a later seal: the chain is in seal order.
//! Purging deletes a prefix of the chain and appends an `anchor` row holding the last purged MAC,
//! from which verification starts again.

use crate::audit::partitions;
use crate::audit::writer::{append, while_maintaining, Entry};
use crate::keys::service;
use crate::pg::errors::OrSpiFailed;
use crate::pg::errors::{notice, raise};
use crate::pg::identity::as_extension_owner;
use encml_core::audit::{chain_mac, verify_mac, Record, GENESIS, MAC_LEN};
use encml_core::service_key::{ServiceKey, ServicePurpose};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::PgSqlErrorCode;
use std::collections::HashMap;
use std::rc::Rc;

/// The canonical projection of a log row: the same for sealing and verifying, and independent of
/// session settings (time zone, date style): times as microseconds since the epoch, jsonb in its
/// canonical text.
const CANONICAL: &str = "SELECT id, seq, mac, mac_key, \
    (extract(epoch FROM logged_at) * 1000000)::int8, \
    (extract(epoch FROM xact_started_at) * 1000000)::int8, \
    xact_id::text, session_role, effective_role, host(client_addr) || '/' || masklen(client_addr), \
    application_name, tenant, kind, operation, table_oid::int8, table_name, old_row::text, \
    new_row::text, changed_columns::text, detail::text, ctid::text";

const BATCH: usize = 5000;

/// Moves a batch of unsealed rows (by address) into the sealed rows with their seq and MAC: the
/// same column values, so the MAC computed over the unsealed row holds for the sealed one.
const MOVE_TO_SEALED: &str = "WITH moved AS ( \
        DELETE FROM encml.audit_log_unsealed WHERE ctid = ANY ($1::text[]::tid[]) RETURNING *) \
    INSERT INTO encml.audit_log_sealed \
    SELECT m.id, m.logged_at, m.xact_started_at, m.xact_id, m.session_role, m.effective_role, \
           m.client_addr, m.application_name, m.tenant, m.kind, m.operation, m.table_oid, \
           m.table_name, m.old_row, m.new_row, m.changed_columns, m.detail, u.seq, u.mac, $5 \
      FROM moved m JOIN unnest($2::int8[], $3::int8[], $4::bytea[]) AS u(id, seq, mac) USING (id) \
    RETURNING 1";

/// A stored MAC as 32 bytes; anything else (missing, wrong length) reads as the genesis MAC,
/// which no real chain position verifies against.
fn mac32(bytes: Option<Vec<u8>>) -> [u8; MAC_LEN] {
    bytes.and_then(|v| v.try_into().ok()).unwrap_or(GENESIS)
}

struct LogRow {
    id: i64,
    ctid: String,
    seq: Option<i64>,
    mac: Option<Vec<u8>>,
    mac_key: Option<String>,
    record_tail: Record,
}

impl LogRow {
    /// The bytes the MAC covers: id, seq, mac_key, then every other column in order.
    fn record(&self, seq: i64, mac_key: &str) -> Record {
        let mut r = Record::new();
        r.int(Some(self.id)).int(Some(seq)).text(Some(mac_key));
        r.bytes(Some(self.record_tail.as_bytes()));
        r
    }
}

/// The rows of `table` (the sealed or unsealed rows) that `where_order` selects.
fn read_rows(
    client: &mut SpiClient,
    table: &str,
    where_order: &str,
    args: &[pgrx::datum::DatumWithOid],
) -> Vec<LogRow> {
    let sql = format!("{CANONICAL} FROM {table} {where_order}");
    fetch_rows(client, sql.as_str(), args)
}

/// The rows a query of `CANONICAL`'s columns returns (a query text, or a statement prepared
/// once for a walk of many batches).
fn fetch_rows<'conn, Q: pgrx::spi::Query<'conn>>(
    client: &mut SpiClient<'conn>,
    query: Q,
    args: &[pgrx::datum::DatumWithOid],
) -> Vec<LogRow> {
    let rows: Vec<LogRow> = client
        .select(query, None, args)
        .or_spi_failed("audit log")
        .map(|row| {
            let mut tail = Record::new();
            for i in 5..=6 {
                tail.int(row.get::<i64>(i).ok().flatten());
            }
            for i in 7..=14 {
                tail.text(row.get::<String>(i).ok().flatten().as_deref());
            }
            tail.int(row.get::<i64>(15).ok().flatten());
            for i in 16..=20 {
                tail.text(row.get::<String>(i).ok().flatten().as_deref());
            }
            LogRow {
                id: row.get::<i64>(1).ok().flatten().expect("id"),
                ctid: row.get::<String>(21).ok().flatten().unwrap_or_default(),
                seq: row.get::<i64>(2).ok().flatten(),
                mac: row.get::<Vec<u8>>(3).ok().flatten(),
                mac_key: row.get::<String>(4).ok().flatten(),
                record_tail: tail,
            }
        })
        .collect();
    // pgrx keeps every result until the SPI session ends: a walk over millions of rows in
    // batches would hold them all (the log's size in memory). The rows are copied out; free them.
    // SAFETY: SPI_tuptable is the result of the update above, consumed into `rows` and not
    // referenced again (the SpiTupleTable wrapper has no Drop and was consumed by the iteration).
    unsafe { pg_sys::SPI_freetuptable(pg_sys::SPI_tuptable) };
    rows
}

/// The chain head: (seq, id, mac) of the last sealed row, if any.
fn head(client: &mut SpiClient) -> Option<(i64, i64, [u8; MAC_LEN])> {
    client
        .select(
            // After a purge of every sealed row only the witness remembers the head.
            &format!(
                "SELECT seq, id, mac FROM ( \
                   (SELECT seq, id, mac FROM {} WHERE seq IS NOT NULL \
                     ORDER BY seq DESC LIMIT 1) \
                   UNION ALL \
                   (SELECT seq, log_id, mac FROM encml.audit_witness ORDER BY seq DESC LIMIT 1)) h \
                 ORDER BY seq DESC LIMIT 1",
                partitions::sealed_table()
            ),
            None,
            &[],
        )
        .or_spi_failed("audit log")
        .next()
        .map(|r| {
            (
                r.get::<i64>(1).ok().flatten().unwrap_or(0),
                r.get::<i64>(2).ok().flatten().unwrap_or(0),
                mac32(r.get::<Vec<u8>>(3).ok().flatten()),
            )
        })
}

/// Whether this transaction sees other transactions' commits statement by statement; sealing
/// from an older snapshot could fork the chain.
fn fresh_snapshots() -> bool {
    // SAFETY: XactIsoLevel is a plain C global of this single-threaded backend, set at
    // transaction start; reading it cannot race.
    unsafe { pg_sys::XactIsoLevel < pg_sys::XACT_REPEATABLE_READ as i32 }
}

/// Seals every committed unsealed row. Returns the head (seq, id, mac) and how many rows it
/// sealed; in a REPEATABLE READ or SERIALIZABLE transaction, and on a hot standby, nothing is
/// sealed.
pub fn seal() -> (Option<(i64, i64, [u8; MAC_LEN])>, i64) {
    as_extension_owner(|| {
        while_maintaining(|| {
            Spi::connect_mut(|client| {
                // SAFETY: reads shared recovery state; cannot ERROR.
                if unsafe { pg_sys::RecoveryInProgress() } {
                    // A hot standby writes nothing; the primary seals, and the sealed rows
                    // arrive by replay (docs/operations.md).
                    return (head(client), 0);
                }
                if !fresh_snapshots() {
                    notice(
                        "the audit log is not sealed in a REPEATABLE READ or SERIALIZABLE transaction",
                        None,
                    );
                    return (head(client), 0);
                }
                // Sealers take turns on a lock of the witness table that nobody else may take:
                // an advisory lock anyone can hold would stall every seal and verification. The
                // mode conflicts with none that any role can hold by naming the table in a
                // statement it may not run (parse analysis locks before the privilege check:
                // an idle PREPARE of DELETE FROM the witness holds ROW EXCLUSIVE), only with
                // itself and stronger ones, which need ownership.
                client
                    .update(
                        "LOCK TABLE encml.audit_witness IN SHARE UPDATE EXCLUSIVE MODE",
                        None,
                        &[],
                    )
                    .or_spi_failed("audit log");
                let (key, label) = service::current_labelled(ServicePurpose::AuditChain);
                // The redaction key too (the audit trigger only derives it until it exists).
                service::current_labelled(ServicePurpose::AuditRedact);
                let mut current = head(client);
                let mut sealed = 0i64;
                let partitioned = partitions::partitioned();
                let unsealed_table = if partitioned {
                    "encml.audit_log_unsealed"
                } else {
                    // 0.1.0: one table, whose seq index's NULL entries are the unsealed rows;
                    // through them, whatever the statistics say (after a bulk load they can
                    // show mostly NULLs and choose a scan of the whole log).
                    // SAFETY: inside as_extension_owner, whose GUC level ends the setting.
                    unsafe {
                        crate::pg::identity::save_setting(c"enable_seqscan", c"off");
                    }
                    "encml.audit_log"
                };
                // The row addresses first, then the rows batch by batch by address.
                let unsealed: Vec<String> = client
                    .select(
                        &format!(
                            "SELECT ctid::text FROM {unsealed_table} WHERE seq IS NULL ORDER BY id"
                        ),
                        None,
                        &[],
                    )
                    .or_spi_failed("audit log")
                    .filter_map(|r| r.get::<String>(1).ok().flatten())
                    .collect();
                // The first seq kept since the last purge (sizes new ranges of the sealed rows).
                let kept_from = if partitioned && !unsealed.is_empty() {
                    client
                        .select("SELECT min(seq) FROM encml.audit_log_sealed", None, &[])
                        .or_spi_failed("audit log")
                        .next()
                        .and_then(|r| r.get::<i64>(1).ok().flatten())
                } else {
                    None
                };
                // Where the ranges of sealed rows end (read from the catalog by the first batch).
                let mut ranges_end = None;
                for chunk in unsealed.chunks(BATCH) {
                    let rows = read_rows(
                        client,
                        unsealed_table,
                        "WHERE ctid = ANY ($1::text[]::tid[]) ORDER BY id",
                        &[chunk.to_vec().into()],
                    );
                    if rows.is_empty() {
                        continue;
                    }
                    let (mut seq, _, mut prev) = current.unwrap_or((0, 0, GENESIS));
                    let first = seq + 1;
                    let mut tids = Vec::with_capacity(rows.len());
                    let mut ids = Vec::with_capacity(rows.len());
                    let mut seqs = Vec::with_capacity(rows.len());
                    let mut macs = Vec::with_capacity(rows.len());
                    let mut last_id = 0;
                    for row in &rows {
                        seq += 1;
                        prev = chain_mac(&key, &prev, &row.record(seq, &label));
                        tids.push(row.ctid.clone());
                        ids.push(row.id);
                        seqs.push(seq);
                        macs.push(prev.to_vec());
                        last_id = row.id;
                    }
                    if partitioned {
                        ranges_end = Some(partitions::cover(
                            client,
                            first,
                            seq,
                            kept_from.unwrap_or(first),
                            ranges_end,
                        ));
                        let moved = client
                            .update(
                                MOVE_TO_SEALED,
                                None,
                                &[
                                    tids.into(),
                                    ids.into(),
                                    seqs.into(),
                                    macs.into(),
                                    label.clone().into(),
                                ],
                            )
                            .or_spi_failed("audit log")
                            .len();
                        if moved != rows.len() {
                            crate::pg::errors::internal(format!(
                                "sealing moved {moved} of {} audit rows",
                                rows.len()
                            ));
                        }
                    } else {
                        client
                            .update(
                                "UPDATE encml.audit_log a SET seq = u.seq, mac = u.mac, mac_key = $4 \
                                   FROM unnest($1::text[]::tid[], $2::int8[], $3::bytea[]) AS u(tid, seq, mac) \
                                  WHERE a.ctid = u.tid",
                                None,
                                &[tids.into(), seqs.into(), macs.into(), label.clone().into()],
                            )
                            .or_spi_failed("audit log");
                    }
                    sealed += rows.len() as i64;
                    crate::pg::pause::point("audit_seal");
                    current = Some((seq, last_id, prev));
                }
                if let Some((seq, id, mac)) = current.filter(|_| sealed > 0) {
                    client
                        .update(
                            "INSERT INTO encml.audit_witness (seq, log_id, mac) VALUES ($1, $2, $3)",
                            None,
                            &[seq.into(), id.into(), mac.to_vec().into()],
                        )
                        .or_spi_failed("audit log");
                    log_head_at_commit(seq, id, &mac);
                }
                (current, sealed)
            })
        })
    })
}

/// The external witness: the head goes to the server log once the seal has committed.
fn log_head_at_commit(seq: i64, id: i64, mac: &[u8; MAC_LEN]) {
    let line = format!(
        "pg_encrypt_ml audit chain head: seq={seq} id={id} mac={}",
        hex::encode(mac)
    );
    pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Commit, move || {
        crate::log_event!("{line}");
    });
}

/// What `audit_verify` found.
pub struct Verdict {
    pub ok: bool,
    pub rows_checked: i64,
    pub first_bad_id: Option<i64>,
    pub detail: String,
}

/// The chain keys met while verifying, by the `mac_key` the rows name.
#[derive(Default)]
struct ChainKeys(HashMap<String, Option<Rc<ServiceKey>>>);

impl ChainKeys {
    fn get(&mut self, mac_key: &str) -> Option<Rc<ServiceKey>> {
        self.0
            .entry(mac_key.to_string())
            .or_insert_with(|| service::audit_chain_key_named(mac_key))
            .clone()
    }
}

/// A purge anchor: where verification starts after a purge. Claims only: `verify` trusts them
/// once it has verified the anchor row itself.
#[derive(Clone)]
struct Anchor {
    seq: i64,
    id: i64,
    /// The last purged seq and its MAC.
    through: i64,
    mac: [u8; MAC_LEN],
    /// The digest of the seal witnesses up to `through`, and the key it was made with
    /// (anchors of 0.2.0 on).
    witness_digest: Option<[u8; MAC_LEN]>,
    witness_key: Option<String>,
}

fn latest_anchor(client: &mut SpiClient) -> Option<Anchor> {
    let hex32 = |h: Option<String>| {
        h.and_then(|h| hex::decode(h).ok())
            .and_then(|v| <[u8; MAC_LEN]>::try_from(v).ok())
    };
    client
        .select(
            // Through its marker (a wrong or missing one only makes the walk start earlier);
            // a 0.1.0 schema has none: the newest anchor row.
            &format!(
                "SELECT seq, id, (detail->>'purged_through_seq')::int8, detail->>'mac', \
                        detail->>'witness_digest', detail->>'witness_key' \
                   FROM {} WHERE kind = 'anchor' AND seq IS NOT NULL {}",
                partitions::sealed_table(),
                if markers_exist() {
                    "AND seq = (SELECT seq FROM encml.audit_markers WHERE kind = 'anchor')"
                } else {
                    "ORDER BY seq DESC LIMIT 1"
                }
            ),
            None,
            &[],
        )
        .or_spi_failed("audit log")
        .next()
        .map(|r| Anchor {
            seq: r.get::<i64>(1).ok().flatten().unwrap_or(0),
            id: r.get::<i64>(2).ok().flatten().unwrap_or(0),
            through: r.get::<i64>(3).ok().flatten().unwrap_or(0),
            mac: hex32(r.get::<String>(4).ok().flatten()).unwrap_or(GENESIS),
            witness_digest: hex32(r.get::<String>(5).ok().flatten()),
            witness_key: r.get::<String>(6).ok().flatten(),
        })
}

/// The seal witnesses up to `through`, in seq order.
fn witnesses_through(client: &mut SpiClient, through: i64) -> Vec<(i64, [u8; MAC_LEN])> {
    client
        .select(
            "SELECT seq, mac FROM encml.audit_witness WHERE seq <= $1 ORDER BY seq",
            None,
            &[through.into()],
        )
        .or_spi_failed("audit log")
        .map(|r| {
            (
                r.get::<i64>(1).ok().flatten().unwrap_or(0),
                mac32(r.get::<Vec<u8>>(2).ok().flatten()),
            )
        })
        .collect()
}

/// A head recorded outside the database (`audit_head()`): its seq and MAC.
pub type ExternalHead = (i64, [u8; MAC_LEN]);

/// Checks an external head that the latest purge removed from the log: the anchor's own
/// purged-through MAC, or a seal witness authenticated by the anchor's witness digest.
fn check_purged_head(
    client: &mut SpiClient,
    keys: &mut ChainKeys,
    anchor: Option<&Anchor>,
    (seq, mac): ExternalHead,
) -> Result<(), String> {
    let Some(anchor) = anchor else {
        return Err(format!(
            "the external head at seq {seq} is not in the log, and no purge anchor explains it"
        ));
    };
    if seq > anchor.through {
        return Err(format!("the external head at seq {seq} is not in the log"));
    }
    if seq == anchor.through {
        return if anchor.mac == mac {
            Ok(())
        } else {
            Err(format!(
                "the external head at seq {seq} differs from the MAC the purge anchor kept for it"
            ))
        };
    }
    let (Some(digest), Some(key)) = (anchor.witness_digest, anchor.witness_key.as_deref()) else {
        return Err(format!(
            "the external head at seq {seq} was purged by an anchor that keeps no witness digest (made before 0.2.0): only heads after seq {} can be checked",
            anchor.through
        ));
    };
    let Some(chain_key) = keys.get(key) else {
        return Err(format!(
            "key {key} is not available to check the purge anchor's witness digest"
        ));
    };
    let heads = witnesses_through(client, anchor.through);
    if encml_core::audit::witness_digest(&chain_key, heads.iter().map(|(s, m)| (*s, m))) != digest {
        return Err(format!(
            "the seal witnesses up to seq {} differ from the digest the purge anchor kept of them",
            anchor.through
        ));
    }
    match heads.iter().find(|(s, _)| *s == seq) {
        Some((_, m)) if *m == mac => Ok(()),
        Some(_) => Err(format!(
            "the external head at seq {seq} differs from the witnessed MAC"
        )),
        None => Err(format!("no seal witnessed seq {seq}: it was never a head")),
    }
}

/// A verification that walked at least this many rows leaves a checkpoint for the next one.
const CHECKPOINT_AFTER_ROWS: i64 = 10_000;

/// Whether this transaction may seal and write (not on a standby, not read-only).
fn can_write() -> bool {
    // SAFETY: reads backend globals.
    unsafe { !pg_sys::RecoveryInProgress() && !pg_sys::XactReadOnly }
}

/// The id of the latest sealed checkpoint after seq `after`.
fn latest_checkpoint(client: &mut SpiClient, after: i64) -> Option<(i64, i64)> {
    if !markers_exist() {
        return None; // a 0.1.0 schema writes no checkpoints
    }
    client
        .select(
            &format!(
                "SELECT id, seq FROM {} \
                  WHERE seq = (SELECT seq FROM encml.audit_markers WHERE kind = 'checkpoint') \
                    AND seq > $1 AND kind = 'checkpoint'",
                partitions::sealed_table()
            ),
            None,
            &[after.into()],
        )
        .or_spi_failed("audit log")
        .next()
        .and_then(|r| {
            r.get::<i64>(1)
                .ok()
                .flatten()
                .zip(r.get::<i64>(2).ok().flatten())
        })
}

/// Whether the schema has `encml.audit_markers` (0.2.0 on).
fn markers_exist() -> bool {
    crate::pg::catalog_reads::extension_relation(c"audit_markers") != pg_sys::InvalidOid
}

/// Points the marker of `kind` at the newest such row sealed after seq `after`.
fn mark(kind: &str, after: i64) {
    if !markers_exist() {
        return;
    }
    as_extension_owner(|| {
        while_maintaining(|| {
            Spi::run_with_args(
                &format!(
                    "INSERT INTO encml.audit_markers (kind, seq, log_id) \
                     SELECT kind, seq, id FROM {} WHERE seq > $2 AND kind = $1 \
                      ORDER BY seq DESC LIMIT 1 \
                     ON CONFLICT (kind) DO UPDATE SET seq = EXCLUDED.seq, log_id = EXCLUDED.log_id",
                    partitions::sealed_table()
                ),
                &[kind.into(), after.into()],
            )
            .or_spi_failed("audit log")
        })
    });
}

/// Appends (and seals) a checkpoint: the chain verified through seq `through` (MAC `mac`).
fn write_checkpoint(through: i64, mac: &[u8; MAC_LEN], rows: i64, full_walk: bool) {
    let detail = serde_json::json!({
        "verified_through_seq": through,
        "mac": hex::encode(mac),
        "rows_checked": rows,
        "full": full_walk,
    })
    .to_string();
    append(&Entry::without_rows(
        "checkpoint",
        "audit_verify",
        None,
        Some(&detail),
    ));
    seal();
    mark("checkpoint", through);
}

/// Verifies the chain from its start (the latest purge anchor) or from the row `from_id`, then
/// the head against the newest witness.
/// With `external`, also that the chain passes through that head (a head recorded by an external
/// system from `audit_head()`), or, if it was purged since, that the latest anchor vouches for it.
///
/// Without `from_id`, `external` or `full`, the walk starts at the latest checkpoint (a chained
/// row a previous verification wrote after the anchor): its own MAC is verified against the row
/// before it, and the rows after it are walked. A checkpoint proves only what follows it; `full`
/// walks from the anchor (and writes a checkpoint). On a standby, or in a read-only
/// transaction, nothing is sealed or written.
pub fn verify(user_from: Option<i64>, external: Option<ExternalHead>, full: bool) -> Verdict {
    let writable = can_write();
    if writable {
        seal();
    }
    let mut pending_checkpoint = None;
    let verdict = as_extension_owner(|| {
        Spi::connect_mut(|client| {
            let mut keys = ChainKeys::default();
            let sealed = partitions::sealed_table();
            let bad = |id: i64, checked: i64, detail: String| Verdict {
                ok: false,
                rows_checked: checked,
                first_bad_id: Some(id),
                detail,
            };
            let anchor = latest_anchor(client);
            let checkpoint = if user_from.is_none() && external.is_none() && !full {
                latest_checkpoint(client, anchor.as_ref().map_or(0, |a| a.seq))
            } else {
                None
            };
            let incremental = checkpoint.is_some();
            let checkpoint_seq = checkpoint.map_or(0, |c| c.1);
            let from_id = user_from.or(checkpoint.map(|c| c.0));
            // Where the walk starts: after seq `from`, continuing from MAC `prev`.
            let (start, start_mac) = match from_id {
                Some(id) => {
                    // A checkpoint is found by its seq (the only index); a row the caller
                    // names, by its id.
                    let by_seq = user_from.is_none();
                    let key = if by_seq { checkpoint_seq } else { id };
                    let found = client
                        .select(
                            &format!(
                                "SELECT a.seq, b.mac FROM {sealed} a \
                                   LEFT JOIN {sealed} b ON b.seq = a.seq - 1 \
                                  WHERE {} AND a.seq IS NOT NULL",
                                if by_seq { "a.seq = $1" } else { "a.id = $1" }
                            ),
                            None,
                            &[key.into()],
                        )
                        .or_spi_failed("audit log")
                        .next()
                        .map(|r| {
                            (
                                r.get::<i64>(1).ok().flatten().unwrap_or(0),
                                r.get::<Vec<u8>>(2).ok().flatten(),
                            )
                        });
                    let Some((seq, before)) = found else {
                        raise(
                            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                            format!("no sealed audit row has id {id}"),
                        );
                    };
                    let prev = match before {
                        Some(mac) => mac32(Some(mac)),
                        None => match &anchor {
                            Some(a) if a.through == seq - 1 => a.mac,
                            _ if seq == 1 => GENESIS,
                            _ => return bad(id, 0, format!("the row before row {id} is missing")),
                        },
                    };
                    (seq - 1, prev)
                }
                None => anchor
                    .as_ref()
                    .map(|a| (a.through, a.mac))
                    .unwrap_or((0, GENESIS)),
            };
            let (mut expected, mut prev) = (start, start_mac);
            let mut checked = 0i64;
            let mut last = None;
            // The MAC the walk verified at the external head's seq.
            let mut at_external: Option<[u8; MAC_LEN]> = None;
            // Planned once for the whole walk (each range of the log is pruned at execution).
            let walk = client
                .prepare(
                    format!("{CANONICAL} FROM {sealed} WHERE seq > $1 ORDER BY seq LIMIT {BATCH}")
                        .as_str(),
                    &[pgrx::PgOid::BuiltIn(pgrx::PgBuiltInOids::INT8OID)],
                )
                .or_spi_failed("audit log");
            loop {
                let rows = fetch_rows(client, &walk, &[expected.into()]);
                if rows.is_empty() {
                    break;
                }
                for row in &rows {
                    let seq = row.seq.expect("sealed");
                    if seq != expected + 1 {
                        return bad(
                            row.id,
                            checked,
                            format!(
                                "rows with seq {} to {} are missing (deleted)",
                                expected + 1,
                                seq - 1
                            ),
                        );
                    }
                    let key = row.mac_key.as_deref().unwrap_or_default();
                    let Some(chain_key) = keys.get(key) else {
                        return bad(
                            row.id,
                            checked,
                            format!(
                                "key {key} is not available to verify this row (neither a service key in the catalog nor a master key of the provider)"
                            ),
                        );
                    };
                    let mac = row.mac.as_deref().unwrap_or_default();
                    if !verify_mac(&chain_key, &prev, &row.record(seq, key), mac) {
                        return bad(
                            row.id,
                            checked,
                            format!("row {} (seq {seq}) was modified, inserted or moved", row.id),
                        );
                    }
                    prev = mac.try_into().expect("verified MACs are 32 bytes");
                    if external.is_some_and(|(s, _)| s == seq) {
                        at_external = Some(prev);
                    }
                    expected = seq;
                    checked += 1;
                    last = Some(row.id);
                }
            }
            // The anchor the walk started from is trusted only once the walk has reached and
            // verified the anchor row itself (its MAC covers the purged-through seq and MAC it
            // claims): a row inserted with kind 'anchor' past the head, or with a seq or MAC of
            // its choosing, never is.
            if let (None, Some(a)) = (user_from, &anchor) {
                let (anchor_seq, through, anchor_id) = (a.seq, a.through, a.id);
                // (An incremental walk from a checkpoint past the anchor verified the anchor when
                // that checkpoint was written.)
                let walked = !incremental || anchor_seq > start;
                if walked && (anchor_seq <= through || anchor_seq > expected) {
                    return bad(
                        anchor_id,
                        checked,
                        format!(
                            "the purge anchor at seq {anchor_seq} (purged through seq {through}) is not part of the verified chain, which ends at seq {expected}: it was forged or moved"
                        ),
                    );
                }
            }
            // The newest witness must still be in the chain.
            let witness = client
                .select(
                    &format!(
                        "SELECT w.seq, w.log_id, w.mac, l.mac FROM encml.audit_witness w \
                           LEFT JOIN {sealed} l ON l.seq = w.seq ORDER BY w.seq DESC LIMIT 1"
                    ),
                    None,
                    &[],
                )
                .or_spi_failed("audit log")
                .next()
                .map(|r| {
                    (
                        r.get::<i64>(1).ok().flatten().unwrap_or(0),
                        r.get::<i64>(2).ok().flatten().unwrap_or(0),
                        r.get::<Vec<u8>>(3).ok().flatten(),
                        r.get::<Vec<u8>>(4).ok().flatten(),
                    )
                });
            if let Some((wseq, wid, wmac, lmac)) = &witness {
                let (wseq, wid) = (*wseq, *wid);
                if wseq > expected {
                    return bad(
                        last.unwrap_or(wid),
                        checked,
                        format!(
                            "the chain ends at seq {expected}, but a seal witnessed seq {wseq} (row {wid}): the newest rows were deleted"
                        ),
                    );
                }
                // The witnessed MAC against the one the walk verified at that seq (the head
                // reached, or a row of the walk); a witness before the walk's start is not
                // compared.
                let verified = if wseq == expected {
                    Some(prev.to_vec())
                } else if wseq > start {
                    lmac.clone()
                } else {
                    wmac.clone()
                };
                if wmac.as_ref() != verified.as_ref() {
                    return bad(
                        wid,
                        checked,
                        format!("row {wid} (seq {wseq}) differs from its seal witness"),
                    );
                }
            }
            // The head an external system recorded: in the walked chain with the same MAC, or
            // purged and vouched for by the anchor.
            if let Some((seq, mac)) = external {
                let problem = if seq > expected {
                    Some(format!(
                        "the chain ends at seq {expected}, but the external witness recorded seq {seq}: the newest rows and their seal witnesses were deleted"
                    ))
                } else if seq > start {
                    (at_external != Some(mac)).then(|| {
                        format!("the chain at seq {seq} differs from the external witness: the log was rewritten")
                    })
                } else if user_from.is_some() {
                    Some(format!(
                        "the external head at seq {seq} precedes the row verification started from"
                    ))
                } else {
                    check_purged_head(client, &mut keys, anchor.as_ref(), (seq, mac)).err()
                };
                if let Some(detail) = problem {
                    return Verdict {
                        ok: false,
                        rows_checked: checked,
                        first_bad_id: None,
                        detail,
                    };
                }
            }
            // Nothing verified is never "ok" while the log or the witness says rows were sealed.
            if checked == 0 && user_from.is_none() {
                let sealed = client
                    .select(
                        &format!(
                            "SELECT EXISTS (SELECT FROM {sealed} WHERE seq IS NOT NULL) \
                                 OR EXISTS (SELECT FROM encml.audit_witness)"
                        ),
                        None,
                        &[],
                    )
                    .or_spi_failed("audit log")
                    .next()
                    .and_then(|r| r.get::<bool>(1).ok().flatten())
                    .unwrap_or(false);
                if sealed {
                    return Verdict {
                        ok: false,
                        rows_checked: 0,
                        first_bad_id: None,
                        detail: format!(
                            "no row could be verified from seq {start}, although sealed rows or seal witnesses exist"
                        ),
                    };
                }
            }
            // The chain is intact through `expected`: a checkpoint for the next verification.
            if writable
                && markers_exist()
                && user_from.is_none()
                && (full || checked >= CHECKPOINT_AFTER_ROWS)
            {
                pending_checkpoint = Some((expected, prev, checked, full || !incremental));
            }
            // The chain is intact; auditing is complete only while the audited tables keep
            // their triggers and the extension its event triggers.
            let problems = crate::audit::state::all_problems();
            if !problems.is_empty() {
                return Verdict {
                    ok: false,
                    rows_checked: checked,
                    first_bad_id: None,
                    detail: format!(
                        "the chain verifies through seq {expected}, but auditing is incomplete: {}",
                        problems.join("; ")
                    ),
                };
            }
            Verdict {
                ok: true,
                rows_checked: checked,
                first_bad_id: None,
                detail: match last {
                    Some(id) => format!("chain verified through row {id} (seq {expected})"),
                    None => "the audit log is empty".into(),
                },
            }
        })
    });
    if let Some((through, mac, rows, full_walk)) = pending_checkpoint {
        write_checkpoint(through, &mac, rows, full_walk);
    }
    verdict
}

/// Removes the sealed rows logged before `before` (a prefix of the chain) and appends an anchor
/// row that lets verification start after them. Returns the number of rows removed.
pub fn purge(before: pgrx::datum::TimestampWithTimeZone) -> i64 {
    seal();
    let sealed = partitions::sealed_table();
    let (through, mac) = as_extension_owner(|| {
        Spi::connect_mut(|client| {
            let cut = client
                .select(
                    &format!(
                        "SELECT coalesce((SELECT min(seq) - 1 FROM {sealed} \
                                           WHERE seq IS NOT NULL AND logged_at >= $1), \
                                         (SELECT max(seq) FROM {sealed}))"
                    ),
                    None,
                    &[before.into()],
                )
                .or_spi_failed("audit log")
                .next()
                .and_then(|r| r.get::<i64>(1).ok().flatten())
                .unwrap_or(0);
            let mac = client
                .select(
                    &format!("SELECT mac FROM {sealed} WHERE seq = $1"),
                    None,
                    &[cut.into()],
                )
                .or_spi_failed("audit log")
                .next()
                .and_then(|r| r.get::<Vec<u8>>(1).ok().flatten());
            (cut, mac)
        })
    });
    let Some(mac) = mac else {
        return 0;
    };
    let removed = as_extension_owner(|| {
        while_maintaining(|| {
            Spi::connect_mut(|client| {
                let count = |client: &mut SpiClient, sql: &str| {
                    client
                        .update(sql, None, &[through.into()])
                        .or_spi_failed("audit log")
                        .next()
                        .and_then(|r| r.get::<i64>(1).ok().flatten())
                        .unwrap_or(0)
                };
                if !partitions::partitioned() {
                    return count(
                        client,
                        "WITH d AS (DELETE FROM encml.audit_log WHERE seq <= $1 RETURNING 1) \
                         SELECT count(*) FROM d",
                    );
                }
                // Whole ranges go with their disk space; the range the cut goes through keeps
                // dead rows until it is dropped in turn.
                let whole = count(
                    client,
                    "SELECT count(*) FROM encml.audit_log_sealed WHERE seq <= $1",
                );
                partitions::drop_through(client, through);
                count(
                    client,
                    "WITH d AS (DELETE FROM encml.audit_log_sealed WHERE seq <= $1 RETURNING 1) \
                     SELECT count(*) FROM d",
                );
                whole
            })
        })
    });
    // The witnesses stay (they are small); the anchor keeps a digest of those up to the purge
    // point, so that a head recorded outside before the purge can still be checked.
    let (key, label) = service::current_labelled(ServicePurpose::AuditChain);
    let digest = as_extension_owner(|| {
        Spi::connect_mut(|client| {
            let heads = witnesses_through(client, through);
            encml_core::audit::witness_digest(&key, heads.iter().map(|(s, m)| (*s, m)))
        })
    });
    let detail = serde_json::json!({
        "purged_through_seq": through,
        "mac": hex::encode(&mac),
        "before": before.to_string(),
        "rows_removed": removed,
        "witness_digest": hex::encode(digest),
        "witness_key": label,
    })
    .to_string();
    append(&Entry::without_rows(
        "anchor",
        "audit_purge",
        None,
        Some(&detail),
    ));
    seal();
    mark("anchor", through);
    removed
}
