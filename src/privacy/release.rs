//! Where a dp aggregate runs, read from its Agg plan node, and what that means for its charge.
//!
//! Every dp Agg node must run once per statement (`runs_once`; refused at executor start
//! otherwise: a rescan would be charged again, and the number of charges would count the rows
//! driving the rescans). With GROUP BY, the groups themselves are data:
//! - the Agg node must select its groups, with `HAVING encml.dp_partition(epsilon, delta)` (a
//!   noisy-count threshold) or `HAVING encml.dp_public_groups(key, keys)` (a list of public keys,
//!   for privacy admins) as a top-level condition;
//! - the charge must not depend on how many groups there are (else the ledger would count them
//!   exactly), so it is taken once per execution of the Agg node: without a privacy unit each row,
//!   hence each person, is in one group and the groups compose in parallel; with a privacy unit a
//!   person may be in every group, so the charge is multiplied by the number of public keys (and
//!   a noisy threshold, which cannot bound that number, is refused);
//! - "once per execution" needs an Agg node that runs once per statement: it must not sit on the
//!   inner side of a nested loop, in a recursive query's recursive term or in a correlated
//!   subquery, where every rescan would draw fresh noise for the same groups;
//! - grouping sets (ROLLUP, CUBE) put a row in several groupings and are refused.

use crate::pg::errors::{raise, raise_full};
use crate::privacy::own::DpAggregate;
use pgrx::{pg_sys, PgList, PgSqlErrorCode};
use std::collections::HashSet;
use std::ffi::CStr;

/// How a GROUP BY selects the groups it releases.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Selection {
    /// `dp_partition`: a noisy count passes a threshold.
    Threshold,
    /// `dp_partition` with a privacy unit: a noisy count of units passes a threshold, each
    /// unit's rows reaching at most this many groups (`groups_per_unit`).
    /// The second field: whether the aggregates' rows are also bounded per unit and group by
    /// the rewrite's FILTER (`groups_per_unit::MARK_FILTERED`).
    BoundedThreshold(u32, bool),
    /// `dp_public_groups` with this many public keys.
    Public(u32),
}

/// The Agg node running the aggregate support function of `fcinfo`; raises (0A000) when the
/// caller is not an Agg node (a direct call, a window aggregate).
///
/// # Safety
/// `fcinfo` must be the FunctionCallInfo of the running support function call, valid for the
/// call.
pub unsafe fn agg_state(fcinfo: pg_sys::FunctionCallInfo) -> *mut pg_sys::AggState {
    // SAFETY: fcinfo is the call's FunctionCallInfo, non-null and valid for the whole call, as
    // the caller guarantees.
    let ctx = unsafe { (*fcinfo).context };
    // SAFETY: fmgr's contract: a non-NULL `context` points to a Node, whose tag can be read.
    if ctx.is_null() || unsafe { (*ctx).type_ } != pg_sys::NodeTag::T_AggState {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "dp aggregates must run as plain aggregates",
        );
    }
    ctx as *mut pg_sys::AggState
}

/// The aggregate call being finalized (its arguments as written in the query).
///
/// # Safety
/// `fcinfo` must be the FunctionCallInfo of the running support function call, valid for the
/// call.
pub unsafe fn aggref(fcinfo: pg_sys::FunctionCallInfo) -> *mut pg_sys::Aggref {
    // SAFETY: fcinfo is the call's FunctionCallInfo, as the caller guarantees; AggGetAggref
    // checks its context is an AggState itself and returns NULL otherwise (checked below). The
    // Aggref belongs to the plan, which outlives the call. Through pgrx's guarded binding.
    let a = unsafe { pg_sys::AggGetAggref(fcinfo) };
    if a.is_null() {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "dp aggregate support functions can only be called by their aggregates",
        );
    }
    a
}

