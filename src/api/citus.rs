//! Citus support (docs/citus.md): `encml.citus_setup()` replicates the key catalog to every node
//! as reference tables; the trigger below makes every node's backends drop their cached keys
//! when a replicated write changes the catalog there (a plain row change sends no cache
//! invalidation by itself, and on a worker the write comes from Citus, not from our functions).

use crate::pg::c_functions;
use pgrx::prelude::*;

/// # Safety
/// Only as the C function `encml_citus_catalog_changed` (`c_functions!`): `fcinfo` is the
/// FunctionCallInfo Postgres passed to it.
unsafe fn catalog_changed(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this call's FunctionCallInfo (the contract above), valid for the whole
    // call; trigger_data only reads its context and raises unless it is a TriggerData.
    unsafe { crate::audit::trigger_data(fcinfo, "encml.citus_catalog_changed") };
    crate::keys::catalog::invalidate();
    pg_sys::Datum::from(0)
}

c_functions! {
    /// encml.citus_catalog_changed(): statement trigger on the replicated catalog tables
    encml_citus_catalog_changed, pg_finfo_encml_citus_catalog_changed => catalog_changed;
}

pgrx::extension_sql_file!(
    "../../sql/schema/citus.sql",
    name = "citus",
    requires = ["finalize"]
);

/// Whether two roles are the same: for the WHERE clause of a write to a replicated catalog
/// table. Citus sends `col = $1::regrole` to the other nodes as an oid comparison, and role
/// oids differ between nodes; through this function the argument travels as a regrole constant,
/// which each node reads by name.
#[pg_extern(immutable, strict, parallel_safe)]
fn same_role(a: crate::types::reg::RegRole, b: crate::types::reg::RegRole) -> bool {
    a.0 == b.0
}
