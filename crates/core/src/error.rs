//! The one error type of the core. The glue maps each variant to a SQLSTATE in one place.
//! No variant ever carries key material or provider output.

use std::fmt;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The bytes are not a ciphertext of this format (wrong magic, too short, bad length).
    Malformed(&'static str),
    /// A format version this build does not know.
    UnsupportedVersion { format: &'static str, version: u8 },
    /// An algorithm identifier this build does not know.
    UnsupportedAlgorithm(u8),
    /// The AEAD tag did not verify: tampered or truncated data, wrong AAD, or a wrong key.
    AuthenticationFailed,
    /// The master-key provider output is not in the documented format.
    MasterKeyFormat(String),
    /// A wrapped data key names a master key the provider does not (or no longer) offer.
    UnknownMasterKey { fingerprint: String },
    /// The operating system's random generator failed.
    Random,
    /// A master key held in a token (PKCS#11) could not be used: the token's own error, which
    /// names the token and key label, never key material.
    Token(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Malformed(what) => write!(f, "malformed ciphertext: {what}"),
            Error::UnsupportedVersion { format, version } => {
                write!(f, "unsupported {format} format version {version}")
            }
            Error::UnsupportedAlgorithm(a) => write!(f, "unsupported algorithm identifier {a}"),
            Error::AuthenticationFailed => write!(
                f,
                "decryption failed: the ciphertext was altered or truncated, or the AAD does not match"
            ),
            Error::MasterKeyFormat(why) => write!(f, "master key provider output is invalid: {why}"),
            Error::Token(why) => write!(f, "{why}"),
            Error::UnknownMasterKey { fingerprint } => write!(
                f,
                "the data key is wrapped by master key {fingerprint}, which the master key provider does not offer"
            ),
            Error::Random => write!(f, "the operating system random generator failed"),
        }
    }
}

impl std::error::Error for Error {}
