//! The SQL surface: thin functions that check arguments and rights, call into `keys`/`types` and
//! `encml_core`, and map errors. COMMENTs and privileges are in sql/schema/finalize.sql.
pub mod audit;
pub mod citus;
pub mod clearances;
pub mod consent;
pub mod det_folding;
pub mod det_text;
pub mod dp;
pub mod dp_protect;
pub mod encrypt;
pub mod fhe;
pub mod fhe_uint32;
pub mod json_fields;
pub mod keys;
pub mod large_object;
pub mod lifecycle;
pub mod masking;
pub mod ore;
pub mod privacy;
pub mod security;
pub mod subjects;
pub mod tenancy;
pub mod tensor;
pub mod tokenize;
pub mod version;
