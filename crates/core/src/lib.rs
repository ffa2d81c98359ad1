//! pg_encrypt_ml's cryptographic core.
//!
//! Everything here is plain Rust without Postgres: ciphertext formats, AEAD sealing and opening,
//! key derivation, and master-key wrapping of data keys. The extension (the Postgres glue) and
//! any client outside the database share this crate, so both agree on every byte of every format.
//! No cipher is implemented here: AES-256-GCM comes from `aes-gcm`, HKDF from `hkdf`.
//!
//! Also here, because they are plain logic worth testing alone: the fixed-size tables of threat
//! detection that the extension keeps in shared memory (`lockout`, `rate_window`, `event_ring`).

// No unsafe code: keyed HMAC and HKDF states zero themselves on drop (hmac, sha2 "zeroize").
#![forbid(unsafe_code)]

pub mod aead;
pub mod audit;
pub mod dp_seal;
pub mod error;
pub mod event_ring;
pub mod export;
pub mod format;
pub mod fpe;
pub mod json_fields;
pub mod kdf;
pub mod lockout;
pub mod mask;
pub mod master;
pub mod nonce;
pub mod nonce_budget;
pub mod ore;
pub mod rate_window;
pub mod relayed_text;
pub mod service_key;
pub mod siv;
pub mod stream;
pub mod subject_id;
pub mod tenant_token;
pub mod tensor;
pub mod wrap;

pub use error::{Error, Result};
