//! State a backend keeps from one statement to the next, which a query over a DP-only table
//! could otherwise leave behind depending on its rows (a function reached only by some rows,
//! inside a `CASE`, set it up, and the next statement counted or timed it; attacker rounds 11,
//! 14 and 15). Set up before such queries (`once`, `collations`) or reset after them (`reset`).
//!
//! Set up before a backend's first such query, so that no such query can be the one that sets
//! it up:
//! - the shared libraries of encoding conversions (`convert_from(..., 'SJIS')` loads
//!   `utf8_and_sjis.so`; 24 libraries, about 300 µs each) and of text-search templates
//!   (`dict_snowball.so`): every function of `pg_conversion` and `pg_ts_template` is looked up,
//!   which loads its library;
//! - the digests' first use (`md5`, `sha224` ... `sha512`: OpenSSL's setup);
//! - every built-in text-search configuration's dictionaries (their stop-word files).
//!
//! What remains is listed in docs/privacy.md (the XML parser's one-time setup, lazy state of
//! other extensions' libraries, timing in general).

use crate::pg::catalog_reads::read_rows;
use crate::pg::guards::with_active_snapshot;
use crate::privacy::dp_only::is_expression;
use pgrx::prelude::*;
use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::c_void;

thread_local! {
    static WARMED: Cell<bool> = const { Cell::new(false) };
}

/// Sets the state up, once per backend.
pub fn once() {
    if WARMED.with(|w| w.replace(true)) {
        return;
    }
    with_active_snapshot(|| {
        let functions: Vec<pg_sys::Oid> = read_rows(
            "SELECT conproc::pg_catalog.oid FROM pg_catalog.pg_conversion \
             UNION SELECT tmplinit::pg_catalog.oid FROM pg_catalog.pg_ts_template \
                    WHERE tmplinit OPERATOR(pg_catalog.<>) 0 \
             UNION SELECT tmpllexize::pg_catalog.oid FROM pg_catalog.pg_ts_template",
            &[],
            0,
            |r| r.get::<pg_sys::Oid>(1),
        )
        .into_iter()
        .flatten()
        .collect();
        for function in functions {
            let mut info = pg_sys::FmgrInfo::default();
            // SAFETY: looks the function up (loading its library) into a local FmgrInfo that
            // is not called.
            unsafe { pg_sys::fmgr_info(function, &mut info) };
        }
        let _ = read_rows(
            "SELECT pg_catalog.md5(''), pg_catalog.sha224(''::pg_catalog.bytea), \
                    pg_catalog.sha256(''::pg_catalog.bytea), pg_catalog.sha384(''::pg_catalog.bytea), \
                    pg_catalog.sha512(''::pg_catalog.bytea), \
                    (SELECT pg_catalog.count(pg_catalog.to_tsvector(c.oid::pg_catalog.regconfig, 'warm')) \
                       FROM pg_catalog.pg_ts_config c \
                      WHERE c.cfgnamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace)",
            &[],
            0,
            |_| (),
        );
    });
}

/// After a query over a DP-only table: resets the catalog caches (an entry the rows made the
/// backend load, such as a text-search configuration picked by a `CASE`, is loaded again on
/// its next use) and the cache of compiled regular expressions (`flush_regex_cache`).
pub fn reset() {
    // SAFETY: what a shared-invalidation reset does at any point of a transaction; relations
    // still open are rebuilt.
    unsafe { pg_sys::InvalidateSystemCaches() };
    flush_regex_cache();
}

/// Compiles `pattern` under `collation` into the backend's regex cache (or finds it there), by
/// matching it against an empty string.
fn compile_regex(pattern: &str, collation: pg_sys::Oid) {
    mod raw {
        // regexp.c's `~` for text, as a C function pointer (pgrx binds only a Rust wrapper).
        extern "C-unwind" {
            pub fn textregexeq(fcinfo: pgrx::pg_sys::FunctionCallInfo) -> pgrx::pg_sys::Datum;
        }
    }
    // SAFETY: text datums palloc'd in the current context; the regex function through the
    // guard of DirectFunctionCall2Coll.
    unsafe {
        pg_sys::DirectFunctionCall2Coll(
            Some(raw::textregexeq),
            collation,
            "".into_datum().expect("text"),
            pattern.into_datum().expect("text"),
        );
    }
}

