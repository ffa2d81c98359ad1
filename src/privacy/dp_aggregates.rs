//! Differential-privacy aggregates: dp_count, dp_count_rows, dp_sum (float8, bigint), dp_avg.
//!
//! The state is `internal` (an `encml_dp::state::State` in the aggregate memory context), so
//! nobody can read a noise-free state: only the final function sees it, and it first records
//! the privacy charge (outside the transaction, see `privacy::charge`) and then adds noise once.
//! Transition, combine, serialize and deserialize functions make the aggregates parallel.
//! The functions are bound by C symbol in sql/schema/dp.sql: one transition function per kind serves
//! the short (epsilon), (epsilon, delta) and privacy-unit variants by its argument count.

use crate::pg::c_functions;
use crate::pg::errors::dp_error;
use crate::pg::errors::raise;
use crate::privacy::charge;
use crate::privacy::own;
use crate::privacy::params::{params_at, partition_params, required, RowArgs};
use crate::privacy::release;
use crate::privacy::start;
use encml_dp::params::Params;
use encml_dp::partition;
use encml_dp::state::{self, Num, State};
use encml_dp::DpError;
use pgrx::datum::IntoDatum;
use pgrx::fcinfo::{pg_arg_is_null, pg_getarg, pg_return_null};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgMemoryContexts, PgSqlErrorCode};
use std::hash::{Hash, Hasher};

/// The aggregate memory context; refuses calls outside an aggregate and as a window function
/// (a moving window would release many noisy answers of overlapping rows).
///
/// # Safety
/// `fcinfo` must be the FunctionCallInfo of the running call.
pub(super) unsafe fn agg_context(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::MemoryContext {
    // SAFETY: fcinfo is the running call's (the contract above); `context` only reads it and
    // asks AggCheckCallContext through pgrx's guarded binding.
    unsafe { crate::pg::aggregate::context(fcinfo, "dp aggregates", false) }
}

/// An exact aggregate state kept in an `internal` datum: mergeable and serializable.
pub(super) trait ExactState: Default {
    fn merge_from(&mut self, other: Self) -> Result<(), DpError>;
    fn to_bytes(&self) -> Vec<u8>;
    fn from_bytes(bytes: &[u8]) -> Result<Self, DpError>;
}

impl<T: Num> ExactState for State<T> {
    fn merge_from(&mut self, other: Self) -> Result<(), DpError> {
        self.merge(other)
    }
    fn to_bytes(&self) -> Vec<u8> {
        self.serialize()
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self, DpError> {
        State::deserialize(bytes)
    }
}

impl<A: encml_dp::bounded::Exact> ExactState for encml_dp::bounded::Bounded<A> {
    fn merge_from(&mut self, other: Self) -> Result<(), DpError> {
        self.merge(other)
    }
    fn to_bytes(&self) -> Vec<u8> {
        self.serialize()
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self, DpError> {
        encml_dp::bounded::Bounded::deserialize(bytes)
    }
}

/// What the `internal` datum points to: the exact state, and the raw parameter arguments of the
/// row that fixed its parameters, so later rows with the same arguments skip re-validating them.
#[derive(Default)]
pub(super) struct Agg<S: ExactState> {
    pub(super) state: S,
    pub(super) fixed_args: Option<ParamArgs>,
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
    pub(super) fn same_as(&self, other: &ParamArgs) -> bool {
        self.len == other.len && (0..self.len).all(|i| self.datums[i] == other.datums[i])
    }
}

/// The raw datums of the arguments from `from` on (but `skip`); None if one is NULL or they do
/// not fit.
///
/// # Safety
/// `fcinfo` must be the FunctionCallInfo of the running call.
pub(super) unsafe fn param_args(
    fcinfo: pg_sys::FunctionCallInfo,
    from: usize,
    skip: Option<usize>,
) -> Option<ParamArgs> {
    // SAFETY: fcinfo is the running call's (the contract above).
    let n = unsafe { nargs(fcinfo) };
    let mut out = ParamArgs::default();
    for i in from..n {
        if Some(i) == skip {
            continue;
        }
        // SAFETY: as above; i < nargs, and pgrx bounds-checks the index against nargs anyway.
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
///
/// # Safety
/// `fcinfo` must be the call of one of this module's transition functions for `T`: argument 0
/// is NULL or the `Agg<S>` an earlier call of the same aggregate made. The result must not
/// outlive the aggregate context nor be held beside another reference to the same state.
pub(super) unsafe fn agg_arg<'a, S: ExactState>(
    fcinfo: pg_sys::FunctionCallInfo,
) -> &'a mut Agg<S> {
    // SAFETY: fcinfo is valid (the contract). A new state is allocated in the aggregate context
    // (agg_context refuses any other caller) and dropped only when that context is deleted,
    // after the aggregate's last call; a non-NULL state is an Agg<S> as the contract requires.
    unsafe {
        if pg_arg_is_null(fcinfo, 0) {
            let ctx = agg_context(fcinfo);
            &mut *PgMemoryContexts::For(ctx).leak_and_drop_on_delete(Agg::<S>::default())
        } else {
            agg_ref::<S>(fcinfo, 0)
        }
    }
}

pub(super) fn agg_datum<S: ExactState>(agg: &mut Agg<S>) -> pg_sys::Datum {
    pg_sys::Datum::from(agg as *mut Agg<S>)
}

/// The `internal` state in argument `n`.
///
/// # Safety
/// Argument `n` of the valid `fcinfo` must be a non-NULL pointer to an `Agg<S>` made by these
/// functions in the aggregate context, not otherwise borrowed while the result lives.
pub(super) unsafe fn agg_ref<'a, S: ExactState>(
    fcinfo: pg_sys::FunctionCallInfo,
    n: usize,
) -> &'a mut Agg<S> {
    // SAFETY: as the caller guarantees, the datum points to a live, unaliased Agg<S>; pgrx
    // bounds-checks `n` against nargs.
    unsafe { &mut *(pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, n).value() as *mut Agg<S>) }
}