pub fn type_name(oid: pg_sys::Oid) -> String {
    // SAFETY: format_type_be returns a palloc'd string for any oid (or raises for an unknown one).
    let p = unsafe { pg_sys::format_type_be(oid) };
    // SAFETY: p is that non-NULL, NUL-terminated string in the current memory context, which
    // outlives this statement; it is copied at once.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

pub fn func_name(oid: pg_sys::Oid) -> String {
    // SAFETY: a syscache lookup by oid through pgrx's guarded binding; returns a palloc'd copy
    // of the name in the current memory context, or NULL for an unknown oid.
    let p = unsafe { pg_sys::get_func_name(oid) };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: p is non-NULL (checked above) and NUL-terminated, in the current memory context
    // for the rest of this call; it is copied at once.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Whether the Agg node groups (GROUP BY); refuses grouping sets.
///
/// # Safety
/// `state` must be an initialized Agg node (ExecInitAgg done) of a plan alive for the call.
pub unsafe fn grouped_node(state: *mut pg_sys::AggState) -> bool {
    // SAFETY: state is an initialized AggState, as the caller guarantees; its ss.ps.plan is the
    // Agg plan node it was made from (ExecInitAgg), kept in the plan's memory for the query.
    unsafe {
        let plan = (*state).ss.ps.plan as *mut pg_sys::Agg;
        if !(*plan).groupingSets.is_null() {
            raise(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "dp aggregates cannot be used with GROUPING SETS, ROLLUP or CUBE",
            );
        }
        (*plan).numCols > 0
    }
}

/// How the grouped Agg node `state` selects its groups (see `selection`).
///
/// # Safety
/// `state` must be an initialized Agg node (ExecInitAgg done) of the started query, whose
/// executor state and plan live for the call.
pub unsafe fn selection_of(state: *mut pg_sys::AggState) -> Selection {
    // SAFETY: state is an initialized AggState, as the caller guarantees; its plan is an Agg
    // whose qual is a List of expression Nodes (HAVING, ANDed), each cast to Aggref only after
    // its tag says so; public_key_count and runs_once get the same node.
    unsafe {
        let plan = (*state).ss.ps.plan as *mut pg_sys::Agg;
        let mut selection = None;
        // The qual is the HAVING clause as a list of ANDed conditions; only a condition that is
        // the selecting aggregate itself counts (not one ORed with something else).
        for cond in PgList::<pg_sys::Node>::from_pg((*plan).plan.qual).iter_ptr() {
            if (*cond).type_ != pg_sys::NodeTag::T_Aggref {
                continue;
            }
            let a = cond as *mut pg_sys::Aggref;
            // Recognised by catalog membership: a pg_temp.dp_partition is not a selection.
            match crate::privacy::own::dp_aggregate((*a).aggfnoid) {
                Some(DpAggregate::Partition) if selection.is_none() && has_privacy_unit(a) => {
                    selection = Some(Selection::BoundedThreshold(
                        groups_per_unit(state, a),
                        (*a).location == crate::privacy::groups_per_unit::MARK_FILTERED,
                    ))
                }
                Some(DpAggregate::Partition) if selection.is_none() => {
                    selection = Some(Selection::Threshold)
                }
                Some(DpAggregate::PublicGroups) => {
                    selection = Some(Selection::Public(public_key_count(state, a)));
                }
                _ => {}
            }
        }
        let Some(selection) = selection else {
            raise_full(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                "dp aggregates with GROUP BY need HAVING encml.dp_partition(epsilon, delta)",
                Some(
                    "A group that exists only because one person is in it would reveal that person."
                        .into(),
                ),
                Some(
                    "Add HAVING encml.dp_partition(...) (a noisy threshold), or have a privacy \
                     admin group over public keys with HAVING encml.dp_public_groups(key, keys)."
                        .into(),
                ),
            );
        };
        if !runs_once(state) {
            raise(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "a grouped dp aggregate must run once per statement, not in a correlated \
                 subquery, a recursive term or the inner side of a nested loop",
            );
        }
        selection
    }
}

/// Whether the call bounds contributions per privacy unit (its last two arguments are the unit
/// and max_rows_per_unit).
///
/// # Safety
/// `aggref` must be a valid Aggref (of a query tree or plan) alive for the call.
pub unsafe fn has_privacy_unit(aggref: *mut pg_sys::Aggref) -> bool {
    // SAFETY: aggref is valid, as the caller guarantees; its args are a List of TargetEntry,
    // each with an expression; `type_at` is called only for n - 2 and n - 1 with n >= 4 (the
    // `&&` short-circuits), so `get_ptr` finds an entry and the unwrap cannot fail.
    unsafe {
        let args = PgList::<pg_sys::TargetEntry>::from_pg((*aggref).args);
        let n = args.len();
        let type_at = |i: usize| pg_sys::exprType((*args.get_ptr(i).unwrap()).expr as *const _);
        n >= 4 && type_at(n - 2) == pg_sys::TEXTOID && type_at(n - 1) == pg_sys::INT4OID
    }
}

/// How many times a grouped aggregate's loss is charged: once without a privacy unit (each row,
/// hence each person, is in one group: the groups compose in parallel), once per public key with
/// one (a person may be in every group); a noisy threshold cannot bound the groups a unit is in
/// and is refused with a unit.
pub fn times_charged(selection: Selection, privacy_unit: bool) -> u32 {
    match (selection, privacy_unit) {
        // Each unit in at most k groups, each group's noise for a k-th of the loss.
        (Selection::BoundedThreshold(..), _) => 1,
        (_, false) => 1,
        (Selection::Public(keys), true) => keys,
        (Selection::Threshold, true) => raise_full(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "a privacy unit needs the privacy-unit form of dp_partition",
            Some(
                "One unit may fall in many groups; without a bound on that number the groups do \
                 not compose in parallel."
                    .into(),
            ),
            Some(
                "Bound the groups per unit with HAVING encml.dp_partition(epsilon, delta, \
                 privacy_unit, max_groups_contributed), group over public keys \
                 (dp_public_groups), or drop the privacy unit."
                    .into(),
            ),
        ),
    }
}

/// The groups per unit of the privacy-unit dp_partition `a` (its last argument), which must
/// be the call the planner hook rewrote (`groups_per_unit::is_mark`) so that the node's rows are
/// bounded to that many groups per unit, and whose unit every dp aggregate of the node shares.
unsafe fn groups_per_unit(state: *mut pg_sys::AggState, a: *mut pg_sys::Aggref) -> u32 {
    // SAFETY: `state` is the started Agg node running `a` (from `selection_of`); its peragg
    // array holds numaggs entries, each with the Aggref of the plan; args are TargetEntry lists.
    unsafe {
        if !crate::privacy::groups_per_unit::is_mark((*a).location) {
            raise_full(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "this dp_partition with a privacy unit was not bounded when the query was planned",
                Some(
                    "The groups of each unit are bounded by rewriting the query level before it \
                     is planned; a query inside a SQL function that the planner inlines is not \
                     seen."
                        .into(),
                ),
                Some(
                    "Write the grouped query in the statement itself, in a FROM subquery or in a \
                     WITH query."
                        .into(),
                ),
            );
        }
        let (datum, isnull) = eval_arg(state, a, 3, "max_groups_contributed");
        let k = if isnull { 0 } else { datum.value() as i32 };
        if k < 1 {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "max_groups_contributed must be at least 1",
            );
        }
        // On a Citus coordinator each aggregate's unit is its own column of the rows the shards
        // send: compared as the worker query computes them.
        let unit_of = |agg: *mut pg_sys::Aggref| {
            let args = PgList::<pg_sys::TargetEntry>::from_pg((*agg).args);
            let e = (*args.get_ptr(args.len() - 2).unwrap()).expr;
            crate::pg::citus_plan::worker_expr(state, e).unwrap_or(e) as *const std::ffi::c_void
        };
        let unit = unit_of(a);
        for i in 0..(*state).numaggs as usize {
            let other = (*(*state).peragg.add(i)).aggref;
            let same = match crate::privacy::own::dp_aggregate((*other).aggfnoid) {
                None | Some(DpAggregate::PublicGroups) => true,
                Some(_) => has_privacy_unit(other) && pg_sys::equal(unit_of(other), unit),
            };
            if !same {
                raise(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    "with dp_partition's privacy unit, every dp aggregate of the query takes the same privacy unit",
                );
            }
        }
        k as u32
    }
}

/// The length of `dp_public_groups`'s key array, which must not depend on the rows.
unsafe fn public_key_count(state: *mut pg_sys::AggState, a: *mut pg_sys::Aggref) -> u32 {
    // SAFETY: `state` is the started Agg node running `a` (from `selection_of`). The non-NULL
    // datum is of dp_public_groups' declared array type; detoasted, it is an ArrayType (in the
    // node's per-tuple memory, not reset before rows are read, or a palloc'd copy in the current
    // context) that outlives the SPI call; ARR_DIMS follows its fixed header (not read when
    // ndim is 0). `a`'s args are a TargetEntry list.
    unsafe {
        let (datum, isnull) = eval_arg(state, a, 1, "the public keys");
        if isnull {
            return 0;
        }
        let arr = pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) as *mut pg_sys::ArrayType;
        // ARR_DIMS: the dimensions follow the fixed header.
        let dims = (arr as *mut u8).add(std::mem::size_of::<pg_sys::ArrayType>()) as *mut i32;
        let n = u32::try_from(pg_sys::ArrayGetNItems((*arr).ndim, dims)).unwrap_or(u32::MAX);
        // A key listed twice joins each of its rows twice (the recommended LEFT JOIN from the
        // list), doubling what one person contributes to that group: refused, as NULL keys.
        let tle = PgList::<pg_sys::TargetEntry>::from_pg((*a).args)
            .get_ptr(1)
            .expect("the public keys argument");
        let array_type = pg_sys::exprType((*tle).expr as *const pg_sys::Node);
        let distinct = crate::pg::catalog_reads::select_one::<bool>(
            "SELECT pg_catalog.count(*) OPERATOR(pg_catalog.=) pg_catalog.count(DISTINCT k) \
               FROM pg_catalog.unnest($1) AS k",
            &[(array_type, Some(pg_sys::Datum::from(arr)))],
        )
        .unwrap_or(false);
        if !distinct {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "the public keys of dp_public_groups must be distinct and not NULL",
            );
        }
        n
    }
}

