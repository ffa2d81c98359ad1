//! What a Citus scan in a coordinator's plan sends to the workers: the expressions of its worker
//! query, so that a dp aggregate's parameters, which Citus moves into the worker query and brings
//! back as columns, can be read when the coordinator's executor starts (privacy::start).
//!
//! Citus keeps its distributed plan in the custom scan's `custom_private` as an extensible node
//! (`GetDistributedPlan` in Citus's distributed_planner.c). Only the first fields of two of its
//! structs are read here, each checked by the extensible node's name and the node tags of what
//! it points to; anything else gives None, and the caller refuses: a plan we cannot read is not
//! charged at a guess.

use pgrx::{pg_sys, PgList};
use std::ffi::CStr;

/// Citus's `CitusNode` (citus_nodes.h): an extensible node and Citus's own tag.
#[repr(C)]
struct CitusNode {
    extensible: pg_sys::ExtensibleNode,
    citus_tag: std::ffi::c_int,
}

/// The first fields of Citus's `DistributedPlan` (multi_physical_planner.h, Citus 11 to 13).
#[repr(C)]
struct DistributedPlanHead {
    node: CitusNode,
    plan_id: u64,
    mod_level: std::ffi::c_int,
    expect_results: bool,
    worker_job: *mut JobHead,
}

/// The first fields of Citus's `Job`.
#[repr(C)]
struct JobHead {
    node: CitusNode,
    job_id: u64,
    job_query: *mut pg_sys::Query,
}

/// Whether `node` is an extensible node named `name`.
unsafe fn is_extensible(node: *const pg_sys::Node, name: &CStr) -> bool {
    // SAFETY: a node pointer of a plan (or NULL); an ExtensibleNode starts with its tag and name.
    unsafe {
        !node.is_null() && (*node).type_ == pg_sys::NodeTag::T_ExtensibleNode && {
            let n = (*(node as *const pg_sys::ExtensibleNode)).extnodename;
            !n.is_null() && CStr::from_ptr(n) == name
        }
    }
}

/// Whether `plan` is one of Citus's custom scans.
///
/// # Safety
/// `plan` must be NULL or point to a valid plan node (of a plan that lives for the call).
pub unsafe fn is_citus_scan(plan: *const pg_sys::Plan) -> bool {
    // SAFETY: a plan node, cast to the type its tag names.
    unsafe {
        if plan.is_null() || (*plan).type_ != pg_sys::NodeTag::T_CustomScan {
            return false;
        }
        let methods = (*(plan as *const pg_sys::CustomScan)).methods;
        !methods.is_null()
            && !(*methods).CustomName.is_null()
            && CStr::from_ptr((*methods).CustomName)
                .to_bytes()
                .starts_with(b"Citus")
    }
}

/// The worker query of a Citus custom scan, if its distributed plan reads as expected.
unsafe fn worker_query(scan: *const pg_sys::CustomScan) -> Option<*mut pg_sys::Query> {
    // SAFETY: a Citus custom scan of a started plan; each pointer is checked by node tag and
    // extensible node name before the struct behind it is read.
    unsafe {
        let private = PgList::<pg_sys::Node>::from_pg((*scan).custom_private);
        if private.len() != 1 {
            return None;
        }
        let plan = private.get_ptr(0)?;
        if !is_extensible(plan, c"DistributedPlan") {
            return None;
        }
        let job = (*(plan as *const DistributedPlanHead)).worker_job;
        if !is_extensible(job as *const pg_sys::Node, c"Job") {
            return None;
        }
        let query = (*job).job_query;
        (!query.is_null() && (*query).type_ == pg_sys::NodeTag::T_Query).then_some(query)
    }
}

/// The worker query's expression behind `expr`, a column of the rows that a Citus scan below
/// the Agg node `agg` brings: `expr` refers to the node's input (OUTER_VAR), followed down
/// through the nodes between (Sort, Result, ...) by their target lists to the Citus scan, whose
/// column k is the worker query's k-th non-junk target (Citus's `RemoteScanTargetList`).
/// None if `expr` is not such a column, or the plan does not read as expected.
///
/// # Safety
/// `agg` must be a started Agg node and `expr` an expression of its plan.
pub unsafe fn worker_expr(
    agg: *const pg_sys::AggState,
    expr: *mut pg_sys::Expr,
) -> Option<*mut pg_sys::Expr> {
    // SAFETY: as the caller guarantees; nodes are cast to the types their tags name.
    unsafe {
        let var_of = |e: *mut pg_sys::Expr, varno: i32| -> Option<i16> {
            let node = e as *mut pg_sys::Node;
            if node.is_null() || (*node).type_ != pg_sys::NodeTag::T_Var {
                return None;
            }
            let v = e as *mut pg_sys::Var;
            ((*v).varno == varno && (*v).varattno > 0).then_some((*v).varattno)
        };
        let mut attno = var_of(expr, pg_sys::OUTER_VAR)?;
        let mut plan = (*(*agg).ss.ps.plan).lefttree;
        for _ in 0..16 {
            if plan.is_null() {
                return None;
            }
            let tle = PgList::<pg_sys::TargetEntry>::from_pg((*plan).targetlist)
                .get_ptr(attno as usize - 1)?;
            if is_citus_scan(plan) {
                let scan = plan as *const pg_sys::CustomScan;
                let index = var_of((*tle).expr, pg_sys::INDEX_VAR)?;
                let column = PgList::<pg_sys::TargetEntry>::from_pg((*scan).custom_scan_tlist)
                    .get_ptr(index as usize - 1)?;
                let column_var = (*column).expr as *mut pg_sys::Node;
                if column_var.is_null() || (*column_var).type_ != pg_sys::NodeTag::T_Var {
                    return None;
                }
                let k = (*(column_var as *mut pg_sys::Var)).varattno;
                let query = worker_query(scan)?;
                let target = PgList::<pg_sys::TargetEntry>::from_pg((*query).targetList)
                    .iter_ptr()
                    .filter(|t| !(**t).resjunk)
                    .nth((k as usize).checked_sub(1)?)?;
                return Some((*target).expr);
            }
            // Only nodes that pass their input's columns through (a Var of the outer input).
            attno = var_of((*tle).expr, pg_sys::OUTER_VAR)?;
            plan = (*plan).lefttree;
        }
        None
    }
}
