//! Encrypted large objects: a segmented AEAD (the STREAM construction, RustCrypto `aead::stream`
//! with a 32-bit big-endian counter and a last-chunk flag in the nonce) over AES-256-GCM, so an
//! object of any size is encrypted and decrypted chunk by chunk in bounded memory, any chunk can
//! be opened alone (range reads), and truncation, reordering, chunk swaps and tail removal are
//! detected.
//!
//! ```text
//! offset  size  field
//!      0     2  magic "EL"
//!      2     1  format version (1)
//!      3     1  algorithm (1 = AES-256-GCM STREAM-BE32, per-object key)
//!      4    16  key id
//!     20     4  key version (big-endian)
//!     24     4  chunk size: plaintext bytes per chunk (big-endian)
//!     28     8  plaintext length (big-endian)
//!     36    16  object salt (random)
//!     52     4  reserved, zero
//!     56     .  chunks: chunk i is the GCM ciphertext of plaintext bytes
//!               [i * chunk, min((i + 1) * chunk, length)) followed by its 16-byte tag
//! ```
//! There are max(1, ceil(length / chunk)) chunks; an empty object has one empty chunk.
//! Object key = HKDF-SHA256(ikm = the data key version's "aead-stream" sub-key, no salt,
//! info = "pg_encrypt_ml/v1/lo-object" 0x00 salt). Nonce of chunk i = 7 zero bytes, i as u32
//! big-endian, 1 if i is the last chunk else 0. Every chunk's AAD is the 56-byte header, so the
//! declared length, chunk size and key are authenticated by every chunk. A fresh key per object
//! keeps the counter nonces unique without a random nonce per chunk.

use crate::aead::AeadKey;
use crate::error::{Error, Result};
use crate::format::{FORMAT_VERSION, TAG_LEN};
use aead::stream::{NewStream, StreamBE32, StreamPrimitive};
use aes_gcm::Aes256Gcm;
use aes_gcm::KeyInit;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

pub const MAGIC: [u8; 2] = *b"EL";
pub const ALG_STREAM_GCM: u8 = 1;
pub const HEADER_LEN: usize = 56;
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 20;
pub const MIN_CHUNK_SIZE: u32 = 1 << 10;
pub const MAX_CHUNK_SIZE: u32 = 64 << 20;
const OBJECT_INFO: &[u8] = b"pg_encrypt_ml/v1/lo-object\0";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHeader {
    pub key_id: [u8; 16],
    pub key_version: u32,
    pub chunk_size: u32,
    pub plaintext_len: u64,
    pub salt: [u8; 16],
}

impl StreamHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..2].copy_from_slice(&MAGIC);
        h[2] = FORMAT_VERSION;
        h[3] = ALG_STREAM_GCM;
        h[4..20].copy_from_slice(&self.key_id);
        h[20..24].copy_from_slice(&self.key_version.to_be_bytes());
        h[24..28].copy_from_slice(&self.chunk_size.to_be_bytes());
        h[28..36].copy_from_slice(&self.plaintext_len.to_be_bytes());
        h[36..52].copy_from_slice(&self.salt);
        h
    }

    /// Parses a header; it is a claim until a chunk opens under it.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < 3 {
            return Err(Error::Malformed("shorter than its header"));
        }
        if bytes[0..2] != MAGIC {
            return Err(Error::Malformed(
                "not an encrypted large object (bad magic)",
            ));
        }
        if bytes[2] != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                format: "encrypted large object",
                version: bytes[2],
            });
        }
        if bytes.len() < HEADER_LEN {
            return Err(Error::Malformed("truncated"));
        }
        if bytes[3] != ALG_STREAM_GCM {
            return Err(Error::UnsupportedAlgorithm(bytes[3]));
        }
        if bytes[52..HEADER_LEN] != [0u8; 4] {
            return Err(Error::Malformed("reserved header bytes are not zero"));
        }
        let header = StreamHeader {
            key_id: bytes[4..20].try_into().expect("16 bytes"),
            key_version: u32::from_be_bytes(bytes[20..24].try_into().expect("4 bytes")),
            chunk_size: u32::from_be_bytes(bytes[24..28].try_into().expect("4 bytes")),
            plaintext_len: u64::from_be_bytes(bytes[28..36].try_into().expect("8 bytes")),
            salt: bytes[36..52].try_into().expect("16 bytes"),
        };
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&header.chunk_size) {
            return Err(Error::Malformed("chunk size out of range"));
        }
        if header.chunk_count() > u32::MAX as u64 + 1 {
            return Err(Error::Malformed("more chunks than the counter allows"));
        }
        Ok(header)
    }

    pub fn chunk_count(&self) -> u64 {
        self.plaintext_len.div_ceil(self.chunk_size as u64).max(1)
    }

    /// Plaintext bytes in chunk `i`.
    pub fn chunk_plain_len(&self, i: u64) -> usize {
        let start = i * self.chunk_size as u64;
        (self.plaintext_len.saturating_sub(start)).min(self.chunk_size as u64) as usize
    }

    pub fn is_last(&self, i: u64) -> bool {
        i + 1 == self.chunk_count()
    }

    /// Where chunk `i` starts in the encrypted object.
    pub fn chunk_offset(&self, i: u64) -> u64 {
        HEADER_LEN as u64 + i * (self.chunk_size as u64 + TAG_LEN as u64)
    }

    /// Total length of the encrypted object.
    pub fn encrypted_len(&self) -> u64 {
        HEADER_LEN as u64 + self.plaintext_len + self.chunk_count() * TAG_LEN as u64
    }
}

