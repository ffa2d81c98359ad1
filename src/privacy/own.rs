//! Which aggregate calls are the extension's own dp aggregates, recognised by catalog state
//! (membership in the extension, from `pg_depend`), never by name or schema: anyone can create
//! an aggregate over the dp support functions, or a function called `dp_partition` in `pg_temp`.
//!
//! The exact state must never reach an aggregate of someone else's (which could return it, or
//! release it without a charge): when a query starts, every aggregate of the plan that uses one
//! of the extension's functions must be the extension's own (`foreign_user_of_support_functions`,
//! checked by `privacy::start` before any row is read; this also covers an aggregate that shares
//! our aggregate's transition state, which Postgres does for identical transitions). The combine
//! and final functions also ask `require` for the call they serve. Citus's partial-aggregation
//! wrappers (`worker_partial_agg`, `coord_combine_agg`, members of the citus extension) are
//! accepted around the extension's own aggregates only.
//!
//! OIDs are looked up per backend and forgotten when pg_proc changes (they change across dump,
//! restore and upgrade, so they are never stored).

use crate::pg::errors::raise;
use pgrx::{pg_sys, PgList, PgSqlErrorCode};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// The extension's dp aggregates (and its partition selections), by the aggregate's name as the
/// extension created it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpAggregate {
    Count,
    CountRows,
    Sum,
    Avg,
    Partition,
    PublicGroups,
    /// dp_percentile (one percentile), dp_percentiles (an array of them), dp_median.
    Percentile,
    Percentiles,
    Median,
    VarPop,
    StddevPop,
}

impl DpAggregate {
    /// Whether its state is a `Bounded` summary of float values (`dp_bounded_aggregates`).
    pub fn bounded(self) -> bool {
        matches!(
            self,
            DpAggregate::Percentile
                | DpAggregate::Percentiles
                | DpAggregate::Median
                | DpAggregate::VarPop
                | DpAggregate::StddevPop
        )
    }
}

/// How an aggregate call runs one of the extension's aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Called directly (also as parallel query's partial and final steps).
    Direct,
    /// Inside Citus's `worker_partial_agg` on a shard.
    CitusPartial,
    /// Inside Citus's `coord_combine_agg` on the coordinator.
    CitusCombine,
}

/// One recognised aggregate call: which aggregate, its oid, and the wrapper it runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnCall {
    pub kind: DpAggregate,
    pub aggfnoid: pg_sys::Oid,
    pub via: Via,
}

/// What a function oid is to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Own(DpAggregate),
    CitusPartial,
    CitusCombine,
    Other,
}

thread_local! {
    static KNOWN: RefCell<HashMap<u32, Known>> = RefCell::new(HashMap::new());
    /// Aggregates of someone else's over the extension's support functions, by oid.
    static FOREIGN: RefCell<HashMap<u32, bool>> = RefCell::new(HashMap::new());
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
    /// The last Aggref found to be a direct own call, with its aggregate's oid (a support
    /// function runs once per row: two comparisons are the per-row cost). The oid is compared
    /// too because a later query's Aggref may be allocated at the same address. Cleared with
    /// `KNOWN`.
    static LAST: Cell<(usize, pg_sys::Oid, Option<OwnCall>)> =
        const { Cell::new((0, pg_sys::InvalidOid, None)) };
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn forget(_arg: pg_sys::Datum, _cache: std::ffi::c_int, _hash: u32) {
    KNOWN.with(|k| {
        if let Ok(mut k) = k.try_borrow_mut() {
            k.clear();
        }
    });
    FOREIGN.with(|f| {
        if let Ok(mut f) = f.try_borrow_mut() {
            f.clear();
        }
    });
    MEMBERS.with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            m.clear();
        }
    });
    LAST.with(|l| l.set((0, pg_sys::InvalidOid, None)));
}

fn register() {
    if !REGISTERED.with(|r| r.replace(true)) {
        // SAFETY: registers a callback once per process, for a valid cache id.
        unsafe {
            pg_sys::CacheRegisterSyscacheCallback(
                pg_sys::SysCacheIdentifier::PROCOID as i32,
                Some(forget),
                pg_sys::Datum::from(0usize),
            )
        };
    }
}

/// The extension a function belongs to (by `pg_depend`), compared with an extension by oid.
unsafe fn member_of(func: pg_sys::Oid, extension: &std::ffi::CStr) -> bool {
    // SAFETY: catalog lookups by oid and name.
    unsafe {
        let ext = pg_sys::get_extension_oid(extension.as_ptr(), true);
        ext != pg_sys::InvalidOid
            && pg_sys::getExtensionOfObject(pg_sys::ProcedureRelationId, func) == ext
    }
}

