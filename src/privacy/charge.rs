//! Privacy charges, recorded before any noisy value is released and outside the caller's
//! transaction: a short-lived background worker locks the analyst's budget row, records the
//! charge (granted or refused) in `encml.privacy_charges` and commits, while the caller waits.
//! So a charge survives the caller's ROLLBACK or a later error, works while the caller is in
//! parallel mode (a Finalize Aggregate above a Gather) where it may not write, and concurrent
//! sessions of one analyst serialize on the budget row instead of overspending. Request and
//! answer travel in a dynamic shared memory segment; the answer is written after the commit.

use crate::pg::detached_worker;
use crate::pg::errors::{raise, raise_full};
use crate::pg::roles::is_superuser;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use sha2::{Digest, Sha256};

const SCOPE_MAX: usize = 63;
const PENDING: u32 = 0;
const GRANTED: u32 = 1;
const REFUSED: u32 = 2;

/// The shared-memory slot of one charge, sent to the worker and back as its bytes. Plain old
/// data without padding (bytemuck checks it), so every byte sent is initialised.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Slot {
    /// Oids of the extension owner and of the analyst charged.
    owner: u32,
    analyst: u32,
    epsilon: f64,
    delta: f64,
    /// The charge under a zcdp budget: rho, and the delta of releases that are not zCDP.
    rho: f64,
    rho_delta: f64,
    // Written by the worker, after its commit.
    remaining_epsilon: f64,
    remaining_delta: f64,
    remaining_rho: f64,
    scope_len: u32,
    outcome: u32,
    /// Which part of a refused charge did not fit: SHORT_EPSILON | SHORT_DELTA.
    short: u32,
    /// Booleans as 0 or 1: the analyst is a superuser; (from the worker) it has a budget.
    superuser: u8,
    has_budget: u8,
    padding: [u8; 2],
    scope: [u8; SCOPE_MAX],
    query_hash: [u8; 64],
    tail_padding: [u8; 1],
}

const SHORT_EPSILON: u32 = 1;
const SHORT_DELTA: u32 = 2;
const SHORT_RHO: u32 = 4;

/// What the ledger said.
pub struct Granted;

/// Charges `epsilon` (and `delta`) of one Laplace or Gaussian release (or of releases that cost
/// no more, which holds for splits of the same loss) to the analyst's budget: `charge_cost`.
pub fn charge(epsilon: f64, delta: f64) -> Granted {
    let cost = encml_dp::accounting::cost_of_parts(1, epsilon, delta)
        .unwrap_or_else(|e| crate::pg::errors::dp_error(e));
    charge_cost(cost)
}

