//! DP-only tables (`encml.dp_protect`, library preloaded): a statement of a role that neither
//! owns a protected table nor is a privacy admin may read it only through the extension's dp
//! aggregates. Checked by a planner hook on the rewritten statement (views expanded), before it
//! is planned:
//!
//! - the table is read only in the FROM of a *dp block* (a query level with aggregates or GROUP
//!   BY), directly or through subqueries in that FROM that are plain row sources (no aggregates,
//!   window functions, GROUP BY, set-returning functions, LIMIT, OFFSET or DISTINCT of their
//!   own), as views over the table are; a subquery that makes rows without a table counts as
//!   a second row source;
//! - every aggregate of a dp block is one of the extension's dp aggregates (so every value it
//!   returns is noisy, grouped output passes a selection, and parameters are constants: the
//!   executor-start checks of `start`), and it has no window functions, grouping sets or
//!   set-returning functions;
//! - contributions are bounded by the table's privacy unit: unless the block reads the table
//!   alone and the table has one row per unit (`max_rows_per_unit` 1 with a unique unit column),
//!   every dp aggregate takes the privacy-unit form with the table's unit column and at most its
//!   `max_rows_per_unit`;
//! - the table appears nowhere else: not in a CTE, not in a subquery in an expression (a
//!   subquery in the target list, in WHERE, or a function's argument), not in a join that
//!   exports rows;
//! - the expressions evaluated over its rows call only built-in functions and the extension's
//!   own, none volatile (a function of the analyst's could show each value it sees, a volatile
//!   built-in keep it: set_config, pg_notify), and no type of the querying role (a domain's
//!   CHECK runs its owner's functions);
//! - after planning, no further read of it appeared (an inlined SQL function's).
//!
//! `dp_only_execution` adds what the executor sees: no row counts (EXPLAIN ANALYZE), no notices,
//! and errors without their messages. What still leaks, documented in docs/privacy.md: that an
//! error happened and its SQLSTATE (after the charge); statistics views; timing.

use crate::pg::errors::{raise, raise_full};
use crate::pg::nothrow::list_ptrs;
use crate::pg::roles::{has_privs_of_role_named, is_superuser, PRIVACY_ADMIN};
use crate::privacy::own;
use crate::privacy::protected::{self, Protected};
use pgrx::prelude::*;
use pgrx::{PgList, PgSqlErrorCode};
use std::collections::HashSet;
use std::ffi::c_void;

/// Plans the statement (`plan`: the rest of the planner, from the hook in `crate::hooks`)
/// after checking its reads of DP-only tables, and checks the plan.
///
/// # Safety
/// `parse` must be the planner hook's query tree.
pub unsafe fn plan(
    parse: *mut pg_sys::Query,
    plan: impl FnOnce() -> *mut pg_sys::PlannedStmt,
) -> *mut pg_sys::PlannedStmt {
    // SAFETY: as the caller guarantees; the plan is the planner's result.
    unsafe {
        let checked = check_statement(parse);
        let stmt = plan();
        if let Some(found) = checked {
            check_plan(stmt, &found);
        }
        stmt
    }
}

fn refuse(message: String) -> ! {
    raise_full(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        message,
        None,
        Some(
            "A DP-only table is read through the extension's dp aggregates only, bounded by its \
             privacy unit: SELECT encml.dp_count(x, epsilon, delta, unit::text, max_rows) FROM t \
             (docs/privacy.md)."
                .into(),
        ),
    )
}

fn relname(relid: pg_sys::Oid) -> String {
    crate::audit::table_name(relid)
}

/// The checker of one statement: the role, the protected tables it may not read freely, and
/// the occurrences found (and allowed) in the statement.
struct Checker {
    map: std::rc::Rc<protected::Map>,
    role: pg_sys::Oid,
    found: HashSet<u32>,
}

impl Checker {
    /// The settings of `relid` if it is DP-only for this role.
    fn restricted(&self, relid: pg_sys::Oid) -> Option<&Protected> {
        let p = self.map.get(&relid)?;
        // SAFETY: a catalog lookup by oid.
        let owner = unsafe { pg_sys::pg_class_ownercheck(relid, self.role) };
        (!owner).then_some(p)
    }

    /// Whether `q` (or anything inside it) reads a table DP-only for this role.
    unsafe fn reads_restricted(&self, q: *mut pg_sys::Query) -> bool {
        struct Ctx<'a> {
            checker: &'a Checker,
            hit: bool,
        }
        #[pg_guard]
        unsafe extern "C-unwind" fn walk(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
            // SAFETY: nodes of a query tree; ctx is the Ctx below.
            unsafe {
                if node.is_null() {
                    return false;
                }
                let ctx = &mut *(ctx as *mut Ctx);
                if (*node).type_ == pg_sys::NodeTag::T_RangeTblEntry {
                    let rte = node as *mut pg_sys::RangeTblEntry;
                    if (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION
                        && ctx.checker.restricted((*rte).relid).is_some()
                    {
                        ctx.hit = true;
                        return true;
                    }
                    return false;
                }
                if (*node).type_ == pg_sys::NodeTag::T_Query {
                    return pg_sys::query_tree_walker(
                        node as *mut pg_sys::Query,
                        Some(walk),
                        ctx as *mut Ctx as *mut c_void,
                        pg_sys::QTW_EXAMINE_RTES_BEFORE as i32,
                    );
                }
                pg_sys::expression_tree_walker(node, Some(walk), ctx as *mut Ctx as *mut c_void)
            }
        }
        let mut ctx = Ctx {
            checker: self,
            hit: false,
        };
        // SAFETY: q is a query tree of the statement being planned.
        unsafe { walk(q as *mut pg_sys::Node, &mut ctx as *mut Ctx as *mut c_void) };
        ctx.hit
    }

