//! Key lifecycle automation (docs/keys.md "Rotation policies and re-encryption jobs"):
//! - `columns`: which columns hold which ciphertexts, and the SQL that moves them;
//! - `jobs`: queuing re-encryption jobs (`reencrypt_table`, `reencrypt_key`) and the foreground
//!   `reencrypt_table_now`;
//! - `batch`: one batch of a job, in the worker;
//! - `objects`: large objects in jobs (a new object per value, the replaced ones unlinked);
//! - `placements`: a batch on a Citus distributed table, run on its shard placements;
//! - `policies`: rotation policies and what the worker does with them;
//! - `compromise`: `compromise_key`;
//! - `worker`: the launcher and the per-database worker.

pub mod batch;
pub mod columns;
pub mod compromise;
pub mod jobs;
pub mod objects;
pub mod placements;
pub mod policies;
pub mod worker;

pgrx::extension_sql_file!(
    "../../../sql/schema/lifecycle.sql",
    name = "lifecycle",
    requires = ["bootstrap"]
);
