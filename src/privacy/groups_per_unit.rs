//! Groups per privacy unit (`max_groups_contributed`). A grouped query level whose HAVING
//! selects its groups with `encml.dp_partition(epsilon, delta, privacy_unit, max_groups)` is
//! rewritten before it is planned (the planner hook), so that each unit's rows reach at most
//! `max_groups` of its groups:
//!
//! ```text
//! SELECT targets FROM from WHERE where GROUP BY g HAVING dp_partition(e, d, u, k) ...
//! ```
//! becomes
//! ```text
//! SELECT targets over b FROM (
//!     SELECT the columns the targets read, g, u,
//!            hashint8extended(hash(u, s1) # hash(g, s2), s0) AS h,
//!            dense_rank() OVER (PARTITION BY u ORDER BY h, g) AS r,
//!            row_number() OVER (...) - rank() OVER (...) AS n
//! (with u = x::text for an integer or uuid x, the window partitions and hashes by x)
//!       FROM from WHERE where) b
//!  WHERE b.r <= k GROUP BY b.g HAVING dp_partition(e, d, b.u, k) FILTER (WHERE b.n < 1) ...
//! (and every dp aggregate FILTER (WHERE b.n < its max_rows_per_unit))
//! ```
//! A unit's groups are ranked by a hash keyed with seeds drawn for each planning (so the groups
//! kept are not always the first in some order), ties broken by the group key itself: two
//! groups never share a rank, and the sort's equality is the grouping's (the group's own
//! operators). The group keys and the unit are computed once, in the subquery (in a further
//! one fenced by OFFSET 0 when one of them is not immutable, so that the hash reads the value
//! the column holds); the outer level groups by those columns and hands that same unit to every
//! dp aggregate.
//!
//! Every dp aggregate of the level must take the privacy-unit form with dp_partition's unit:
//! each unit then adds at most `max_rows_per_unit` rows to each of at most k groups (`n`, the
//! row's place among its unit's rows in its group, filters them, so the aggregates keep no
//! per-unit state in such a level: `start::bounded`; on a Citus database they keep it, see
//! `MARK_UNFILTERED`). The aggregates add their noise for epsilon / k (and delta / k) in each
//! group and the query is charged (epsilon, delta) once (`release::times_charged`).
//!
//! The rewritten dp_partition carries a mark (`MARK_FILTERED` or `MARK_UNFILTERED` as its parse
//! location, which the parser never gives) that the executor start requires
//! (`release::selection_of`): a level this rewrite did not see (a SQL function the planner
//! inlines after the hook) is refused, never released unbounded.

use crate::pg::errors::raise_full;
use crate::privacy::own::{self, DpAggregate};
use crate::privacy::release;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgList, PgSqlErrorCode};
use std::ffi::c_void;

/// The parse location of a rewritten dp_partition call whose level's dp aggregates also read
/// at most their max_rows_per_unit rows of a unit in a group (the FILTER on the row's place),
/// and so keep no per-unit state (the parser's locations are -1 or more).
pub const MARK_FILTERED: i32 = -0x4450_4755;
/// The parse location of a rewritten dp_partition call whose aggregates bound each unit's rows
/// themselves (per-unit state): on a Citus database, where a level Citus cannot push down is run
/// again as a query of its own over the ranked rows and rewritten again, and the first rows of a
/// (unit, group) in the two windows need not be the same rows.
pub const MARK_UNFILTERED: i32 = -0x4450_4756;

/// Whether `location` is a rewritten dp_partition's mark.
pub fn is_mark(location: i32) -> bool {
    location == MARK_FILTERED || location == MARK_UNFILTERED
}