    /// Refuses a restricted read inside `q`'s CTEs or inside a subquery in any of its expressions.
    unsafe fn check_no_nested_reads(&self, q: *mut pg_sys::Query) {
        // SAFETY: q is a query tree of the statement being planned.
        unsafe {
            for cte in PgList::<pg_sys::CommonTableExpr>::from_pg((*q).cteList).iter_ptr() {
                let sub = (*cte).ctequery as *mut pg_sys::Query;
                if !sub.is_null() && self.reads_restricted(sub) {
                    refuse("a DP-only table may not be read in a WITH query".into());
                }
            }
            struct Ctx<'a> {
                checker: &'a Checker,
            }
            #[pg_guard]
            unsafe extern "C-unwind" fn walk(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
                // SAFETY: expression nodes of the query level; ctx is the Ctx below.
                unsafe {
                    if node.is_null() {
                        return false;
                    }
                    let ctx = &*(ctx as *mut Ctx);
                    if (*node).type_ == pg_sys::NodeTag::T_Query {
                        if ctx.checker.reads_restricted(node as *mut pg_sys::Query) {
                            refuse(
                                "a DP-only table may not be read in a subquery of an expression"
                                    .into(),
                            );
                        }
                        return false;
                    }
                    pg_sys::expression_tree_walker(
                        node,
                        Some(walk),
                        ctx as *const Ctx as *mut c_void,
                    )
                }
            }
            let ctx = Ctx { checker: self };
            // Expressions of this level only (the target list, quals, function and VALUES
            // range-table entries); subqueries in FROM and CTEs are looked at separately.
            pg_sys::query_tree_walker(
                q,
                Some(walk),
                &ctx as *const Ctx as *mut c_void,
                (pg_sys::QTW_IGNORE_RT_SUBQUERIES | pg_sys::QTW_IGNORE_CTE_SUBQUERIES) as i32,
            );
        }
    }

    /// Checks query level `q`; `dp_block` is the dp block whose FROM it feeds, if any.
    unsafe fn check_level(&mut self, q: *mut pg_sys::Query, dp_block: Option<*mut pg_sys::Query>) {
        // SAFETY: q is a query tree of the statement being planned.
        unsafe {
            if !self.reads_restricted(q) {
                return;
            }
            self.check_no_nested_reads(q);
            let aggregating = (*q).hasAggs || !(*q).groupClause.is_null();
            if dp_block.is_some() && (aggregating || (*q).hasWindowFuncs) {
                refuse(
                    "a subquery that reads a DP-only table under a dp aggregate must not aggregate"
                        .into(),
                );
            }
            // A row source that repeats or picks rows: one person could count several times,
            // or their leaving could let another's rows in.
            if dp_block.is_some()
                && ((*q).hasTargetSRFs
                    || !(*q).sortClause.is_null()
                    || !(*q).limitCount.is_null()
                    || !(*q).limitOffset.is_null()
                    || !(*q).distinctClause.is_null())
            {
                refuse(
                    "a subquery that reads a DP-only table under a dp aggregate must not use set-returning functions in its target list, ORDER BY, LIMIT, OFFSET or DISTINCT"
                        .into(),
                );
            }
            let block = dp_block.or(aggregating.then_some(q));
            let rtable = PgList::<pg_sys::RangeTblEntry>::from_pg((*q).rtable);
            for rte in rtable.iter_ptr() {
                match (*rte).rtekind {
                    pg_sys::RTEKind::RTE_RELATION if self.restricted((*rte).relid).is_some() => {
                        if block.is_none() {
                            refuse(format!(
                                "{} is DP-only: it may be read only through dp aggregates",
                                relname((*rte).relid)
                            ));
                        }
                        self.found.insert((*rte).relid.to_u32());
                    }
                    pg_sys::RTEKind::RTE_SUBQUERY => {
                        self.check_level((*rte).subquery, block);
                    }
                    _ => {}
                }
            }
            if dp_block.is_none() {
                if let Some(b) = block {
                    self.check_dp_block(b);
                }
            }
        }
    }

    /// The base relations, function scans and VALUES lists that feed a dp block's rows: the
    /// entries its FROM (or a set operation's branches) names, through subqueries (not every
    /// range-table entry: a view's query keeps an unused entry for the view itself).
    unsafe fn row_sources(q: *mut pg_sys::Query, out: &mut Vec<*mut pg_sys::RangeTblEntry>) {
        // SAFETY: q is a query tree of the statement being planned; nodes cast by their tags.
        unsafe {
            let rtable = PgList::<pg_sys::RangeTblEntry>::from_pg((*q).rtable);
            let mut indexes = Vec::new();
            if !(*q).setOperations.is_null() {
                for (i, rte) in rtable.iter_ptr().enumerate() {
                    if (*rte).rtekind == pg_sys::RTEKind::RTE_SUBQUERY {
                        indexes.push(i + 1);
                    }
                }
            } else if !(*q).jointree.is_null() {
                let mut stack: Vec<*mut pg_sys::Node> =
                    PgList::<pg_sys::Node>::from_pg((*(*q).jointree).fromlist)
                        .iter_ptr()
                        .collect();
                while let Some(n) = stack.pop() {
                    match (*n).type_ {
                        pg_sys::NodeTag::T_RangeTblRef => {
                            indexes.push((*(n as *mut pg_sys::RangeTblRef)).rtindex as usize)
                        }
                        pg_sys::NodeTag::T_JoinExpr => {
                            let j = n as *mut pg_sys::JoinExpr;
                            stack.push((*j).larg);
                            stack.push((*j).rarg);
                        }
                        pg_sys::NodeTag::T_FromExpr => stack.extend(
                            PgList::<pg_sys::Node>::from_pg(
                                (*(n as *mut pg_sys::FromExpr)).fromlist,
                            )
                            .iter_ptr(),
                        ),
                        _ => {}
                    }
                }
            }
            for i in indexes {
                let Some(rte) = rtable.get_ptr(i - 1) else {
                    continue;
                };
                match (*rte).rtekind {
                    pg_sys::RTEKind::RTE_SUBQUERY => {
                        let sub = (*rte).subquery;
                        let before = out.len();
                        Self::row_sources(sub, out);
                        // A subquery without a FROM still makes rows (`SELECT
                        // generate_series(1, 1000)`, `SELECT 1 UNION ALL SELECT 2`).
                        if out.len() == before || (*sub).hasTargetSRFs {
                            out.push(rte);
                        }
                    }
                    _ => out.push(rte),
                }
            }
        }
    }

    /// Checks a dp block (`check_level` found it reading a DP-only table).
    unsafe fn check_dp_block(&mut self, q: *mut pg_sys::Query) {
        // SAFETY: q is a query tree of the statement being planned.
        unsafe {
            if (*q).hasWindowFuncs || !(*q).groupingSets.is_null() {
                refuse(
                    "a query over a DP-only table may not use window functions or grouping sets"
                        .into(),
                );
            }
            // GROUP BY generate_series(...) puts every row in every group: each released with
            // its own noise for one charge.
            if (*q).hasTargetSRFs {
                refuse(
                    "a dp aggregate over a DP-only table may not sit next to a set-returning function in its target list"
                        .into(),
                );
            }
            let mut sources = Vec::new();
            Self::row_sources(q, &mut sources);
            let restricted: Vec<(*mut pg_sys::RangeTblEntry, Protected)> = sources
                .iter()
                .filter(|rte| (***rte).rtekind == pg_sys::RTEKind::RTE_RELATION)
                .filter_map(|&rte| self.restricted((*rte).relid).cloned().map(|p| (rte, p)))
                .collect();
            if restricted.len() > 1 {
                refuse(
                    "a query may read only one DP-only table (its privacy unit bounds the rows)"
                        .into(),
                );
            }
            let Some((table, settings)) = restricted.into_iter().next() else {
                return;
            };
            // One row per unit, read alone: each row is one person, in one group.
            let alone = sources.len() == 1 && settings.max_rows_per_unit == 1;
            let mut aggrefs = Vec::new();
            collect_aggrefs((*q).targetList as *mut pg_sys::Node, &mut aggrefs);
            collect_aggrefs((*q).havingQual, &mut aggrefs);
            for aggref in aggrefs {
                let call = own::own_call(aggref).filter(|c| c.via == own::Via::Direct);
                let Some(call) = call else {
                    refuse(format!(
                        "{} is DP-only: {} is not one of the extension's dp aggregates",
                        relname((*table).relid),
                        crate::privacy::release::func_name((*aggref).aggfnoid)
                    ));
                };
                // dp_partition counts rows, one per person: only where each row is one (attacker
                // pass of issue 32: without GROUP BY it passed every check and, over a table
                // with many rows per unit multiplied by a cross join, answered exactly).
                // Its privacy-unit form counts units, each in at most max_groups groups (the
                // rewrite of `groups_per_unit`), when the unit is the table's.
                if call.kind == own::DpAggregate::Partition
                    && crate::privacy::release::has_privacy_unit(aggref)
                {
                    check_unit_column(aggref, q, table, &settings);
                    continue;
                }
                if call.kind == own::DpAggregate::Partition && !alone {
                    refuse(format!(
                        "{} is DP-only with up to {} rows per privacy unit: dp_partition counts rows, not units: give it the privacy unit, dp_partition(epsilon, delta, unit, max_groups_contributed), read the table alone with one row per unit, or select groups with dp_public_groups",
                        relname((*table).relid),
                        settings.max_rows_per_unit
                    ));
                }
                if matches!(
                    call.kind,
                    own::DpAggregate::Partition | own::DpAggregate::PublicGroups
                ) || alone
                {
                    continue;
                }
                check_unit_form(aggref, q, table, &settings);
            }
            check_functions(q);
        }
    }
}

