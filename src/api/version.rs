//! The extension's own version, for operators checking that an upgrade is complete.

use crate::pg::schema_version;
use pgrx::prelude::*;

/// The version of the loaded shared library; `pg_extension.extversion` holds the schema's.
#[pg_extern(stable, strict, parallel_safe)]
fn library_version() -> &'static str {
    schema_version::LIBRARY
}
