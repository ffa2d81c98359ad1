//! The tenant-key catalog: master-key provider, catalog rows, and the per-backend key cache.
pub mod cache;
pub mod catalog;
pub mod clearances;
pub mod grants;
pub mod provider;
pub mod tenants;