/// The Aggrefs of one query level (not those of subqueries).
///
/// # Safety
/// `node` must be NULL or an expression tree of a query being planned.
pub unsafe fn collect_aggrefs(node: *mut pg_sys::Node, out: &mut Vec<*mut pg_sys::Aggref>) {
    #[pg_guard]
    unsafe extern "C-unwind" fn walk(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
        // SAFETY: expression nodes; ctx is the Vec below.
        unsafe {
            if node.is_null() || (*node).type_ == pg_sys::NodeTag::T_Query {
                return false;
            }
            if (*node).type_ == pg_sys::NodeTag::T_Aggref {
                let a = node as *mut pg_sys::Aggref;
                if (*a).agglevelsup == 0 {
                    (*(ctx as *mut Vec<*mut pg_sys::Aggref>)).push(a);
                }
            }
            pg_sys::expression_tree_walker(node, Some(walk), ctx)
        }
    }
    // SAFETY: an expression tree of the statement being planned.
    unsafe { walk(node, out as *mut Vec<*mut pg_sys::Aggref> as *mut c_void) };
}

/// Strips casts (to text, as a privacy unit is passed) from an expression.
unsafe fn strip_casts(mut e: *mut pg_sys::Node) -> *mut pg_sys::Node {
    // SAFETY: expression nodes, each cast to the type its tag names.
    unsafe {
        loop {
            match (*e).type_ {
                pg_sys::NodeTag::T_RelabelType => e = (*(e as *mut pg_sys::RelabelType)).arg as _,
                pg_sys::NodeTag::T_CoerceViaIO => e = (*(e as *mut pg_sys::CoerceViaIO)).arg as _,
                pg_sys::NodeTag::T_FuncExpr
                    if (*(e as *mut pg_sys::FuncExpr)).funcformat
                        != pg_sys::CoercionForm::COERCE_EXPLICIT_CALL =>
                {
                    let args =
                        PgList::<pg_sys::Node>::from_pg((*(e as *mut pg_sys::FuncExpr)).args);
                    if args.len() != 1 {
                        return e;
                    }
                    e = args.get_ptr(0).unwrap();
                }
                _ => return e,
            }
        }
    }
}