/// # Safety
/// `fcinfo` must be a valid FunctionCallInfo.
pub(super) unsafe fn nargs(fcinfo: pg_sys::FunctionCallInfo) -> usize {
    // SAFETY: fcinfo is valid (the contract); nargs is a plain field of it.
    unsafe { (*fcinfo).nargs as usize }
}

/// The privacy unit of a row, in the unit form of a dp aggregate (its argument after epsilon and
/// delta): where it is, its 64-bit hash, and whether it is NULL (the row is then dropped: it
/// cannot be attributed to anyone's bound).
pub(super) struct RowUnit {
    pub(super) at: Option<usize>,
    pub(super) hash: Option<u64>,
    pub(super) null: bool,
}

/// # Safety
/// `fcinfo` must be the call of a dp transition function whose epsilon is argument
/// `epsilon_at`, with the privacy unit (text) at `epsilon_at + 2` when there are more arguments.
pub(super) unsafe fn row_unit(fcinfo: pg_sys::FunctionCallInfo, epsilon_at: usize) -> RowUnit {
    // SAFETY: as the caller guarantees; the unit argument is the `text` the SQL declaration says,
    // read as its bytes (pgrx bounds-checks the index).
    unsafe {
        let at = (nargs(fcinfo) > epsilon_at + 3).then_some(epsilon_at + 2);
        let Some(i) = at else {
            return RowUnit {
                at,
                hash: None,
                null: false,
            };
        };
        if !pg_arg_is_null(fcinfo, i) && rows_bounded(fcinfo) {
            // At most max_rows_per_unit rows of each unit reach this group (the rewrite's
            // FILTER): the unit needs no state of its own.
            return RowUnit {
                at,
                hash: None,
                null: false,
            };
        }
        match pg_getarg::<&[u8]>(fcinfo, i) {
            Some(bytes) => {
                let mut h = std::hash::DefaultHasher::new();
                bytes.hash(&mut h);
                RowUnit {
                    at,
                    hash: Some(h.finish()),
                    null: false,
                }
            }
            None => RowUnit {
                at,
                hash: None,
                null: true,
            },
        }
    }
}

static ROWS_BOUNDED: u8 = 1;
static ROWS_UNBOUNDED: u8 = 0;

