//! Randomized field encryption (`enc_bytea`): AES-256-GCM with a 96-bit nonce supplied by the
//! caller (the extension takes it from a per-backend CSPRNG seeded from the OS after fork).
//! The GCM AAD is the 24-byte header followed by the caller's AAD, so the key id, key version and
//! format version are authenticated, and a value bound to a row or column does not open elsewhere.
//! An absent AAD and an empty AAD are the same.

use crate::error::{Error, Result};
use crate::format::{
    described_overhead, Header, ALG_GCM_DESCRIBED, DESCRIPTOR_LEN_LEN, HEADER_LEN, NONCE_LEN,
    OVERHEAD, TAG_LEN,
};
use crate::kdf::{derive_labeled, derive_subkey, Purpose, STREAM_LABEL};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use zeroize::Zeroizing;

/// An AES-256-GCM cipher for one data-key version, its sub-key derived for purpose 'aead'.
/// The key schedule is zeroized on drop (aes-gcm's `zeroize` feature).
pub struct AeadKey {
    cipher: Aes256Gcm,
    header: Header,
    /// Root of the per-object keys of encrypted large objects (`stream`).
    stream_root: Zeroizing<[u8; 32]>,
}

impl AeadKey {
    pub fn from_root(root: &[u8; 32], key_id: [u8; 16], key_version: u32) -> Self {
        let sub = derive_subkey::<32>(root, &key_id, key_version, Purpose::Aead);
        AeadKey {
            cipher: Aes256Gcm::new(sub.as_ref().into()),
            header: Header::new(key_id, key_version),
            stream_root: derive_labeled::<32>(root, &key_id, key_version, STREAM_LABEL),
        }
    }

    pub(crate) fn stream_root(&self) -> &[u8; 32] {
        &self.stream_root
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Encrypts in place. `buf` must be `OVERHEAD + n` bytes with the plaintext at
    /// `buf[HEADER_LEN + NONCE_LEN..][..n]`; header, nonce and tag are written around it. This
    /// lets the caller allocate the final value once and copy the plaintext once.
    pub fn seal_in_place(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) {
        assert!(
            buf.len() >= OVERHEAD,
            "buffer smaller than the ciphertext overhead"
        );
        let header = self.header.encode();
        buf[..HEADER_LEN].copy_from_slice(&header);
        buf[HEADER_LEN..HEADER_LEN + NONCE_LEN].copy_from_slice(nonce);
        let body_end = buf.len() - TAG_LEN;
        let full_aad = full_aad(&header, aad);
        let tag = self
            .cipher
            .encrypt_in_place_detached(
                Nonce::from_slice(nonce),
                &full_aad,
                &mut buf[HEADER_LEN + NONCE_LEN..body_end],
            )
            .expect("values up to 1 GB are within AES-GCM limits");
        buf[body_end..].copy_from_slice(&tag);
    }

    pub fn seal(&self, nonce: &[u8; NONCE_LEN], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; OVERHEAD + plaintext.len()];
        buf[HEADER_LEN + NONCE_LEN..HEADER_LEN + NONCE_LEN + plaintext.len()]
            .copy_from_slice(plaintext);
        self.seal_in_place(nonce, aad, &mut buf);
        buf
    }

