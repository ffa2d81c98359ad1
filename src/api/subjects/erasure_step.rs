//! Erasing the subject's rows in one registered table (`erase_in`): the caller's rights and
//! row-level security are checked, the rows deleted or anonymized as the table's owner, and the
//! result checked (`require_erased`): rows left fail the whole erasure.

use super::anonymizing_update::anonymizing_update;
use super::erasure::lock_registered;
use super::erasure_plan::{planned, Plan, Plans};
use super::tables::{
    has_table_privilege, row_security_applies, row_security_applies_to_owner, tree_of,
};
use super::worker::as_owner_of;
use super::{unsearchable, Registration, Search, FORCED_ROW_SECURITY};
use crate::pg::erasure_guard;
use crate::pg::errors::raise_full;
use crate::pg::errors::OrSpiFailed;
use crate::pg::roles::role_name;
use crate::pg::sql_text::quote_ident;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use serde_json::{json, Value};

/// The current names of the columns of `rel` numbered `numbers` (dropped ones left out).
fn attnames(rel: pg_sys::Oid, numbers: &[i16]) -> Vec<String> {
    Spi::get_one_with_args::<Vec<String>>(
        "SELECT pg_catalog.array_agg(attname::pg_catalog.text ORDER BY attnum) FROM pg_catalog.pg_attribute \
          WHERE attrelid OPERATOR(pg_catalog.=) $1 AND attnum OPERATOR(pg_catalog.=) ANY ($2::pg_catalog.int2[]) \
            AND NOT attisdropped",
        &[rel.into(), numbers.to_vec().into()],
    )
    .or_spi_failed("")
    .unwrap_or_default()
}

