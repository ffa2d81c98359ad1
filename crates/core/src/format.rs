//! The versioned header every `enc_bytea` value starts with, and the full value layout.
//!
//! ```text
//! offset  size  field
//!      0     2  magic "EM" (0x45 0x4D)
//!      2     1  format version (1)
//!      3     1  algorithm (1 = AES-256-GCM)
//!      4    16  key id (UUID, RFC 4122 byte order)
//!     20     4  key version (unsigned, big-endian)
//!     24    12  nonce
//!     36     n  ciphertext (same length as the plaintext)
//!   36+n    16  GCM tag
//! ```
//! The first 24 bytes (the header) are authenticated: they are the start of the GCM AAD.

use crate::error::{Error, Result};

pub const MAGIC: [u8; 2] = *b"EM";
pub const FORMAT_VERSION: u8 = 1;
pub const HEADER_LEN: usize = 24;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Bytes an `enc_bytea` value adds to its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Algorithm {
    Aes256Gcm = 1,
}

impl Algorithm {
    pub fn from_byte(b: u8) -> Result<Self> {
        match b {
            1 => Ok(Algorithm::Aes256Gcm),
            other => Err(Error::UnsupportedAlgorithm(other)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub algorithm: Algorithm,
    pub key_id: [u8; 16],
    pub key_version: u32,
}

impl Header {
    pub fn new(key_id: [u8; 16], key_version: u32) -> Self {
        Header {
            algorithm: Algorithm::Aes256Gcm,
            key_id,
            key_version,
        }
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..2].copy_from_slice(&MAGIC);
        out[2] = FORMAT_VERSION;
        out[3] = self.algorithm as u8;
        out[4..20].copy_from_slice(&self.key_id);
        out[20..24].copy_from_slice(&self.key_version.to_be_bytes());
        out
    }

    /// Parses the header of a complete value and checks that the value is long enough to hold
    /// a nonce and a tag. It does not authenticate anything: until the value is opened, the
    /// header is only a claim.
    pub fn decode(value: &[u8]) -> Result<Self> {
        if value.len() < 3 {
            return Err(Error::Malformed("shorter than its header"));
        }
        if value[0..2] != MAGIC {
            return Err(Error::Malformed("not an enc_bytea value (bad magic)"));
        }
        if value[2] != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                format: "enc_bytea",
                version: value[2],
            });
        }
        if value.len() < OVERHEAD {
            return Err(Error::Malformed("truncated"));
        }
        let algorithm = Algorithm::from_byte(value[3])?;
        let mut key_id = [0u8; 16];
        key_id.copy_from_slice(&value[4..20]);
        let key_version = u32::from_be_bytes(value[20..24].try_into().expect("4 bytes"));
        Ok(Header {
            algorithm,
            key_id,
            key_version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = Header::new([7u8; 16], 0x01020304);
        let mut v = h.encode().to_vec();
        v.extend_from_slice(&[0u8; NONCE_LEN + TAG_LEN]);
        assert_eq!(Header::decode(&v).unwrap(), h);
        assert_eq!(&v[20..24], &[1, 2, 3, 4]);
    }

    #[test]
    fn header_rejects_bad_input() {
        let h = Header::new([7u8; 16], 1).encode();
        assert_eq!(
            Header::decode(&h[..2]),
            Err(Error::Malformed("shorter than its header"))
        );
        assert_eq!(Header::decode(&h), Err(Error::Malformed("truncated")));
        let mut v = h.to_vec();
        v.extend_from_slice(&[0u8; 28]);
        let mut bad = v.clone();
        bad[0] = b'X';
        assert!(matches!(Header::decode(&bad), Err(Error::Malformed(_))));
        let mut bad = v.clone();
        bad[2] = 9;
        assert_eq!(
            Header::decode(&bad),
            Err(Error::UnsupportedVersion {
                format: "enc_bytea",
                version: 9
            })
        );
        let mut bad = v;
        bad[3] = 200;
        assert_eq!(Header::decode(&bad), Err(Error::UnsupportedAlgorithm(200)));
    }
}