/// Whether the running transition call's rows come bounded per unit and group by the
/// groups-per-unit rewrite (`start::bounded`), asked once per call site and kept in its
/// `fn_extra`.
///
/// # Safety
/// `fcinfo` must be the call of one of the dp transition functions, inside its aggregate.
unsafe fn rows_bounded(fcinfo: pg_sys::FunctionCallInfo) -> bool {
    // SAFETY: fcinfo is a transition call (the contract), so its flinfo is the transition's
    // FmgrInfo, whose fn_extra only these functions set (to one of the two statics); the
    // context is the AggState (agg_arg checked it on the first row) and AggGetAggref the call.
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        let extra = (*flinfo).fn_extra as *const u8;
        if std::ptr::eq(extra, &ROWS_BOUNDED) {
            return true;
        }
        if std::ptr::eq(extra, &ROWS_UNBOUNDED) {
            return false;
        }
        let aggref = pg_sys::AggGetAggref(fcinfo);
        let ctx = (*fcinfo).context;
        let bounded = !aggref.is_null()
            && !ctx.is_null()
            && (*ctx).type_ == pg_sys::NodeTag::T_AggState
            && start::bounded(ctx as *mut pg_sys::AggState, (*aggref).aggno);
        (*flinfo).fn_extra = if bounded {
            &ROWS_BOUNDED as *const u8 as *mut std::ffi::c_void
        } else {
            &ROWS_UNBOUNDED as *const u8 as *mut std::ffi::c_void
        };
        bounded
    }
}

/// Adds one row (`value` None: a NULL, not counted). Parameters start at argument `params_from`
/// (the bounds of a sum, else epsilon) with epsilon at `epsilon_at`; in the privacy-unit form
/// the unit is at `epsilon_at + 2`. A row with a NULL unit is dropped: it cannot be attributed
/// to anyone's bound.
///
/// # Safety
/// `fcinfo` must be the call of one of this module's transition functions for `T`, with the
/// arguments its SQL declaration gives (see `agg_arg`).
unsafe fn transition<T: Num>(
    fcinfo: pg_sys::FunctionCallInfo,
    value: Option<T>,
    params_from: usize,
    epsilon_at: usize,
    bounds: impl FnOnce() -> (T, T),
) -> pg_sys::Datum {
    // SAFETY: fcinfo is the transition call's (the contract); the state comes from agg_arg
    // under the same contract and is the only reference to it here; argument reads are
    // bounds-checked by pgrx, and the privacy unit (argument epsilon_at + 2) is the `text` the
    // SQL declaration says, read as its bytes.
    unsafe {
        // (The state first: on the first row it refuses window use with its own message.)
        let agg = agg_arg::<State<T>>(fcinfo);
        // Whose aggregate this is was checked when the query started (`start`), or nothing
        // runs: one static read per row (asking for the running Aggref and a thread-local on
        // every row cost about 7% of dp_count).
        start::require_preloaded();
        let Some(value) = value else {
            return agg_datum(agg);
        };
        let row_unit = row_unit(fcinfo, epsilon_at);
        if row_unit.null {
            return agg_datum(agg);
        }
        let (unit_at, unit) = (row_unit.at, row_unit.hash);
        let args = param_args(fcinfo, params_from, unit_at);
        let unchanged = matches!((&args, &agg.fixed_args), (Some(a), Some(b)) if a.same_as(b));
        let added = if unchanged {
            agg.state.add_under_fixed_params(value, unit)
        } else {
            let (lower, upper) = bounds();
            let params = params_at::<T>(&RowArgs::new(fcinfo), epsilon_at, lower, upper);
            agg.fixed_args = args;
            agg.state.add(params, value, unit)
        };
        added.unwrap_or_else(|e| dp_error(e));
        agg_datum(agg)
    }
}

/// # Safety
/// Only as the C function `encml_dp_count_trans` (`c_functions!`): `fcinfo` is the call's,
/// its arguments as the SQL declarations in sql/schema/dp.sql give them.
unsafe fn count_trans(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract); argument 1 is only tested for NULL.
    unsafe {
        let value = (!pg_arg_is_null(fcinfo, 1)).then_some(0i64);
        transition::<i64>(fcinfo, value, 2, 2, || (0, 0))
    }
}

/// # Safety
/// Only as the C function `encml_dp_count_rows_trans` (`c_functions!`): `fcinfo` is the
/// call's, its arguments as the SQL declarations in sql/schema/dp.sql give them.
unsafe fn count_rows_trans(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract), a dp transition call as `transition` needs.
    unsafe { transition::<i64>(fcinfo, Some(0), 1, 1, || (0, 0)) }
}

