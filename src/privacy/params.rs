//! Reading a dp aggregate call's parameters (epsilon, delta, bounds, max_rows_per_unit): from
//! the current row in the transition functions, or from the call's own expressions at executor
//! start and for an input without rows, and mapping the dp crate's errors to SQLSTATEs.

use crate::pg::errors::raise;
use crate::privacy::own::DpAggregate;
use crate::privacy::release;
use encml_dp::params::Params;
use encml_dp::state::Num;
use pgrx::{pg_sys, PgList, PgSqlErrorCode};

/// The arguments of an aggregate call, numbered as the transition function sees them (0 is
/// the state): from the current row, or, for an input without rows, from the call's own
/// expressions, which then must not read the rows.
pub trait Args {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn get(&self, i: usize, what: &str) -> Option<pg_sys::Datum>;
}

pub struct RowArgs(pg_sys::FunctionCallInfo);

impl RowArgs {
    /// # Safety
    /// `fcinfo` is the running transition function's own call info, and the RowArgs does not
    /// outlive the call.
    pub unsafe fn new(fcinfo: pg_sys::FunctionCallInfo) -> RowArgs {
        RowArgs(fcinfo)
    }
}

impl Args for RowArgs {
    fn len(&self) -> usize {
        // SAFETY: `RowArgs::new`'s contract: the running transition function's own fcinfo,
        // non-null and valid for the whole call, which the RowArgs does not outlive.
        unsafe { (*self.0).nargs as usize }
    }
    fn get(&self, i: usize, _what: &str) -> Option<pg_sys::Datum> {
        // SAFETY: as in `len`, the call's own fcinfo; pg_get_nullable_datum checks it is non-null
        // and bounds-checks `i` against its nargs (panics instead of reading past the args).
        let d = unsafe { pgrx::fcinfo::pg_get_nullable_datum(self.0, i) };
        (!d.isnull).then_some(d.value)
    }
}

/// The arguments of an aggregate call from its own expressions (which must not read the rows).
pub struct CallArgs {
    state: *mut pg_sys::AggState,
    aggref: *mut pg_sys::Aggref,
}

impl CallArgs {
    /// # Safety
    /// `state` is a started Agg node and `aggref` one of its plan's Aggrefs, both living for the
    /// query, which the CallArgs does not outlive.
    pub unsafe fn new(state: *mut pg_sys::AggState, aggref: *mut pg_sys::Aggref) -> CallArgs {
        CallArgs { state, aggref }
    }
}

impl Args for CallArgs {
    fn len(&self) -> usize {
        // SAFETY: a CallArgs is built (privacy::start) from an Aggref of the started plan, which
        // the executor's query memory keeps for the whole execution; its args are a TargetEntry
        // list (or NIL, which PgList reads as empty).
        1 + unsafe { PgList::<pg_sys::TargetEntry>::from_pg((*self.aggref).args).len() }
    }
    fn get(&self, i: usize, what: &str) -> Option<pg_sys::Datum> {
        // SAFETY: as in `len`; `state` is the started Agg node that runs `aggref`, both alive for
        // the execution, as `eval_arg` requires (it checks the argument index itself).
        let (d, isnull) = unsafe { release::eval_arg(self.state, self.aggref, i - 1, what) };
        (!isnull).then_some(d)
    }
}

/// The arguments of the dp aggregate call that Citus's wrapper `worker_partial_agg(aggregate,
/// ROW(arguments))` runs, numbered as the transition function sees them; only those that do not
/// read the rows can be evaluated.
pub struct WrappedCallArgs {
    state: *mut pg_sys::AggState,
    fields: Vec<*mut pg_sys::Expr>,
}

impl WrappedCallArgs {
    /// The arguments of the `worker_partial_agg` call `partial`, evaluated in Agg node `state`:
    /// its second argument, one argument as it is, several as a row of them.
    ///
    /// # Safety
    /// `partial` must be an Aggref of a plan or query that lives as long as the result, and
    /// `state` a started Agg node.
    pub unsafe fn of(state: *mut pg_sys::AggState, partial: *mut pg_sys::Aggref) -> Option<Self> {
        // SAFETY: as the caller guarantees; nodes are cast to the types their tags name.
        unsafe {
            let row = (*PgList::<pg_sys::TargetEntry>::from_pg((*partial).args).get_ptr(1)?).expr;
            let fields = if (*(row as *mut pg_sys::Node)).type_ == pg_sys::NodeTag::T_RowExpr {
                PgList::<pg_sys::Expr>::from_pg((*(row as *mut pg_sys::RowExpr)).args)
                    .iter_ptr()
                    .collect()
            } else {
                vec![row]
            };
            Some(WrappedCallArgs { state, fields })
        }
    }