/// Whether the current role may read the registered column: Postgres requires it of a DELETE or
/// UPDATE whose WHERE reads the column, and the receipt's row count tells what it would read
/// (attacker round 10: a caller with DELETE alone learned how many rows matched).
fn may_read_identifier(reg: &Registration) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.has_column_privilege($1, $2, 'SELECT')",
        &[reg.rel.into(), reg.attnum.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// Erases the subject's rows in the registered column (deletes or anonymizes them, as
/// registered), or fails the whole erasure; returns the receipt's entry for it.
pub(super) fn erase_in(
    reg: &Registration,
    subject: &str,
    role: pg_sys::Oid,
    plans: &mut Plans,
) -> Option<Value> {
    require_searchable(reg);
    // (Registered during the erasure, by a superuser's direct change: not locked yet.)
    lock_registered(reg.rel);
    erasure_guard::watch(&tree_of(reg.rel));
    let plan = planned(plans, reg, subject);
    let search = plan.search.clone()?;
    let predicate = search.on(reg);
    let bound = search.bound.clone();
    let anonymize = reg.on_forget == "anonymize";
    // Columns only a table under it has are cleared by statements of their own, run first (the
    // registered table's UPDATE then clears the identifier they find the rows by).
    let mut first = Vec::new();
    if anonymize {
        for (member, numbers) in plan.only_under.clone() {
            let extra = attnames(member, &numbers);
            if extra.is_empty() {
                continue;
            }
            let member_name = crate::audit::table_name(member);
            if !has_table_privilege(member, "UPDATE") {
                raise_full(
                    PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    format!("anonymizing the subject's rows in {}: {member_name} under it has columns of its own to clear ({}), which needs UPDATE on it", reg.table, extra.join(", ")),
                    Some("Nothing was erased: the erasure is all or nothing.".into()),
                    None,
                );
            }
            // RETURNING the rows as stored, and counted before: as for the registered table's
            // UPDATE below (attacker round 15: a BEFORE UPDATE trigger of the table under it
            // kept its column's value).
            first.push((
                member,
                format!("SELECT pg_catalog.count(*) FROM ONLY {member_name} t WHERE {predicate}"),
                anonymizing_update(&format!("ONLY {member_name}"), member, &extra, &predicate),
            ));
        }
    }
    let cleared_names = attnames(reg.rel, &plan.cleared);
    let sql = if anonymize {
        // RETURNING the row as stored: an owner's trigger that put a value back, or moved one
        // into a kept column, is seen.
        anonymizing_update(&reg.table, reg.rel, &cleared_names, &predicate)
    } else {
        format!("DELETE FROM {} t WHERE {predicate}", reg.table)
    };
    // Whether the caller may erase is checked first, as the caller; the statement then runs as
    // the table's owner, restricted, like the export's reads.
    let privilege = if anonymize { "UPDATE" } else { "DELETE" };
    if !has_table_privilege(reg.rel, privilege) || !may_read_identifier(reg) {
        raise_full(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "erasing the subject's rows in {} needs {privilege} on it, SELECT on its column {} and USAGE on its schema",
                reg.table,
                quote_ident(&reg.col)
            ),
            Some("Nothing was erased: the erasure is all or nothing.".into()),
            Some(format!(
                "The caller needs {privilege} on every registered table, SELECT on its identifier column and USAGE on its schema."
            )),
        );
    }
    // The statement runs as the owner; under the caller's own policies some of the subject's
    // rows would be hidden from it, and not erased (attacker round 6).
    if row_security_applies(reg.rel) {
        raise_full(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "erasing the subject's rows in {}: row-level security of the table applies to role {}",
                reg.table,
                role_name(role)
            ),
            Some("Its policies could hide some of the subject's rows from you, so they would not be erased. Nothing was erased: the erasure is all or nothing.".into()),
            Some("Erase as a role that row-level security does not apply to: with BYPASSRLS, or the table's owner (unless it forces row-level security).".into()),
        );
    }
    if row_security_applies_to_owner(reg.rel) {
        raise_full(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("cannot erase the subject's rows in {}: {FORCED_ROW_SECURITY}", reg.table),
            Some("The erasure runs as the table's owner, whose policies could hide some of the subject's rows. Nothing was erased: the erasure is all or nothing.".into()),
            Some("The table's owner must ALTER TABLE ... NO FORCE ROW LEVEL SECURITY.".into()),
        );
    }
    // The rows there before the statement: it must delete or anonymize every one (attacker
    // round 14: an owner's trigger cancelled the delete and cleared the identifier instead, and
    // the search afterwards found nothing).
    let found = matching_rows(reg, &search);
    let (mut kept_values, mut child_rows_kept) = (false, false);
    let rows = as_owner_of(reg, "erasing the subject's rows in", || {
        crate::audit::row::erasing_in(reg.rel, || {
            // Counted as the final search counts (row_security off: a policy the owner forced
            // meanwhile fails the count instead of hiding rows from it).
            let before: Vec<i64> = first
                .iter()
                .map(|(_, count, _)| {
                    without_row_security(|| {
                        Spi::get_one_with_args::<i64>(count, &[bound.as_str().into()])
                            .or_spi_failed("")
                            .unwrap_or(0)
                    })
                })
                .collect();
            Spi::connect_mut(|client| {
                for ((member, _, statement), before) in first.iter().zip(before) {
                    let done = erasure_guard::own_update(*member, || {
                        client
                            .update(statement, None, &[bound.as_str().into()])
                            .or_spi_failed("")
                    });
                    let cleared = done.len() as i64;
                    if done
                        .into_iter()
                        .any(|r| r.get::<bool>(1).ok().flatten() != Some(true))
                    {
                        kept_values = true;
                    }
                    if cleared < before {
                        child_rows_kept = true;
                    }
                }
                let mut run = || client.update(&sql, None, &[bound.as_str().into()]);
                let done = if anonymize {
                    erasure_guard::own_update(reg.rel, run)
                } else {
                    run()
                }
                .unwrap_or_else(|e| {
                    raise_full(
                        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                        format!("erasing the subject's rows in {} failed: {e}", reg.table),
                        Some("Nothing was erased: the erasure is all or nothing.".into()),
                        Some(format!(
                            "The caller needs {privilege} on every registered table."
                        )),
                    )
                });
                let rows = done.len();
                if anonymize
                    && done
                        .into_iter()
                        .any(|r| r.get::<bool>(1).ok().flatten() != Some(true))
                {
                    kept_values = true;
                }
                rows
            })
        })
    });
    if (rows as i64) < found || kept_values || child_rows_kept {
        raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("the subject's rows in {} were not all erased", reg.table),
            Some(format!(
                "{found} row(s) matched and {rows} were {}{}{}: a trigger or rule of the table's owner kept them. Nothing was erased: the erasure is all or nothing.",
                if anonymize { "anonymized" } else { "deleted" },
                if kept_values { ", some with values put back" } else { "" },
                if child_rows_kept { ", and rows of a table under it were not all anonymized" } else { "" }
            )),
            Some("The table's owner must remove the code that keeps them.".into()),
        );
    }
    // The owner's triggers, rules and policies decide what the statement really did (a trigger
    // put the row back, a rule did nothing instead): the receipt must not claim an erasure the
    // table does not show (attacker round 7).
    require_erased(
        reg,
        plans
            .iter()
            .find(|(id, _)| *id == reg.ident())
            .map(|(_, p)| p)
            .expect("planned above"),
    );
    Some(json!({
        "table": reg.table,
        "identifier_column": reg.col,
        "action": reg.on_forget,
        "rows": rows,
    }))
}

