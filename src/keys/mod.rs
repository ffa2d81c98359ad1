//! The tenant-key catalog: master-key provider, catalog rows, the per-backend key cache, and the
//! extension's own service keys.
pub mod cache;
pub mod catalog;
pub mod clearances;
pub mod grants;
pub mod nonce_budget;
pub mod provider;
pub mod role_privileges;
pub mod service;
pub mod tenant_context;
pub mod tenants;
