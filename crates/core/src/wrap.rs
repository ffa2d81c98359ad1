//! Envelope encryption of data keys: each data-key version (a random 256-bit root) is stored
//! only wrapped by the master key, with AES-256-GCM. The key id and version are authenticated,
//! so a wrapped key copied onto another catalog row does not unwrap.
//!
//! ```text
//! offset  size  field
//!      0     1  wrap format version (1)
//!      1    12  nonce (random)
//!     13    32  encrypted data-key root
//!     45    16  GCM tag
//! AAD: "pg_encrypt_ml/v1/wrap" || key id (16) || key version (u32 big-endian)
//! ```

use crate::error::{Error, Result};
use crate::master::MasterKey;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

pub const WRAP_VERSION: u8 = 1;
pub const WRAPPED_LEN: usize = 1 + 12 + 32 + 16;
const AAD_PREFIX: &[u8] = b"pg_encrypt_ml/v1/wrap";

/// The secret root of one data-key version.
pub type DataKey = Zeroizing<[u8; 32]>;

/// A fresh data-key root from the operating system's generator.
pub fn generate_data_key() -> Result<DataKey> {
    let mut k = Zeroizing::new([0u8; 32]);
    OsRng
        .try_fill_bytes(k.as_mut())
        .map_err(|_| Error::Random)?;
    Ok(k)
}

fn aad(key_id: &[u8; 16], key_version: u32) -> [u8; 21 + 16 + 4] {
    let mut a = [0u8; 41];
    a[..21].copy_from_slice(AAD_PREFIX);
    a[21..37].copy_from_slice(key_id);
    a[37..].copy_from_slice(&key_version.to_be_bytes());
    a
}

pub fn wrap(
    master: &MasterKey,
    key_id: &[u8; 16],
    key_version: u32,
    data_key: &DataKey,
) -> Result<Vec<u8>> {
    let cipher = Aes256Gcm::new(master.kek().into());
    let mut out = vec![0u8; WRAPPED_LEN];
    out[0] = WRAP_VERSION;
    OsRng
        .try_fill_bytes(&mut out[1..13])
        .map_err(|_| Error::Random)?;
    out[13..45].copy_from_slice(data_key.as_ref());
    let (head, rest) = out.split_at_mut(13);
    let (body, tag_out) = rest.split_at_mut(32);
    let tag = cipher
        .encrypt_in_place_detached(
            Nonce::from_slice(&head[1..13]),
            &aad(key_id, key_version),
            body,
        )
        .expect("a 32-byte message is within AES-GCM limits");
    tag_out.copy_from_slice(&tag);
    Ok(out)
}

pub fn unwrap(
    master: &MasterKey,
    key_id: &[u8; 16],
    key_version: u32,
    wrapped: &[u8],
) -> Result<DataKey> {
    if wrapped.is_empty() {
        return Err(Error::Malformed("empty wrapped key"));
    }
    if wrapped[0] != WRAP_VERSION {
        return Err(Error::UnsupportedVersion {
            format: "wrapped key",
            version: wrapped[0],
        });
    }
    if wrapped.len() != WRAPPED_LEN {
        return Err(Error::Malformed("wrapped key has the wrong length"));
    }
    let cipher = Aes256Gcm::new(master.kek().into());
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&wrapped[13..45]);
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(&wrapped[1..13]),
            &aad(key_id, key_version),
            key.as_mut(),
            Tag::from_slice(&wrapped[45..]),
        )
        .map_err(|_| Error::AuthenticationFailed)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(b: u8) -> MasterKey {
        MasterKey::from_bytes(&[b; 32])
    }

    #[test]
    fn wrap_round_trip_and_binding() {
        let m = master(1);
        let dk = generate_data_key().unwrap();
        let w = wrap(&m, &[9; 16], 3, &dk).unwrap();
        assert_eq!(w.len(), WRAPPED_LEN);
        assert!(
            !w.windows(32).any(|win| win == dk.as_ref()),
            "key must not appear in clear"
        );
        assert_eq!(*unwrap(&m, &[9; 16], 3, &w).unwrap(), *dk);
        // Another master key, another key id or another version does not unwrap it.
        assert_eq!(
            unwrap(&master(2), &[9; 16], 3, &w).unwrap_err(),
            Error::AuthenticationFailed
        );
        assert_eq!(
            unwrap(&m, &[8; 16], 3, &w).unwrap_err(),
            Error::AuthenticationFailed
        );
        assert_eq!(
            unwrap(&m, &[9; 16], 4, &w).unwrap_err(),
            Error::AuthenticationFailed
        );
        let mut t = w.clone();
        t[20] ^= 1;
        assert_eq!(
            unwrap(&m, &[9; 16], 3, &t).unwrap_err(),
            Error::AuthenticationFailed
        );
        assert!(matches!(
            unwrap(&m, &[9; 16], 3, &w[..40]),
            Err(Error::Malformed(_))
        ));
        let mut v = w;
        v[0] = 2;
        assert!(matches!(
            unwrap(&m, &[9; 16], 3, &v),
            Err(Error::UnsupportedVersion { .. })
        ));
    }
}
