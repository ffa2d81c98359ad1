//! Citus routes a point lookup on a `det_text` distribution column to one shard only when the
//! value compared is a constant when it plans; `WHERE email = encml.det_encrypt('ada@…', key)`
//! asked every shard. On a database with Citus, the planner hook (which runs before Citus's)
//! replaces each call of the extension's `det_encrypt` whose arguments are constants by its
//! result, computed then with the caller's rights, as a prepared statement's parameter would be.
//!
//! A plan holding such a constant depends on the key's current version and on the role that
//! computed it: the plan lists the key-version table among the relations it depends on, so
//! `rotate_key`, `destroy_key` and every other key change (which send a relcache invalidation for
//! that table) make a cached plan be planned again; and it is marked as depending on the role,
//! so a cached plan is not reused after `SET ROLE`.
//!
//! The functions are recognised by the address of their C entry point (what `fmgr_info` resolves
//! their catalog entry to), never by name or schema.

use pgrx::pg_sys;
use std::ffi::c_void;

/// Whether `func` is one of the det_encrypt entry points. Membership in the extension is cached
/// per backend by `privacy::own` (until pg_proc changes); `fmgr_info` of one of our C functions
/// is answered from PostgreSQL's own cache of C functions, so nothing is cached here.
fn is_det_encrypt(func: pg_sys::Oid) -> bool {
    crate::privacy::own::extension_function(func) && {
        // SAFETY: fmgr_info fills a zeroed FmgrInfo for an existing function (the oid comes
        // from a parsed query); the FmgrInfo is a local and nothing it points to is kept.
        let addr = unsafe {
            let mut info: pg_sys::FmgrInfo = std::mem::zeroed();
            pg_sys::fmgr_info(func, &mut info);
            info.fn_addr.map(|f| f as usize)
        };
        let text = crate::api::det_text::det_encrypt_text_wrapper as *const () as usize;
        let bytea = crate::api::det_text::det_encrypt_bytea_wrapper as *const () as usize;
        addr == Some(text) || addr == Some(bytea)
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn mutate(node: *mut pg_sys::Node, ctx: *mut c_void) -> *mut pg_sys::Node {
    // SAFETY: nodes of the query tree being planned; ctx is the `bool` of `fold`.
    unsafe {
        if node.is_null() {
            return node;
        }
        if (*node).type_ == pg_sys::NodeTag::T_Query {
            return pg_sys::query_tree_mutator(node as *mut pg_sys::Query, mutator(), ctx, 0)
                as *mut pg_sys::Node;
        }
        if (*node).type_ == pg_sys::NodeTag::T_FuncExpr {
            let f = node as *mut pg_sys::FuncExpr;
            let args = pgrx::PgList::<pg_sys::Node>::from_pg((*f).args);
            let constant = args.iter_ptr().all(|a| {
                !a.is_null()
                    && (*a).type_ == pg_sys::NodeTag::T_Const
                    && !(*(a as *mut pg_sys::Const)).constisnull
            });
            if constant && is_det_encrypt((*f).funcid) {
                *(ctx as *mut bool) = true;
                // The call as the executor would make it, now: the caller's rights are checked
                // and a refusal is raised here, as it would be at execution.
                return pg_sys::evaluate_expr(
                    node as *mut pg_sys::Expr,
                    (*f).funcresulttype,
                    -1,
                    (*f).funccollid,
                ) as *mut pg_sys::Node;
            }
        }
        pg_sys::expression_tree_mutator(node, mutator(), ctx)
    }
}

fn mutator() -> Option<unsafe extern "C-unwind" fn() -> *mut pg_sys::Node> {
    crate::pg::tree_mutator::callback(mutate)
}

/// Folds the constant `det_encrypt` calls of `parse` (on a database with Citus); returns
/// whether it folded any, in which case the caller marks the plan with `mark_dependencies`.
///
/// # Safety
/// `parse` is the query the planner hook received.
pub unsafe fn fold(parse: *mut pg_sys::Query) -> bool {
    if parse.is_null() || !crate::pg::citus::in_database() {
        return false;
    }
    let mut folded = false;
    // SAFETY: the planner's query, modified in place (QTW_DONT_COPY_QUERY) before it is planned;
    // the mutator copies what it changes below it.
    unsafe {
        pg_sys::query_tree_mutator(
            parse,
            mutator(),
            &mut folded as *mut bool as *mut c_void,
            pg_sys::QTW_DONT_COPY_QUERY as i32,
        );
    }
    folded
}

/// Makes a plan with folded ciphertexts depend on the key catalog and on the role.
///
/// # Safety
/// `plan` is the PlannedStmt the planner returned for the folded query.
pub unsafe fn mark_dependencies(plan: *mut pg_sys::PlannedStmt) {
    let keys = crate::pg::catalog_reads::extension_relation(c"data_key_versions");
    // SAFETY: a valid PlannedStmt in the planner's memory context; lappend_oid allocates there.
    unsafe {
        if keys != pg_sys::InvalidOid {
            (*plan).relationOids = pg_sys::lappend_oid((*plan).relationOids, keys);
        }
        (*plan).dependsOnRole = true;
    }
}