/// Evaluates argument `i` of an aggregate call without a row: allowed only for arguments that
/// do not read the rows (constants, query parameters and functions of them).
///
/// # Safety
/// `state` must be a started Agg node (its expression context set up) and `a` an Aggref of its
/// plan (or of a query) alive for the call.
pub unsafe fn eval_arg(
    state: *mut pg_sys::AggState,
    a: *mut pg_sys::Aggref,
    i: usize,
    what: &str,
) -> (pg_sys::Datum, bool) {
    // SAFETY: as the caller guarantees; `a`'s args are a TargetEntry list (index checked by
    // get_ptr); worker_expr gets the started Agg node and an expression of its plan.
    unsafe {
        let Some(tle) = PgList::<pg_sys::TargetEntry>::from_pg((*a).args).get_ptr(i) else {
            crate::pg::errors::internal("dp aggregate argument missing");
        };
        // Over rows that a Citus scan brings, Citus moved the argument into its worker query and
        // brings it back as a column: it is read there (and must not read the rows either).
        let expr = crate::pg::citus_plan::worker_expr(state, (*tle).expr).unwrap_or((*tle).expr);
        eval_expr(state, expr, what)
    }
}

/// Evaluates `expr` without a row (see `eval_arg`).
///
/// # Safety
/// `state` must be a started Agg node (its expression context set up) and `expr` a valid
/// expression tree alive for the call.
pub unsafe fn eval_expr(
    state: *mut pg_sys::AggState,
    expr: *mut pg_sys::Expr,
    what: &str,
) -> (pg_sys::Datum, bool) {
    // SAFETY: as the caller guarantees. The walkers only read `expr`; ExecInitExpr builds its
    // state in the current memory context, which outlives this evaluation; the started node's
    // ps_ExprContext is non-NULL (ExecAssignExprContext in ExecInitAgg) and evaluation runs in
    // its per-tuple memory, switched back after. The compiled evalfunc is a C function that
    // may raise: it is called through pgrx's FFI guard, so an ERROR unwinds Rust frames.
    unsafe {
        let node = expr as *mut pg_sys::Node;
        // A Citus worker query's expression is not planned: sublinks, aggregates and window
        // functions are still there as such.
        if pg_sys::contain_var_clause(node)
            || pg_sys::contain_subplans(node)
            || has_exec_param(node, std::ptr::null_mut())
            || pg_sys::checkExprHasSubLink(node)
            || pg_sys::contain_agg_clause(node)
            || pg_sys::contain_window_function(node)
        {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("{what} of a dp aggregate must not depend on the rows"),
            );
        }
        let econtext = (*state).ss.ps.ps_ExprContext;
        let exprstate = pg_sys::ExecInitExpr(expr, state as *mut pg_sys::PlanState);
        let old = pg_sys::MemoryContextSwitchTo((*econtext).ecxt_per_tuple_memory);
        let mut isnull = false;
        let f = (*exprstate).evalfunc.expect("an initialized expression");
        let d = pg_sys::ffi::pg_guard_ffi_boundary(|| f(exprstate, econtext, &mut isnull));
        pg_sys::MemoryContextSwitchTo(old);
        (d, isnull)
    }
}