/// The cipher of one encrypted object.
pub struct ObjectCipher {
    stream: StreamBE32<Aes256Gcm>,
    aad: [u8; HEADER_LEN],
    header: StreamHeader,
}

impl ObjectCipher {
    /// For a new object (fresh random `salt`) or an existing one (its parsed header). The
    /// header must name `key`.
    pub fn new(key: &AeadKey, header: StreamHeader) -> Result<Self> {
        let h = key.header();
        if header.key_id != h.key_id || header.key_version != h.key_version {
            return Err(Error::AuthenticationFailed);
        }
        let hk = Hkdf::<Sha256>::new(None, key.stream_root());
        let mut object_key = Zeroizing::new([0u8; 32]);
        hk.expand_multi_info(&[OBJECT_INFO, &header.salt], object_key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 length");
        let aead = Aes256Gcm::new(object_key.as_ref().into());
        Ok(ObjectCipher {
            stream: StreamBE32::from_aead(aead, &Default::default()),
            aad: header.encode(),
            header,
        })
    }

    pub fn header(&self) -> &StreamHeader {
        &self.header
    }

    fn position(i: u64) -> Result<u32> {
        u32::try_from(i).map_err(|_| Error::Malformed("chunk index beyond the counter"))
    }

    /// Encrypts chunk `i` in place: `buf` holds its plaintext and gains the tag.
    pub fn seal_chunk(&self, i: u64, buf: &mut Vec<u8>) -> Result<()> {
        if buf.len() != self.header.chunk_plain_len(i) {
            return Err(Error::Malformed("chunk length does not match the header"));
        }
        self.stream
            .encrypt_in_place(Self::position(i)?, self.header.is_last(i), &self.aad, buf)
            .map_err(|_| Error::Malformed("chunk too large for AES-GCM"))
    }

    /// Decrypts chunk `i` in place: `buf` holds the chunk and tag and is left with the plaintext.
    /// A chunk from another position or object, a damaged chunk, a chunk that claims to be last
    /// when it is not (or the reverse), or a wrong length fails. On failure `buf` is zeroed.
    pub fn open_chunk(&self, i: u64, buf: &mut Vec<u8>) -> Result<()> {
        if i >= self.header.chunk_count() || buf.len() != self.header.chunk_plain_len(i) + TAG_LEN {
            buf.fill(0);
            return Err(Error::Malformed("truncated"));
        }
        let result = self.stream.decrypt_in_place(
            Self::position(i)?,
            self.header.is_last(i),
            &self.aad,
            buf,
        );
        if result.is_err() {
            buf.fill(0);
            return Err(Error::AuthenticationFailed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AeadKey {
        AeadKey::from_root(&[9; 32], [4; 16], 2)
    }

    fn header(len: u64, chunk: u32, salt: u8) -> StreamHeader {
        StreamHeader {
            key_id: [4; 16],
            key_version: 2,
            chunk_size: chunk,
            plaintext_len: len,
            salt: [salt; 16],
        }
    }

    /// Encrypts `data` into the full object layout.
    fn encrypt(data: &[u8], chunk: u32, salt: u8) -> Vec<u8> {
        let c = ObjectCipher::new(&key(), header(data.len() as u64, chunk, salt)).unwrap();
        let mut out = c.header().encode().to_vec();
        for i in 0..c.header().chunk_count() {
            let start = (i * chunk as u64) as usize;
            let mut buf = data[start..start + c.header().chunk_plain_len(i)].to_vec();
            c.seal_chunk(i, &mut buf).unwrap();
            out.extend_from_slice(&buf);
        }
        assert_eq!(out.len() as u64, c.header().encrypted_len());
        out
    }

    /// Decrypts an object the way the extension does: header, then chunk by chunk at the offsets
    /// the header implies, refusing a length that differs from the header's.
    fn decrypt(object: &[u8]) -> Result<Vec<u8>> {
        let h = StreamHeader::decode(object)?;
        if object.len() as u64 != h.encrypted_len() {
            return Err(Error::Malformed("truncated"));
        }
        let c = ObjectCipher::new(&key(), h)?;
        let mut out = Vec::new();
        for i in 0..c.header().chunk_count() {
            let at = c.header().chunk_offset(i) as usize;
            let mut buf = object[at..at + c.header().chunk_plain_len(i) + TAG_LEN].to_vec();
            c.open_chunk(i, &mut buf)?;
            out.extend_from_slice(&buf);
        }
        Ok(out)
    }

    #[test]
    fn round_trips_at_chunk_boundaries() {
        for len in [0usize, 1, 1023, 1024, 1025, 4096, 5000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            let object = encrypt(&data, 1024, 1);
            assert_eq!(decrypt(&object).unwrap(), data, "length {len}");
            assert_eq!(
                StreamHeader::decode(&object).unwrap().chunk_count(),
                (len.div_ceil(1024)).max(1) as u64
            );
        }
    }

    #[test]
    fn tampering_is_detected() {
        let data = vec![5u8; 4000];
        let object = encrypt(&data, 1024, 1);
        let chunk = 1024 + TAG_LEN;
        // Swap chunks 0 and 1.
        let mut swapped = object.clone();
        let (a, b) = (HEADER_LEN, HEADER_LEN + chunk);
        let first = object[a..a + chunk].to_vec();
        swapped[a..a + chunk].copy_from_slice(&object[b..b + chunk]);
        swapped[b..b + chunk].copy_from_slice(&first);
        assert_eq!(decrypt(&swapped), Err(Error::AuthenticationFailed));
        // Remove the tail chunk and shrink the declared length to match: the header is every
        // chunk's AAD (and the new last chunk was sealed as "not last" besides).
        let mut cut = object[..HEADER_LEN + 3 * chunk].to_vec();
        cut[28..36].copy_from_slice(&(3072u64).to_be_bytes());
        assert_eq!(decrypt(&cut), Err(Error::AuthenticationFailed));
        // Truncation without touching the header.
        assert!(decrypt(&object[..object.len() - 1]).is_err());
        // A chunk from another object under the same key.
        let other = encrypt(&data, 1024, 2);
        let mut mixed = object.clone();
        mixed[a..a + chunk].copy_from_slice(&other[a..a + chunk]);
        assert_eq!(decrypt(&mixed), Err(Error::AuthenticationFailed));
        // Any flipped bit, header included.
        for i in (0..object.len()).step_by(97) {
            let mut t = object.clone();
            t[i] ^= 1;
            assert!(decrypt(&t).is_err(), "flip at {i}");
        }
        // Reserved bytes and reordering of an equal-length object.
        let mut t = object.clone();
        t[55] = 1;
        assert!(decrypt(&t).is_err());
    }

    #[test]
    fn a_chunk_opens_alone() {
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let object = encrypt(&data, 1024, 3);
        let h = StreamHeader::decode(&object).unwrap();
        let c = ObjectCipher::new(&key(), h).unwrap();
        let at = c.header().chunk_offset(9) as usize;
        let mut buf = object[at..].to_vec();
        c.open_chunk(9, &mut buf).unwrap();
        assert_eq!(buf, &data[9216..]);
    }

    #[test]
    fn bad_headers_are_refused() {
        let good = header(10, 1024, 1).encode();
        assert!(StreamHeader::decode(&good[..40]).is_err());
        let mut v = good;
        v[2] = 7;
        assert!(matches!(
            StreamHeader::decode(&v),
            Err(Error::UnsupportedVersion { .. })
        ));
        assert!(StreamHeader::decode(&header(10, 100, 1).encode()).is_err());
        let wrong_key = AeadKey::from_root(&[9; 32], [4; 16], 3);
        assert!(ObjectCipher::new(&wrong_key, header(10, 1024, 1)).is_err());
    }
}