/// Rewrites every query level of `parse` (subqueries, CTEs and sublinks included) that selects
/// its groups with the privacy-unit form of dp_partition.
///
/// # Safety
/// `parse` must be the query tree the planner hook received, not yet planned.
pub unsafe fn rewrite(parse: *mut pg_sys::Query) {
    if parse.is_null() {
        return;
    }
    // SAFETY: a query tree of the statement about to be planned; `walk` rewrites each level in
    // place after its own subqueries (so a level copies them rewritten).
    unsafe {
        walk(parse as *mut pg_sys::Node, std::ptr::null_mut());
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn walk(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    // SAFETY: nodes of the query tree being planned; each is cast to the type its tag names.
    unsafe {
        if node.is_null() {
            return false;
        }
        if (*node).type_ == pg_sys::NodeTag::T_Query {
            let q = node as *mut pg_sys::Query;
            pg_sys::query_tree_walker(q, Some(walk), ctx, 0);
            rewrite_level(q);
            return false;
        }
        pg_sys::expression_tree_walker(node, Some(walk), ctx)
    }
}

fn refuse(message: &str, hint: &str) -> ! {
    raise_full(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        message,
        None,
        Some(hint.into()),
    )
}

/// The arguments' expressions of an Aggref.
unsafe fn args_of(a: *mut pg_sys::Aggref) -> Vec<*mut pg_sys::Node> {
    // SAFETY: a valid Aggref; its args are TargetEntry nodes.
    unsafe {
        PgList::<pg_sys::TargetEntry>::from_pg((*a).args)
            .iter_ptr()
            .map(|t| (*t).expr as *mut pg_sys::Node)
            .collect()
    }
}

/// The Aggrefs of one query level in `node`.
unsafe fn aggrefs_in(node: *mut pg_sys::Node) -> Vec<*mut pg_sys::Aggref> {
    let mut out = Vec::new();
    // SAFETY: an expression tree of the level being rewritten.
    unsafe { crate::privacy::dp_only::collect_aggrefs(node, &mut out) };
    out
}

/// The privacy-unit dp_partition among the top-level (ANDed) conditions of `q`'s HAVING, not yet
/// rewritten.
unsafe fn unit_partition(q: *mut pg_sys::Query) -> Option<*mut pg_sys::Aggref> {
    // SAFETY: a query tree; nodes cast by their tags.
    unsafe {
        let having = (*q).havingQual;
        if having.is_null() || (*q).groupClause.is_null() {
            return None;
        }
        let conds: Vec<*mut pg_sys::Node> = if (*having).type_ == pg_sys::NodeTag::T_BoolExpr
            && (*(having as *mut pg_sys::BoolExpr)).boolop == pg_sys::BoolExprType::AND_EXPR
        {
            PgList::<pg_sys::Node>::from_pg((*(having as *mut pg_sys::BoolExpr)).args)
                .iter_ptr()
                .collect()
        } else {
            vec![having]
        };
        conds.into_iter().find_map(|c| {
            if (*c).type_ != pg_sys::NodeTag::T_Aggref {
                return None;
            }
            let a = c as *mut pg_sys::Aggref;
            (own::dp_aggregate((*a).aggfnoid) == Some(DpAggregate::Partition)
                && release::has_privacy_unit(a)
                && !is_mark((*a).location))
            .then_some(a)
        })
    }
}

/// Whether `node` refers to an enclosing query level (a Var or aggregate of an outer level) or
/// holds a node this rewrite does not move (PlaceHolderVar).
unsafe fn refers_outside(node: *mut pg_sys::Node) -> bool {
    #[pg_guard]
    unsafe extern "C-unwind" fn find(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
        // SAFETY: expression nodes cast by their tags.
        unsafe {
            if node.is_null() {
                return false;
            }
            match (*node).type_ {
                pg_sys::NodeTag::T_Var if (*(node as *mut pg_sys::Var)).varlevelsup != 0 => true,
                pg_sys::NodeTag::T_Aggref if (*(node as *mut pg_sys::Aggref)).agglevelsup != 0 => {
                    true
                }
                pg_sys::NodeTag::T_PlaceHolderVar => true,
                _ => pg_sys::expression_tree_walker(node, Some(find), ctx),
            }
        }
    }
    // SAFETY: an expression tree.
    unsafe { find(node, std::ptr::null_mut()) }
}

/// Whether `node` holds a GROUPING() call (it names the level's grouping by its clauses, which
/// the rewrite moves).
unsafe fn has_grouping_func(node: *mut pg_sys::Node) -> bool {
    #[pg_guard]
    unsafe extern "C-unwind" fn find(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
        // SAFETY: expression nodes, read by their tags.
        unsafe {
            !node.is_null()
                && ((*node).type_ == pg_sys::NodeTag::T_GroupingFunc
                    || pg_sys::expression_tree_walker(node, Some(find), ctx))
        }
    }
    // SAFETY: an expression tree.
    unsafe { find(node, std::ptr::null_mut()) }
}

/// The outer level's columns read from the bounded subquery: each Var of the original level
/// becomes a column of it, in order of first use.
struct Columns {
    vars: Vec<*mut pg_sys::Var>,
}

#[pg_guard]
unsafe extern "C-unwind" fn to_columns(
    node: *mut pg_sys::Node,
    ctx: *mut c_void,
) -> *mut pg_sys::Node {
    // SAFETY: expression nodes of the level (no sublinks, no outer references: checked), cast
    // by their tags; ctx is the Columns below.
    unsafe {
        if node.is_null() {
            return node;
        }
        if (*node).type_ == pg_sys::NodeTag::T_Var {
            let v = node as *mut pg_sys::Var;
            let cols = &mut *(ctx as *mut Columns);
            let at = match cols
                .vars
                .iter()
                .position(|w| (**w).varno == (*v).varno && (**w).varattno == (*v).varattno)
            {
                Some(i) => i,
                None => {
                    cols.vars.push(v);
                    cols.vars.len() - 1
                }
            };
            return pg_sys::makeVar(
                1,
                (at + 1) as i16,
                (*v).vartype,
                (*v).vartypmod,
                (*v).varcollid,
                0,
            ) as *mut pg_sys::Node;
        }
        pg_sys::expression_tree_mutator(node, crate::pg::tree_mutator::callback(to_columns), ctx)
    }
}

unsafe fn node<T>(tag: pg_sys::NodeTag) -> *mut T {
    // SAFETY: a zeroed allocation of the node's size in the current (planning) memory context,
    // its tag set as makeNode does.
    unsafe {
        let p = pg_sys::palloc0(std::mem::size_of::<T>()) as *mut pg_sys::Node;
        (*p).type_ = tag;
        p as *mut T
    }
}

unsafe fn entry(expr: *mut pg_sys::Node, resno: usize, name: &str) -> *mut pg_sys::TargetEntry {
    // SAFETY: makeTargetEntry keeps the palloc'd name; the expression is a valid node.
    unsafe {
        let name = std::ffi::CString::new(name).expect("no NUL");
        pg_sys::makeTargetEntry(
            expr as *mut pg_sys::Expr,
            resno as i16,
            pg_sys::pstrdup(name.as_ptr()),
            false,
        )
    }
}

/// A sort/group clause over target entry `sortgroupref` of type `type_oid` with its default
/// operators; refuses a type without them.
unsafe fn default_order(type_oid: pg_sys::Oid, sortgroupref: u32) -> *mut pg_sys::SortGroupClause {
    // SAFETY: a catalog lookup; a new node in the planning memory context.
    unsafe {
        let (mut lt, mut eq, mut hashable) = (pg_sys::InvalidOid, pg_sys::InvalidOid, false);
        pg_sys::get_sort_group_operators(
            type_oid,
            true,
            true,
            false,
            &mut lt,
            &mut eq,
            std::ptr::null_mut(),
            &mut hashable,
        );
        let s = node::<pg_sys::SortGroupClause>(pg_sys::NodeTag::T_SortGroupClause);
        (*s).tleSortGroupRef = sortgroupref;
        (*s).eqop = eq;
        (*s).sortop = lt;
        (*s).nulls_first = false;
        (*s).hashable = hashable;
        s
    }
}

/// `e` folded to a constant or a parameter of the statement, the same for every row and for
/// the executor start; None for anything else.
unsafe fn fixed_value(e: *mut pg_sys::Node) -> Option<*mut pg_sys::Node> {
    // SAFETY: an expression node of the query being planned; folded on a copy, in the planning
    // memory context (without a planner root: only immutable functions are folded).
    unsafe {
        let folded = pg_sys::eval_const_expressions(
            std::ptr::null_mut(),
            pg_sys::copyObjectImpl(e as *const c_void) as *mut pg_sys::Node,
        );
        let fixed = match (*folded).type_ {
            pg_sys::NodeTag::T_Const => true,
            pg_sys::NodeTag::T_Param => {
                (*(folded as *mut pg_sys::Param)).paramkind == pg_sys::ParamKind::PARAM_EXTERN
            }
            _ => false,
        };
        fixed.then_some(folded)
    }
}

/// The integer or uuid expression `unit` casts to text, if it is such a cast (int2, int4, int8
/// and uuid print each value as one text and read it back: an injective cast).
unsafe fn injective_source(unit: *mut pg_sys::Node) -> Option<*mut pg_sys::Node> {
    // SAFETY: an expression node, cast by its tag.
    unsafe {
        if (*unit).type_ != pg_sys::NodeTag::T_CoerceViaIO {
            return None;
        }
        let c = unit as *mut pg_sys::CoerceViaIO;
        let arg = (*c).arg as *mut pg_sys::Node;
        let source = pg_sys::exprType(arg);
        ((*c).resulttype == pg_sys::TEXTOID
            && [
                pg_sys::INT2OID,
                pg_sys::INT4OID,
                pg_sys::INT8OID,
                pg_sys::UUIDOID,
            ]
            .contains(&source))
        .then_some(arg)
    }
}

/// Splits the ranking subquery `inner` in two: its FROM, WHERE and first `key_count` columns
/// (the values the level reads, the unit and the group keys) in a subquery fenced by OFFSET 0,
/// so that each is computed once per row, and above it the same columns passed through, then
/// the hash and the window functions (which read the columns: see `rewrite_level`).
unsafe fn fence(inner: *mut pg_sys::Query, key_count: usize) -> *mut pg_sys::Query {
    // SAFETY: `inner` is the ranking subquery just built (a valid Query of the planning memory
    // context); nodes are made there too.
    unsafe {
        let entries: Vec<*mut pg_sys::TargetEntry> =
            PgList::<pg_sys::TargetEntry>::from_pg((*inner).targetList)
                .iter_ptr()
                .collect();
        let mut base_tl: *mut pg_sys::List = std::ptr::null_mut();
        let mut above_tl: *mut pg_sys::List = std::ptr::null_mut();
        for (i, e) in entries.iter().enumerate() {
            if i < key_count {
                let expr = (**e).expr as *mut pg_sys::Node;
                let pass = entry(
                    pg_sys::makeVar(
                        1,
                        (i + 1) as i16,
                        pg_sys::exprType(expr),
                        pg_sys::exprTypmod(expr),
                        pg_sys::exprCollation(expr),
                        0,
                    ) as *mut pg_sys::Node,
                    i + 1,
                    &std::ffi::CStr::from_ptr((**e).resname).to_string_lossy(),
                );
                (*pass).ressortgroupref = (**e).ressortgroupref;
                (**e).ressortgroupref = 0;
                base_tl = pg_sys::lappend(base_tl, *e as *mut c_void);
                above_tl = pg_sys::lappend(above_tl, pass as *mut c_void);
            } else {
                above_tl = pg_sys::lappend(above_tl, *e as *mut c_void);
            }
        }
        let above = node::<pg_sys::Query>(pg_sys::NodeTag::T_Query);
        (*above).commandType = pg_sys::CmdType::CMD_SELECT;
        (*above).querySource = pg_sys::QuerySource::QSRC_ORIGINAL;
        (*above).canSetTag = true;
        (*above).limitOption = pg_sys::LimitOption::LIMIT_OPTION_DEFAULT;
        (*above).targetList = above_tl;
        (*above).windowClause = (*inner).windowClause;
        (*above).hasWindowFuncs = true;
        (*inner).targetList = base_tl;
        (*inner).windowClause = std::ptr::null_mut();
        (*inner).hasWindowFuncs = false;
        (*inner).limitOffset = pg_sys::makeConst(
            pg_sys::INT8OID,
            -1,
            pg_sys::InvalidOid,
            8,
            pg_sys::Datum::from(0i64),
            false,
            true,
        ) as *mut pg_sys::Node;
        // Another level deeper.
        pg_sys::IncrementVarSublevelsUp(inner as *mut pg_sys::Node, 1, 1);
        let pstate = pg_sys::make_parsestate(std::ptr::null_mut());
        let alias = pg_sys::makeAlias(c"dp_rows".as_ptr(), std::ptr::null_mut());
        let item = pg_sys::addRangeTableEntryForSubquery(pstate, inner, alias, false, true);
        let rtr = node::<pg_sys::RangeTblRef>(pg_sys::NodeTag::T_RangeTblRef);
        (*rtr).rtindex = 1;
        (*above).rtable = pg_sys::lappend(std::ptr::null_mut(), (*item).p_rte as *mut c_void);
        (*above).jointree = pg_sys::makeFromExpr(
            pg_sys::lappend(std::ptr::null_mut(), rtr as *mut c_void),
            std::ptr::null_mut(),
        );
        above
    }
}

/// Rewrites level `q` in place if its HAVING selects groups with the privacy-unit dp_partition.
unsafe fn rewrite_level(q: *mut pg_sys::Query) {
    // SAFETY: a query level of the statement being planned, not yet planned; every node read is
    // cast by its tag, and every node made is allocated in the planning memory context.
    unsafe {
        let Some(partition) = unit_partition(q) else {
            return;
        };
        let hint = "Write the grouped query in the statement itself, in a FROM subquery or in a \
                    WITH query, over plain columns (docs/privacy.md, groups per privacy unit).";
        if !(*q).groupingSets.is_null() {
            refuse(
                "dp aggregates cannot be used with GROUPING SETS, ROLLUP or CUBE",
                hint,
            );
        }
        let tl = (*q).targetList as *mut pg_sys::Node;
        let having = (*q).havingQual;
        if pg_sys::checkExprHasSubLink(tl) || pg_sys::checkExprHasSubLink(having) {
            refuse(
                "with dp_partition's privacy unit, the select list and HAVING cannot hold subqueries",
                hint,
            );
        }
        if refers_outside(tl) || refers_outside(having) {
            refuse(
                "with dp_partition's privacy unit, the select list and HAVING cannot refer to an enclosing query",
                hint,
            );
        }
        if has_grouping_func(tl) || has_grouping_func(having) {
            refuse(
                "GROUPING() cannot be used with dp_partition's privacy unit",
                "Select the group keys themselves.",
            );
        }
        if (*q).hasModifyingCTE {
            refuse(
                "dp_partition's privacy unit cannot be used with a data-modifying WITH query",
                hint,
            );
        }
        let pargs = args_of(partition);
        let (unit, max_groups) = (pargs[2], pargs[3]);
        if pg_sys::contain_var_clause(max_groups) {
            refuse(
                "max_groups_contributed must not depend on the rows",
                "Give it as a constant or a parameter.",
            );
        }
        // The bound runs on every row (the window's run condition) while the noise and the
        // charge take its value once: an expression that could change between the two (a
        // stable function reading statistics the charge moves) is refused (attacker pass of
        // issue 32); the folded constant or parameter replaces it in the call too.
        let Some(max_groups) = fixed_value(max_groups) else {
            refuse(
                "max_groups_contributed must be a constant or a parameter",
                "Give it as a literal or a parameter of a prepared statement.",
            );
        };
        let partition_args = PgList::<pg_sys::TargetEntry>::from_pg((*partition).args);
        (*partition_args.get_ptr(3).expect("max_groups_contributed")).expr =
            max_groups as *mut pg_sys::Expr;
        // Every dp aggregate of the level bounds rows by the same unit.
        let mut aggs = aggrefs_in(tl);
        aggs.extend(aggrefs_in(having));
        for a in &aggs {
            let a = *a;
            if a == partition {
                continue;
            }
            match own::dp_aggregate((*a).aggfnoid) {
                None => {}
                Some(DpAggregate::Partition) | Some(DpAggregate::PublicGroups) => refuse(
                    "a query level selects its groups with one dp_partition or dp_public_groups",
                    "Keep the single HAVING encml.dp_partition(epsilon, delta, privacy_unit, max_groups_contributed).",
                ),
                Some(_) => {
                    let args = args_of(a);
                    // max_rows_per_unit bounds the rows in a FILTER too: fixed like k.
                    if release::has_privacy_unit(a) {
                        let Some(max_rows) = fixed_value(args[args.len() - 1]) else {
                            refuse(
                                "with dp_partition's privacy unit, max_rows_per_unit must be a constant or a parameter",
                                "Give it as a literal or a parameter of a prepared statement.",
                            );
                        };
                        let list = PgList::<pg_sys::TargetEntry>::from_pg((*a).args);
                        (*list.get_ptr(args.len() - 1).expect("max rows")).expr =
                            max_rows as *mut pg_sys::Expr;
                    }
                    if !release::has_privacy_unit(a)
                        || !pg_sys::equal(
                            args[args.len() - 2] as *const c_void,
                            unit as *const c_void,
                        )
                    {
                        refuse(
                            "with dp_partition's privacy unit, every dp aggregate of the query takes the same privacy unit",
                            "Use the form (..., privacy_unit, max_rows_per_unit) with the unit given to dp_partition.",
                        );
                    }
                }
            }
        }
        // The group keys: sortable (ties between a unit's groups are broken by the key) and
        // hashable (the keyed rank).
        let mut groups: Vec<(*mut pg_sys::SortGroupClause, *mut pg_sys::Node)> = Vec::new();
        for sgc in PgList::<pg_sys::SortGroupClause>::from_pg((*q).groupClause).iter_ptr() {
            let tle = pg_sys::get_sortgroupclause_tle(sgc, (*q).targetList);
            let expr = (*tle).expr as *mut pg_sys::Node;
            let t = pg_sys::exprType(expr);
            let tc = pg_sys::lookup_type_cache(t, pg_sys::TYPECACHE_HASH_EXTENDED_PROC as i32);
            if (*sgc).sortop == pg_sys::InvalidOid || (*tc).hash_extended_proc == pg_sys::InvalidOid
            {
                refuse(
                    &format!(
                        "with dp_partition's privacy unit, group keys must be sortable and hashable, not {}",
                        release::type_name(t)
                    ),
                    hint,
                );
            }
            groups.push((sgc, expr));
        }

        // The bounded subquery: the original level without its grouping.
        let inner = pg_sys::copyObjectImpl(q as *const c_void) as *mut pg_sys::Query;
        let mut cols = Columns { vars: Vec::new() };
        let ctx = &mut cols as *mut Columns as *mut c_void;
        let outer_tl = to_columns(tl, ctx) as *mut pg_sys::List;
        let outer_having = to_columns(having, ctx);
        let mut inner_tl: *mut pg_sys::List = std::ptr::null_mut();
        for (i, v) in cols.vars.iter().enumerate() {
            let e = entry(
                pg_sys::copyObjectImpl(*v as *const c_void) as *mut pg_sys::Node,
                i + 1,
                &format!("c{}", i + 1),
            );
            inner_tl = pg_sys::lappend(inner_tl, e as *mut c_void);
        }
        let mut resno = cols.vars.len();
        let mut next_ref = 0u32;
        let mut add = |list: &mut *mut pg_sys::List, expr: *mut pg_sys::Node, name: &str| {
            resno += 1;
            next_ref += 1;
            let e = entry(expr, resno, name);
            (*e).ressortgroupref = next_ref;
            *list = pg_sys::lappend(*list, e as *mut c_void);
            (resno, next_ref)
        };
        let mut window_order: *mut pg_sys::List = std::ptr::null_mut();
        let mut group_cols = Vec::new();
        // The keys hashed for the rank, with the columns that hold them: the unit (or its
        // integer), then the group keys.
        let mut key_columns: Vec<(usize, *mut pg_sys::Node)> = Vec::new();
        // The window partitions by the unit, or by the integer or uuid it is cast from (the
        // cast is injective, so the partitions are the same; a fixed-width key sorts faster,
        // Citus pushes a window partitioned by its distribution column to the shards, and the
        // outer level casts only the rows kept).
        let unit_collation = pg_sys::exprCollation(unit);
        let (key_type, key_ref, outer_unit) = match injective_source(unit) {
            Some(source) => {
                let key = pg_sys::copyObjectImpl(source as *const c_void) as *mut pg_sys::Node;
                let (col, r) = add(&mut inner_tl, key, "p");
                key_columns.push((col, key));
                let cast =
                    pg_sys::copyObjectImpl(unit as *const c_void) as *mut pg_sys::CoerceViaIO;
                (*cast).arg = pg_sys::makeVar(
                    1,
                    col as i16,
                    pg_sys::exprType(source),
                    pg_sys::exprTypmod(source),
                    pg_sys::exprCollation(source),
                    0,
                ) as *mut pg_sys::Expr;
                (pg_sys::exprType(source), r, cast as *mut pg_sys::Node)
            }
            None => {
                let unit_copy = pg_sys::copyObjectImpl(unit as *const c_void) as *mut pg_sys::Node;
                let (col, r) = add(&mut inner_tl, unit_copy, "u");
                key_columns.push((col, unit_copy));
                let var = pg_sys::makeVar(1, col as i16, pg_sys::TEXTOID, -1, unit_collation, 0);
                (pg_sys::TEXTOID, r, var as *mut pg_sys::Node)
            }
        };
        let mut key_orders = Vec::new();
        for (i, (sgc, expr)) in groups.iter().enumerate() {
            let g = pg_sys::copyObjectImpl(*expr as *const c_void) as *mut pg_sys::Node;
            let (col, gref) = add(&mut inner_tl, g, &format!("g{}", i + 1));
            group_cols.push(col);
            key_columns.push((col, g));
            let order =
                pg_sys::copyObjectImpl(*sgc as *const c_void) as *mut pg_sys::SortGroupClause;
            (*order).tleSortGroupRef = gref;
            key_orders.push(order);
        }
        // h = hashint8extended(hash(k1, s1) # hash(k2, s2) # ..., s0) over the unit (or its
        // integer) and the group keys, each by its type's extended hash function with a seed of
        // its own drawn at this planning: the final hash mixes each (unit, group) pair apart (a
        // linear combination such as hash_record_extended's 31 * h(u) + h(g) would rank every
        // unit's groups in one cyclic order, shifted).
        let seed = || {
            let mut seed = [0u8; 8];
            crate::pg::random::fill(&mut seed);
            pg_sys::makeConst(
                pg_sys::INT8OID,
                -1,
                pg_sys::InvalidOid,
                8,
                pg_sys::Datum::from(i64::from_le_bytes(seed)),
                false,
                true,
            ) as *mut pg_sys::Node
        };
        let call = |func: pg_sys::Oid, args: &[*mut pg_sys::Node], collation: pg_sys::Oid| {
            let mut list = PgList::<c_void>::new();
            for a in args {
                list.push(*a as *mut c_void);
            }
            pg_sys::makeFuncExpr(
                func,
                pg_sys::INT8OID,
                list.into_pg(),
                pg_sys::InvalidOid,
                collation,
                pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
            ) as *mut pg_sys::Node
        };
        // A key that is not immutable (random(), a stable function over live statistics) could
        // give the hash another value than its column: the rows of one (unit, group) would no
        // longer sort together, and their place would restart (attacker re-check of issue 32:
        // a unit counted k times in one group). Such keys are computed once in a fenced
        // subquery (OFFSET 0: never pulled up), and the hash reads their columns.
        let fenced = pg_sys::contain_mutable_functions(unit)
            || groups
                .iter()
                .any(|(_, e)| pg_sys::contain_mutable_functions(*e));
        let mut combined: *mut pg_sys::Node = std::ptr::null_mut();
        for (col, e) in &key_columns {
            // A key reads its column when fenced; otherwise it is computed again from a copy of
            // its expression (immutable: the same value), never a node the target list shares.
            let key = if fenced {
                pg_sys::makeVar(
                    1,
                    *col as i16,
                    pg_sys::exprType(*e),
                    pg_sys::exprTypmod(*e),
                    pg_sys::exprCollation(*e),
                    0,
                ) as *mut pg_sys::Node
            } else {
                pg_sys::copyObjectImpl(*e as *const c_void) as *mut pg_sys::Node
            };
            let t = pg_sys::exprType(key);
            let tc = pg_sys::lookup_type_cache(t, pg_sys::TYPECACHE_HASH_EXTENDED_PROC as i32);
            let one = call(
                (*tc).hash_extended_proc,
                &[key, seed()],
                pg_sys::exprCollation(key),
            );
            combined = if combined.is_null() {
                one
            } else {
                call(
                    pg_sys::Oid::from(pg_sys::F_INT8XOR),
                    &[combined, one],
                    pg_sys::InvalidOid,
                )
            };
        }
        let hash = call(
            pg_sys::Oid::from(pg_sys::F_HASHINT8EXTENDED),
            &[combined, seed()],
            pg_sys::InvalidOid,
        );
        let key_count = PgList::<c_void>::from_pg(inner_tl).len();
        let (_, hash_ref) = add(&mut inner_tl, hash, "h");
        window_order = pg_sys::lappend(
            window_order,
            default_order(pg_sys::INT8OID, hash_ref) as *mut c_void,
        );
        for o in key_orders {
            window_order = pg_sys::lappend(window_order, o as *mut c_void);
        }
        let w = node::<pg_sys::WindowClause>(pg_sys::NodeTag::T_WindowClause);
        (*w).partitionClause = pg_sys::lappend(
            std::ptr::null_mut(),
            default_order(key_type, key_ref) as *mut c_void,
        );
        (*w).orderClause = window_order;
        (*w).frameOptions = pg_sys::FRAMEOPTION_DEFAULTS as i32;
        (*w).winref = 1;
        let window_call = |func: u32| {
            let f = node::<pg_sys::WindowFunc>(pg_sys::NodeTag::T_WindowFunc);
            (*f).winfnoid = pg_sys::Oid::from(func);
            (*f).wintype = pg_sys::INT8OID;
            (*f).winref = 1;
            (*f).location = -1;
            f as *mut pg_sys::Node
        };
        resno += 1;
        let rank_col = resno;
        inner_tl = pg_sys::lappend(
            inner_tl,
            entry(window_call(pg_sys::F_DENSE_RANK_), rank_col, "r") as *mut c_void,
        );
        // The row's place among its unit's rows in its group (from 0): its row number less the
        // rank of the group's first row, the rows of a (unit, group) being peers in the window.
        let mut place_args = PgList::<c_void>::new();
        place_args.push(window_call(pg_sys::F_ROW_NUMBER) as *mut c_void);
        place_args.push(window_call(pg_sys::F_RANK_) as *mut c_void);
        let place = pg_sys::makeFuncExpr(
            pg_sys::Oid::from(pg_sys::F_INT8MI),
            pg_sys::INT8OID,
            place_args.into_pg(),
            pg_sys::InvalidOid,
            pg_sys::InvalidOid,
            pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
        );
        resno += 1;
        let place_col = resno;
        inner_tl = pg_sys::lappend(
            inner_tl,
            entry(place as *mut pg_sys::Node, place_col, "n") as *mut c_void,
        );

        (*inner).targetList = inner_tl;
        (*inner).groupClause = std::ptr::null_mut();
        (*inner).havingQual = std::ptr::null_mut();
        (*inner).hasAggs = false;
        (*inner).windowClause = pg_sys::lappend(std::ptr::null_mut(), w as *mut c_void);
        (*inner).hasWindowFuncs = true;
        (*inner).hasTargetSRFs = false;
        (*inner).sortClause = std::ptr::null_mut();
        (*inner).distinctClause = std::ptr::null_mut();
        (*inner).hasDistinctOn = false;
        (*inner).limitOffset = std::ptr::null_mut();
        (*inner).limitCount = std::ptr::null_mut();
        (*inner).limitOption = pg_sys::LimitOption::LIMIT_OPTION_DEFAULT;
        (*inner).rowMarks = std::ptr::null_mut();
        (*inner).hasForUpdate = false;
        // One level deeper: references to enclosing levels (in WHERE and FROM) reach one further.
        pg_sys::IncrementVarSublevelsUp(inner as *mut pg_sys::Node, 1, 1);
        let inner = if fenced {
            fence(inner, key_count)
        } else {
            inner
        };

        // The outer level reads the subquery, keeps the rows of each unit's first k groups,
        // groups by the subquery's keys and gives every dp aggregate its unit column.
        let pstate = pg_sys::make_parsestate(std::ptr::null_mut());
        let alias = pg_sys::makeAlias(c"dp_bounded".as_ptr(), std::ptr::null_mut());
        let item = pg_sys::addRangeTableEntryForSubquery(pstate, inner, alias, false, true);
        let rtr = node::<pg_sys::RangeTblRef>(pg_sys::NodeTag::T_RangeTblRef);
        (*rtr).rtindex = 1;
        let le = pg_sys::get_opfamily_member(
            pg_sys::INTEGER_BTREE_FAM_OID,
            pg_sys::INT8OID,
            pg_sys::INT4OID,
            pg_sys::BTLessEqualStrategyNumber as i16,
        );
        let within = pg_sys::make_opclause(
            le,
            pg_sys::BOOLOID,
            false,
            pg_sys::makeVar(
                1,
                rank_col as i16,
                pg_sys::INT8OID,
                -1,
                pg_sys::InvalidOid,
                0,
            ) as *mut pg_sys::Expr,
            pg_sys::copyObjectImpl(max_groups as *const c_void) as *mut pg_sys::Expr,
            pg_sys::InvalidOid,
            pg_sys::InvalidOid,
        ) as *mut pg_sys::OpExpr;
        (*within).opfuncid = pg_sys::get_opcode(le);
        let lt = pg_sys::get_opfamily_member(
            pg_sys::INTEGER_BTREE_FAM_OID,
            pg_sys::INT8OID,
            pg_sys::INT4OID,
            pg_sys::BTLessStrategyNumber as i16,
        );
        (*q).rtable = pg_sys::lappend(std::ptr::null_mut(), (*item).p_rte as *mut c_void);
        (*q).jointree = pg_sys::makeFromExpr(
            pg_sys::lappend(std::ptr::null_mut(), rtr as *mut c_void),
            within as *mut pg_sys::Node,
        );
        (*q).targetList = outer_tl;
        (*q).havingQual = outer_having;
        (*q).cteList = std::ptr::null_mut();
        (*q).hasRecursive = false;
        (*q).hasSubLinks = false;
        for (i, (sgc, expr)) in groups.iter().enumerate() {
            let tle = pg_sys::get_sortgroupclause_tle(*sgc, (*q).targetList);
            (*tle).expr = pg_sys::makeVar(
                1,
                group_cols[i] as i16,
                pg_sys::exprType(*expr),
                pg_sys::exprTypmod(*expr),
                pg_sys::exprCollation(*expr),
                0,
            ) as *mut pg_sys::Expr;
        }
        let filtered = !crate::pg::citus::in_database();
        let mut aggs = aggrefs_in((*q).targetList as *mut pg_sys::Node);
        aggs.extend(aggrefs_in((*q).havingQual));
        for a in aggs {
            let Some(kind) = own::dp_aggregate((*a).aggfnoid) else {
                continue;
            };
            if kind == DpAggregate::PublicGroups || !release::has_privacy_unit(a) {
                continue;
            }
            let args = PgList::<pg_sys::TargetEntry>::from_pg((*a).args);
            let unit_arg = args.get_ptr(args.len() - 2).expect("the privacy unit");
            (*unit_arg).expr =
                pg_sys::copyObjectImpl(outer_unit as *const c_void) as *mut pg_sys::Expr;
            if kind == DpAggregate::Partition {
                (*a).location = if filtered {
                    MARK_FILTERED
                } else {
                    MARK_UNFILTERED
                };
            }
            if !filtered {
                continue;
            }
            // Each aggregate reads at most max_rows_per_unit rows of a unit in a group (its
            // last argument; one for dp_partition, which counts units), so that it needs no
            // per-unit state (`start::Prepaid::bounded`).
            let max_rows = if kind == DpAggregate::Partition {
                pg_sys::makeConst(
                    pg_sys::INT4OID,
                    -1,
                    pg_sys::InvalidOid,
                    4,
                    pg_sys::Datum::from(1i32),
                    false,
                    true,
                ) as *mut pg_sys::Expr
            } else {
                pg_sys::copyObjectImpl(
                    (*args.get_ptr(args.len() - 1).expect("max rows")).expr as *const c_void,
                ) as *mut pg_sys::Expr
            };
            let within_rows = pg_sys::make_opclause(
                lt,
                pg_sys::BOOLOID,
                false,
                pg_sys::makeVar(
                    1,
                    place_col as i16,
                    pg_sys::INT8OID,
                    -1,
                    pg_sys::InvalidOid,
                    0,
                ) as *mut pg_sys::Expr,
                max_rows,
                pg_sys::InvalidOid,
                pg_sys::InvalidOid,
            ) as *mut pg_sys::OpExpr;
            (*within_rows).opfuncid = pg_sys::get_opcode(lt);
            (*a).aggfilter = if (*a).aggfilter.is_null() {
                within_rows as *mut pg_sys::Expr
            } else {
                let mut both = PgList::<c_void>::new();
                both.push((*a).aggfilter as *mut c_void);
                both.push(within_rows as *mut c_void);
                pg_sys::makeBoolExpr(pg_sys::BoolExprType::AND_EXPR, both.into_pg(), -1)
            };
        }
    }
}
