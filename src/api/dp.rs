//! Differential-privacy aggregates: dp_count, dp_count_rows, dp_sum (float8, bigint), dp_avg.
//!
//! The state is `internal` (an `encml_dp::state::State` in the aggregate memory context), so
//! nobody can read a noise-free state: only the final function sees it, and it first records
//! the privacy charge (outside the transaction, see `privacy::charge`) and then adds noise once.
//! Transition, combine, serialize and deserialize functions make the aggregates parallel.
//! The functions are bound by C symbol in sql/schema/dp.sql: one transition function per kind serves
//! the short (epsilon), (epsilon, delta) and privacy-unit variants by its argument count.

use crate::pg::c_functions;
use crate::pg::errors::{raise, raise_full};
use crate::privacy::charge;
use crate::privacy::release::{self, Selection};
use encml_dp::params::Params;
use encml_dp::partition;
use encml_dp::state::{self, Num, State};
use encml_dp::DpError;
use pgrx::datum::IntoDatum;
use pgrx::fcinfo::{pg_arg_is_null, pg_getarg, pg_return_null};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgList, PgMemoryContexts, PgSqlErrorCode};
use std::hash::{Hash, Hasher};

pub(super) fn dp_error(e: DpError) -> ! {
    let code = match e {
        DpError::InvalidParameter(_) | DpError::ParameterChanged(_) => {
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE
        }
        DpError::CorruptState(_) => PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
        DpError::NotFinite => PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
        DpError::OpenDp(_) => PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
    };
    raise(code, e.to_string())
}

/// The aggregate memory context; refuses calls outside an aggregate and as a window function
/// (a moving window would release many noisy answers of overlapping rows).
pub(super) unsafe fn agg_context(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::MemoryContext {
    unsafe { crate::pg::aggregate::context(fcinfo, "dp aggregates", false) }
}

/// What the `internal` datum points to: the exact state, and the raw parameter arguments of the
/// row that fixed its parameters, so later rows with the same arguments skip re-validating them.
struct Agg<T: Num> {
    state: State<T>,
    fixed_args: Option<ParamArgs>,
}

impl<T: Num> Default for Agg<T> {
    fn default() -> Self {
        Agg {
            state: State::default(),
            fixed_args: None,
        }
    }
}

/// The raw datums of the parameter arguments (bounds, epsilon, delta, max rows), in order.
#[derive(Clone, Copy, Default)]
pub(super) struct ParamArgs {
    pub(super) len: usize,
    pub(super) datums: [usize; 6],
}

impl ParamArgs {
    /// Compared on every row: a plain loop over the few used slots (no memcmp call).
    #[inline]
    fn same_as(&self, other: &ParamArgs) -> bool {
        self.len == other.len && (0..self.len).all(|i| self.datums[i] == other.datums[i])
    }
}

pub(super) unsafe fn param_args(
    fcinfo: pg_sys::FunctionCallInfo,
    from: usize,
    skip: Option<usize>,
) -> Option<ParamArgs> {
    let n = unsafe { nargs(fcinfo) };
    let mut out = ParamArgs::default();
    for i in from..n {
        if Some(i) == skip {
            continue;
        }
        let d = unsafe { pgrx::fcinfo::pg_get_nullable_datum(fcinfo, i) };
        if d.isnull || out.len == out.datums.len() {
            return None;
        }
        out.datums[out.len] = d.value.value();
        out.len += 1;
    }
    Some(out)
}

/// The state in argument 0, created in the aggregate context on the first row. Only that first
/// call asks Postgres for the context (and so refuses window use): a non-NULL `internal` state
/// can only come from our own functions, inside the aggregate.
unsafe fn agg_arg<'a, T: Num>(fcinfo: pg_sys::FunctionCallInfo) -> &'a mut Agg<T> {
    unsafe {
        if pg_arg_is_null(fcinfo, 0) {
            let ctx = agg_context(fcinfo);
            &mut *PgMemoryContexts::For(ctx).leak_and_drop_on_delete(Agg::<T>::default())
        } else {
            agg_ref::<T>(fcinfo, 0)
        }
    }
}

fn agg_datum<T: Num>(agg: &mut Agg<T>) -> pg_sys::Datum {
    pg_sys::Datum::from(agg as *mut Agg<T>)
}

unsafe fn agg_ref<'a, T: Num>(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> &'a mut Agg<T> {
    unsafe { &mut *(pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, n).value() as *mut Agg<T>) }
}

