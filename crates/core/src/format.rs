//! The versioned 24-byte header every ciphertext type starts with, and the layouts that follow it.
//!
//! ```text
//! offset  size  field
//!      0     2  magic: "EM" enc_bytea, "ED" det_text, "EO" ore_* (one per kind, never mixed up)
//!      2     1  format version (1)
//!      3     1  algorithm (1 = AES-256-GCM, 2 = AES-SIV-CMAC-512, 3 = CLWW ORE + HMAC-SHA256)
//!      4    16  key id (UUID, RFC 4122 byte order)
//!     20     4  key version (unsigned, big-endian)
//! ```
//! enc_bytea continues with a 12-byte nonce, the ciphertext and a 16-byte GCM tag; the header is
//! the start of the GCM AAD. An enc_bytea with algorithm 4 ("described", used for tensors)
//! carries a clear descriptor between header and nonce: a 2-byte big-endian length and that many
//! bytes, authenticated as part of the GCM AAD. Other kinds: see their modules and
//! docs/formats.md.

use crate::error::{Error, Result};

pub const FORMAT_VERSION: u8 = 1;
pub const HEADER_LEN: usize = 24;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Bytes an `enc_bytea` value adds to its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;
/// enc_bytea algorithm identifiers: plain AES-256-GCM, and AES-256-GCM with a clear descriptor.
pub const ALG_GCM: u8 = 1;
pub const ALG_GCM_DESCRIBED: u8 = 4;
/// Size of the descriptor length field of a described enc_bytea.
pub const DESCRIPTOR_LEN_LEN: usize = 2;
/// Bytes a described enc_bytea adds to its plaintext, for a descriptor of `d` bytes.
pub const fn described_overhead(d: usize) -> usize {
    OVERHEAD + DESCRIPTOR_LEN_LEN + d
}

/// Which ciphertext type a value is; each has its own magic and algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Randomized AES-256-GCM (`enc_bytea`).
    Randomized,
    /// Deterministic AES-SIV (`det_text`).
    Deterministic,
    /// Order-revealing (`ore_int8`, `ore_float8`, `ore_timestamptz`).
    OrderRevealing,
}

impl Kind {
    pub fn magic(self) -> [u8; 2] {
        match self {
            Kind::Randomized => *b"EM",
            Kind::Deterministic => *b"ED",
            Kind::OrderRevealing => *b"EO",
        }
    }

    pub fn algorithm(self) -> u8 {
        match self {
            Kind::Randomized => ALG_GCM,
            Kind::Deterministic => 2,
            Kind::OrderRevealing => 3,
        }
    }

    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Randomized => "enc_bytea",
            Kind::Deterministic => "det_text",
            Kind::OrderRevealing => "ore",
        }
    }

    /// The smallest valid value: header plus the fixed part after it.
    pub fn min_len(self) -> usize {
        match self {
            Kind::Randomized => OVERHEAD,
            Kind::Deterministic => HEADER_LEN + TAG_LEN,
            Kind::OrderRevealing => HEADER_LEN,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub key_id: [u8; 16],
    pub key_version: u32,
}

impl Header {
    /// An enc_bytea header.
    pub fn new(key_id: [u8; 16], key_version: u32) -> Self {
        Header {
            kind: Kind::Randomized,
            key_id,
            key_version,
        }
    }

    pub fn of(kind: Kind, key_id: [u8; 16], key_version: u32) -> Self {
        Header {
            kind,
            key_id,
            key_version,
        }
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..2].copy_from_slice(&self.kind.magic());
        out[2] = FORMAT_VERSION;
        out[3] = self.kind.algorithm();
        out[4..20].copy_from_slice(&self.key_id);
        out[20..24].copy_from_slice(&self.key_version.to_be_bytes());
        out
    }

    /// Parses the header of a complete enc_bytea value.
    pub fn decode(value: &[u8]) -> Result<Self> {
        Self::decode_as(value, Kind::Randomized)
    }

    /// Parses the header of a complete value of `kind` and checks that the value is long enough
    /// for that kind. It authenticates nothing: until the value is opened, the header is a claim.
    pub fn decode_as(value: &[u8], kind: Kind) -> Result<Self> {
        if value.len() < 3 {
            return Err(Error::Malformed("shorter than its header"));
        }
        if value[0..2] != kind.magic() {
            return Err(Error::Malformed(match kind {
                Kind::Randomized => "not an enc_bytea value (bad magic)",
                Kind::Deterministic => "not a det_text value (bad magic)",
                Kind::OrderRevealing => "not an ORE value (bad magic)",
            }));
        }
        if value[2] != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                format: kind.type_name(),
                version: value[2],
            });
        }
        if value.len() < kind.min_len() {
            return Err(Error::Malformed("truncated"));
        }
        let described = kind == Kind::Randomized && value[3] == ALG_GCM_DESCRIBED;
        if value[3] != kind.algorithm() && !described {
            return Err(Error::UnsupportedAlgorithm(value[3]));
        }
        if described {
            if value.len() < HEADER_LEN + DESCRIPTOR_LEN_LEN {
                return Err(Error::Malformed("truncated"));
            }
            let d = u16::from_be_bytes([value[HEADER_LEN], value[HEADER_LEN + 1]]) as usize;
            if value.len() < described_overhead(d) {
                return Err(Error::Malformed("truncated"));
            }
        }
        let mut key_id = [0u8; 16];
        key_id.copy_from_slice(&value[4..20]);
        let key_version = u32::from_be_bytes(value[20..24].try_into().expect("4 bytes"));
        Ok(Header {
            kind,
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

    #[test]
    fn kinds_are_not_interchangeable() {
        let mut det = Header::of(Kind::Deterministic, [1; 16], 1)
            .encode()
            .to_vec();
        det.extend_from_slice(&[0u8; 40]);
        assert!(Header::decode_as(&det, Kind::Deterministic).is_ok());
        assert!(matches!(Header::decode(&det), Err(Error::Malformed(_))));
        assert!(matches!(
            Header::decode_as(&det, Kind::OrderRevealing),
            Err(Error::Malformed(_))
        ));
    }
}
