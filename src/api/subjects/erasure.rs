//! The right to erasure (`subject_forget`), run and committed in the subject worker: it locks
//! the registered tables and the tables under them, erases the subject's rows table by table
//! (`erasure_step`), checks at the end that none is left and that no table left its tree,
//! destroys the subject's keys and consent records, refreshes the statistics that sampled the
//! rows and returns the receipt; all or nothing. `in_subject_erasure` lets the owners' triggers
//! recognise its statements.

use super::erasure_plan::{plan_for, planned, Plans};
use super::erasure_step::{erase_in, require_erased};
use super::keys::clear_cache;
use super::tables::{detach_pending_in, temporary_in, tree_of};
use super::worker::{in_own_session, refuse_with_conflicting_locks};
use super::{registrations, Registration};
use crate::events;
use crate::keys::catalog;
use crate::pg::erasure_guard;
use crate::pg::errors::OrSpiFailed;
use crate::pg::errors::{notice, raise_full};
use crate::pg::identity::as_extension_owner;
use crate::pg::roles::{caller, has_privs_of_role_named, is_superuser, role_name, DPO, KEY_ADMIN};
use pgrx::prelude::*;
use pgrx::{pg_sys, JsonB, PgSqlErrorCode};
use serde_json::{json, Value};

/// Whether the code calling it runs inside a subject erasure (`subject_forget`): the owners'
/// triggers test it to leave the erasure's statements alone. An anonymizing UPDATE must leave
/// every column it does not clear as it was (attacker round 18), so a trigger that stamps
/// `updated_at` fails the erasure unless it skips them; an archiving trigger can skip copying
/// the rows an erasure deletes. True only in the erasure's own session (a worker that runs
/// nothing else), from when it has locked and planned its tables until it commits.
#[pg_extern(stable, parallel_restricted)]
fn in_subject_erasure() -> bool {
    crate::pg::erasure_guard::active()
}

/// Right to erasure: deletes or anonymizes the subject's rows in every registered table (as
/// registered; with the caller's DELETE/UPDATE rights), destroys the subject's keys (so copies of
/// its values elsewhere, in other tables, exports and backups, cannot be decrypted once the
/// master key is rotated), deletes its consent records, and logs an erasure record without the
/// subject's data. Returns the receipt. Members of encml_dpo, encml_key_admin and superusers.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn subject_forget(subject: &str) -> JsonB {
    crate::pg::recovery::refuse_during_recovery("encml.subject_forget()");
    require_eraser(caller());
    // It commits on its own: a read-only transaction (or a standby) must not erase through it
    // (attacker round 12).
    // SAFETY: reads the backend's transaction state.
    if unsafe { pg_sys::XactReadOnly } {
        raise_full(
            PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            "subject_forget cannot run in a read-only transaction",
            None,
            Some("Call it in a read-write transaction of its own, on the primary.".into()),
        );
    }
    // The worker cannot see rows this transaction wrote, and would wait for its row locks.
    // SAFETY: reads this backend's top-level transaction id without assigning one; never raises.
    if unsafe { pg_sys::GetTopTransactionIdIfAny() } != pg_sys::InvalidTransactionId {
        raise_full(
            PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
            "subject_forget refuses to run in a transaction that has already written",
            Some("The erasure runs and commits in a session of its own, which cannot see this transaction's changes.".into()),
            Some("Call it in a transaction of its own.".into()),
        );
    }
    // The worker locks them in SHARE ROW EXCLUSIVE mode (`lock_for_erasure`).
    refuse_with_conflicting_locks(
        "subject_forget",
        &[
            "RowExclusiveLock",
            "ShareUpdateExclusiveLock",
            "ShareLock",
            "ShareRowExclusiveLock",
            "ExclusiveLock",
            "AccessExclusiveLock",
        ],
    );
    in_own_session(json!({ "op": "forget", "subject": subject }))
}

/// Members of encml_dpo, encml_key_admin and superusers erase; others are refused (and the
/// refusal logged).
fn require_eraser(role: pg_sys::Oid) {
    if !(is_superuser(role)
        || has_privs_of_role_named(role, DPO)
        || has_privs_of_role_named(role, KEY_ADMIN))
    {
        events::refused("subject_forget_refused", json!({}));
        raise_full(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "permission denied to erase data subjects (role {})",
                role_name(role)
            ),
            None,
            Some(format!("Members of {DPO} erase data subjects.")),
        );
    }
}