unsafe fn nargs(fcinfo: pg_sys::FunctionCallInfo) -> usize {
    unsafe { (*fcinfo).nargs as usize }
}

/// The arguments of an aggregate call, numbered as the transition function sees them (0 is
/// the state): from the current row, or, for an input without rows, from the call's own
/// expressions, which then must not read the rows.
pub(super) trait Args {
    fn len(&self) -> usize;
    fn get(&self, i: usize, what: &str) -> Option<pg_sys::Datum>;
}

pub(super) struct RowArgs(pub(super) pg_sys::FunctionCallInfo);

impl Args for RowArgs {
    fn len(&self) -> usize {
        unsafe { nargs(self.0) }
    }
    fn get(&self, i: usize, _what: &str) -> Option<pg_sys::Datum> {
        let d = unsafe { pgrx::fcinfo::pg_get_nullable_datum(self.0, i) };
        (!d.isnull).then_some(d.value)
    }
}

struct CallArgs {
    state: *mut pg_sys::AggState,
    aggref: *mut pg_sys::Aggref,
}

impl Args for CallArgs {
    fn len(&self) -> usize {
        1 + unsafe { PgList::<pg_sys::TargetEntry>::from_pg((*self.aggref).args).len() }
    }
    fn get(&self, i: usize, what: &str) -> Option<pg_sys::Datum> {
        let (d, isnull) = unsafe { release::eval_arg(self.state, self.aggref, i - 1, what) };
        (!isnull).then_some(d)
    }
}

pub(super) fn required<T: pgrx::datum::FromDatum>(args: &impl Args, n: usize, what: &str) -> T {
    args.get(n, what)
        .and_then(|d| unsafe { T::from_datum(d, false) })
        .unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                format!("{what} must not be NULL"),
            )
        })
}

/// Reads epsilon at `at`, then, by argument count, delta and max_rows_per_unit.
pub(super) fn params_at<T: Num>(args: &impl Args, at: usize, lower: T, upper: T) -> Params<T> {
    let n = args.len();
    let epsilon: f64 = required(args, at, "epsilon");
    let delta = if n > at + 1 {
        let d: f64 = required(args, at + 1, "delta");
        (d != 0.0).then_some(d)
    } else {
        None
    };
    let max_rows = if n > at + 3 {
        required::<i32>(args, at + 3, "max_rows_per_unit") as i64
    } else {
        1
    };
    Params::new(epsilon, delta, lower, upper, max_rows).unwrap_or_else(|e| dp_error(e))
}

/// Adds one row (`value` None: a NULL, not counted). Parameters start at argument `params_from`
/// (the bounds of a sum, else epsilon) with epsilon at `epsilon_at`; in the privacy-unit form
/// the unit is at `epsilon_at + 2`. A row with a NULL unit is dropped: it cannot be attributed
/// to anyone's bound.
unsafe fn transition<T: Num>(
    fcinfo: pg_sys::FunctionCallInfo,
    value: Option<T>,
    params_from: usize,
    epsilon_at: usize,
    bounds: impl FnOnce() -> (T, T),
) -> pg_sys::Datum {
    unsafe {
        let agg = agg_arg::<T>(fcinfo);
        let Some(value) = value else {
            return agg_datum(agg);
        };
        let unit_at = (nargs(fcinfo) > epsilon_at + 3).then_some(epsilon_at + 2);
        let unit = match unit_at {
            None => None,
            Some(i) => match pg_getarg::<&[u8]>(fcinfo, i) {
                Some(bytes) => {
                    let mut h = std::hash::DefaultHasher::new();
                    bytes.hash(&mut h);
                    Some(h.finish())
                }
                None => return agg_datum(agg),
            },
        };
        let args = param_args(fcinfo, params_from, unit_at);
        let unchanged = matches!((&args, &agg.fixed_args), (Some(a), Some(b)) if a.same_as(b));
        let added = if unchanged {
            agg.state.add_under_fixed_params(value, unit)
        } else {
            let (lower, upper) = bounds();
            let params = params_at::<T>(&RowArgs(fcinfo), epsilon_at, lower, upper);
            agg.fixed_args = args;
            agg.state.add(params, value, unit)
        };
        added.unwrap_or_else(|e| dp_error(e));
        agg_datum(agg)
    }
}