/// dp_partition(epsilon, delta): a row count, refusing a zero delta before any row is counted
/// (no threshold is private without one).
///
/// # Safety
/// Only as the C function `encml_dp_partition_trans` (`c_functions!`): `fcinfo` is the call's,
/// its arguments as the SQL declaration in sql/schema/dp.sql gives them.
unsafe fn partition_trans(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract); argument 2 is dp_partition's float8 delta.
    unsafe {
        if pg_getarg::<f64>(fcinfo, 2) == Some(0.0) {
            dp_error(DpError::InvalidParameter(
                "dp_partition needs a delta in (0, 1)".into(),
            ));
        }
        if nargs(fcinfo) <= 3 {
            return count_rows_trans(fcinfo);
        }
        // (epsilon, delta, privacy_unit, max_groups_contributed): each unit counts once in the
        // group, whatever its rows (max_groups bounds its groups, in the rewritten query).
        let agg = agg_arg::<State<i64>>(fcinfo);
        start::require_preloaded();
        let unit = row_unit(fcinfo, 1);
        if unit.null {
            return agg_datum(agg);
        }
        let args = param_args(fcinfo, 1, unit.at);
        let unchanged = matches!((&args, &agg.fixed_args), (Some(a), Some(b)) if a.same_as(b));
        let added = if unchanged {
            agg.state.add_under_fixed_params(0, unit.hash)
        } else {
            let params = partition_params::<i64>(&RowArgs::new(fcinfo));
            agg.fixed_args = args;
            agg.state.add(params, 0, unit.hash)
        };
        added.unwrap_or_else(|e| dp_error(e));
        agg_datum(agg)
    }
}

/// # Safety
/// Only as the C functions `encml_dp_sum_f64_trans` (`T` = f64) and `encml_dp_sum_i64_trans`
/// (`T` = i64) (`c_functions!`): `fcinfo` is the call's, its arguments as sql/schema/dp.sql
/// declares them (the value and the bounds of type `T`).
unsafe fn sum_trans<T: Num + pgrx::datum::FromDatum>(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract); arguments 1 to 3 are of type `T` as its
    // SQL declarations say.
    unsafe {
        transition::<T>(fcinfo, pg_getarg::<T>(fcinfo, 1), 2, 4, || {
            let args = RowArgs::new(fcinfo);
            (required(&args, 2, "lower"), required(&args, 3, "upper"))
        })
    }
}

/// # Safety
/// Only as the C functions of the dp aggregates' combine functions (`c_functions!` here and in
/// `dp_bounded_aggregates`), `S` the state their transition functions make: `fcinfo` is the
/// call's.
pub(super) unsafe fn combine<S: ExactState>(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract). agg_context refuses calls outside an
    // aggregate and own::require any aggregate but ours, so a non-NULL argument is an Agg<S>
    // made by transition or deserialize in the aggregate context; the two states are distinct,
    // so the two references do not alias.
    unsafe {
        agg_context(fcinfo);
        own::require(fcinfo);
        match (pg_arg_is_null(fcinfo, 0), pg_arg_is_null(fcinfo, 1)) {
            (_, true) if pg_arg_is_null(fcinfo, 0) => pg_return_null(fcinfo),
            (false, true) => pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 0),
            // Both states live in the aggregate context (made there by transition or
            // deserialize), so the second can stand for the pair.
            (true, false) => pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 1),
            (false, false) => {
                let a = agg_ref::<S>(fcinfo, 0);
                let b = agg_ref::<S>(fcinfo, 1);
                a.state
                    .merge_from(std::mem::take(&mut b.state))
                    .unwrap_or_else(|e| dp_error(e));
                agg_datum(a)
            }
            (true, true) => unreachable!(),
        }
    }
}

/// Serialize and deserialize run without a current Aggref (nodeAgg.c does not set one), so they
/// cannot ask `own::require`; they need none: an `internal` state exists only where the checked
/// transition, combine or final functions of one of our own aggregates made or took it, and SQL
/// cannot produce or pass an `internal` value.
///
/// # Safety
/// Only as the C functions of the dp aggregates' serialize functions (`c_functions!` here and
/// in `dp_bounded_aggregates`), `S` matching: `fcinfo` is the call's.
pub(super) unsafe fn serialize<S: ExactState>(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract). The function is STRICT, so argument 0 is
    // not NULL, and agg_context refuses calls outside an aggregate; the state is then an Agg<S>
    // of our aggregate of this `T` (only superusers create aggregates over `internal`, and the
    // dp support functions are not granted to PUBLIC).
    unsafe {
        agg_context(fcinfo);
        agg_ref::<S>(fcinfo, 0)
            .state
            .to_bytes()
            .into_datum()
            .expect("bytea")
    }
}

