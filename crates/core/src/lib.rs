//! pg_encrypt_ml's cryptographic core.
//!
//! Everything here is plain Rust without Postgres: ciphertext formats, AEAD sealing and opening,
//! key derivation, and master-key wrapping of data keys. The extension (the Postgres glue) and
//! any client outside the database share this crate, so both agree on every byte of every format.
//! No cipher is implemented here: AES-256-GCM comes from `aes-gcm`, HKDF from `hkdf`.

pub mod aead;
pub mod audit;
pub mod error;
pub mod export;
pub mod format;
pub mod json_fields;
pub mod kdf;
pub mod master;
pub mod nonce;
pub mod ore;
pub mod siv;
pub mod stream;
pub mod tensor;
pub mod wrap;

pub use error::{Error, Result};
