//! Homomorphic aggregation of encrypted vectors for pg_encrypt_ml, free of Postgres.
//!
//! Clients encrypt a fixed-point vector with an LWE **compact public key** (tfhe-rs core_crypto,
//! the published 128-bit `PARAM_PKE_*_TUNIFORM_2M128` numbers: n = 2048, TUniform(17) noise,
//! modulus 2^64): one 2,048-word mask shared by up to 2,048 values plus one 64-bit body per
//! value. Ciphertexts add as plain vectors of 64-bit words (wrapping), so a sum of N updates costs
//! N vector additions and no bootstrapping. Only the secret key's holder decrypts, and should only
//! ever be given sums.
//!
//! - [`params`]: the parameter set and the fixed-point encoding with its headroom;
//! - [`keys`]: key generation and the secret/public key formats;
//! - [`vector`]: the ciphertext format, encryption, addition and decryption;
//! - [`sum`]: a running sum that refuses the same ciphertext twice (the aggregate's state);
//! - [`proven`] (feature `zk`): updates with zero-knowledge proofs that they are well-formed
//!   encryptions of values in range, and their verification;
//! - [`client`]: what the client programs (the tool, the Python package) share: ids, key files,
//!   input forms.

// No unsafe code: the formats and arithmetic here need none (docs/architecture.md).
#![forbid(unsafe_code)]

pub mod client;
pub mod keys;
pub mod params;
#[cfg(feature = "zk")]
pub mod proven;
pub mod sum;
#[cfg(feature = "uint32")]
pub mod uint32;
pub mod vector;

/// What can go wrong, without ever including key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FheError {
    /// The bytes are not a value of the expected kind (wrong magic, version, truncated, ...).
    Malformed(String),
    /// Two ciphertexts that cannot be added (dimension, key, parameters).
    Mismatch(String),
    /// A value outside what the encoding can carry.
    OutOfRange(String),
    /// The same ciphertext added twice to one sum.
    Duplicate,
    /// A proof that does not verify (forged, for another round, or of values out of range).
    Invalid(String),
}

impl std::fmt::Display for FheError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FheError::Malformed(m) => write!(f, "malformed FHE value: {m}"),
            FheError::Mismatch(m) => write!(f, "FHE values do not match: {m}"),
            FheError::OutOfRange(m) => write!(f, "value out of range: {m}"),
            FheError::Duplicate => write!(f, "the same encrypted vector appears twice in one sum"),
            FheError::Invalid(m) => write!(f, "invalid proof: {m}"),
        }
    }
}

impl std::error::Error for FheError {}