/// Whether `node` uses the result of a subquery (a PARAM_EXEC, as an uncorrelated scalar
/// subquery becomes): that subquery could read the data (`(SELECT max(x) FROM t)` as a bound).
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn has_exec_param(
    node: *mut pg_sys::Node,
    context: *mut std::ffi::c_void,
) -> bool {
    // SAFETY: a node of an expression tree (or NULL); walked read-only.
    unsafe {
        if node.is_null() {
            return false;
        }
        if (*node).type_ == pg_sys::NodeTag::T_Param
            && (*(node as *mut pg_sys::Param)).paramkind == pg_sys::ParamKind::PARAM_EXEC
        {
            return true;
        }
        pg_sys::expression_tree_walker(node, Some(has_exec_param), context)
    }
}

/// The children of a plan node besides its left and right trees: an Append's or MergeAppend's
/// plans, a custom scan's, a subquery scan's subplan.
///
/// # Safety
/// `p` must be a valid, non-NULL plan node of a plan tree alive for the call.
pub unsafe fn special_children(p: *mut pg_sys::Plan) -> Vec<*mut pg_sys::Plan> {
    // SAFETY: a plan node, cast to the type its tag names.
    unsafe {
        let list = match (*p).type_ {
            pg_sys::NodeTag::T_Append => (*(p as *mut pg_sys::Append)).appendplans,
            pg_sys::NodeTag::T_MergeAppend => (*(p as *mut pg_sys::MergeAppend)).mergeplans,
            pg_sys::NodeTag::T_CustomScan => (*(p as *mut pg_sys::CustomScan)).custom_plans,
            pg_sys::NodeTag::T_SubqueryScan => {
                return vec![(*(p as *mut pg_sys::SubqueryScan)).subplan];
            }
            _ => return Vec::new(),
        };
        PgList::<pg_sys::Plan>::from_pg(list).iter_ptr().collect()
    }
}

