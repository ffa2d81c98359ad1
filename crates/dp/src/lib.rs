//! Differential privacy for pg_encrypt_ml, free of Postgres so it can be unit-tested alone.
//!
//! - [`accounting`]: zCDP accounting (ρ of a release, ρ budgets, conversion to (ε, δ)) from
//!   OpenDP's maps.
//! - [`bounded`]: the state of quantile and variance aggregates (an exact summary per group,
//!   contribution bounding per privacy unit) and their releases.
//! - [`flat`]: the fixed-size state of the aggregates without privacy units (`encml.dp_state`).
//! - [`mechanism`]: noise from OpenDP measurements (discrete Laplace / Gaussian for integer
//!   results, OpenDP's exact float samplers otherwise), calibrated from (epsilon, delta) and a
//!   sensitivity, never from a hand-written `ln(u)`.
//! - [`moments`]: private variance and standard deviation (count, sum and sum of squares of
//!   centred values, a third of the loss each).
//! - [`params`]: the parameters of one aggregate call, validated.
//! - [`partition`]: partition selection (which GROUP BY groups may be released).
//! - [`quantile`]: private quantiles over a candidate grid (a mergeable histogram; OpenDP's
//!   quantile scoring and noisy max).
//! - [`state`]: aggregate states (count, sum, average) with contribution bounding per privacy
//!   unit, merge for parallel aggregation, and a versioned binary form.
//! - [`units`]: contribution bounding per privacy unit, shared by the states.
//! - [`vector_noise`]: discrete Gaussian noise for a vector under an L2 sensitivity (the noise of
//!   differentially private FHE round sums).

// No unsafe code: the formats and arithmetic here need none (docs/architecture.md).
#![forbid(unsafe_code)]

pub mod accounting;
pub mod bounded;
pub mod error;
pub mod flat;
pub mod mechanism;
pub mod moments;
pub mod params;
pub mod partition;
pub mod quantile;
pub mod state;
pub mod units;
pub mod vector_noise;

pub use error::DpError;
