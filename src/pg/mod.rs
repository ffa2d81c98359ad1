//! Postgres plumbing shared by every feature.
pub mod catalog_access;
pub mod errors;
pub mod gucs;
pub mod random;
pub mod tenant;