/// # Safety
/// Only as the C functions of the dp aggregates' deserialize functions (`c_functions!` here and
/// in `dp_bounded_aggregates`), `S` matching: `fcinfo` is the call's.
pub(super) unsafe fn deserialize<S: ExactState>(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract), argument 0 its bytea. The new state is
    // allocated in the aggregate context (checked by agg_context) and dropped only when that
    // context is deleted, so the returned pointer outlives this call.
    unsafe {
        let ctx = agg_context(fcinfo);
        let bytes: &[u8] = pg_getarg(fcinfo, 0).unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                "dp state must not be NULL",
            )
        });
        let s = S::from_bytes(bytes).unwrap_or_else(|e| dp_error(e));
        let agg = Agg {
            state: s,
            fixed_args: None,
        };
        agg_datum(&mut *PgMemoryContexts::For(ctx).leak_and_drop_on_delete(agg))
    }
}

/// Releases `release(state)` of the `internal` state in argument 0 (see `release_state`).
///
/// # Safety
/// Only as one of the dp final C functions (`c_functions!`), `T` matching the aggregate's
/// transition functions: `fcinfo` is the call's.
unsafe fn finish<T: Num + Default + pgrx::datum::FromDatum, R: IntoDatum>(
    fcinfo: pg_sys::FunctionCallInfo,
    release: impl FnOnce(&State<T>) -> Result<Option<R>, DpError>,
) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract). agg_context and own::require refuse any
    // caller but our own aggregate, so a non-NULL argument 0 is its Agg<State<T>>, alive in the
    // aggregate context for the call.
    unsafe {
        agg_context(fcinfo);
        own::require(fcinfo);
        let counted = if pg_arg_is_null(fcinfo, 0) {
            None
        } else {
            Some(&agg_ref::<State<T>>(fcinfo, 0).state)
        };
        release_state(fcinfo, counted, release)
    }
}