fn classify(func: pg_sys::Oid) -> Known {
    // SAFETY: catalog lookups by oid.
    unsafe {
        if pg_sys::get_func_prokind(func) != pg_sys::PROKIND_AGGREGATE as std::ffi::c_char {
            return Known::Other;
        }
        let name = crate::privacy::release::func_name(func);
        if member_of(func, c"pg_encrypt_ml") {
            return match name.as_str() {
                "dp_count" => Known::Own(DpAggregate::Count),
                "dp_count_rows" => Known::Own(DpAggregate::CountRows),
                "dp_sum" => Known::Own(DpAggregate::Sum),
                "dp_avg" => Known::Own(DpAggregate::Avg),
                "dp_partition" => Known::Own(DpAggregate::Partition),
                "dp_public_groups" => Known::Own(DpAggregate::PublicGroups),
                "dp_percentile" => Known::Own(DpAggregate::Percentile),
                "dp_percentiles" => Known::Own(DpAggregate::Percentiles),
                "dp_median" => Known::Own(DpAggregate::Median),
                "dp_var_pop" => Known::Own(DpAggregate::VarPop),
                "dp_stddev_pop" => Known::Own(DpAggregate::StddevPop),
                _ => Known::Other,
            };
        }
        if member_of(func, c"citus") {
            return match name.as_str() {
                "worker_partial_agg" => Known::CitusPartial,
                "coord_combine_agg" => Known::CitusCombine,
                _ => Known::Other,
            };
        }
        Known::Other
    }
}

fn known(func: pg_sys::Oid) -> Known {
    register();
    if let Some(k) = KNOWN.with(|k| k.borrow().get(&func.to_u32()).copied()) {
        return k;
    }
    let k = classify(func);
    KNOWN.with(|m| m.borrow_mut().insert(func.to_u32(), k));
    k
}

thread_local! {
    static MEMBERS: RefCell<HashMap<u32, bool>> = RefCell::new(HashMap::new());
}

/// Whether `func` is one of the extension's functions (by catalog membership), cached per
/// backend until pg_proc changes.
pub fn extension_function(func: pg_sys::Oid) -> bool {
    register();
    if let Some(m) = MEMBERS.with(|m| m.borrow().get(&func.to_u32()).copied()) {
        return m;
    }
    // SAFETY: catalog lookups by oid.
    let member = unsafe { member_of(func, c"pg_encrypt_ml") };
    MEMBERS.with(|m| m.borrow_mut().insert(func.to_u32(), member));
    member
}

/// The extension's dp aggregate `func` is, if it is one.
pub fn dp_aggregate(func: pg_sys::Oid) -> Option<DpAggregate> {
    match known(func) {
        Known::Own(kind) => Some(kind),
        _ => None,
    }
}

/// Whether `aggfnoid` is an aggregate that is not the extension's but shares a support function
/// with one of the extension's aggregates: it could return or release their exact state (with
/// no final function of ours, the transition state itself; or sharing our aggregate's
/// transition state in one query, which Postgres does for identical transitions).
pub fn foreign_user_of_support_functions(aggfnoid: pg_sys::Oid) -> bool {
    if aggfnoid.to_u32() < pg_sys::FirstNormalObjectId || dp_aggregate(aggfnoid).is_some() {
        return false;
    }
    if let Some(known) = FOREIGN.with(|f| f.borrow().get(&aggfnoid.to_u32()).copied()) {
        return known;
    }
    // SAFETY: catalog lookups by oid and name.
    let (ext, member) = unsafe {
        (
            pg_sys::get_extension_oid(c"pg_encrypt_ml".as_ptr(), true),
            member_of(aggfnoid, c"pg_encrypt_ml"),
        )
    };
    let foreign = ext != pg_sys::InvalidOid
        && !member
        && crate::pg::catalog_reads::select_one::<bool>(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_aggregate a, pg_catalog.pg_aggregate o, \
                    pg_catalog.pg_depend d \
              WHERE a.aggfnoid OPERATOR(pg_catalog.=) $1 \
                AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass \
                AND d.objid OPERATOR(pg_catalog.=) o.aggfnoid \
                AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass \
                AND d.refobjid OPERATOR(pg_catalog.=) $2 AND d.deptype OPERATOR(pg_catalog.=) 'e' \
                AND pg_catalog.array_remove(ARRAY[a.aggtransfn, a.aggfinalfn, a.aggcombinefn, \
                        a.aggserialfn, a.aggdeserialfn, a.aggmtransfn, a.aggminvtransfn, \
                        a.aggmfinalfn]::pg_catalog.oid[], 0::pg_catalog.oid) \
                    OPERATOR(pg_catalog.&&) \
                    ARRAY[o.aggtransfn, o.aggfinalfn, o.aggcombinefn, o.aggserialfn, \
                        o.aggdeserialfn, o.aggmtransfn, o.aggminvtransfn, \
                        o.aggmfinalfn]::pg_catalog.oid[])",
            &[
                crate::pg::catalog_reads::arg(aggfnoid),
                crate::pg::catalog_reads::arg(ext),
            ],
        )
        .unwrap_or(true);
    FOREIGN.with(|f| f.borrow_mut().insert(aggfnoid.to_u32(), foreign));
    foreign
}