/// Charges `cost` to the analyst's budget in the current scope, in the budget's accounting
/// (its epsilon and delta, or its rho), or raises ERROR 42501 (no budget, or not enough left)
/// after the refusal is recorded.
pub fn charge_cost(cost: encml_dp::accounting::Cost) -> Granted {
    let encml_dp::accounting::Cost {
        epsilon,
        delta,
        rho,
        rho_delta,
    } = cost;
    // SAFETY: no arguments; reads the shared xlog control state, attached in every backend that
    // runs a query (charges are taken inside one), through pgrx's guarded binding.
    if unsafe { pg_sys::RecoveryInProgress() } {
        raise_full(
            PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            "dp aggregates cannot run on a standby",
            Some(
                "Their privacy charge must be recorded on the primary before a result is released."
                    .into(),
            ),
            None,
        );
    }
    // The analyst is the session's outer role (its login role, or what it SET ROLE to), not the
    // owner of a SECURITY DEFINER function it calls: a DBA's definer wrapper around a dp query
    // charges the analyst who called it.
    // SAFETY: no arguments; reads the backend's own role state, set since InitPostgres (this
    // runs inside a query), through pgrx's guarded binding.
    let analyst = unsafe { pg_sys::GetOuterUserId() };
    let scope = crate::pg::gucs::string(&crate::pg::gucs::PRIVACY_SCOPE)
        .unwrap_or_else(|| "default".into());
    if scope.len() > SCOPE_MAX {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("encml.privacy_scope may have at most {SCOPE_MAX} bytes"),
        );
    }
    let mut slot = Slot {
        owner: crate::pg::identity::extension_owner().to_u32(),
        analyst: analyst.to_u32(),
        superuser: is_superuser(analyst) as u8,
        epsilon,
        delta,
        rho,
        rho_delta,
        scope_len: scope.len() as u32,
        scope: [0; SCOPE_MAX],
        query_hash: [0; 64],
        outcome: PENDING,
        remaining_epsilon: 0.0,
        remaining_delta: 0.0,
        remaining_rho: 0.0,
        has_budget: 0,
        short: 0,
        padding: [0; 2],
        tail_padding: [0; 1],
    };
    slot.scope[..scope.len()].copy_from_slice(scope.as_bytes());
    slot.query_hash
        .copy_from_slice(hex::encode(Sha256::digest(query_text())).as_bytes());

    let bytes = bytemuck::bytes_of(&slot);
    let answer = match detached_worker::run(
        "pg_encrypt_ml privacy charge",
        "encml_charge_worker_main",
        pg_sys::Oid::from(slot.owner),
        bytes,
    ) {
        // (`run` returns the request as the worker overwrote it with the Slot `record` returned,
        // or untouched if it failed: size_of::<Slot>() bytes.)
        Ok(back) => bytemuck::pod_read_unaligned::<Slot>(&back),
        Err(detached_worker::Failure::NoSlot) => raise_full(
            PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
            "no background worker slot free to record the privacy charge",
            None,
            Some("Raise max_worker_processes, or run fewer dp queries at once.".into()),
        ),
        Err(failure) => crate::pg::errors::internal(format!(
            "the privacy charge worker did not finish ({failure:?})"
        )),
    };
    match answer.outcome {
        GRANTED => {
            crate::pg::pause::point("charge_granted");
            Granted
        }
        REFUSED if answer.has_budget == 0 => raise_full(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "role {} has no privacy budget in scope \"{scope}\"",
                crate::pg::roles::role_name(analyst)
            ),
            None,
            Some("A privacy admin grants one with encml.set_privacy_budget().".into()),
        ),
        REFUSED => {
            let short = match (
                answer.short & SHORT_EPSILON != 0,
                answer.short & SHORT_DELTA != 0,
            ) {
                (true, true) => "epsilon and delta",
                (false, true) => "delta",
                _ if answer.short & SHORT_RHO != 0 => "rho (zCDP)",
                _ => "epsilon",
            };
            raise_full(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("privacy budget exhausted in scope \"{scope}\": not enough {short} left"),
                Some(if answer.short & SHORT_RHO != 0 {
                    format!(
                        "This query needs rho {rho} (zCDP; epsilon {epsilon} and delta {delta} by basic composition); rho {} remains.",
                        answer.remaining_rho
                    )
                } else {
                    format!(
                        "This query needs epsilon {epsilon} and delta {delta}; epsilon {} and delta {} remain.",
                        answer.remaining_epsilon, answer.remaining_delta,
                    )
                }),
                None,
            )
        }
        _ => crate::pg::errors::internal(
            "the privacy charge could not be recorded; no result is released (see the server log)",
        ),
    }
}

fn query_text() -> Vec<u8> {
    // SAFETY: debug_query_string is a backend global (single-threaded backend), NULL or the
    // NUL-terminated text of the statement being executed, which outlives this call; it is
    // copied at once.
    unsafe {
        let q = pg_sys::debug_query_string;
        if q.is_null() {
            Vec::new()
        } else {
            std::ffi::CStr::from_ptr(q).to_bytes().to_vec()
        }
    }
}

