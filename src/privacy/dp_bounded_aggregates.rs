//! Differential-privacy aggregates whose state is an exact summary of float values
//! (`encml_dp::bounded::Bounded`): dp_percentile, dp_percentiles, dp_median (a histogram over a
//! candidate grid) and dp_var_pop, dp_stddev_pop (moments).
//!
//! The same guarantees as `dp_aggregates`: the state is `internal`, only the final function sees
//! it and adds noise once, after the executor start charged the query; the support functions
//! serve only the extension's own aggregates (`own`); combine, serialize and deserialize (those
//! of `dp_aggregates`, generic over the state) make them parallel. The functions are bound by C
//! symbol in sql/schema/dp.sql.

use crate::pg::c_functions;
use crate::pg::errors::dp_error;
use crate::privacy::dp_aggregates::{
    agg_arg, agg_context, agg_datum, agg_ref, combine, deserialize, param_args,
    pay_further_evaluation, prepaid_release, row_unit, serialize, Agg,
};
use crate::privacy::own;
use crate::privacy::params::{alphas_for, params_at, required, RowArgs};
use crate::privacy::start;
use encml_dp::bounded::{self, Bounded, Exact};
use encml_dp::moments::Moments;
use encml_dp::params::Params;
use encml_dp::quantile::Histogram;
use encml_dp::DpError;
use pgrx::datum::IntoDatum;
use pgrx::fcinfo::{pg_arg_is_null, pg_getarg, pg_return_null};
use pgrx::pg_sys;
use pgrx::prelude::*;

/// Where a bounded aggregate's arguments are: the percentile (if any), then lower, upper and
/// epsilon (delta, the privacy unit and max_rows_per_unit follow epsilon, as everywhere).
#[derive(Clone, Copy)]
pub(super) struct Layout {
    kind: own::DpAggregate,
    lower_at: usize,
}

impl Layout {
    fn epsilon_at(self) -> usize {
        self.lower_at + 2
    }
}

/// Adds one row of a bounded aggregate.
///
/// # Safety
/// `fcinfo` must be the call of one of this module's transition functions for `A`, with the
/// arguments its SQL declaration gives: argument 0 NULL or the `Agg<A>` an earlier call made,
/// argument 1 the float8 value, then the layout's.
unsafe fn transition<A: Exact>(fcinfo: pg_sys::FunctionCallInfo, layout: Layout) -> pg_sys::Datum {
    // SAFETY: fcinfo is the transition call's (the contract), as agg_arg requires.
    unsafe {
        let agg = agg_arg::<Bounded<A>>(fcinfo);
        // Whose aggregate this is was checked when the query started (`start`).
        start::require_preloaded();
        add_row(fcinfo, agg, layout);
        agg_datum(agg)
    }
}

/// Adds the row of transition call `fcinfo` to `agg` (a NULL value or unit adds nothing).
///
/// # Safety
/// `fcinfo` must be the call of a bounded aggregate's transition function (this module's or
/// `dp_summary_aggregates`'), argument 1 the float8 value, then the layout's.
pub(super) unsafe fn add_row<A: Exact>(
    fcinfo: pg_sys::FunctionCallInfo,
    agg: &mut Agg<Bounded<A>>,
    layout: Layout,
) {
    // SAFETY: fcinfo is a transition call (the contract); argument reads are bounds-checked by
    // pgrx and of the types the SQL declaration gives.
    unsafe {
        let Some(value) = pg_getarg::<f64>(fcinfo, 1) else {
            return;
        };
        let unit = row_unit(fcinfo, layout.epsilon_at());
        if unit.null {
            return;
        }
        // The parameters from the percentile (or the bounds) on.
        let args = param_args(fcinfo, 2, unit.at);
        let unchanged = matches!((&args, &agg.fixed_args), (Some(a), Some(b)) if a.same_as(b));
        let added = if unchanged {
            agg.state.add_under_fixed_params(value, unit.hash)
        } else {
            let row = RowArgs::new(fcinfo);
            let lower: f64 = required(&row, layout.lower_at, "lower");
            let upper: f64 = required(&row, layout.lower_at + 1, "upper");
            let params: Params<f64> = params_at(&row, layout.epsilon_at(), lower, upper);
            let alphas = alphas_for(layout.kind, &row);
            agg.fixed_args = args;
            agg.state.add(params, &alphas, value, unit.hash)
        };
        added.unwrap_or_else(|e| dp_error(e));
    }
}

/// Releases `release(state)` after the executor start charged it: a group without rows takes the
/// parameters and percentiles charged; a group whose differ is refused.
///
/// # Safety
/// Only as one of this module's final C functions, `A` matching the aggregate's transition
/// functions: `fcinfo` is the call's.
unsafe fn finish<A: Exact, R: IntoDatum>(
    fcinfo: pg_sys::FunctionCallInfo,
    release: impl FnOnce(&Bounded<A>) -> Result<Option<R>, DpError>,
) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract). agg_context and prepaid_release (through
    // own::require) refuse any caller but our own aggregate, so a non-NULL argument 0 is its
    // Agg<Bounded<A>>, alive in the aggregate context for the call.
    unsafe {
        agg_context(fcinfo);
        let counted = (!pg_arg_is_null(fcinfo, 0)).then(|| &agg_ref::<Bounded<A>>(fcinfo, 0).state);
        release_bounded(fcinfo, counted, release)
    }
}

