//! Privacy budgets: set by privacy admins, read by the analyst they belong to. Charges are made
//! by the dp aggregates (privacy/dp_aggregates.rs) through `privacy::charge`.

use crate::events;
use crate::pg::catalog_reads::{arg, oid_arg, select_one};
use crate::pg::errors::OrSpiFailed;
use crate::pg::errors::{raise, raise_full};
use crate::pg::identity::as_extension_owner;
use crate::pg::roles::{caller, has_privs_of_role_named, is_superuser, role_name, PRIVACY_ADMIN};
use crate::types::reg::RegRole;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use serde_json::json;

fn is_privacy_admin(role: pg_sys::Oid) -> bool {
    is_superuser(role) || has_privs_of_role_named(role, PRIVACY_ADMIN)
}

fn scope_arg(scope: Option<&str>) -> &str {
    match scope {
        Some(s) if !s.is_empty() && s.len() < 64 => s,
        _ => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a privacy scope needs 1 to 63 bytes",
        ),
    }
}

/// `encml.set_privacy_budget(analyst, epsilon, delta, scope [, accounting])`, a C function of
/// its own (declared in sql/schema/dp.sql) under the symbol 0.1.0's four-argument declaration
/// also calls: an installed 0.1.0 schema keeps working with this library (its call has four
/// arguments, and the accounting is then 'approx').
///
/// # Safety
/// `fcinfo` is the call of that SQL function: regrole, float8, float8, text and, from 0.2.0 on,
/// text.
unsafe fn set_privacy_budget_call(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    use pgrx::fcinfo::{pg_getarg, pg_return_void};
    // SAFETY: fcinfo is the running call's (the contract); each argument is read as the type
    // its SQL declaration gives (regrole is an oid), bounds-checked by pgrx against nargs, and
    // the fifth only when the declaration has it.
    unsafe {
        let analyst = pg_getarg::<pg_sys::Oid>(fcinfo, 0).map(RegRole);
        let epsilon = pg_getarg::<f64>(fcinfo, 1);
        let delta = pg_getarg::<f64>(fcinfo, 2);
        let scope = pg_getarg::<&str>(fcinfo, 3);
        let accounting = if (*fcinfo).nargs > 4 {
            pg_getarg::<&str>(fcinfo, 4)
        } else {
            Some("approx")
        };
        set_privacy_budget(analyst, epsilon, delta, scope, accounting);
        pg_return_void()
    }
}

crate::pg::c_functions! {
    /// encml.set_privacy_budget(regrole, float8, float8, text [, text])
    set_privacy_budget_wrapper, pg_finfo_set_privacy_budget_wrapper => set_privacy_budget_call;
}