/// The worker: records the charge in its own transaction and answers in the same slot.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn encml_charge_worker_main(arg: pg_sys::Datum) {
    detached_worker::serve(arg, |request| {
        // (Started only by `charge`, whose payload is the bytes of a Slot.)
        let slot: Slot = bytemuck::pod_read_unaligned(&request);
        let answer = record(slot);
        bytemuck::bytes_of(&answer).to_vec()
    });
}

/// The analyst's budget row, locked.
struct Budget {
    eps_left: f64,
    delta_left: f64,
    eps_total: f64,
    delta_total: f64,
    zcdp: bool,
    pure: bool,
    rho_left: f64,
    rho_total: f64,
    rho_spent: f64,
}

fn record(mut s: Slot) -> Slot {
    let scope = String::from_utf8_lossy(&s.scope[..s.scope_len as usize]).into_owned();
    let hash = String::from_utf8_lossy(&s.query_hash).into_owned();
    Spi::connect_mut(|client| {
        client
            .update("SET LOCAL search_path = pg_catalog, pg_temp", None, &[])
            .expect("set search_path");
        let analyst = || crate::pg::catalog_reads::oid_arg(pg_sys::Oid::from(s.analyst));
        // A schema older than 0.2.0 (the library updated, the schema not yet) has no accounting
        // columns: its budgets are all 'approx'.
        let accounting_columns =
            crate::pg::schema_version::at_least(crate::pg::schema_version::Release(0, 2, 0));
        let budget = client
            .update(
                if accounting_columns {
                    "SELECT epsilon_total - epsilon_spent, delta_total - delta_spent, epsilon_total, \
                            delta_total, accounting, coalesce(rho_total, 0) - rho_spent, \
                            coalesce(rho_total, 0), rho_spent \
                       FROM encml.privacy_budgets WHERE analyst = $1::regrole AND scope = $2 FOR UPDATE"
                } else {
                    "SELECT epsilon_total - epsilon_spent, delta_total - delta_spent, epsilon_total, \
                            delta_total, 'approx'::text, 0::float8, 0::float8, 0::float8 \
                       FROM encml.privacy_budgets WHERE analyst = $1::regrole AND scope = $2 FOR UPDATE"
                },
                Some(1),
                &[analyst(), scope.as_str().into()],
            )
            .expect("read the budget")
            .next()
            .map(|row| {
                let f = |i: usize| row.get::<f64>(i).ok().flatten().unwrap_or(0.0);
                let accounting = row.get::<String>(5).ok().flatten().unwrap_or_default();
                Budget {
                    eps_left: f(1),
                    delta_left: f(2),
                    eps_total: f(3),
                    delta_total: f(4),
                    zcdp: accounting == "zcdp",
                    pure: accounting == "pure",
                    rho_left: f(6),
                    rho_total: f(7),
                    rho_spent: f(8),
                }
            });
        let mut rho_charged: Option<f64> = None;
        let (granted, note) = match budget {
            None if s.superuser != 0 => (true, Some("superuser without a budget")),
            None => (false, Some("no budget")),
            Some(b) => {
                s.has_budget = 1;
                // Spent amounts are sums of decimal charges: forgive the float rounding of the
                // total only (relative to it), so a zero budget grants nothing, and a zero
                // delta budget no Gaussian release however small its delta.
                s.remaining_epsilon = b.eps_left.max(0.0);
                s.remaining_delta = b.delta_left.max(0.0);
                s.remaining_rho = b.rho_left.max(0.0);
                let (spend_epsilon, spend_delta, spend_rho) = if b.zcdp {
                    // Thresholds spend delta from the half of delta_total not converted to rho.
                    let threshold_left = b.delta_total / 2.0 - (b.delta_total - b.delta_left);
                    let rho_fits = s.rho <= b.rho_left + 1e-12 * b.rho_total;
                    let delta_fits =
                        s.rho_delta == 0.0 || s.rho_delta <= threshold_left + 1e-12 * b.delta_total;
                    s.short = (if rho_fits { 0 } else { SHORT_RHO })
                        | (if delta_fits { 0 } else { SHORT_DELTA });
                    s.remaining_delta = threshold_left.max(0.0);
                    // epsilon_spent shows what the rho spent amounts to at delta_total / 2.
                    let rho_after = b.rho_spent + s.rho;
                    let eps_after = if rho_after > 0.0 {
                        encml_dp::accounting::epsilon_of(rho_after, b.delta_total / 2.0)
                            .unwrap_or(f64::INFINITY)
                    } else {
                        0.0
                    };
                    let eps_before = b.eps_total - b.eps_left;
                    (eps_after - eps_before, s.rho_delta, s.rho)
                } else {
                    let eps_fits = s.epsilon <= b.eps_left + 1e-12 * b.eps_total;
                    let delta_fits = s.delta == 0.0
                        || (!b.pure && s.delta <= b.delta_left + 1e-12 * b.delta_total);
                    s.short = (if eps_fits { 0 } else { SHORT_EPSILON })
                        | (if delta_fits { 0 } else { SHORT_DELTA });
                    (s.epsilon, s.delta, 0.0)
                };
                if s.short == 0 {
                    client
                        .update(
                            if accounting_columns {
                                "UPDATE encml.privacy_budgets \
                                    SET epsilon_spent = epsilon_spent + $3, delta_spent = delta_spent + $4, \
                                        rho_spent = rho_spent + $5 \
                                  WHERE analyst = $1::regrole AND scope = $2"
                            } else {
                                "UPDATE encml.privacy_budgets \
                                    SET epsilon_spent = epsilon_spent + $3, delta_spent = delta_spent + $4 \
                                  WHERE analyst = $1::regrole AND scope = $2"
                            },
                            None,
                            &[
                                analyst(),
                                scope.as_str().into(),
                                spend_epsilon.into(),
                                spend_delta.into(),
                                spend_rho.into(),
                            ],
                        )
                        .expect("charge the budget");
                    s.remaining_epsilon = (b.eps_left - spend_epsilon).max(0.0);
                    s.remaining_delta = (s.remaining_delta - spend_delta).max(0.0);
                    s.remaining_rho = (b.rho_left - spend_rho).max(0.0);
                    if b.zcdp {
                        rho_charged = Some(s.rho);
                    }
                    (true, None)
                } else {
                    if b.zcdp {
                        rho_charged = Some(s.rho);
                    }
                    (false, Some("budget exhausted"))
                }
            }
        };
        client
            .update(
                if accounting_columns {
                    "INSERT INTO encml.privacy_charges \
                            (analyst, scope, epsilon, delta, query_hash, granted, note, rho) \
                     VALUES ($1::regrole, $2, $3, $4, $5, $6, $7, $8)"
                } else {
                    "INSERT INTO encml.privacy_charges \
                            (analyst, scope, epsilon, delta, query_hash, granted, note) \
                     VALUES ($1::regrole, $2, $3, $4, $5, $6, $7)"
                },
                None,
                &[
                    analyst(),
                    scope.as_str().into(),
                    s.epsilon.into(),
                    s.delta.into(),
                    hash.as_str().into(),
                    granted.into(),
                    note.into(),
                    rho_charged.into(),
                ],
            )
            .expect("record the charge");
        if !granted {
            // The refusal is a security event too, committed with the ledger row.
            let who = crate::pg::roles::role_name(pg_sys::Oid::from(s.analyst));
            let event = serde_json::json!({
                "session_role": who, "effective_role": who, "operation": "privacy_charge_refused",
                "detail": { "scope": scope, "epsilon": s.epsilon, "delta": s.delta, "note": note,
                            "severity": crate::events::severity::of("privacy_charge_refused") },
            });
            crate::audit::detached::insert_event_json(&event.to_string());
        }
        s.outcome = if granted { GRANTED } else { REFUSED };
        crate::pg::pause::point("charge_worker");
    });
    s
}