    /// Like `seal_in_place` for a described value (algorithm 4): `buf` is
    /// `described_overhead(descriptor.len()) + n` bytes with the plaintext at
    /// `described_body_offset(descriptor.len())`. The descriptor travels in clear after the
    /// header and is authenticated with it.
    pub fn seal_described_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        descriptor: &[u8],
        aad: &[u8],
        buf: &mut [u8],
    ) {
        let d = descriptor.len();
        assert!(d <= u16::MAX as usize, "descriptor longer than 65535 bytes");
        assert!(
            buf.len() >= described_overhead(d),
            "buffer smaller than the ciphertext overhead"
        );
        let mut header = self.header.encode();
        header[3] = ALG_GCM_DESCRIBED;
        let prefix_len = HEADER_LEN + DESCRIPTOR_LEN_LEN + d;
        buf[..HEADER_LEN].copy_from_slice(&header);
        buf[HEADER_LEN..HEADER_LEN + 2].copy_from_slice(&(d as u16).to_be_bytes());
        buf[HEADER_LEN + 2..prefix_len].copy_from_slice(descriptor);
        buf[prefix_len..prefix_len + NONCE_LEN].copy_from_slice(nonce);
        let body_end = buf.len() - TAG_LEN;
        let (front, rest) = buf.split_at_mut(prefix_len + NONCE_LEN);
        let full_aad = full_aad(&front[..prefix_len], aad);
        let tag = self
            .cipher
            .encrypt_in_place_detached(
                Nonce::from_slice(nonce),
                &full_aad,
                &mut rest[..body_end - prefix_len - NONCE_LEN],
            )
            .expect("values up to 1 GB are within AES-GCM limits");
        buf[body_end..].copy_from_slice(&tag);
    }

    pub fn seal_described(
        &self,
        nonce: &[u8; NONCE_LEN],
        descriptor: &[u8],
        plaintext: &[u8],
        aad: &[u8],
    ) -> Vec<u8> {
        let mut buf = vec![0u8; described_overhead(descriptor.len()) + plaintext.len()];
        let at = described_body_offset(descriptor.len());
        buf[at..at + plaintext.len()].copy_from_slice(plaintext);
        self.seal_described_in_place(nonce, descriptor, aad, &mut buf);
        buf
    }

    /// Decrypts `value` into `out`, which must be `plaintext_len(value)` bytes. The header must
    /// name this key (the caller looked the key up by it). On failure `out` is zeroed.
    pub fn open_into(&self, value: &[u8], aad: &[u8], out: &mut [u8]) -> Result<()> {
        let body = ciphertext_body(value)?;
        if out.len() != body.len() {
            return Err(Error::Malformed("output length does not match"));
        }
        out.copy_from_slice(body);
        self.open_in_place(value, aad, out)
    }

    /// Like `open_into`, for a caller that already copied `ciphertext_body(value)` into `out`.
    pub fn open_in_place(&self, value: &[u8], aad: &[u8], out: &mut [u8]) -> Result<()> {
        let parts = match Parts::parse(value) {
            Ok(p) => p,
            Err(e) => {
                out.fill(0);
                return Err(e);
            }
        };
        if parts.header != self.header {
            out.fill(0);
            return Err(Error::AuthenticationFailed);
        }
        if out.len() != parts.body.len() {
            return Err(Error::Malformed("output length does not match"));
        }
        let full_aad = full_aad(parts.prefix, aad);
        let result = self.cipher.decrypt_in_place_detached(
            Nonce::from_slice(parts.nonce),
            &full_aad,
            out,
            Tag::from_slice(parts.tag),
        );
        if result.is_err() {
            out.fill(0);
            return Err(Error::AuthenticationFailed);
        }
        Ok(())
    }

    pub fn open(&self, value: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let mut out = vec![0u8; plaintext_len(value)?];
        self.open_into(value, aad, &mut out)?;
        Ok(out)
    }
}

/// Where the plaintext starts in a described value with a descriptor of `d` bytes.
pub const fn described_body_offset(d: usize) -> usize {
    HEADER_LEN + DESCRIPTOR_LEN_LEN + d + NONCE_LEN
}

/// The fields of a well-formed enc_bytea value (plain or described).
pub struct Parts<'a> {
    pub header: Header,
    /// The clear descriptor of a described value; unauthenticated until the value is opened.
    pub descriptor: Option<&'a [u8]>,
    /// Everything before the nonce: the start of the GCM AAD.
    pub prefix: &'a [u8],
    pub nonce: &'a [u8],
    pub body: &'a [u8],
    pub tag: &'a [u8],
}

impl<'a> Parts<'a> {
    pub fn parse(value: &'a [u8]) -> Result<Self> {
        let header = Header::decode(value)?;
        let (prefix_len, descriptor) = if value[3] == ALG_GCM_DESCRIBED {
            // Header::decode checked that the descriptor and the fixed parts fit.
            let d = u16::from_be_bytes([value[HEADER_LEN], value[HEADER_LEN + 1]]) as usize;
            let end = HEADER_LEN + DESCRIPTOR_LEN_LEN + d;
            (end, Some(&value[HEADER_LEN + DESCRIPTOR_LEN_LEN..end]))
        } else {
            (HEADER_LEN, None)
        };
        let body_start = prefix_len + NONCE_LEN;
        let body_end = value.len() - TAG_LEN;
        Ok(Parts {
            header,
            descriptor,
            prefix: &value[..prefix_len],
            nonce: &value[prefix_len..body_start],
            body: &value[body_start..body_end],
            tag: &value[body_end..],
        })
    }
}

/// The encrypted body of a well-formed value (between nonce and tag).
pub fn ciphertext_body(value: &[u8]) -> Result<&[u8]> {
    Ok(Parts::parse(value)?.body)
}

/// The plaintext length of a well-formed value.
pub fn plaintext_len(value: &[u8]) -> Result<usize> {
    Ok(Parts::parse(value)?.body.len())
}

/// The GCM associated data: header then caller AAD. Short AADs (row ids, column names) are
/// assembled on the stack; this runs once per value.
enum FullAad<'a> {
    Header(&'a [u8]),
    Stack([u8; 192], usize),
    Heap(Vec<u8>),
}

impl std::ops::Deref for FullAad<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FullAad::Header(h) => h,
            FullAad::Stack(buf, len) => &buf[..*len],
            FullAad::Heap(v) => v,
        }
    }
}