/// Releases `release(state)` (noise is added there, once) after recording its charge; a
/// missing state or one without rows takes the parameters from the call.
///
/// # Safety
/// `fcinfo` must be the call of a final function of one of our dp aggregates.
pub(super) unsafe fn release_state<T: Num + Default + pgrx::datum::FromDatum, R: IntoDatum>(
    fcinfo: pg_sys::FunctionCallInfo,
    counted: Option<&State<T>>,
    release: impl FnOnce(&State<T>) -> Result<Option<R>, DpError>,
) -> pg_sys::Datum {
    // SAFETY: fcinfo is the final function's call (the contract).
    unsafe {
        let prepaid = prepaid_release(fcinfo);
        let counted = counted.filter(|s| s.params.is_some());
        let empty;
        let s = match counted {
            Some(s) => s,
            None => {
                // No row counted: the parameters charged at the start.
                empty = State::<T> {
                    params: Some(
                        Params::<T>::from_key(&prepaid.key).unwrap_or_else(|e| dp_error(e)),
                    ),
                    ..State::default()
                };
                &empty
            }
        };
        let params = s.params.as_ref().expect("parameters");
        if prepaid.key != params.key() {
            dp_error(DpError::ParameterChanged(
                "epsilon, delta, the bounds and max_rows_per_unit",
            ));
        }
        let share;
        let s = if prepaid.groups_per_unit > 1 {
            share = s.per_group(prepaid.groups_per_unit);
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

/// What the executor start charged for the aggregate a final function finalizes (directly or
/// inside Citus's coord_combine_agg), its evaluations counted: nothing is released that was not
/// charged before the rows were read. Refused on a Citus worker.
///
/// # Safety
/// `fcinfo` must be the call of a final function of one of our dp aggregates.
pub(super) unsafe fn prepaid_release(fcinfo: pg_sys::FunctionCallInfo) -> start::Prepaid {
    // SAFETY: fcinfo is the final function's call (the contract). release::agg_state and
    // release::aggref raise unless the context is an AggState and an Aggref is running, so
    // start::evaluate gets the live Agg node and the call it finalizes.
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
        own::require(fcinfo);
        start::evaluate(release::agg_state(fcinfo), release::aggref(fcinfo))
            .unwrap_or_else(not_charged_at_start)
    }
}

/// Prepaid are every group of a grouped node and an ungrouped node's first evaluation; an
/// ungrouped aggregate in a subplan that runs again pays each further evaluation here.
pub(super) fn pay_further_evaluation(prepaid: &start::Prepaid, loss: encml_dp::mechanism::Loss) {
    if !prepaid.grouped && prepaid.evaluations > 1 {
        let _granted = charge::charge(loss.epsilon, loss.delta.unwrap_or(0.0));
    }
}

/// Refuses a release the executor start did not charge: without the library preloaded there is
/// no executor-start hook, and releasing with a charge taken only when a group forms would let
/// the ledger count the groups (and an empty input go unpaid).
fn not_charged_at_start() -> start::Prepaid {
    start::require_preloaded();
    raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "this dp aggregate was not charged when its query started",
    )
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
    encml_dp_f64_combine, pg_finfo_encml_dp_f64_combine => combine::<State<f64>>;
    encml_dp_i64_combine, pg_finfo_encml_dp_i64_combine => combine::<State<i64>>;
    encml_dp_f64_serialize, pg_finfo_encml_dp_f64_serialize => serialize::<State<f64>>;
    encml_dp_i64_serialize, pg_finfo_encml_dp_i64_serialize => serialize::<State<i64>>;
    encml_dp_f64_deserialize, pg_finfo_encml_dp_f64_deserialize => deserialize::<State<f64>>;
    encml_dp_i64_deserialize, pg_finfo_encml_dp_i64_deserialize => deserialize::<State<i64>>;
    encml_dp_count_final, pg_finfo_encml_dp_count_final =>
        // SAFETY: `f` is the FunctionCallInfo Postgres passed to this C function, a dp final
        // function of our dp_count (finish checks the aggregate).
        |f| unsafe { finish::<i64, i64>(f, state::release_count) };
    encml_dp_sum_f64_final, pg_finfo_encml_dp_sum_f64_final =>
        // SAFETY: as above, `f` is this C function's call; its states hold f64.
        |f| unsafe { finish::<f64, f64>(f, state::release_sum_f64) };
    encml_dp_sum_i64_final, pg_finfo_encml_dp_sum_i64_final =>
        // SAFETY: as above, `f` is this C function's call; its states hold i64.
        |f| unsafe { finish::<i64, i64>(f, state::release_sum_i64) };
    encml_dp_avg_final, pg_finfo_encml_dp_avg_final =>
        // SAFETY: as above, `f` is this C function's call; its states hold f64.
        |f| unsafe { finish::<f64, f64>(f, state::release_avg) };
    /// dp_partition(epsilon, delta): whether the group is released (for HAVING)
    encml_dp_partition_final, pg_finfo_encml_dp_partition_final =>
        // SAFETY: as above, `f` is this C function's call; its states hold i64 (a row count).
        |f| unsafe { finish::<i64, bool>(f, release_partition) };
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
pub mod tests {
    use pgrx::prelude::*;

    // The pgrx test cluster does not preload the library: no executor-start hook, so no charge
    // before the rows are read, and the release is refused (pg_regress runs them preloaded).
    #[pg_test(error = "dp aggregates need pg_encrypt_ml in shared_preload_libraries")]
    fn without_preloading_dp_aggregates_are_refused() {
        Spi::run("SELECT encml.dp_sum(x::float8, 0, 10, 5.0) FROM generate_series(1, 10) x")
            .unwrap();
    }

    #[pg_test]
    fn without_preloading_nothing_is_charged() {
        let before = Spi::get_one::<i64>("SELECT count(*) FROM encml.privacy_charges")
            .unwrap()
            .unwrap();
        Spi::run(
            "DO $$ BEGIN PERFORM encml.dp_count_rows(1.0) FROM generate_series(1, 10); \
             EXCEPTION WHEN object_not_in_prerequisite_state THEN NULL; END $$",
        )
        .unwrap();
        let after = Spi::get_one::<i64>("SELECT count(*) FROM encml.privacy_charges")
            .unwrap()
            .unwrap();
        assert_eq!(after, before);
    }

    #[pg_test(error = "dp aggregates cannot be used as window functions")]
    fn window_use_is_refused() {
        Spi::run("SELECT encml.dp_count(x, 1.0) OVER () FROM generate_series(1, 3) x").unwrap();
    }
}