/// All or nothing: a table the erasure cannot search fails it (attacker round 6: it was skipped
/// with a WARNING, and the subject's rows stayed).
pub(super) fn require_searchable(reg: &Registration) {
    if let Some(reason) = unsearchable(reg) {
        raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("cannot erase the subject's rows in {}: {reason}", reg.table),
            Some("Nothing was erased: the erasure is all or nothing.".into()),
            Some(format!(
                "The table's owner must change the column back, or register another column and unregister this one with encml.unregister_subject_column('{}', '{}').",
                reg.table.replace('\'', "''"),
                reg.col.replace('\'', "''")
            )),
        );
    }
}

/// Fails the erasure if rows of the subject remain in the registered column (read as the
/// table's owner, who sees them all unless it forces row-level security on itself).
pub(super) fn require_erased(reg: &Registration, plan: &Plan) {
    require_searchable(reg);
    let Some(search) = &plan.search else { return };
    let left = matching_rows(reg, search);
    if left > 0 {
        raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("the subject's rows in {} remain after the erasure", reg.table),
            Some(format!(
                "{left} row(s) still match after the erasure: a trigger, rule or policy of a table's owner kept or restored them. Nothing was erased: the erasure is all or nothing.",
            )),
            Some("The table's owner must remove the code that keeps them.".into()),
        );
    }
}

/// How many rows of the registered table match the subject, read as the table's owner with
/// row_security off.
fn matching_rows(reg: &Registration, search: &Search) -> i64 {
    let (predicate, bound) = (search.on(reg), &search.bound);
    as_owner_of(reg, "checking the erasure in", || {
        without_row_security(|| {
            Spi::get_one_with_args::<i64>(
                &format!(
                    "SELECT pg_catalog.count(*) FROM {} t WHERE {predicate}",
                    reg.table
                ),
                &[bound.as_str().into()],
            )
            .or_spi_failed("")
            .unwrap_or(0)
        })
    })
}

/// Runs `f` (a count of the subject's rows) with row_security off. Policies the owner forced on
/// itself meanwhile (by an earlier step's code) would hide rows from the count (attacker round
/// 10): with row_security off, Postgres refuses the query instead of filtering it, and the
/// erasure fails. (Only for the count: the owners' code the erasure runs reads its other tables
/// as Postgres would.)
fn without_row_security<R>(f: impl FnOnce() -> R) -> R {
    let was = Spi::get_one::<String>("SELECT pg_catalog.current_setting('row_security')")
        .or_spi_failed("")
        .unwrap_or_else(|| "on".into());
    Spi::run("SELECT pg_catalog.set_config('row_security', 'off', true)").or_spi_failed("");
    let result = f();
    Spi::run_with_args(
        "SELECT pg_catalog.set_config('row_security', $1, true)",
        &[was.as_str().into()],
    )
    .or_spi_failed("");
    result
}