/// Leaves the backend's cache of compiled regular expressions (the last 32, outside the catalog
/// caches) holding the same 32 patterns whatever the query did: a regex in a `CASE` on the row
/// was compiled, and kept, only when a row reached it, and timing the same pattern in the next
/// statement (a complex one compiles in 40–200 ms, a cached one runs in under 8 ms) read each
/// bit exactly (attacker round 14). Each of 32 distinct trivial patterns is compiled or found,
/// so all of them are more recent than anything the query left, which falls out.
fn flush_regex_cache() {
    const CACHED_REGEXES: usize = 32; // MAX_CACHED_RES in regexp.c
    for i in 0..CACHED_REGEXES {
        compile_regex(
            &format!("^encml-regex-cache-{i:02}$"),
            pg_sys::DEFAULT_COLLATION_OID,
        );
    }
}

/// Builds the regex engine's character-class tables for `collation` (kept per collation for
/// the backend's life: a regex with `[[:alpha:]]` under a collation built them only when a row
/// reached it; attacker round 15). The pattern compiled for this leaves the cache of compiled
/// patterns, which is refilled when the query ends.
fn warm_regex_classes(collation: pg_sys::Oid) {
    // (Regexes refuse nondeterministic collations: such a statement fails anyway.)
    // SAFETY: a syscache lookup by oid.
    if !unsafe { pg_sys::get_collation_isdeterministic(collation) } {
        return;
    }
    compile_regex(
        "[[:alnum:]][[:alpha:]][[:blank:]][[:cntrl:]][[:digit:]][[:graph:]]\
         [[:lower:]][[:print:]][[:punct:]][[:space:]][[:upper:]][[:xdigit:]][[:word:]]",
        collation,
    );
}

mod locale {
    // pg_locale.h, which pgrx does not bind. Each may raise (a collation whose locale the
    // system lacks): called through pgrx's guard.
    extern "C-unwind" {
        pub fn lc_collate_is_c(collation: pgrx::pg_sys::Oid) -> bool;
        pub fn lc_ctype_is_c(collation: pgrx::pg_sys::Oid) -> bool;
        pub fn pg_newlocale_from_collation(collid: pgrx::pg_sys::Oid) -> *mut std::ffi::c_void;
    }
}

/// Before a statement over a DP-only table runs: loads the locale of every collation it names,
/// and builds their regex class tables and the default collation's. A backend loads a
/// collation's locale on its first use and keeps it (the catalog-cache reset does not drop it),
/// so a `CASE` on a row that used `lower(x COLLATE "de-x-icu")` only for some rows left a trace
/// a later statement could see (no catalog lookup for that collation).
///
/// # Safety
/// `parse` must be the statement's query tree.
pub unsafe fn collations(parse: *mut pg_sys::Query) {
    #[pg_guard]
    unsafe extern "C-unwind" fn walk(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
        // SAFETY: nodes of the statement's query tree; ctx is the set below.
        unsafe {
            if node.is_null() {
                return false;
            }
            if (*node).type_ == pg_sys::NodeTag::T_Query {
                // (Range-table entries' expressions are walked, not the entries themselves.)
                return pg_sys::query_tree_walker(node as *mut pg_sys::Query, Some(walk), ctx, 0);
            }
            let found = &mut *(ctx as *mut HashSet<u32>);
            if is_expression(node) {
                found.insert(pg_sys::exprCollation(node).to_u32());
                found.insert(pg_sys::exprInputCollation(node).to_u32());
            }
            if (*node).type_ == pg_sys::NodeTag::T_CollateExpr {
                found.insert((*(node as *mut pg_sys::CollateExpr)).collOid.to_u32());
            }
            pg_sys::expression_tree_walker(node, Some(walk), ctx)
        }
    }
    let mut found: HashSet<u32> = HashSet::new();
    // SAFETY: the statement's query tree, read only; the locale functions through the guard.
    unsafe {
        walk(
            parse as *mut pg_sys::Node,
            &mut found as *mut HashSet<u32> as *mut c_void,
        );
        for collation in found {
            let c = pg_sys::Oid::from(collation);
            if [
                pg_sys::InvalidOid,
                pg_sys::DEFAULT_COLLATION_OID,
                pg_sys::C_COLLATION_OID,
                pg_sys::POSIX_COLLATION_OID,
            ]
            .contains(&c)
            {
                continue;
            }
            pg_sys::ffi::pg_guard_ffi_boundary(|| {
                locale::lc_collate_is_c(c);
                locale::lc_ctype_is_c(c);
                if !locale::lc_collate_is_c(c) {
                    locale::pg_newlocale_from_collation(c);
                }
            });
            warm_regex_classes(c);
        }
        warm_regex_classes(pg_sys::DEFAULT_COLLATION_OID);
    }
}