/// Sets the total budget of an analyst in a scope (what was spent stays spent), composed by
/// `accounting`.
fn set_privacy_budget(
    analyst: Option<RegRole>,
    epsilon: Option<f64>,
    delta: Option<f64>,
    scope: Option<&str>,
    accounting: Option<&str>,
) {
    crate::pg::recovery::refuse_during_recovery("encml.set_privacy_budget()");
    let by = caller();
    if !is_privacy_admin(by) {
        events::refused("set_privacy_budget_refused", json!({}));
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied to set privacy budgets: needs superuser or {PRIVACY_ADMIN}"),
        );
    }
    let Some(RegRole(analyst)) = analyst else {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "analyst must not be NULL",
        )
    };
    let epsilon = epsilon
        .filter(|e| e.is_finite() && *e >= 0.0)
        .unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "the epsilon budget must be finite and at least 0",
            )
        });
    let delta = delta.filter(|d| (0.0..1.0).contains(d)).unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "the delta budget must be in [0, 1)",
        )
    });
    let scope = scope_arg(scope);
    let accounting = accounting.unwrap_or("approx");
    // A schema older than 0.2.0 (the library updated, the schema not yet) keeps 'approx' budgets
    // only, in its own columns.
    let accounting_columns =
        crate::pg::schema_version::at_least(crate::pg::schema_version::Release(0, 2, 0));
    if !accounting_columns && accounting != "approx" {
        crate::pg::schema_version::require(
            crate::pg::schema_version::Release(0, 2, 0),
            "a budget with accounting other than 'approx'",
        );
    }
    let rho_total = match accounting {
        "approx" => None,
        "pure" if delta == 0.0 => None,
        "pure" => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a pure epsilon-DP budget has no delta: pass delta => 0",
        ),
        // Half of delta converts rho to (epsilon, delta); noisy thresholds spend the other half.
        "zcdp" if epsilon == 0.0 => Some(0.0),
        "zcdp" if delta > 0.0 => Some(
            encml_dp::accounting::rho_budget(epsilon, delta / 2.0)
                .unwrap_or_else(|e| crate::pg::errors::dp_error(e)),
        ),
        "zcdp" => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a zCDP budget needs a delta in (0, 1): rho converts to (epsilon, delta) only with one",
        ),
        other => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("accounting must be 'pure', 'approx' or 'zcdp', not {other:?}"),
        ),
    };
    as_extension_owner(|| {
        // Spent amounts are kept in one accounting's terms: a budget that spent anything keeps
        // its accounting (a new scope starts another).
        let changes_spent = accounting_columns && select_one::<bool>(
            "SELECT accounting <> $3 AND (epsilon_spent > 0 OR delta_spent > 0 OR rho_spent > 0) \
               FROM encml.privacy_budgets WHERE analyst = $1::regrole AND scope = $2",
            &[arg(analyst), arg(scope), arg(accounting)],
        )
        .unwrap_or(false);
        if changes_spent {
            raise_full(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!(
                    "the budget of {} in scope \"{scope}\" has spent under another accounting",
                    role_name(analyst)
                ),
                None,
                Some("Set the new accounting in a new scope (encml.privacy_scope).".into()),
            );
        }
        Spi::run_with_args(
            if accounting_columns {
                "INSERT INTO encml.privacy_budgets \
                        (analyst, scope, epsilon_total, delta_total, set_by, accounting, rho_total) \
                 VALUES ($1::regrole, $2, $3, $4, $5::regrole, $6, $7) \
                 ON CONFLICT (analyst, scope) DO UPDATE \
                    SET epsilon_total = EXCLUDED.epsilon_total, delta_total = EXCLUDED.delta_total, \
                        set_by = EXCLUDED.set_by, set_at = now(), accounting = EXCLUDED.accounting, \
                        rho_total = EXCLUDED.rho_total"
            } else {
                "INSERT INTO encml.privacy_budgets (analyst, scope, epsilon_total, delta_total, set_by) \
                 VALUES ($1::regrole, $2, $3, $4, $5::regrole) \
                 ON CONFLICT (analyst, scope) DO UPDATE \
                    SET epsilon_total = EXCLUDED.epsilon_total, delta_total = EXCLUDED.delta_total, \
                        set_by = EXCLUDED.set_by, set_at = now()"
            },
            &[
                oid_arg(analyst),
                scope.into(),
                epsilon.into(),
                delta.into(),
                oid_arg(by),
                accounting.into(),
                rho_total.into(),
            ],
        )
        .or_spi_failed("privacy budget update failed")
    });
    events::record(
        "set_privacy_budget",
        None,
        json!({ "analyst": role_name(analyst), "epsilon": epsilon, "delta": delta, "scope": scope,
                "accounting": accounting, "rho": rho_total }),
    );
}

/// The epsilon that a total `rho` of zCDP amounts to at `delta` (OpenDP's conversion): what a
/// zcdp budget's spent rho means in (epsilon, delta).
#[pg_extern(immutable, strict, parallel_safe)]
fn zcdp_epsilon(rho: f64, delta: f64) -> f64 {
    encml_dp::accounting::epsilon_of(rho, delta).unwrap_or_else(|e| crate::pg::errors::dp_error(e))
}

/// The epsilon an analyst has left in a scope; NULL without a budget. Analysts read their own,
/// privacy admins anyone's.
#[pg_extern(stable, parallel_safe)]
fn privacy_budget_remaining(
    analyst: default!(Option<RegRole>, "quote_ident(current_user)::regrole"),
    scope: default!(Option<&str>, "'default'"),
) -> Option<f64> {
    let me = caller();
    let analyst = analyst.map(|RegRole(r)| r).unwrap_or(me);
    if analyst != me && !is_privacy_admin(me) {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "permission denied to read the privacy budget of {}",
                role_name(analyst)
            ),
        );
    }
    let scope = scope_arg(scope);
    as_extension_owner(|| {
        select_one::<f64>(
            "SELECT greatest(epsilon_total - epsilon_spent, 0) FROM encml.privacy_budgets \
              WHERE analyst = $1::regrole AND scope = $2",
            &[arg(analyst), arg(scope)],
        )
    })
}