unsafe fn count_trans(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let value = (!pg_arg_is_null(fcinfo, 1)).then_some(0i64);
        transition::<i64>(fcinfo, value, 2, 2, || (0, 0))
    }
}

unsafe fn count_rows_trans(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe { transition::<i64>(fcinfo, Some(0), 1, 1, || (0, 0)) }
}

/// dp_partition(epsilon, delta): a row count, refusing a zero delta before any row is counted
/// (no threshold is private without one).
unsafe fn partition_trans(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        if pg_getarg::<f64>(fcinfo, 2) == Some(0.0) {
            dp_error(DpError::InvalidParameter(
                "dp_partition needs a delta in (0, 1)".into(),
            ));
        }
        count_rows_trans(fcinfo)
    }
}

unsafe fn sum_trans<T: Num + pgrx::datum::FromDatum>(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    unsafe {
        transition::<T>(fcinfo, pg_getarg::<T>(fcinfo, 1), 2, 4, || {
            let args = RowArgs(fcinfo);
            (required(&args, 2, "lower"), required(&args, 3, "upper"))
        })
    }
}

unsafe fn combine<T: Num>(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        agg_context(fcinfo);
        match (pg_arg_is_null(fcinfo, 0), pg_arg_is_null(fcinfo, 1)) {
            (_, true) if pg_arg_is_null(fcinfo, 0) => pg_return_null(fcinfo),
            (false, true) => pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 0),
            // Both states live in the aggregate context (made there by transition or
            // deserialize), so the second can stand for the pair.
            (true, false) => pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 1),
            (false, false) => {
                let a = agg_ref::<T>(fcinfo, 0);
                let b = agg_ref::<T>(fcinfo, 1);
                a.state
                    .merge(std::mem::take(&mut b.state))
                    .unwrap_or_else(|e| dp_error(e));
                agg_datum(a)
            }
            (true, true) => unreachable!(),
        }
    }
}

unsafe fn serialize<T: Num>(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        agg_context(fcinfo);
        agg_ref::<T>(fcinfo, 0)
            .state
            .serialize()
            .into_datum()
            .expect("bytea")
    }
}

unsafe fn deserialize<T: Num>(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let ctx = agg_context(fcinfo);
        let bytes: &[u8] = pg_getarg(fcinfo, 0).unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                "dp state must not be NULL",
            )
        });
        let s = State::<T>::deserialize(bytes).unwrap_or_else(|e| dp_error(e));
        let agg = Agg {
            state: s,
            fixed_args: None,
        };
        agg_datum(&mut *PgMemoryContexts::For(ctx).leak_and_drop_on_delete(agg))
    }
}

/// The parameters of a call whose input had no rows (or none this aggregate counted), from
/// the call's own arguments: an empty input is released with noise and charged like any other,
/// so whether an input was empty stays private.
unsafe fn params_of_call<T: Num + Default + pgrx::datum::FromDatum>(
    fcinfo: pg_sys::FunctionCallInfo,
) -> Params<T> {
    unsafe {
        let aggref = release::aggref(fcinfo);
        if release::func_name((*aggref).aggfnoid) == "coord_combine_agg" {
            // Citus's coordinator combines the shards' states without the call's arguments;
            // every shard it asked sends parameters (see `dp_state`), so none were asked.
            raise(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "a dp aggregate over no shard has no parameters to release with",
            );
        }
        let args = CallArgs {
            state: release::agg_state(fcinfo),
            aggref,
        };
        params_for((*aggref).aggfnoid, &args)
    }
}

/// The parameters of dp aggregate `aggfnoid` from its arguments.
pub(super) fn params_for<T: Num + Default + pgrx::datum::FromDatum>(
    aggfnoid: pg_sys::Oid,
    args: &impl Args,
) -> Params<T> {
    match release::func_name(aggfnoid).as_str() {
        "dp_sum" | "dp_avg" => {
            let lower = required(args, 2, "lower");
            let upper = required(args, 3, "upper");
            params_at(args, 4, lower, upper)
        }
        "dp_count" => params_at(args, 2, T::default(), T::default()),
        _ => params_at(args, 1, T::default(), T::default()),
    }
}

