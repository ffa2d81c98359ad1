//! Differential privacy in the backend: the budget ledger and the charges recorded outside the
//! caller's transaction, and the C functions behind the dp aggregates (`dp_aggregates` with an
//! `internal` state, `dp_state_aggregates` with `encml.dp_state`). The mechanisms and aggregate
//! states live in `encml-dp`.

pub mod charge;
pub mod dp_aggregates;
pub mod dp_bounded_aggregates;
pub mod dp_only;
pub mod dp_only_execution;
pub mod dp_only_warmup;
pub mod dp_state_aggregates;
pub mod dp_summary_aggregates;
pub mod groups_per_unit;
pub mod own;
pub mod params;
pub mod protected;
pub mod release;
pub mod start;