/// Whether `expr`, evaluated in query level `level`, is column `attnum` of range-table entry
/// `table` (following subqueries in FROM down to it).
unsafe fn is_column_of(
    expr: *mut pg_sys::Node,
    level: *mut pg_sys::Query,
    table: *mut pg_sys::RangeTblEntry,
    attnum: i16,
) -> bool {
    // SAFETY: expression nodes and range tables of the statement being planned.
    unsafe {
        let e = strip_casts(expr);
        if (*e).type_ != pg_sys::NodeTag::T_Var {
            return false;
        }
        let var = e as *mut pg_sys::Var;
        if (*var).varlevelsup != 0 {
            return false;
        }
        let Some(rte) = PgList::<pg_sys::RangeTblEntry>::from_pg((*level).rtable)
            .get_ptr(crate::pg::zero_based((*var).varno).unwrap_or(usize::MAX))
        else {
            return false;
        };
        if rte == table {
            return (*var).varattno == attnum;
        }
        match (*rte).rtekind {
            pg_sys::RTEKind::RTE_SUBQUERY => {
                let sub = (*rte).subquery;
                let Some(tle) = PgList::<pg_sys::TargetEntry>::from_pg((*sub).targetList)
                    .get_ptr(crate::pg::zero_based((*var).varattno).unwrap_or(usize::MAX))
                else {
                    return false;
                };
                is_column_of((*tle).expr as *mut pg_sys::Node, sub, table, attnum)
            }
            pg_sys::RTEKind::RTE_JOIN => {
                let Some(alias) = PgList::<pg_sys::Node>::from_pg((*rte).joinaliasvars)
                    .get_ptr(crate::pg::zero_based((*var).varattno).unwrap_or(usize::MAX))
                else {
                    return false;
                };
                is_column_of(alias, level, table, attnum)
            }
            _ => false,
        }
    }
}