/// Whether the call bounds contributions per privacy unit (its last two arguments are the unit
/// and max_rows_per_unit).
unsafe fn has_privacy_unit(fcinfo: pg_sys::FunctionCallInfo) -> bool {
    unsafe {
        let args = PgList::<pg_sys::TargetEntry>::from_pg((*release::aggref(fcinfo)).args);
        let n = args.len();
        let type_at = |i: usize| pg_sys::exprType((*args.get_ptr(i).unwrap()).expr as *const _);
        n >= 4 && type_at(n - 2) == pg_sys::TEXTOID && type_at(n - 1) == pg_sys::INT4OID
    }
}

/// Records the privacy charge of this evaluation, if it has one (see `privacy::release`):
/// every evaluation without GROUP BY; once per execution of a grouped Agg node.
unsafe fn charge_release<T: Num>(fcinfo: pg_sys::FunctionCallInfo, p: &Params<T>) {
    unsafe {
        let times = if !release::grouped(fcinfo) {
            1
        } else if !release::first_in_execution(fcinfo) {
            return;
        } else {
            match (release::selection(fcinfo), has_privacy_unit(fcinfo)) {
                (_, false) => 1,
                (Selection::Public(keys), true) => keys,
                (Selection::Threshold, true) => raise_full(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    "a privacy unit cannot be combined with dp_partition",
                    Some(
                        "One unit may fall in many groups; without a bound on that number the \
                         groups do not compose in parallel."
                            .into(),
                    ),
                    Some(
                        "Group over public keys (dp_public_groups) or drop the privacy unit."
                            .into(),
                    ),
                ),
            }
        };
        if times > 0 {
            let k = times as f64;
            let _granted = charge::charge(p.loss.epsilon * k, p.loss.delta.unwrap_or(0.0) * k);
        }
    }
}

/// Releases `release(state)` of the `internal` state in argument 0 (see `release_state`).
unsafe fn finish<T: Num + Default + pgrx::datum::FromDatum, R: IntoDatum>(
    fcinfo: pg_sys::FunctionCallInfo,
    release: impl FnOnce(&State<T>) -> Result<Option<R>, DpError>,
) -> pg_sys::Datum {
    unsafe {
        agg_context(fcinfo);
        let counted = if pg_arg_is_null(fcinfo, 0) {
            None
        } else {
            Some(&agg_ref::<T>(fcinfo, 0).state)
        };
        release_state(fcinfo, counted, release)
    }
}

/// Releases `release(state)` (noise is added there, once) after recording its charge; a
/// missing state or one without rows takes the parameters from the call.
pub(super) unsafe fn release_state<T: Num + Default + pgrx::datum::FromDatum, R: IntoDatum>(
    fcinfo: pg_sys::FunctionCallInfo,
    counted: Option<&State<T>>,
    release: impl FnOnce(&State<T>) -> Result<Option<R>, DpError>,
) -> pg_sys::Datum {
    unsafe {
        // With GROUP BY on the distribution column Citus pushes the whole aggregate, final
        // function included, to the shards: each would charge its worker's ledger and release
        // its own noisy answer. Refused; the coordinator finalizes (docs/citus.md).
        crate::pg::citus::refuse_on_worker(
            "a dp aggregate",
            "On a distributed table, group by a column other than the distribution column, or \
             aggregate without GROUP BY: Citus then combines the shards' results on the coordinator, which \
             adds the noise and charges the budget once.",
        );
        let counted = counted.filter(|s| s.params.is_some());
        let empty;
        let s = match counted {
            Some(s) => s,
            None => {
                empty = State::<T> {
                    params: Some(params_of_call::<T>(fcinfo)),
                    ..State::default()
                };
                &empty
            }
        };
        // Noise is drawn first, so a bad parameter fails before anything is charged; the value
        // leaves this function only after its charge is on record.
        let value = release(s).unwrap_or_else(|e| dp_error(e));
        charge_release(fcinfo, s.params.as_ref().expect("parameters"));
        match value {
            Some(v) => v.into_datum().expect("a result"),
            None => pg_return_null(fcinfo),
        }
    }
}

/// dp_partition's decision for its group: the noisy row count passes the threshold.
fn release_partition(s: &State<i64>) -> Result<Option<bool>, DpError> {
    let p = s.params.expect("parameters");
    partition::keep(s.totals().0, p.loss).map(Some)
}