fn full_aad<'a>(header: &'a [u8], aad: &[u8]) -> FullAad<'a> {
    let len = header.len() + aad.len();
    if aad.is_empty() {
        FullAad::Header(header)
    } else if len <= 192 {
        let mut buf = [0u8; 192];
        buf[..header.len()].copy_from_slice(header);
        buf[header.len()..len].copy_from_slice(aad);
        FullAad::Stack(buf, len)
    } else {
        let mut v = Vec::with_capacity(len);
        v.extend_from_slice(header);
        v.extend_from_slice(aad);
        FullAad::Heap(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(version: u32) -> AeadKey {
        AeadKey::from_root(&[5u8; 32], [6u8; 16], version)
    }

    #[test]
    fn round_trips_various_sizes() {
        let k = key(1);
        for n in [0usize, 1, 15, 16, 17, 64, 1 << 20] {
            let pt: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            let ct = k.seal(&[n as u8; 12], &pt, b"");
            assert_eq!(ct.len(), n + OVERHEAD);
            assert_eq!(k.open(&ct, b"").unwrap(), pt);
        }
    }

    #[test]
    fn aad_of_every_size_round_trips_and_binds() {
        let k = key(1);
        // Around the stack/heap boundary of the assembled AAD (192 bytes with the header).
        for n in [1usize, 167, 168, 169, 1000] {
            let aad = vec![b'a'; n];
            let ct = k.seal(&[9; 12], b"payload", &aad);
            assert_eq!(k.open(&ct, &aad).unwrap(), b"payload", "aad length {n}");
            let mut other = aad.clone();
            other[n - 1] = b'b';
            assert!(k.open(&ct, &other).is_err(), "aad length {n}");
        }
    }

    #[test]
    fn aad_binds_the_value() {
        let k = key(1);
        let ct = k.seal(&[1; 12], b"secret", b"row 1");
        assert_eq!(k.open(&ct, b"row 1").unwrap(), b"secret");
        assert_eq!(
            k.open(&ct, b"row 2").unwrap_err(),
            Error::AuthenticationFailed
        );
        assert_eq!(k.open(&ct, b"").unwrap_err(), Error::AuthenticationFailed);
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let k = key(1);
        let ct = k.seal(&[2; 12], b"0123456789", b"");
        for i in 0..ct.len() {
            for bit in 0..8 {
                let mut t = ct.clone();
                t[i] ^= 1 << bit;
                assert!(
                    k.open(&t, b"").is_err(),
                    "flip at byte {i} bit {bit} not detected"
                );
            }
        }
    }

    #[test]
    fn truncation_and_wrong_key_are_detected() {
        let k = key(1);
        let ct = k.seal(&[3; 12], b"hello world", b"");
        for n in 0..ct.len() {
            assert!(
                k.open(&ct[..n], b"").is_err(),
                "truncation to {n} bytes not detected"
            );
        }
        assert_eq!(
            key(2).open(&ct, b"").unwrap_err(),
            Error::AuthenticationFailed
        );
        let other = AeadKey::from_root(&[7u8; 32], [6u8; 16], 1);
        assert_eq!(
            other.open(&ct, b"").unwrap_err(),
            Error::AuthenticationFailed
        );
    }

    #[test]
    fn header_carries_key_id_and_version() {
        let ct = key(7).seal(&[4; 12], b"x", b"");
        let h = Header::decode(&ct).unwrap();
        assert_eq!(h.key_id, [6u8; 16]);
        assert_eq!(h.key_version, 7);
        assert_eq!(&ct[HEADER_LEN..HEADER_LEN + NONCE_LEN], &[4; 12]);
    }

    #[test]
    fn described_values_round_trip_and_authenticate_the_descriptor() {
        let k = key(3);
        for (desc, n) in [(&b""[..], 0usize), (b"d", 5), (&[7u8; 300][..], 1000)] {
            let pt: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let ct = k.seal_described(&[8; 12], desc, &pt, b"row");
            assert_eq!(ct.len(), described_overhead(desc.len()) + n);
            let parts = Parts::parse(&ct).unwrap();
            assert_eq!(parts.descriptor, Some(desc));
            assert_eq!(parts.header, Header::new([6u8; 16], 3));
            assert_eq!(k.open(&ct, b"row").unwrap(), pt);
            assert!(k.open(&ct, b"other").is_err());
            // Every bit of the clear part (header, length, descriptor, nonce) is authenticated.
            for i in 0..parts.prefix.len() + NONCE_LEN {
                let mut t = ct.clone();
                t[i] ^= 0x10;
                assert!(k.open(&t, b"row").is_err(), "flip at byte {i} not detected");
            }
            for cut in 0..ct.len() {
                assert!(k.open(&ct[..cut], b"row").is_err(), "cut at {cut}");
            }
        }
        // A plain value is not described.
        assert_eq!(
            Parts::parse(&k.seal(&[1; 12], b"x", b""))
                .unwrap()
                .descriptor,
            None
        );
    }

    /// A known-answer vector, checked independently with Python `cryptography`
    /// (tests/interop/reference_client.py), so external clients can check themselves.
    #[test]
    fn known_answer() {
        let k = AeadKey::from_root(&[0u8; 32], [0u8; 16], 1);
        let ct = k.seal(&[0u8; 12], b"hello", b"");
        assert_eq!(hex::encode(&ct),
            "454d010100000000000000000000000000000000000000010000000000000000000000002ea44292f5bca7177009744987c25cf610a1b09349"
        );
    }
}