/// Releases `release(counted)` after the executor start charged it (see `finish`).
///
/// # Safety
/// `fcinfo` must be the call of a final function of one of our bounded aggregates, inside it.
pub(super) unsafe fn release_bounded<A: Exact, R: IntoDatum>(
    fcinfo: pg_sys::FunctionCallInfo,
    counted: Option<&Bounded<A>>,
    release: impl FnOnce(&Bounded<A>) -> Result<Option<R>, DpError>,
) -> pg_sys::Datum {
    // SAFETY: fcinfo is a final function's call of our aggregate (the contract).
    unsafe {
        let prepaid = prepaid_release(fcinfo);
        let counted = counted.filter(|s| s.params.is_some());
        let empty;
        let s = match counted {
            Some(s) => s,
            None => {
                let params = Params::<f64>::from_key(&prepaid.key).unwrap_or_else(|e| dp_error(e));
                empty =
                    Bounded::<A>::empty(params, &prepaid.alphas).unwrap_or_else(|e| dp_error(e));
                &empty
            }
        };
        let params = s.params.as_ref().expect("parameters");
        if prepaid.key != params.key() || !bounded::same_alphas(&prepaid.alphas, &s.alphas) {
            dp_error(DpError::ParameterChanged(
                "epsilon, delta, the bounds, the percentiles and max_rows_per_unit",
            ));
        }
        let share;
        let s = if prepaid.groups_per_unit > 1 {
            share = s
                .per_group(prepaid.groups_per_unit)
                .unwrap_or_else(|e| dp_error(e));
            &share
        } else {
            s
        };
        let value = release(s).unwrap_or_else(|e| dp_error(e));
        pay_further_evaluation(&prepaid, params.loss);
        match value {
            Some(v) => v.into_datum().expect("a result"),
            None => pg_return_null(fcinfo),
        }
    }
}

/// One percentile: the first (only) of the released list.
pub(super) fn release_one(state: &Bounded<Histogram>) -> Result<Option<f64>, DpError> {
    Ok(bounded::release_percentiles(state)?.and_then(|v| v.first().copied()))
}

pub(super) const PERCENTILE: Layout = Layout {
    kind: own::DpAggregate::Percentile,
    lower_at: 3,
};
pub(super) const PERCENTILES: Layout = Layout {
    kind: own::DpAggregate::Percentiles,
    lower_at: 3,
};
pub(super) const MEDIAN: Layout = Layout {
    kind: own::DpAggregate::Median,
    lower_at: 2,
};
pub(super) const MOMENTS: Layout = Layout {
    kind: own::DpAggregate::VarPop,
    lower_at: 2,
};

c_functions! {
    /// dp_percentile(value float8, p float8, lower, upper, epsilon [, delta [, privacy_unit, max_rows_per_unit]])
    encml_dp_percentile_trans, pg_finfo_encml_dp_percentile_trans =>
        // SAFETY: `f` is the FunctionCallInfo Postgres passed to this C function, the transition
        // of dp_percentile as sql/schema/dp.sql declares it.
        |f| unsafe { transition::<Histogram>(f, PERCENTILE) };
    /// dp_percentiles(value float8, p float8[], lower, upper, epsilon [, ...])
    encml_dp_percentiles_trans, pg_finfo_encml_dp_percentiles_trans =>
        // SAFETY: as above, for dp_percentiles.
        |f| unsafe { transition::<Histogram>(f, PERCENTILES) };
    /// dp_median(value float8, lower, upper, epsilon [, ...])
    encml_dp_median_trans, pg_finfo_encml_dp_median_trans =>
        // SAFETY: as above, for dp_median.
        |f| unsafe { transition::<Histogram>(f, MEDIAN) };
    /// dp_var_pop and dp_stddev_pop(value float8, lower, upper, epsilon [, ...])
    encml_dp_moments_trans, pg_finfo_encml_dp_moments_trans =>
        // SAFETY: as above, for dp_var_pop and dp_stddev_pop.
        |f| unsafe { transition::<Moments>(f, MOMENTS) };
    encml_dp_histogram_combine, pg_finfo_encml_dp_histogram_combine => combine::<Bounded<Histogram>>;
    encml_dp_moments_combine, pg_finfo_encml_dp_moments_combine => combine::<Bounded<Moments>>;
    encml_dp_histogram_serialize, pg_finfo_encml_dp_histogram_serialize => serialize::<Bounded<Histogram>>;
    encml_dp_moments_serialize, pg_finfo_encml_dp_moments_serialize => serialize::<Bounded<Moments>>;
    encml_dp_histogram_deserialize, pg_finfo_encml_dp_histogram_deserialize => deserialize::<Bounded<Histogram>>;
    encml_dp_moments_deserialize, pg_finfo_encml_dp_moments_deserialize => deserialize::<Bounded<Moments>>;
    encml_dp_percentile_final, pg_finfo_encml_dp_percentile_final =>
        // SAFETY: `f` is this C function's call, the final function of dp_percentile or
        // dp_median (finish checks the aggregate).
        |f| unsafe { finish::<Histogram, f64>(f, release_one) };
    encml_dp_percentiles_final, pg_finfo_encml_dp_percentiles_final =>
        // SAFETY: as above, for dp_percentiles.
        |f| unsafe { finish::<Histogram, Vec<f64>>(f, bounded::release_percentiles) };
    encml_dp_var_pop_final, pg_finfo_encml_dp_var_pop_final =>
        // SAFETY: as above, for dp_var_pop.
        |f| unsafe { finish::<Moments, f64>(f, bounded::release_var_pop) };
    encml_dp_stddev_pop_final, pg_finfo_encml_dp_stddev_pop_final =>
        // SAFETY: as above, for dp_stddev_pop.
        |f| unsafe { finish::<Moments, f64>(f, bounded::release_stddev_pop) };
}