c_functions! {
    /// dp_count(value anyelement, epsilon [, delta [, privacy_unit, max_rows_per_unit]])
    encml_dp_count_trans, pg_finfo_encml_dp_count_trans => count_trans;
    /// dp_count_rows(epsilon [, delta [, privacy_unit, max_rows_per_unit]])
    encml_dp_count_rows_trans, pg_finfo_encml_dp_count_rows_trans => count_rows_trans;
    /// dp_partition(epsilon, delta)
    encml_dp_partition_trans, pg_finfo_encml_dp_partition_trans => partition_trans;
    /// dp_sum(float8, lower, upper, epsilon [, ...]); also dp_avg
    encml_dp_sum_f64_trans, pg_finfo_encml_dp_sum_f64_trans => sum_trans::<f64>;
    /// dp_sum(bigint, lower bigint, upper bigint, epsilon [, ...])
    encml_dp_sum_i64_trans, pg_finfo_encml_dp_sum_i64_trans => sum_trans::<i64>;
    encml_dp_f64_combine, pg_finfo_encml_dp_f64_combine => combine::<f64>;
    encml_dp_i64_combine, pg_finfo_encml_dp_i64_combine => combine::<i64>;
    encml_dp_f64_serialize, pg_finfo_encml_dp_f64_serialize => serialize::<f64>;
    encml_dp_i64_serialize, pg_finfo_encml_dp_i64_serialize => serialize::<i64>;
    encml_dp_f64_deserialize, pg_finfo_encml_dp_f64_deserialize => deserialize::<f64>;
    encml_dp_i64_deserialize, pg_finfo_encml_dp_i64_deserialize => deserialize::<i64>;
    encml_dp_count_final, pg_finfo_encml_dp_count_final =>
        |f| unsafe { finish::<i64, i64>(f, state::release_count) };
    encml_dp_sum_f64_final, pg_finfo_encml_dp_sum_f64_final =>
        |f| unsafe { finish::<f64, f64>(f, state::release_sum_f64) };
    encml_dp_sum_i64_final, pg_finfo_encml_dp_sum_i64_final =>
        |f| unsafe { finish::<i64, i64>(f, state::release_sum_i64) };
    encml_dp_avg_final, pg_finfo_encml_dp_avg_final =>
        |f| unsafe { finish::<f64, f64>(f, state::release_avg) };
    /// dp_partition(epsilon, delta): whether the group is released (for HAVING)
    encml_dp_partition_final, pg_finfo_encml_dp_partition_final =>
        |f| unsafe { finish::<i64, bool>(f, release_partition) };
}

pgrx::extension_sql_file!("../../sql/schema/dp.sql", name = "dp_aggregates");

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
pub mod tests {
    use pgrx::prelude::*;

    // The test runs as a superuser without a budget: allowed, and still recorded.
    #[pg_test]
    fn a_dp_sum_is_near_the_clamped_sum_and_its_charge_is_recorded() {
        let before = Spi::get_one::<i64>("SELECT count(*) FROM encml.privacy_charges")
            .unwrap()
            .unwrap();
        let noisy = Spi::get_one::<f64>(
            "SELECT encml.dp_sum(x::float8, 0, 10, 5.0) FROM generate_series(1, 1000) x",
        )
        .unwrap()
        .unwrap();
        // True clamped sum: 45 + 991 * 10 = 9955; Laplace scale 10 / 5 = 2.
        assert!((noisy - 9955.0).abs() < 60.0, "{noisy}");
        let (granted, note) = Spi::get_two::<bool, String>(
            "SELECT granted, note FROM encml.privacy_charges ORDER BY id DESC LIMIT 1",
        )
        .unwrap();
        assert_eq!(
            (granted, note.as_deref()),
            (Some(true), Some("superuser without a budget"))
        );
        let after = Spi::get_one::<i64>("SELECT count(*) FROM encml.privacy_charges")
            .unwrap()
            .unwrap();
        assert_eq!(after, before + 1);
    }

    #[pg_test(error = "dp aggregates cannot be used as window functions")]
    fn window_use_is_refused() {
        Spi::run("SELECT encml.dp_count(x, 1.0) OVER () FROM generate_series(1, 3) x").unwrap();
    }
}
