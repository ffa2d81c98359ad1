//! Charging a query's dp aggregates when its executor starts, before any row is read (an
//! executor-start hook: the library must be preloaded). The charge then does not depend on the
//! data: whether any row or group exists, how many groups form, or whether a later row raises
//! an error; and a budget refusal comes before anything is read.
//!
//! For every Agg node of the plan (subplans and CTEs included) that finalizes one of the
//! extension's own dp aggregates (`own`), the parameters are evaluated from the calls' own
//! expressions, which must not read the rows (they are constants of the query: literals,
//! parameters of a prepared statement, functions of them), and the query's total loss is charged
//! in one ledger row:
//! - without GROUP BY, each aggregate's loss once (its first evaluation; an evaluation beyond
//!   that, when a subplan runs again, pays at its final function);
//! - with GROUP BY, the node must select its groups (`release::selection_of`) and run once per
//!   statement; each aggregate's loss times `release::times_charged`, once for the execution.
//!
//! The final functions then release only what was prepaid for their (Agg node, aggregate)
//! and refuse a group whose parameters differ from those charged. Plain EXPLAIN charges nothing
//! (the executor starts with EXEC_FLAG_EXPLAIN_ONLY and never finalizes); EXPLAIN ANALYZE,
//! cursors (at open) and each execution of a prepared statement are charged; parallel workers
//! never charge (their partial Agg nodes do not finalize). On a Citus coordinator the same holds:
//! parameters that Citus moved into its worker query (and brings back as columns) are read
//! there (`pg::citus_plan`), and `coord_combine_agg` takes them from the `worker_partial_agg`
//! call whose states it combines, or is refused; on a Citus worker a query that would finalize
//! a dp aggregate is refused before any charge.

use crate::pg::errors::dp_error;
use crate::privacy::own::{self, DpAggregate, Via};
use crate::privacy::params::{alphas_for, params_for, Args, CallArgs, WrappedCallArgs};
use crate::privacy::{charge, release};
use encml_dp::accounting::Cost;
use encml_dp::params::Params;
use encml_dp::state::{self as state, Num, State};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgList};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

static mut INSTALLED: bool = false;

/// What the executor start charged for one aggregate of one Agg node.
#[derive(Debug, Clone)]
pub struct Prepaid {
    /// The parameters charged (`Params::key`).
    pub key: [u8; 40],
    /// The percentiles of a quantile aggregate (fixed like the parameters), else empty.
    pub alphas: Vec<f64>,
    pub grouped: bool,
    /// The groups one privacy unit may reach (the privacy-unit form of dp_partition; else 1):
    /// each group's noise is for that share of the loss charged.
    pub groups_per_unit: u32,
    /// Whether the rows reach the aggregate bounded per unit and group by the rewrite of
    /// `groups_per_unit` (its FILTER), so that its state keeps no per-unit values.
    pub bounded: bool,
    /// Final-function evaluations so far (an ungrouped aggregate's first is prepaid).
    pub evaluations: u32,
    estate: usize,
}

thread_local! {
    /// By (Agg node state, aggregate number), for the executions under way.
    static PREPAID: RefCell<HashMap<(usize, i32), Prepaid>> = RefCell::new(HashMap::new());
}

/// Whether the executor hooks are installed in this process (the library was preloaded).
pub fn installed() -> bool {
    // SAFETY: written once in _PG_init, before any query, single-threaded.
    unsafe { INSTALLED }
}

/// Notes that the hooks are installed (`crate::hooks`, from _PG_init when preloaded).
pub fn mark_installed() {
    // SAFETY: _PG_init runs once per process before any query, single-threaded.
    unsafe { INSTALLED = true };
}

