//! State a backend sets up on first use and keeps for its life, set up before its first query
//! over a DP-only table so that no such query can be the one that sets it up. Otherwise a
//! function reached only by some rows (inside a `CASE`) left the state behind, and timing the
//! next statement showed whether it had run (attacker round 15):
//! - the shared libraries of encoding conversions (`convert_from(..., 'SJIS')` loads
//!   `utf8_and_sjis.so`; 24 libraries, about 300 µs each) and of text-search templates
//!   (`dict_snowball.so`): every function of `pg_conversion` and `pg_ts_template` is looked up,
//!   which loads its library;
//! - the digests' first use (`md5`, `sha224` ... `sha512`: OpenSSL's setup);
//! - every built-in text-search configuration's dictionaries (their stop-word files).
//!
//! What remains is listed in docs/privacy.md (the XML parser's one-time setup, lazy state of
//! other extensions' libraries, timing in general).

use crate::pg::catalog_access::read_rows;
use crate::pg::guards::with_active_snapshot;
use pgrx::pg_sys;
use std::cell::Cell;

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
