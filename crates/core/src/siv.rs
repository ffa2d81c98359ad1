//! Deterministic encryption (`det_text`): AES-SIV (RFC 5297, CMAC-based, 512-bit key) from the
//! `aes-siv` crate, with the 24-byte header as the associated data. Equal plaintexts under the
//! same key version give identical values, which is what makes equality search, joins, GROUP BY
//! and UNIQUE work on ciphertext; it is also the leakage (equality and frequency within one key
//! version).
//!
//! ```text
//! offset  size  field
//!      0    24  header (magic "ED", version 1, algorithm 2, key id, key version)
//!     24    16  SIV (the synthetic IV, which is also the authentication tag)
//!     40     n  ciphertext (same length as the plaintext)
//! ```

use crate::error::{Error, Result};
use crate::format::{Header, Kind, HEADER_LEN, TAG_LEN};
use crate::kdf::{derive_subkey, Purpose};
use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit;
use std::cell::RefCell;

/// Bytes a det_text value adds to its plaintext.
pub const DET_OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// AES-SIV for one data-key version, its 512-bit key derived for purpose 'deterministic'.
pub struct DetKey {
    // The crate's SIV needs `&mut self` (it reuses its CMAC state); a backend is single-threaded.
    siv: RefCell<Aes256Siv>,
    header: Header,
}

impl DetKey {
    pub fn from_root(root: &[u8; 32], key_id: [u8; 16], key_version: u32) -> Self {
        let sub = derive_subkey::<64>(root, &key_id, key_version, Purpose::Deterministic);
        DetKey {
            siv: RefCell::new(Aes256Siv::new(sub.as_ref().into())),
            header: Header::of(Kind::Deterministic, key_id, key_version),
        }
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Encrypts in place: `buf` is `DET_OVERHEAD + n` bytes with the plaintext at
    /// `buf[DET_OVERHEAD..]`; header and SIV are written in front of it.
    pub fn seal_in_place(&self, buf: &mut [u8]) {
        assert!(
            buf.len() >= DET_OVERHEAD,
            "buffer smaller than the det_text overhead"
        );
        let header = self.header.encode();
        buf[..HEADER_LEN].copy_from_slice(&header);
        let (front, body) = buf.split_at_mut(DET_OVERHEAD);
        let tag = self
            .siv
            .borrow_mut()
            .encrypt_in_place_detached([&header[..]], body)
            .expect("one header is within AES-SIV limits");
        front[HEADER_LEN..].copy_from_slice(&tag);
    }

    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; DET_OVERHEAD + plaintext.len()];
        buf[DET_OVERHEAD..].copy_from_slice(plaintext);
        self.seal_in_place(&mut buf);
        buf
    }

    /// Decrypts `value` into `out` (which must hold `value[DET_OVERHEAD..]`, the caller copies
    /// it in). On failure `out` is zeroed.
    pub fn open_in_place(&self, value: &[u8], out: &mut [u8]) -> Result<()> {
        let header = Header::decode_as(value, Kind::Deterministic)?;
        if header != self.header || out.len() != value.len() - DET_OVERHEAD {
            out.fill(0);
            return Err(Error::AuthenticationFailed);
        }
        let tag = aes_siv::Tag::clone_from_slice(&value[HEADER_LEN..DET_OVERHEAD]);
        let result =
            self.siv
                .borrow_mut()
                .decrypt_in_place_detached([&value[..HEADER_LEN]], out, &tag);
        if result.is_err() {
            out.fill(0);
            return Err(Error::AuthenticationFailed);
        }
        Ok(())
    }

    pub fn open(&self, value: &[u8]) -> Result<Vec<u8>> {
        Header::decode_as(value, Kind::Deterministic)?;
        let mut out = value[DET_OVERHEAD..].to_vec();
        self.open_in_place(value, &mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(root: u8, version: u32) -> DetKey {
        DetKey::from_root(&[root; 32], [6u8; 16], version)
    }

    #[test]
    fn deterministic_round_trip() {
        let k = key(1, 1);
        for pt in [&b""[..], b"a", b"alice@example.com", &[0xffu8; 1000][..]] {
            let a = k.seal(pt);
            assert_eq!(a, k.seal(pt), "same plaintext, same ciphertext");
            assert_eq!(a.len(), pt.len() + DET_OVERHEAD);
            assert_eq!(k.open(&a).unwrap(), pt);
        }
        assert_ne!(k.seal(b"alice"), k.seal(b"alicf"));
    }

    #[test]
    fn versions_and_keys_give_unrelated_ciphertexts() {
        let a = key(1, 1).seal(b"alice@example.com");
        let b = key(1, 2).seal(b"alice@example.com");
        let c = key(2, 1).seal(b"alice@example.com");
        assert_ne!(a[HEADER_LEN..], b[HEADER_LEN..]);
        assert_ne!(a[HEADER_LEN..], c[HEADER_LEN..]);
        assert!(key(2, 1).open(&a).is_err());
        assert!(key(1, 2).open(&a).is_err());
    }

    #[test]
    fn tampering_and_truncation_are_detected() {
        let k = key(1, 1);
        let v = k.seal(b"bob@example.com");
        for i in 0..v.len() {
            let mut t = v.clone();
            t[i] ^= 0x10;
            assert!(k.open(&t).is_err(), "flip at {i}");
        }
        for n in 0..v.len() {
            assert!(k.open(&v[..n]).is_err(), "truncated to {n}");
        }
    }

    /// Pins the derivation and layout (checked against RFC 5297 AES-SIV in Python `cryptography`
    /// by tests/interop/reference_client.py).
    #[test]
    fn known_answer() {
        let k = DetKey::from_root(&[0u8; 32], [0u8; 16], 1);
        assert_eq!(
            hex::encode(k.seal(b"hello")),
            "45440102000000000000000000000000000000000000000128982b47574eac6a2c6c5bd1fb6e8022fbf101bd6b"
        );
    }
}