/// Refuses a dp aggregate over a DP-only table that does not bound contributions by the
/// table's privacy unit (its last two arguments: the unit, and at most the table's max rows).
unsafe fn check_unit_form(
    aggref: *mut pg_sys::Aggref,
    block: *mut pg_sys::Query,
    table: *mut pg_sys::RangeTblEntry,
    settings: &Protected,
) {
    // SAFETY: an Aggref of the statement being planned.
    unsafe {
        let name = relname((*table).relid);
        if !crate::privacy::release::has_privacy_unit(aggref) {
            refuse(format!(
                "{name} is DP-only: its dp aggregates must bound each privacy unit's rows (the form with privacy_unit and max_rows_per_unit)"
            ));
        }
        check_unit_column(aggref, block, table, settings);
        let args = PgList::<pg_sys::TargetEntry>::from_pg((*aggref).args);
        let max_rows = (*args.get_ptr(args.len() - 1).unwrap()).expr as *mut pg_sys::Node;
        let bounded = (*max_rows).type_ == pg_sys::NodeTag::T_Const && {
            let c = max_rows as *mut pg_sys::Const;
            !(*c).constisnull && ((*c).constvalue.value() as i32) <= settings.max_rows_per_unit
        };
        if !bounded {
            refuse(format!(
                "{name} is DP-only: max_rows_per_unit must be a constant of at most {}",
                settings.max_rows_per_unit
            ));
        }
    }
}

/// Refuses a privacy-unit form whose unit (its next-to-last argument) is not the table's unit
/// column.
unsafe fn check_unit_column(
    aggref: *mut pg_sys::Aggref,
    block: *mut pg_sys::Query,
    table: *mut pg_sys::RangeTblEntry,
    settings: &Protected,
) {
    // SAFETY: an Aggref of the statement being planned, in the privacy-unit form (n >= 4).
    unsafe {
        let args = PgList::<pg_sys::TargetEntry>::from_pg((*aggref).args);
        let unit = (*args.get_ptr(args.len() - 2).unwrap()).expr as *mut pg_sys::Node;
        // The Aggref is evaluated in the dp block; the unit may come through its subqueries.
        if !is_column_of(unit, block, table, settings.unit_attnum) {
            refuse(format!(
                "{} is DP-only: the privacy unit of its dp aggregates must be its column {}",
                relname((*table).relid),
                attname((*table).relid, settings.unit_attnum)
            ));
        }
    }
}