    /// The type of the wrapped call's first argument.
    pub fn first_type(&self) -> Option<pg_sys::Oid> {
        let first = *self.fields.first()?;
        // SAFETY: an expression of the call, alive as `of` requires.
        Some(unsafe { pg_sys::exprType(first as *const pg_sys::Node) })
    }
}

impl Args for WrappedCallArgs {
    fn len(&self) -> usize {
        1 + self.fields.len()
    }
    fn get(&self, i: usize, what: &str) -> Option<pg_sys::Datum> {
        // SAFETY: `of` was promised (its # Safety) a started Agg node and an Aggref alive as long
        // as `self`; each field is an expression of that Aggref (indexing is bounds-checked).
        let (d, isnull) = unsafe { release::eval_expr(self.state, self.fields[i - 1], what) };
        (!isnull).then_some(d)
    }
}

pub fn required<T: pgrx::datum::FromDatum>(args: &impl Args, n: usize, what: &str) -> T {
    args.get(n, what)
        // SAFETY: a non-NULL datum of argument `n`, whose SQL type the dp aggregate's declaration
        // fixes; every caller names the T of that declared type (float8 for epsilon and delta,
        // int4 for max_rows_per_unit, the input type for bounds).
        .and_then(|d| unsafe { T::from_datum(d, false) })
        .unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                format!("{what} must not be NULL"),
            )
        })
}

/// Reads epsilon at `at`, then, by argument count, delta and max_rows_per_unit.
pub fn params_at<T: Num>(args: &impl Args, at: usize, lower: T, upper: T) -> Params<T> {
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
    Params::new(epsilon, delta, lower, upper, max_rows)
        .unwrap_or_else(|e| crate::pg::errors::dp_error(e))
}

/// dp_partition's parameters: (epsilon, delta), one row per unit in a group (its privacy-unit
/// form's last argument is max_groups_contributed, read by `release::selection_of`).
pub fn partition_params<T: Num + Default>(args: &impl Args) -> Params<T> {
    let epsilon: f64 = required(args, 1, "epsilon");
    let delta: f64 = required(args, 2, "delta");
    Params::new(
        epsilon,
        (delta != 0.0).then_some(delta),
        T::default(),
        T::default(),
        1,
    )
    .unwrap_or_else(|e| crate::pg::errors::dp_error(e))
}

/// The parameters of dp aggregate `kind` from its arguments.
pub fn params_for<T: Num + Default + pgrx::datum::FromDatum>(
    kind: DpAggregate,
    args: &impl Args,
) -> Params<T> {
    match kind {
        DpAggregate::Sum
        | DpAggregate::Avg
        | DpAggregate::Median
        | DpAggregate::VarPop
        | DpAggregate::StddevPop => {
            let lower = required(args, 2, "lower");
            let upper = required(args, 3, "upper");
            params_at(args, 4, lower, upper)
        }
        // (value, percentile(s), lower, upper, epsilon, ...)
        DpAggregate::Percentile | DpAggregate::Percentiles => {
            let lower = required(args, 3, "lower");
            let upper = required(args, 4, "upper");
            params_at(args, 5, lower, upper)
        }
        DpAggregate::Count => params_at(args, 2, T::default(), T::default()),
        DpAggregate::Partition => partition_params(args),
        DpAggregate::CountRows | DpAggregate::PublicGroups => {
            params_at(args, 1, T::default(), T::default())
        }
    }
}

/// The percentiles a quantile aggregate asks for (argument 2: one float8, or a float8[] for
/// dp_percentiles; 0.5 for dp_median), validated (22023); none for other aggregates.
pub fn alphas_for(kind: DpAggregate, args: &impl Args) -> Vec<f64> {
    let alphas = match kind {
        DpAggregate::Percentile => vec![required::<f64>(args, 2, "the percentile")],
        DpAggregate::Percentiles => {
            let list: Vec<Option<f64>> = required(args, 2, "the percentiles");
            if list.is_empty() || list.len() > 1024 {
                crate::pg::errors::dp_error(encml_dp::DpError::InvalidParameter(
                    "dp_percentiles needs from 1 to 1024 percentiles".into(),
                ));
            }
            list.into_iter()
                .map(|p| {
                    p.unwrap_or_else(|| {
                        raise(
                            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                            "the percentiles must not hold NULL",
                        )
                    })
                })
                .collect()
        }
        DpAggregate::Median => vec![0.5],
        _ => Vec::new(),
    };
    encml_dp::bounded::check_alphas(&alphas).unwrap_or_else(|e| crate::pg::errors::dp_error(e));
    alphas
}
