//! Differential privacy in the backend: the budget ledger and the charges recorded outside the
//! caller's transaction. The mechanisms and aggregate states live in `encml-dp`.

pub mod charge;
pub mod dp_only;
pub mod dp_only_execution;
pub mod dp_only_warmup;
pub mod own;
pub mod params;
pub mod protected;
pub mod release;
pub mod start;