/// The erasure, run in the subject worker with the caller's roles (see `in_own_session`).
pub(super) fn forget_here(subject: &str) -> Value {
    crate::pg::identity::with_pinned_search_path(|| {
        let role = caller();
        require_eraser(role);
        // On Citus the erasure deletes in distributed tables, then changes the key catalog (a
        // reference table): one transaction may do both only over one connection per node.
        // Local to the worker's own transaction.
        Spi::run(
            "SELECT pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true) \
               FROM pg_catalog.pg_settings WHERE name OPERATOR(pg_catalog.=) 'citus.multi_shard_modify_mode'",
        )
        .or_spi_failed("");
        // Deferred triggers fire at the end of each statement, as the table's owner, not at
        // this transaction's commit, as the caller. (Postgres refuses to queue a deferred event
        // in the restricted operation the statements run in: an owner's trigger that defers
        // constraints again fails the erasure.)
        Spi::run("SET CONSTRAINTS ALL IMMEDIATE").or_spi_failed("");
        lock_for_erasure();
        // Everything below reads what committed before the locks were granted: a column or an
        // inheritance child added by an owner's transaction that held the table as the erasure
        // started is planned for too (attacker round 18).
        crate::pg::session_worker::read_from_now();
        // What the receipt and the audit record call each table and column: their names before
        // any owner's code ran. That code sees the subject's rows, and could name a later table
        // or column after the subject, which would put the subject into the audit log for good
        // (attacker round 9). And the tables under each, as locked: one that leaves (DETACH
        // PARTITION, NO INHERIT by an owner's code meanwhile) would leave the final search too.
        let locked = registrations();
        let named = names_of(&locked);
        let trees = trees_of(&locked);
        let mut plans: Plans = locked
            .iter()
            .map(|r| (r.ident(), plan_for(r, subject)))
            .collect();
        for (rel, tree) in &trees {
            require_no_temporary_under(*rel, tree);
            // From here to the commit, only the erasure writes to them (attacker round 15).
            erasure_guard::watch(tree);
        }
        let erasure_id = uuid::Uuid::new_v4().to_string();
        let mut tables = Vec::new();
        crate::audit::row::during_erasure(&erasure_id, || {
            // The registrations are read again before each step: the owners' code run by one
            // step can rename, drop and register columns of other tables (attacker round 8).
            // Deleting registrations go first: an anonymizing one of a table above (a parent,
            // a partitioned table) clears the identifier in the rows of the tables under it, and
            // a deleting registration of one of those would then find none of the subject's rows
            // to delete (attacker round 17).
            let mut done = Vec::new();
            let mut changed = Vec::new();
            while let Some(reg) = registrations()
                .into_iter()
                .filter(|r| !done.contains(&r.ident()))
                .min_by_key(|r| r.on_forget != "delete")
            {
                done.push(reg.ident());
                if let Some(entry) = erase_in(&reg, subject, role, &mut plans) {
                    if entry["rows"].as_u64().unwrap_or(0) > 0 {
                        changed.push(reg.rel);
                    }
                    tables.push(receipt_entry(&reg, &named, entry));
                }
            }
            // A registered table dropped meanwhile (an owner's code put a copy of it back under
            // its name, unregistered: attacker round 18) fails the erasure.
            if let Some(gone) = locked.iter().find(|r| !relation_exists(r.rel)) {
                let table = named
                    .iter()
                    .find(|(ident, _)| *ident == gone.ident())
                    .map(|(_, (table, _))| table.clone())
                    .unwrap_or_default();
                raise_full(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("cannot erase the subject's rows: {table} was dropped during the erasure"),
                    Some("An owner's code dropped a registered table while the erasure ran (a copy under its name would be neither registered nor erased). Nothing was erased: the erasure is all or nothing.".into()),
                    Some("The table's owner must remove the code that drops it.".into()),
                );
            }
            // A later step's code can have put rows back in a table erased before it (attacker
            // round 8): the subject's rows must be gone from every table at the end.
            require_trees_kept(&trees);
            for reg in registrations() {
                require_erased(&reg, planned(&mut plans, &reg, subject));
            }
            // Also when the owner's code caught the ERROR its write got (the write was undone
            // with it; the erasure fails all the same).
            if let Some(table) = erasure_guard::breach() {
                erasure_guard::refuse(&table, "a write");
            }
            refresh_statistics(&changed);
        });
        crate::pg::pause::point("subject_forget");
        let (keys, versions) = catalog::destroy_subject_keys(subject);
        clear_cache();
        let consents = crate::api::consent::forget(subject);
        let receipt = json!({
            "erasure_id": erasure_id,
            "tables": tables,
            "keys_destroyed": keys,
            "key_versions_erased": versions,
            "consent_records_deleted": consents,
        });
        // The audit record holds what was erased, not whose: the receipt's erasure_id links them.
        events::record("subject_forget", None, receipt.clone());
        notice(
            format!(
                "subject erased: {} row(s) in {} registered column(s), {keys} key(s) destroyed",
                tables
                    .iter()
                    .filter_map(|t| t["rows"].as_u64())
                    .sum::<u64>(),
                tables.len()
            ),
            Some(
                "Backups taken before now still hold the rows and the wrapped keys. Run \
                 encml.rotate_master_key() and remove the old master key from the provider to make \
                 the subject's encrypted values in them unrecoverable."
                    .into(),
            ),
        );
        let mut receipt = receipt;
        receipt["erased_by"] = json!(role_name(role));
        receipt["erased_at"] = json!(Spi::get_one::<String>("SELECT pg_catalog.now()::text")
            .ok()
            .flatten()
            .unwrap_or_default());
        receipt
    })
}

