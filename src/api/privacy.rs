//! Privacy budgets: set by privacy admins, read by the analyst they belong to. Charges are made
//! by the dp aggregates (privacy/dp_aggregates.rs) through `privacy::charge`.

use crate::events;
use crate::pg::catalog_reads::{arg, oid_arg, select_one};
use crate::pg::errors::raise;
use crate::pg::errors::OrSpiFailed;
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

/// Sets the total budget of an analyst in a scope (what was spent stays spent).
#[pg_extern(volatile, parallel_unsafe)]
fn set_privacy_budget(
    analyst: Option<RegRole>,
    epsilon: Option<f64>,
    delta: default!(Option<f64>, "0"),
    scope: default!(Option<&str>, "'default'"),
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
    as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO encml.privacy_budgets (analyst, scope, epsilon_total, delta_total, set_by) \
             VALUES ($1::regrole, $2, $3, $4, $5::regrole) \
             ON CONFLICT (analyst, scope) DO UPDATE \
                SET epsilon_total = EXCLUDED.epsilon_total, delta_total = EXCLUDED.delta_total, \
                    set_by = EXCLUDED.set_by, set_at = now()",
            &[oid_arg(analyst), scope.into(), epsilon.into(), delta.into(), oid_arg(by)],
        )
        .or_spi_failed("privacy budget update failed")
    });
    events::record(
        "set_privacy_budget",
        None,
        json!({ "analyst": role_name(analyst), "epsilon": epsilon, "delta": delta, "scope": scope }),
    );
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