fn attname(relid: pg_sys::Oid, attnum: i16) -> String {
    // SAFETY: a catalog lookup by oid and number.
    unsafe {
        let p = pg_sys::get_attname(relid, attnum, true);
        if p.is_null() {
            format!("#{attnum}")
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// Refuses functions that are neither built in nor the extension's in the expressions a dp
/// block and its row subqueries evaluate over the rows (a function of the analyst's could show
/// each value it sees: RAISE NOTICE, a write), subqueries in expressions included. The tables'
/// own row-level security policies (the owner's) are not the analyst's and are not looked at.
/// Built-in functions that run a query over a relation, schema or database of the caller's
/// choice (the `*_to_xml` family; the volatile ones are refused as volatile anyway).
const RUNS_QUERIES: [u32; 14] = [
    pg_sys::F_TABLE_TO_XML,
    pg_sys::F_TABLE_TO_XMLSCHEMA,
    pg_sys::F_TABLE_TO_XML_AND_XMLSCHEMA,
    pg_sys::F_SCHEMA_TO_XML,
    pg_sys::F_SCHEMA_TO_XMLSCHEMA,
    pg_sys::F_SCHEMA_TO_XML_AND_XMLSCHEMA,
    pg_sys::F_DATABASE_TO_XML,
    pg_sys::F_DATABASE_TO_XMLSCHEMA,
    pg_sys::F_DATABASE_TO_XML_AND_XMLSCHEMA,
    pg_sys::F_QUERY_TO_XML,
    pg_sys::F_QUERY_TO_XMLSCHEMA,
    pg_sys::F_QUERY_TO_XML_AND_XMLSCHEMA,
    pg_sys::F_CURSOR_TO_XML,
    pg_sys::F_CURSOR_TO_XMLSCHEMA,
];

unsafe fn check_functions(q: *mut pg_sys::Query) {
    #[pg_guard]
    unsafe extern "C-unwind" fn forbidden(func: pg_sys::Oid, _ctx: *mut c_void) -> bool {
        if own::dp_aggregate(func).is_some() {
            return false;
        }
        // A volatile function may write what it sees somewhere the analyst reads later, even a
        // built-in one: set_config, pg_notify, advisory locks, nextval, large objects; and two
        // stable ones assign a transaction id, which the next statement sees.
        (func.to_u32() >= pg_sys::FirstNormalObjectId && !own::extension_function(func))
            // SAFETY: a syscache lookup by oid through pgrx's guarded binding (func comes from a
            // node of the query tree; an unknown oid raises, it does not read bad memory).
            || unsafe { pg_sys::func_volatile(func) }
                == pg_sys::PROVOLATILE_VOLATILE as std::ffi::c_char
            || [pg_sys::F_TXID_CURRENT, pg_sys::F_PG_CURRENT_XACT_ID].contains(&func.to_u32())
            // Stable built-ins that run a query of the caller's choice (a view that calls
            // nextval or a dp aggregate): evaluated per row (in a CASE branch, even on constant
            // arguments), they count the rows in side effects and ledger rows (attacker
            // re-check of issue 32).
            || RUNS_QUERIES.contains(&func.to_u32())
    }
    /// A stable function of someone else's: on a row's values it may still leave a trace (a
    /// catalog lookup by a name made from the row counts in the statistics; table_to_xml runs
    /// a query of the caller's choice per row). Allowed on constants only.
    #[pg_guard]
    unsafe extern "C-unwind" fn stable_foreign(func: pg_sys::Oid, _ctx: *mut c_void) -> bool {
        own::dp_aggregate(func).is_none()
            && !own::extension_function(func)
            // SAFETY: as in `forbidden`, a guarded syscache lookup by oid.
            && unsafe { pg_sys::func_volatile(func) }
                == pg_sys::PROVOLATILE_STABLE as std::ffi::c_char
    }
    fn refuse_functions() -> ! {
        refuse(
            "a query over a DP-only table may call only built-in functions and the extension's own that neither are volatile on its rows nor run queries (table_to_xml and its family)"
                .into(),
        )
    }
    #[pg_guard]
    unsafe extern "C-unwind" fn walk(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
        // SAFETY: expression nodes of the query tree.
        unsafe {
            if node.is_null() {
                return false;
            }
            if (*node).type_ == pg_sys::NodeTag::T_Query {
                check_functions(node as *mut pg_sys::Query);
                return false;
            }
            if pg_sys::check_functions_in_node(node, Some(forbidden), ctx) {
                refuse_functions();
            }
            if pg_sys::check_functions_in_node(node, Some(stable_foreign), ctx)
                && pg_sys::contain_var_clause(node)
            {
                refuse(
                    "a query over a DP-only table may call stable built-in functions (to_regclass, table_to_xml, casts to timestamptz ...) only on constants, not on its rows"
                        .into(),
                );
            }
            // A correlated subquery runs once per row that reaches it: its reads and charges
            // count those rows.
            if (*node).type_ == pg_sys::NodeTag::T_SubLink
                && pg_sys::contain_vars_of_level((*(node as *mut pg_sys::SubLink)).subselect, 1)
            {
                refuse(
                    "a query over a DP-only table may not use a correlated subquery on its rows"
                        .into(),
                );
            }
            // A type of the analyst's calls the analyst's code on each value: a domain's CHECK
            // (also inside an array, composite or range type, reached by their input
            // functions or jsonb_populate_record), a range's subtype_diff.
            if is_expression(node) {
                let typid = pg_sys::exprType(node);
                if analysts_type(typid) {
                    refuse(format!(
                        "a query over a DP-only table may not use the type {} of the querying role on its rows",
                        crate::privacy::release::type_name(typid)
                    ));
                }
            }
            match (*node).type_ {
                // A domain's CHECK constraints call their functions on the value.
                pg_sys::NodeTag::T_CoerceToDomain => {
                    let domain = (*(node as *mut pg_sys::CoerceToDomain)).resulttype;
                    if domain.to_u32() >= pg_sys::FirstNormalObjectId {
                        refuse(format!(
                            "a query over a DP-only table may not cast its rows to the domain {} (its constraints call functions on each value)",
                            crate::privacy::release::type_name(domain)
                        ));
                    }
                }
                // ORDER BY ... USING, GROUP BY and DISTINCT call their operators' functions.
                pg_sys::NodeTag::T_SortGroupClause => {
                    let c = node as *mut pg_sys::SortGroupClause;
                    for op in [(*c).sortop, (*c).eqop] {
                        if op != pg_sys::InvalidOid && forbidden(pg_sys::get_opcode(op), ctx) {
                            refuse_functions();
                        }
                    }
                }
                _ => {}
            }
            pg_sys::expression_tree_walker(node, Some(walk), ctx)
        }
    }
    // SAFETY: a query tree of the statement being planned; each part walked read-only.
    unsafe {
        let ctx = std::ptr::null_mut();
        walk((*q).targetList as *mut pg_sys::Node, ctx);
        walk((*q).jointree as *mut pg_sys::Node, ctx);
        walk((*q).havingQual, ctx);
        walk((*q).limitOffset, ctx);
        walk((*q).limitCount, ctx);
        walk((*q).sortClause as *mut pg_sys::Node, ctx);
        walk((*q).groupClause as *mut pg_sys::Node, ctx);
        walk((*q).distinctClause as *mut pg_sys::Node, ctx);
        for cte in PgList::<pg_sys::CommonTableExpr>::from_pg((*q).cteList).iter_ptr() {
            walk((*cte).ctequery, ctx);
        }
        for rte in PgList::<pg_sys::RangeTblEntry>::from_pg((*q).rtable).iter_ptr() {
            // Row-security policies of the other tables of the block run on rows that a join
            // with the DP-only table picks (a nested loop's inner index scan is driven by each
            // of its rows): a policy on the analyst's own table calling the analyst's function
            // logged every value it was joined on (attacker round 11). The DP-only table's own
            // policies are its owner's.
            let own_policies_of_dp_only_table = (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION
                && crate::privacy::protected::map().contains_key(&(*rte).relid);
            if !(*rte).securityQuals.is_null() && !own_policies_of_dp_only_table {
                walk((*rte).securityQuals as *mut pg_sys::Node, ctx);
            }
            match (*rte).rtekind {
                // A foreign table's scan sends the join's values to another server.
                pg_sys::RTEKind::RTE_RELATION
                    if (*rte).relkind == pg_sys::RELKIND_FOREIGN_TABLE as std::ffi::c_char =>
                {
                    refuse(format!(
                        "a query over a DP-only table may not read the foreign table {}",
                        relname((*rte).relid)
                    ));
                }
                pg_sys::RTEKind::RTE_SUBQUERY => check_functions((*rte).subquery),
                pg_sys::RTEKind::RTE_FUNCTION => {
                    walk((*rte).functions as *mut pg_sys::Node, ctx);
                }
                pg_sys::RTEKind::RTE_VALUES => {
                    walk((*rte).values_lists as *mut pg_sys::Node, ctx);
                }
                pg_sys::RTEKind::RTE_TABLEFUNC => {
                    walk((*rte).tablefunc as *mut pg_sys::Node, ctx);
                }
                _ => {}
            }
        }
    }
}

/// Whether `node` is an expression (what `exprType` accepts), not a list, target entry, join
/// or clause.
///
/// # Safety
/// `node` must be a valid, non-NULL node (of a query tree or plan).
pub(crate) unsafe fn is_expression(node: *mut pg_sys::Node) -> bool {
    use pg_sys::NodeTag::*;
    matches!(
        // SAFETY: node is a valid, non-NULL node, as the caller guarantees (both callers are
        // tree walkers that return on NULL first); every node starts with its tag.
        unsafe { (*node).type_ },
        T_Const
            | T_Param
            | T_Aggref
            | T_FuncExpr
            | T_OpExpr
            | T_DistinctExpr
            | T_NullIfExpr
            | T_ScalarArrayOpExpr
            | T_BoolExpr
            | T_FieldSelect
            | T_FieldStore
            | T_RelabelType
            | T_CoerceViaIO
            | T_ArrayCoerceExpr
            | T_ConvertRowtypeExpr
            | T_CollateExpr
            | T_CaseExpr
            | T_ArrayExpr
            | T_RowExpr
            | T_RowCompareExpr
            | T_CoalesceExpr
            | T_MinMaxExpr
            | T_XmlExpr
            | T_NullTest
            | T_BooleanTest
            | T_CoerceToDomain
            | T_SubscriptingRef
            | T_NamedArgExpr
    )
}

/// Whether `typid` belongs to the querying role (or a role whose privileges it has): built-in
/// types and those of other roles (the table owner's) run no code of the analyst's.
unsafe fn analysts_type(typid: pg_sys::Oid) -> bool {
    if typid.to_u32() < pg_sys::FirstNormalObjectId {
        return false;
    }
    // SAFETY: a syscache lookup by oid, released before returning.
    unsafe {
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::TYPEOID as i32,
            pg_sys::Datum::from(typid),
        );
        if tuple.is_null() {
            return false;
        }
        let owner = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_type>(tuple)).typowner;
        pg_sys::ReleaseSysCache(tuple);
        pg_sys::has_privs_of_role(pg_sys::GetUserId(), owner)
    }
}

/// Checks the statement before it is planned; the restricted tables it reads where allowed
/// (empty if it reads none), or None if nothing is restricted for this role.
unsafe fn check_statement(parse: *mut pg_sys::Query) -> Option<HashSet<u32>> {
    if !crate::privacy::start::installed() {
        return None;
    }
    // SAFETY: the statement's query tree, valid for the call; backend globals read only.
    unsafe {
        if parse.is_null() || !crate::pg::nothrow::is_transaction_state() {
            return None;
        }
        let map = protected::map();
        if map.is_empty() {
            return None;
        }
        if !may_read_protected(&map, parse) {
            // The plan is still checked (an inlined SQL function may read one).
            return Some(HashSet::new());
        }
        let role = crate::pg::nothrow::current_user();
        let mut checker = Checker {
            map,
            role,
            found: HashSet::new(),
        };
        // (Whether the role is privileged is asked last: it looks the admin role up by name.)
        if !checker.reads_restricted(parse) {
            // Nothing to check here; the plan still is (an inlined SQL function may read one).
            return Some(HashSet::new());
        }
        if privileged(role) {
            return None;
        }
        if (*parse).commandType != pg_sys::CmdType::CMD_SELECT {
            refuse("a DP-only table may be read only by SELECT".into());
        }
        checker.check_level(parse, None);
        crate::privacy::dp_only_warmup::collations(parse);
        Some(checker.found)
    }
}

/// Whether `q` may read a protected table: false when no range table of it (subqueries and WITH
/// queries included) names one and no level has subqueries in its expressions, which is most
/// statements. Reads only the query tree (no catalog, no walker callbacks): the cheap first look
/// every statement of a database with DP-only tables takes.
unsafe fn may_read_protected(map: &protected::Map, q: *mut pg_sys::Query) -> bool {
    // SAFETY: a query tree of the statement being planned.
    unsafe {
        if q.is_null() {
            return false;
        }
        // (A row-security policy with a subquery sets it too.)
        if (*q).hasSubLinks {
            return true;
        }
        for rte in list_ptrs::<pg_sys::RangeTblEntry>((*q).rtable) {
            let hit = match (*rte).rtekind {
                pg_sys::RTEKind::RTE_RELATION => map.contains_key(&(*rte).relid),
                pg_sys::RTEKind::RTE_SUBQUERY => may_read_protected(map, (*rte).subquery),
                _ => false,
            };
            if hit {
                return true;
            }
        }
        list_ptrs::<pg_sys::CommonTableExpr>((*q).cteList)
            .any(|cte| may_read_protected(map, (*cte).ctequery as *mut pg_sys::Query))
    }
}

/// Refuses a plan that reads a DP-only table more often than the statement checked (an inlined
/// SQL function's read appears only now).
unsafe fn check_plan(stmt: *mut pg_sys::PlannedStmt, found: &HashSet<u32>) {
    // SAFETY: the plan just made.
    unsafe {
        let map = protected::map();
        let role = crate::pg::nothrow::current_user();
        for rte in list_ptrs::<pg_sys::RangeTblEntry>((*stmt).rtable) {
            if (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION
                && map.contains_key(&(*rte).relid)
                && !found.contains(&(*rte).relid.to_u32())
                && !pg_sys::pg_class_ownercheck((*rte).relid, role)
                && !privileged(role)
            {
                refuse(format!(
                    "{} is DP-only: it may be read only through dp aggregates",
                    relname((*rte).relid)
                ));
            }
        }
        if !found.is_empty() {
            refuse_writable_relations(stmt, &map, role);
        }
    }
}

/// Refuses a statement over a DP-only table that also reads a relation the querying role owns
/// or may write. Reading leaves marks on a relation's pages that outlast the query: an index
/// entry whose row is dead is marked dead by the first scan that reaches it, and hint bits are
/// set on rows first read after they changed. With a table of its own, filled and then deleted,
/// and a nested loop whose inner index scan is keyed by a protected value, the analyst read
/// each value back from which entry the query marked (`EXPLAIN (ANALYZE, BUFFERS)` of its own
/// table: `Heap Fetches: 0`), with statistics off (attacker round 12). Relations it cannot
/// write, such as its owner's lookup tables, carry no rows the analyst made or removed; system
/// catalogs, which every role's DDL fills with deleted rows, are refused too.
unsafe fn refuse_writable_relations(
    stmt: *mut pg_sys::PlannedStmt,
    map: &protected::Map,
    role: pg_sys::Oid,
) {
    let writes =
        (pg_sys::ACL_INSERT | pg_sys::ACL_UPDATE | pg_sys::ACL_DELETE | pg_sys::ACL_TRUNCATE)
            as pg_sys::AclMode;
    // SAFETY: the plan just made; catalog lookups by oid of relations it locked.
    unsafe {
        for rte in list_ptrs::<pg_sys::RangeTblEntry>((*stmt).rtable) {
            if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION || map.contains_key(&(*rte).relid) {
                continue;
            }
            let relid = (*rte).relid;
            // (A view has no pages; its base relations are in the range table too.)
            if (*rte).relkind == pg_sys::RELKIND_VIEW as std::ffi::c_char {
                continue;
            }
            let writable = pg_sys::pg_class_ownercheck(relid, role)
                || pg_sys::pg_class_aclmask(relid, role, writes, pg_sys::AclMaskHow::ACLMASK_ANY)
                    != 0
                || pg_sys::pg_attribute_aclcheck_all(
                    relid,
                    role,
                    (pg_sys::ACL_INSERT | pg_sys::ACL_UPDATE) as pg_sys::AclMode,
                    pg_sys::AclMaskHow::ACLMASK_ANY,
                ) == pg_sys::AclResult::ACLCHECK_OK;
            if writable {
                refuse(format!(
                    "a query over a DP-only table may not read {}, which the querying role owns or may write (reads leave marks on its pages that outlast the query)",
                    relname(relid)
                ));
            }
            // A system catalog gets the analyst's deleted rows through DDL (CREATE and DROP
            // TABLE leave dead pg_class rows, lo_create and lo_unlink dead
            // pg_largeobject_metadata rows): the same dead-entry marks, readable back with
            // EXPLAIN (ANALYZE, BUFFERS) (third attacker re-check of issue 32).
            if relid.to_u32() < pg_sys::FirstNormalObjectId {
                refuse(format!(
                    "a query over a DP-only table may not read the system catalog {} (any role can leave deleted rows in it, and reads leave marks on them that outlast the query)",
                    relname(relid)
                ));
            }
        }
    }
}

/// Whether `role` reads DP-only tables freely: superusers and privacy admins.
pub fn privileged(role: pg_sys::Oid) -> bool {
    is_superuser(role) || has_privs_of_role_named(role, PRIVACY_ADMIN)
}

/// Refused where the library is not preloaded: without the planner hook nothing would check.
pub fn require_hook() {
    if !crate::privacy::start::installed() {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "DP-only tables need pg_encrypt_ml in shared_preload_libraries",
        );
    }
}