/// The registrations' table and column names now, by what each is of (`Registration::ident`).
type Names = Vec<((pg_sys::Oid, i16, String), (String, String))>;

fn names_of(regs: &[Registration]) -> Names {
    regs.iter()
        .map(|r| (r.ident(), (r.table.clone(), r.col.clone())))
        .collect()
}

/// The receipt's entry for a step, with the names the table and column had before the erasure;
/// a column registered during the erasure (by an owner's code, which saw the subject) is given
/// by numbers only: table oid and column number.
fn receipt_entry(reg: &Registration, named: &Names, mut entry: Value) -> Value {
    match named.iter().find(|(ident, _)| *ident == reg.ident()) {
        Some((_, (table, col))) => {
            entry["table"] = json!(table);
            entry["identifier_column"] = json!(col);
        }
        None => {
            entry["table"] = Value::Null;
            entry["identifier_column"] = Value::Null;
            entry["registered_during_erasure"] = json!({
                "table_oid": reg.rel.to_u32(), "attnum": reg.attnum,
            });
        }
    }
    entry
}

/// Every table of `regs` (read after `lock_for_erasure` locked them all) with the tables under
/// it (partitions, inheritance children).
fn trees_of(regs: &[Registration]) -> Vec<(pg_sys::Oid, Vec<pg_sys::Oid>)> {
    let mut rels: Vec<pg_sys::Oid> = regs.iter().map(|r| r.rel).collect();
    rels.dedup();
    rels.into_iter().map(|rel| (rel, tree_of(rel))).collect()
}

/// Fails the erasure if a table that was under a registered one when the erasure locked it is
/// no longer under it (and still exists): the owners' code detached it meanwhile, and the final
/// search of the registered table would not reach the subject's rows there (attacker round 9).
fn require_trees_kept(trees: &[(pg_sys::Oid, Vec<pg_sys::Oid>)]) {
    for (rel, was) in trees {
        if !relation_exists(*rel) {
            continue;
        }
        let now = tree_of(*rel);
        require_no_temporary_under(*rel, &now);
        if let Some(left) = was
            .iter()
            .find(|m| !now.contains(m) && relation_exists(**m))
        {
            raise_full(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!(
                    "cannot erase the subject's rows: {} left {} during the erasure",
                    crate::audit::table_name(*left),
                    crate::audit::table_name(*rel)
                ),
                Some("An owner's code detached it (DETACH PARTITION, NO INHERIT) while the erasure ran, so its rows would not be searched. Nothing was erased: the erasure is all or nothing.".into()),
                Some("The table's owner must remove the code that detaches it.".into()),
            );
        }
    }
}

/// Fails the erasure if a temporary table is under the registered table `rel`: another
/// session's temporary tables are invisible here (Postgres leaves them out of the statements'
/// inheritance), so the subject's rows in one would survive a "successful" erasure (attacker
/// round 12: `CREATE TEMP TABLE c () INHERITS (registered)`).
fn require_no_temporary_under(rel: pg_sys::Oid, tree: &[pg_sys::Oid]) {
    // A partition whose DETACH ... CONCURRENTLY was interrupted is still under its table, and
    // left out of statements on it the same way (attacker round 13).
    if let Some(pending) = detach_pending_in(tree) {
        raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "cannot erase the subject's rows in {}: its partition {} is being detached (DETACH PENDING)",
                crate::audit::table_name(rel),
                crate::audit::table_name(pending)
            ),
            Some("Statements on the table leave such a partition out, so its rows would stay. Nothing was erased: the erasure is all or nothing.".into()),
            Some("The table's owner must finish the detach (ALTER TABLE ... DETACH PARTITION ... FINALIZE).".into()),
        );
    }
    if let Some(temp) = temporary_in(tree) {
        raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "cannot erase the subject's rows in {}: the temporary table {} of another session is under it",
                crate::audit::table_name(rel),
                crate::audit::table_name(temp)
            ),
            Some("Another session's temporary tables cannot be read or changed here, so its rows would stay. Nothing was erased: the erasure is all or nothing.".into()),
            Some("The session that created it must drop it (or end).".into()),
        );
    }
}