/// After the executor started (the hook in `crate::hooks`): charges the query's dp aggregates,
/// unless it only explains or this is a parallel worker.
///
/// # Safety
/// `query` must be the QueryDesc just started.
pub unsafe fn after_executor_start(query: *mut pg_sys::QueryDesc, eflags: i32) {
    // SAFETY: as the caller guarantees; backend globals read only.
    unsafe {
        if eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 == 0 && pg_sys::ParallelWorkerNumber < 0 {
            charge_query(query);
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn collect(
    ps: *mut pg_sys::PlanState,
    ctx: *mut std::ffi::c_void,
) -> bool {
    // SAFETY: ctx is the Vec that `agg_nodes` passes; ps a node of the initialized plan.
    unsafe {
        let found = &mut *(ctx as *mut Vec<*mut pg_sys::AggState>);
        if (*ps).type_ == pg_sys::NodeTag::T_AggState {
            found.push(ps as *mut pg_sys::AggState);
        }
        pg_sys::planstate_tree_walker(ps, Some(collect), ctx)
    }
}

/// Every Agg node of the started plan: the main tree and every subplan (a CTE's plan is reached
/// only through the executor state's list of subplans).
unsafe fn agg_nodes(query: *mut pg_sys::QueryDesc) -> Vec<*mut pg_sys::AggState> {
    // SAFETY: the QueryDesc of a started executor.
    unsafe {
        let mut roots = vec![(*query).planstate];
        let estate = (*query).estate;
        if !estate.is_null() {
            roots.extend(crate::pg::nothrow::list_ptrs::<pg_sys::PlanState>(
                (*estate).es_subplanstates,
            ));
        }
        let mut found: Vec<*mut pg_sys::AggState> = Vec::new();
        for root in roots.into_iter().filter(|r| !r.is_null()) {
            collect(root, &mut found as *mut _ as *mut std::ffi::c_void);
        }
        let mut seen = HashSet::new();
        found.retain(|a| seen.insert(*a as usize));
        found
    }
}

/// The call a combining Aggref (the Finalize node of a parallel plan) finalizes: the planner
/// replaced its arguments with a reference to the partial aggregate's result, so they are read
/// from the partial Aggref below it, following the references down through the nodes between
/// (Gather, Gather Merge, Sort). A plain call is its own.
unsafe fn original_call(
    state: *mut pg_sys::AggState,
    aggref: *mut pg_sys::Aggref,
) -> *mut pg_sys::Aggref {
    // SAFETY: a started Agg node's plan and its subtree; each node is cast to the type its
    // tag names.
    unsafe {
        if (*aggref).aggsplit & pg_sys::AGGSPLITOP_COMBINE == 0 {
            return aggref;
        }
        let not_found = || -> ! {
            crate::pg::errors::raise(
                pgrx::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "the partial aggregate of a combined dp aggregate was not found in its plan",
            )
        };
        let first = PgList::<pg_sys::TargetEntry>::from_pg((*aggref).args)
            .get_ptr(0)
            .unwrap_or_else(|| not_found());
        let mut expr = (*first).expr as *mut pg_sys::Node;
        let mut plan = (*(*state).ss.ps.plan).lefttree;
        for _ in 0..16 {
            if plan.is_null() || (*expr).type_ != pg_sys::NodeTag::T_Var {
                break;
            }
            let var = expr as *mut pg_sys::Var;
            if (*var).varno != pg_sys::OUTER_VAR {
                break;
            }
            let Some(tle) = PgList::<pg_sys::TargetEntry>::from_pg((*plan).targetlist)
                .get_ptr(crate::pg::zero_based((*var).varattno).unwrap_or(usize::MAX))
            else {
                break;
            };
            expr = (*tle).expr as *mut pg_sys::Node;
            if (*expr).type_ == pg_sys::NodeTag::T_Aggref {
                return expr as *mut pg_sys::Aggref;
            }
            plan = (*plan).lefttree;
        }
        not_found()
    }
}

/// The parameters of a call as charged: loss, key and percentiles.
struct Charged {
    epsilon: f64,
    delta: f64,
    key: [u8; 40],
    alphas: Vec<f64>,
}

/// What a call of `kind` with this loss costs in every accounting (`encml_dp::accounting`):
/// its release is made of this many noisy answers, each with its share of the loss.
fn cost_of(kind: DpAggregate, epsilon: f64, delta: f64, alphas: usize) -> Cost {
    use encml_dp::accounting::{cost_of_parts, cost_of_threshold};
    let cost = match kind {
        DpAggregate::Partition => cost_of_threshold(epsilon, delta),
        DpAggregate::Avg => cost_of_parts(2, epsilon, delta),
        DpAggregate::VarPop | DpAggregate::StddevPop => cost_of_parts(3, epsilon, delta),
        DpAggregate::Percentiles => cost_of_parts(alphas as u32, epsilon, delta),
        _ => cost_of_parts(1, epsilon, delta),
    };
    cost.unwrap_or_else(|e| dp_error(unreleasable(e)))
}

/// The parameters of call `aggref` as charged, typed as its state is.
unsafe fn call_params(
    state: *mut pg_sys::AggState,
    aggref: *mut pg_sys::Aggref,
    call: own::OwnCall,
    groups: u32,
) -> Charged {
    fn parts<T: Num>(p: Params<T>) -> Charged {
        Charged {
            epsilon: p.loss.epsilon,
            delta: p.loss.delta.unwrap_or(0.0),
            key: p.key(),
            alphas: Vec::new(),
        }
    }
    // Released with each group's share of the loss (`groups` per unit): checked so, before the
    // charge, so that a loss too small to calibrate (a huge max_groups_contributed) is refused
    // whether or not a group forms (attacker pass of issue 32: refused only when the first
    // group was finalized, it told whether any row matched).
    fn typed(
        kind: DpAggregate,
        first_type: Option<pg_sys::Oid>,
        args: &impl Args,
        groups: u32,
    ) -> Charged {
        match kind {
            k if k.bounded() => {
                let p = params_for::<f64>(kind, args);
                let alphas = alphas_for(kind, args);
                check_release_bounded(kind, p.per_group(groups), &alphas);
                Charged { alphas, ..parts(p) }
            }
            DpAggregate::Sum | DpAggregate::Avg if first_type == Some(pg_sys::FLOAT8OID) => {
                let p = params_for::<f64>(kind, args);
                check_release_f64(kind, p.per_group(groups));
                parts(p)
            }
            _ => {
                let p = params_for::<i64>(kind, args);
                check_release_i64(kind, p.per_group(groups));
                parts(p)
            }
        }
    }
    // SAFETY: the Aggref of a started Agg node.
    unsafe {
        if call.via == Via::CitusCombine {
            let args = combined_call_args(state, aggref, call);
            return typed(call.kind, args.first_type(), &args, groups);
        }
        let aggref = original_call(state, aggref);
        let args = CallArgs::new(state, aggref);
        let first_type = PgList::<pg_sys::TargetEntry>::from_pg((*aggref).args)
            .get_ptr(0)
            .map(|t| pg_sys::exprType((*t).expr as *const pg_sys::Node));
        typed(call.kind, first_type, &args, groups)
    }
}

// A release of an empty group with the parameters about to be charged, its answer discarded:
// an error that a release raises whatever the data (a calibration that fails, a noise scale that
// overflows) comes here, before any row is read and before the charge. Raised by the first
// group's final function instead, it told whether a group formed (attacker round 11).
fn check_release_f64(kind: DpAggregate, p: Params<f64>) {
    let empty = State::<f64> {
        params: Some(p),
        ..State::default()
    };
    let checked = match kind {
        DpAggregate::Avg => state::release_avg(&empty).map(drop),
        _ => state::release_sum_f64(&empty).map(drop),
    };
    checked.unwrap_or_else(|e| dp_error(unreleasable(e)));
}

fn check_release_i64(kind: DpAggregate, p: Params<i64>) {
    let empty = State::<i64> {
        params: Some(p),
        ..State::default()
    };
    let checked = match kind {
        DpAggregate::Count | DpAggregate::CountRows => state::release_count(&empty).map(drop),
        DpAggregate::Sum => state::release_sum_i64(&empty).map(drop),
        DpAggregate::Partition => encml_dp::partition::keep(0, p.loss).map(drop),
        _ => Ok(()),
    };
    checked.unwrap_or_else(|e| dp_error(unreleasable(e)));
}

fn check_release_bounded(kind: DpAggregate, p: Params<f64>, alphas: &[f64]) {
    use encml_dp::bounded::{self, Bounded};
    let checked = match kind {
        DpAggregate::VarPop | DpAggregate::StddevPop => {
            Bounded::<encml_dp::moments::Moments>::empty(p, alphas)
                .and_then(|s| bounded::release_var_pop(&s))
                .map(drop)
        }
        _ => Bounded::<encml_dp::quantile::Histogram>::empty(p, alphas)
            .and_then(|s| bounded::release_percentiles(&s))
            .map(drop),
    };
    checked.unwrap_or_else(|e| dp_error(unreleasable(e)));
}

/// A release's error for parameters that cannot be released, as a parameter error (22023).
fn unreleasable(e: encml_dp::DpError) -> encml_dp::DpError {
    match e {
        encml_dp::DpError::InvalidParameter(_) => e,
        other => encml_dp::DpError::InvalidParameter(format!(
            "no release exists for these parameters: {other}"
        )),
    }
}

/// The arguments of the dp aggregate inside Citus's `coord_combine_agg(aggregate, partial
/// state, ...)`: those of the `worker_partial_agg` call in the worker query of the Citus scan
/// that brings the partial states, which must wrap the same aggregate. Anything else, such as a
/// direct call over states from elsewhere (one state twice, states of other executions), is
/// refused.
unsafe fn combined_call_args(
    state: *mut pg_sys::AggState,
    aggref: *mut pg_sys::Aggref,
    call: own::OwnCall,
) -> WrappedCallArgs {
    let refuse = || -> ! {
        crate::pg::errors::raise(
            pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "coord_combine_agg of {} combines only the partial states that Citus's own plan brings from the shards",
                release::func_name(call.aggfnoid)
            ),
        )
    };
    // SAFETY: the Aggref of a started Agg node; the worker query lives with the plan.
    unsafe {
        let partial_state = PgList::<pg_sys::TargetEntry>::from_pg((*aggref).args)
            .get_ptr(1)
            .unwrap_or_else(|| refuse());
        let made_by = crate::pg::citus_plan::worker_expr(state, (*partial_state).expr)
            .unwrap_or_else(|| refuse());
        if (*(made_by as *mut pg_sys::Node)).type_ != pg_sys::NodeTag::T_Aggref {
            refuse();
        }
        let partial = made_by as *mut pg_sys::Aggref;
        if own::own_call(partial)
            != Some(own::OwnCall {
                via: Via::CitusPartial,
                ..call
            })
        {
            refuse();
        }
        WrappedCallArgs::of(state, partial).unwrap_or_else(|| refuse())
    }
}

/// Refuses, before any row is read, a query with an aggregate of someone else's over the
/// extension's support functions, in any Agg node (partial ones included) or inside a Citus
/// wrapper. This is what lets the transition functions skip a per-row check (`require_preloaded`).
unsafe fn refuse_foreign_aggregates(nodes: &[*mut pg_sys::AggState]) {
    // SAFETY: started Agg nodes; their per-aggregate data are initialized.
    unsafe {
        for &state in nodes {
            for i in 0..(*state).numaggs as usize {
                let aggref = (*(*state).peragg.add(i)).aggref;
                let aggregate = own::effective_aggregate(aggref);
                if own::foreign_user_of_support_functions(aggregate) {
                    crate::pg::errors::raise(
                        pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                        format!(
                            "aggregate {} uses support functions of pg_encrypt_ml's aggregates, which serve only the extension's own",
                            crate::privacy::release::func_name(aggregate)
                        ),
                    );
                }
            }
        }
    }
}

/// Refuses a dp aggregate where the library is not preloaded (see `refuse_not_preloaded`).
/// Called by the transition functions on every row: a static read.
#[inline]
pub fn require_preloaded() {
    if !installed() {
        refuse_not_preloaded();
    }
}

/// Without the library preloaded there is no executor-start hook: no charge before the rows are
/// read, and no check of the query's aggregates.
pub fn refuse_not_preloaded() -> ! {
    crate::pg::errors::raise_full(
        pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "dp aggregates need pg_encrypt_ml in shared_preload_libraries",
        Some(
            "Their privacy charge is taken when the query's executor starts, before any row is \
             read, so that it does not depend on the data."
                .into(),
        ),
        Some("Add pg_encrypt_ml to shared_preload_libraries and restart the server.".into()),
    )
}

/// Charges the started query's dp aggregates (see the module comment).
unsafe fn charge_query(query: *mut pg_sys::QueryDesc) {
    // SAFETY: the QueryDesc of a started executor; its Agg nodes are initialized.
    unsafe {
        let estate = (*query).estate;
        let mut cost = Cost::default();
        let mut prepaid: Vec<((usize, i32), Prepaid)> = Vec::new();
        let nodes = agg_nodes(query);
        refuse_foreign_aggregates(&nodes);
        for state in nodes {
            if (*state).aggsplit & pg_sys::AGGSPLITOP_SKIPFINAL != 0 {
                continue; // a partial aggregate: its states go up to a node that finalizes
            }
            let calls: Vec<(*mut pg_sys::Aggref, own::OwnCall)> = (0..(*state).numaggs as usize)
                .filter_map(|i| {
                    let aggref = (*(*state).peragg.add(i)).aggref;
                    own::own_call(aggref).map(|c| (aggref, c))
                })
                .collect();
            // worker_partial_agg finalizes here only to send its state to the coordinator,
            // which charges.
            if calls.is_empty() || calls.iter().any(|(_, c)| c.via == Via::CitusPartial) {
                continue;
            }
            // On a Citus worker the whole aggregate (final function included) would run on a
            // shard and charge the worker's ledger: refused before anything is charged.
            crate::pg::citus::refuse_on_worker(
                "a dp aggregate",
                "On a distributed table, group by a column other than the distribution column, or \
                 aggregate without GROUP BY: Citus then combines the shards' results on the \
                 coordinator, which adds the noise and charges the budget once.",
            );
            let grouped = release::grouped_node(state);
            // Every dp Agg node runs once per statement. Rescanned (a correlated or LATERAL
            // subquery, the inner side of a nested loop), each run would be charged again: the
            // number of ledger rows (and the time the charges take) would count, without noise,
            // the rows that drive the rescans (attacker re-check of issue 32).
            if !grouped && !release::runs_once(state) {
                crate::pg::errors::raise_full(
                    pgrx::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    "a dp aggregate must run once per statement, not in a correlated or LATERAL \
                     subquery, a recursive term or the inner side of a nested loop",
                    Some(
                        "Each run would be charged again, and the number of charges would count \
                         the rows that drive the reruns."
                            .into(),
                    ),
                    Some("Aggregate in the outer query, or join to an aggregated subquery that does not refer to the outer rows.".into()),
                );
            }
            let selection = grouped.then(|| release::selection_of(state));
            // The groups one unit may reach, and whether the rewrite bounded the rows per unit
            // and group (`groups_per_unit`).
            let (groups_per_unit, bounded) = match selection {
                Some(release::Selection::BoundedThreshold(k, filtered)) => (k, filtered),
                _ => (1, false),
            };
            for (aggref, call) in calls {
                if call.kind == DpAggregate::PublicGroups {
                    continue; // a public list of keys releases nothing of the rows
                }
                let Charged {
                    epsilon: e,
                    delta: d,
                    key,
                    alphas,
                } = call_params(state, aggref, call, groups_per_unit);
                // A partition selection selects groups: without GROUP BY it only counts rows,
                // the privacy unit unbounded (attacker pass of issue 32).
                if call.kind == DpAggregate::Partition && !grouped {
                    crate::pg::errors::raise_full(
                        pgrx::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                        "dp_partition selects the groups of a GROUP BY query: without GROUP BY it has none to select",
                        None,
                        Some("Count rows with encml.dp_count_rows(epsilon [, delta, privacy_unit, max_rows_per_unit]).".into()),
                    );
                }
                if call.kind == DpAggregate::Partition && d == 0.0 {
                    // Refused before the charge, as every parameter error is.
                    crate::pg::errors::dp_error(encml_dp::DpError::InvalidParameter(
                        "dp_partition needs a delta in (0, 1)".into(),
                    ));
                }
                let times = match selection {
                    None => 1,
                    Some(s) => release::times_charged(s, release::has_privacy_unit(aggref)),
                } as f64;
                cost = cost.plus(cost_of(call.kind, e, d, alphas.len()).times(times));
                prepaid.push((
                    (state as usize, (*aggref).aggno),
                    Prepaid {
                        key,
                        alphas,
                        grouped,
                        groups_per_unit,
                        bounded,
                        evaluations: 0,
                        estate: estate as usize,
                    },
                ));
            }
        }
        if prepaid.is_empty() {
            return;
        }
        let _granted = charge::charge_cost(cost);
        remember(estate, prepaid);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn forget(estate: *mut std::ffi::c_void) {
    PREPAID.with(|p| p.borrow_mut().retain(|_, v| v.estate != estate as usize));
}

unsafe fn remember(estate: *mut pg_sys::EState, prepaid: Vec<((usize, i32), Prepaid)>) {
    // SAFETY: the query's memory outlives the execution; when it goes (end of the execution,
    // or its abort) the callback drops this execution's entries.
    unsafe {
        crate::pg::guards::on_reset(
            (*estate).es_query_cxt,
            forget,
            estate as *mut std::ffi::c_void,
        )
    };
    PREPAID.with(|p| p.borrow_mut().extend(prepaid));
}

/// Whether aggregate `aggno` of the running Agg node `state` reads rows the groups-per-unit
/// rewrite bounded (`Prepaid::bounded`); false for an aggregate not charged here (a parallel
/// worker's partial aggregate keeps its per-unit state).
pub fn bounded(state: *mut pg_sys::AggState, aggno: i32) -> bool {
    PREPAID.with(|p| {
        p.borrow()
            .get(&(state as usize, aggno))
            .is_some_and(|e| e.bounded)
    })
}

/// The prepaid charge of the aggregate being finalized, its evaluations counted (this one
/// included); None if the executor start did not charge it.
///
/// # Safety
/// `state` must be the running Agg node and `aggref` the call it finalizes.
pub unsafe fn evaluate(
    state: *mut pg_sys::AggState,
    aggref: *mut pg_sys::Aggref,
) -> Option<Prepaid> {
    // SAFETY: as the caller guarantees.
    let key = (state as usize, unsafe { (*aggref).aggno });
    PREPAID.with(|p| {
        let mut p = p.borrow_mut();
        let entry = p.get_mut(&key)?;
        entry.evaluations += 1;
        Some(entry.clone())
    })
}