/// The aggregate an Aggref runs: its own, or the one a Citus wrapper wraps.
///
/// # Safety
/// `aggref` must be an Aggref of a plan that lives for the call.
pub unsafe fn effective_aggregate(aggref: *mut pg_sys::Aggref) -> pg_sys::Oid {
    // SAFETY: as the caller guarantees.
    unsafe {
        let outer = (*aggref).aggfnoid;
        match known(outer) {
            Known::CitusPartial | Known::CitusCombine => wrapped(aggref).unwrap_or(outer),
            _ => outer,
        }
    }
}

/// The aggregate a Citus wrapper call runs: its first argument, a constant oid.
unsafe fn wrapped(aggref: *mut pg_sys::Aggref) -> Option<pg_sys::Oid> {
    // SAFETY: the Aggref of a running aggregate; its argument list is a list of TargetEntry.
    unsafe {
        let args = PgList::<pg_sys::TargetEntry>::from_pg((*aggref).args);
        let first = args.get_ptr(0)?;
        let expr = (*first).expr as *mut pg_sys::Node;
        if (*expr).type_ != pg_sys::NodeTag::T_Const {
            return None;
        }
        let c = expr as *mut pg_sys::Const;
        if (*c).constisnull {
            return None;
        }
        Some(pg_sys::Oid::from((*c).constvalue.value() as u32))
    }
}

/// The call `aggref` as one of the extension's own aggregates, directly or inside a Citus
/// wrapper, or None.
///
/// # Safety
/// `aggref` must be an Aggref of a plan that lives for the call.
pub unsafe fn own_call(aggref: *mut pg_sys::Aggref) -> Option<OwnCall> {
    // SAFETY: as the caller guarantees.
    unsafe {
        let outer = (*aggref).aggfnoid;
        let (aggfnoid, via) = match known(outer) {
            Known::Own(_) => (outer, Via::Direct),
            Known::CitusPartial => (wrapped(aggref)?, Via::CitusPartial),
            Known::CitusCombine => (wrapped(aggref)?, Via::CitusCombine),
            Known::Other => return None,
        };
        dp_aggregate(aggfnoid).map(|kind| OwnCall {
            kind,
            aggfnoid,
            via,
        })
    }
}

/// The Aggref whose support function is running (what `AggGetAggref` returns), read from the
/// Agg node's state without a call into Postgres: this runs on every row.
unsafe fn current_aggref(fcinfo: pg_sys::FunctionCallInfo) -> *mut pg_sys::Aggref {
    // SAFETY: fcinfo is the support function's call info; its context, when an AggState, is
    // the running Agg node, whose current per-aggregate / per-transition data are set by
    // nodeAgg.c around every support-function call.
    unsafe {
        let ctx = (*fcinfo).context;
        if ctx.is_null() || (*ctx).type_ != pg_sys::NodeTag::T_AggState {
            return std::ptr::null_mut();
        }
        let state = ctx as *mut pg_sys::AggState;
        if !(*state).curperagg.is_null() {
            return (*(*state).curperagg).aggref;
        }
        if !(*state).curpertrans.is_null() {
            return (*(*state).curpertrans).aggref;
        }
        std::ptr::null_mut()
    }
}

/// The own aggregate call this support function runs for; refuses (42501) any other caller:
/// an aggregate someone else created over the support functions, or a direct call.
///
/// # Safety
/// `fcinfo` must be the support function's call info.
pub unsafe fn require(fcinfo: pg_sys::FunctionCallInfo) -> OwnCall {
    // SAFETY: as the caller guarantees.
    unsafe {
        let aggref = current_aggref(fcinfo);
        if !aggref.is_null() {
            if let (last, oid, Some(call)) = LAST.with(|l| l.get()) {
                if last == aggref as usize && oid == (*aggref).aggfnoid {
                    return call;
                }
            }
            if let Some(call) = own_call(aggref) {
                if call.via == Via::Direct {
                    LAST.with(|l| l.set((aggref as usize, call.aggfnoid, Some(call))));
                }
                return call;
            }
        }
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "dp aggregate support functions serve only the extension's own dp aggregates",
        )
    }
}