fn relation_exists(rel: pg_sys::Oid) -> bool {
    // SAFETY: a syscache lookup by oid.
    unsafe {
        pg_sys::SearchSysCacheExists(
            pg_sys::SysCacheIdentifier::RELOID as i32,
            pg_sys::Datum::from(rel),
            pg_sys::Datum::from(0usize),
            pg_sys::Datum::from(0usize),
            pg_sys::Datum::from(0usize),
        )
    }
}

/// Locks what an erasure reads and changes before it reads any of it, so that nothing commits
/// under it meanwhile (attacker round 8): the subject keys (a key made in a transaction still
/// open would survive the erasure) and every registered table with the tables under it (a row
/// of the subject inserted by a transaction still open would survive it). SHARE ROW EXCLUSIVE
/// waits for the writers in progress to commit, keeps new ones waiting until the erasure
/// commits, and lets readers read. In a fixed order (the key catalog, then tables by oid), so
/// that two erasures queue instead of deadlocking.
fn lock_for_erasure() {
    let mut rels: Vec<pg_sys::Oid> = registrations().iter().map(|r| r.rel).collect();
    rels.sort_by_key(|r| r.to_u32());
    rels.dedup();
    // (The consents too: one recorded by a transaction still open survived, attacker round 12.
    // And the registrations: another session unregistered a table mid-erasure, which left it
    // out with the subject's rows, or registered one in a transaction still open, round 13.)
    as_extension_owner(|| {
        Spi::run(
            "LOCK TABLE encml.subject_columns, encml.subject_keys, encml.consents \
               IN SHARE ROW EXCLUSIVE MODE",
        )
        .or_spi_failed("")
    });
    for rel in rels {
        lock_registered(rel);
    }
}

/// Locks a registered table for the erasure (`lock_for_erasure`); nothing if it was dropped.
pub(super) fn lock_registered(rel: pg_sys::Oid) {
    // (A table dropped since it was registered has no name left to lock.)
    if relation_exists(rel) {
        as_extension_owner(|| {
            Spi::run(&format!(
                "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
                crate::audit::table_name(rel)
            ))
            .or_spi_failed("")
        });
    }
}

/// Analyzes again, in the erasure's transaction, every table in or under `rels` (the tables
/// whose rows it deleted or anonymized) that has planner statistics: `pg_stats` shows sampled
/// values of every column (most common values, histogram bounds) to whoever may read the
/// table, and kept the erased identifier and values until the next ANALYZE (attacker round 21,
/// also when an owner's trigger ran ANALYZE while the rows were still there). ANALYZE leaves out
/// rows this transaction deleted and samples the anonymized versions; its statistics commit
/// with the erasure.
fn refresh_statistics(rels: &[pg_sys::Oid]) {
    let mut members: Vec<pg_sys::Oid> = rels.iter().flat_map(|r| tree_of(*r)).collect();
    members.sort_by_key(|m| m.to_u32());
    members.dedup();
    if members.is_empty() {
        return;
    }
    let with_statistics: Vec<String> = as_extension_owner(|| {
        crate::pg::catalog_reads::read_rows(
            "SELECT c.oid::pg_catalog.regclass::pg_catalog.text FROM pg_catalog.pg_class c \
              WHERE c.oid OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[]) \
                AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,m}'::pg_catalog.\"char\"[]) \
                AND (EXISTS (SELECT FROM pg_catalog.pg_statistic s \
                              WHERE s.starelid OPERATOR(pg_catalog.=) c.oid) \
                     OR EXISTS (SELECT FROM pg_catalog.pg_statistic_ext e \
                                  JOIN pg_catalog.pg_statistic_ext_data d \
                                    ON d.stxoid OPERATOR(pg_catalog.=) e.oid \
                                 WHERE e.stxrelid OPERATOR(pg_catalog.=) c.oid)) \
              ORDER BY c.oid",
            &[crate::pg::catalog_reads::arg(members)],
            0,
            |r| r.get::<String>(1).unwrap_or_default(),
        )
    });
    if with_statistics.is_empty() {
        return;
    }
    as_extension_owner(|| {
        Spi::run(&format!("ANALYZE {}", with_statistics.join(", "))).or_spi_failed("")
    });
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
pub mod tests {
    use pgrx::prelude::*;

    /// The erasure commits in a session of its own, which cannot see this transaction's rows: a
    /// transaction that has written (here the subject's key and a value under it) is refused.
    #[pg_test(error = "subject_forget refuses to run in a transaction that has already written")]
    fn forget_refuses_a_transaction_that_wrote() {
        Spi::run(
            "CREATE TEMP TABLE kept AS SELECT encml.encrypt('secret', encml.subject_key('pgtest-s2')) AS v",
        )
        .unwrap();
        Spi::run("SELECT encml.subject_forget('pgtest-s2')").unwrap();
    }
}
