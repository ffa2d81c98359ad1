//! Which tables a statement writes, from its plan and, once it ran, from its executor state.

use pgrx::prelude::*;
use pgrx::PgList;

/// The tables a plan writes (its result relations, data-modifying CTEs included).
///
/// # Safety
/// `stmt` must be a valid plan (an executor's QueryDesc's).
pub unsafe fn result_relations(stmt: *mut pg_sys::PlannedStmt) -> Vec<pg_sys::Oid> {
    // SAFETY: stmt is the executor's plan; resultRelations indexes its range table (1-based).
    unsafe {
        let rtable = PgList::<pg_sys::RangeTblEntry>::from_pg((*stmt).rtable);
        let results = (*stmt).resultRelations;
        let n = if results.is_null() {
            0
        } else {
            (*results).length
        };
        let mut out = Vec::new();
        for i in 0..n {
            // An integer list: each cell holds a range-table index.
            let index = pg_sys::list_nth_int(results, i);
            if let Some(rte) = rtable.get_ptr((index - 1) as usize) {
                if (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION && !out.contains(&(*rte).relid) {
                    out.push((*rte).relid);
                }
            }
        }
        out
    }
}

/// The tables a plan needs INSERT or UPDATE on (the privileges Postgres checks at executor
/// start): the tables a statement names as its targets, also through a view, a rule or a
/// foreign engine that plans no result relations of its own (Citus).
///
/// # Safety
/// As for `result_relations`.
pub unsafe fn inserted_or_updated(stmt: *mut pg_sys::PlannedStmt) -> Vec<pg_sys::Oid> {
    // SAFETY: stmt is the executor's plan; its range table holds RangeTblEntry nodes.
    unsafe {
        let rtable = PgList::<pg_sys::RangeTblEntry>::from_pg((*stmt).rtable);
        let mut out = Vec::new();
        for rte in rtable.iter_ptr() {
            let writes = (*rte).requiredPerms & (pg_sys::ACL_INSERT | pg_sys::ACL_UPDATE);
            if (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION
                && writes != 0
                && !out.contains(&(*rte).relid)
            {
                out.push((*rte).relid);
            }
        }
        out
    }
}

/// The tables a statement that ran has opened for writing: its result relations and the
/// partitions it routed rows to (known only once it ran).
///
/// # Safety
/// `estate` must be the executor state of a statement not yet ended (or null).
pub unsafe fn opened_for_writing(estate: *mut pg_sys::EState) -> Vec<pg_sys::Oid> {
    let mut out = Vec::new();
    if estate.is_null() {
        return out;
    }
    // SAFETY: lists of ResultRelInfo the executor keeps until ExecutorEnd.
    unsafe {
        for list in [
            (*estate).es_opened_result_relations,
            (*estate).es_tuple_routing_result_relations,
        ] {
            for info in PgList::<pg_sys::ResultRelInfo>::from_pg(list).iter_ptr() {
                let rel = (*info).ri_RelationDesc;
                if !rel.is_null() && !out.contains(&(*rel).rd_id) {
                    out.push((*rel).rd_id);
                }
            }
        }
    }
    out
}