/// The parameters that initPlans of the statement set (anywhere in it).
unsafe fn init_plan_params(stmt: *mut pg_sys::PlannedStmt) -> HashSet<i32> {
    // SAFETY: the executor's plan; every node is a Plan, initPlan lists hold SubPlans.
    unsafe {
        let mut out = HashSet::new();
        let mut stack: Vec<*mut pg_sys::Plan> = vec![(*stmt).planTree];
        stack.extend(PgList::<pg_sys::Plan>::from_pg((*stmt).subplans).iter_ptr());
        let mut seen = HashSet::new();
        while let Some(p) = stack.pop() {
            if p.is_null() || !seen.insert(p as usize) {
                continue;
            }
            for sp in PgList::<pg_sys::SubPlan>::from_pg((*p).initPlan).iter_ptr() {
                let set = (*sp).setParam;
                if !set.is_null() {
                    for i in 0..(*set).length {
                        out.insert(pg_sys::list_nth_int(set, i));
                    }
                }
            }
            stack.push((*p).lefttree);
            stack.push((*p).righttree);
            stack.extend(special_children(p));
        }
        out
    }
}

/// Whether the Agg node runs once per execution of the statement (see the module comment).
///
/// # Safety
/// `state` must be a started Agg node of the running statement.
pub unsafe fn runs_once(state: *mut pg_sys::AggState) -> bool {
    // SAFETY: `state` is a started Agg node (from `selection_of`): its ss.ps.plan and its EState
    // (ss.ps.state) with the PlannedStmt are set by ExecInitNode and live for the query. Every
    // node pushed is a Plan of that statement or NULL (skipped); initPlan lists hold SubPlans
    // whose plan_id, like a CteScan's ctePlanId, numbers `subplans` from 1 (get_ptr checks).
    unsafe {
        let target = (*state).ss.ps.plan;
        let stmt = (*(*state).ss.ps.state).es_plannedstmt;
        let subplans = PgList::<pg_sys::Plan>::from_pg((*stmt).subplans);
        // A parameter from outside the node that no initPlan sets comes from an outer query's
        // row: a correlated subquery. (An initPlan's result, such as a row-level security
        // policy's `(SELECT ...)`, is computed once.)
        let init_params = init_plan_params(stmt);
        let mut p = -1;
        loop {
            p = pg_sys::bms_next_member((*target).extParam, p);
            if p < 0 {
                break;
            }
            if !init_params.contains(&p) {
                return false;
            }
        }
        let mut stack = vec![(*stmt).planTree];
        let mut seen = HashSet::new();
        // Only edges along which a child runs once per run of its parent are followed; an Agg
        // found only through other edges (or an expression's SubPlan) does not run once.
        while let Some(p) = stack.pop() {
            if p.is_null() || !seen.insert(p as usize) {
                continue;
            }
            if p == target {
                return true;
            }
            let tag = (*p).type_;
            stack.push((*p).lefttree);
            if tag != pg_sys::NodeTag::T_NestLoop && tag != pg_sys::NodeTag::T_RecursiveUnion {
                stack.push((*p).righttree);
            }
            for sp in PgList::<pg_sys::SubPlan>::from_pg((*p).initPlan).iter_ptr() {
                stack.push(
                    subplans
                        .get_ptr((*sp).plan_id as usize - 1)
                        .unwrap_or(std::ptr::null_mut()),
                );
            }
            stack.extend(special_children(p));
            // A CTE's plan fills its tuple store once; rescans of the scan read the store.
            if tag == pg_sys::NodeTag::T_CteScan {
                let id = (*(p as *mut pg_sys::CteScan)).ctePlanId as usize;
                stack.push(subplans.get_ptr(id - 1).unwrap_or(std::ptr::null_mut()));
            }
        }
        false
    }
}
