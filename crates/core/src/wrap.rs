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
//!
//! Under a master key held in a token (PKCS#11) the token itself encrypts, with its own key
//! (not one derived from it): format 2, the same layout with version byte 2 and the AAD prefix
//! "pg_encrypt_ml/v2/wrap". A master key unwraps only its own format.

use crate::error::{Error, Result};
use crate::master::{Kek, MasterKey};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

pub const WRAP_VERSION: u8 = 1;
/// The format of keys wrapped inside a token.
pub const WRAP_VERSION_TOKEN: u8 = 2;
pub const WRAPPED_LEN: usize = 1 + 12 + 32 + 16;
const AAD_PREFIX: &[u8] = b"pg_encrypt_ml/v1/wrap";
const AAD_PREFIX_TOKEN: &[u8] = b"pg_encrypt_ml/v2/wrap";

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

fn aad(prefix: &[u8], key_id: &[u8; 16], key_version: u32) -> [u8; 21 + 16 + 4] {
    let mut a = [0u8; 41];
    a[..21].copy_from_slice(prefix);
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
    let mut out = vec![0u8; WRAPPED_LEN];
    OsRng
        .try_fill_bytes(&mut out[1..13])
        .map_err(|_| Error::Random)?;
    let iv: [u8; 12] = out[1..13].try_into().expect("12 bytes");
    match master.kek() {
        Kek::Local(kek) => {
            out[0] = WRAP_VERSION;
            let cipher = Aes256Gcm::new(kek.as_ref().into());
            out[13..45].copy_from_slice(data_key.as_ref());
            let tag = cipher
                .encrypt_in_place_detached(
                    Nonce::from_slice(&iv),
                    &aad(AAD_PREFIX, key_id, key_version),
                    &mut out[13..45],
                )
                .expect("a 32-byte message is within AES-GCM limits");
            out[45..].copy_from_slice(&tag);
        }
        Kek::Token(token) => {
            out[0] = WRAP_VERSION_TOKEN;
            let sealed = token.seal(
                &iv,
                &aad(AAD_PREFIX_TOKEN, key_id, key_version),
                data_key.as_ref(),
            )?;
            if sealed.len() != 32 + 16 {
                return Err(Error::Token(format!(
                    "{}: AES-GCM returned {} bytes for a 32-byte key",
                    token.describe(),
                    sealed.len()
                )));
            }
            out[13..].copy_from_slice(&sealed);
        }
    }
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
    let expected = match master.kek() {
        Kek::Local(_) => WRAP_VERSION,
        Kek::Token(_) => WRAP_VERSION_TOKEN,
    };
    if wrapped[0] != WRAP_VERSION && wrapped[0] != WRAP_VERSION_TOKEN {
        return Err(Error::UnsupportedVersion {
            format: "wrapped key",
            version: wrapped[0],
        });
    }
    if wrapped.len() != WRAPPED_LEN {
        return Err(Error::Malformed("wrapped key has the wrong length"));
    }
    if wrapped[0] != expected {
        // Wrapped by another kind of master key: it cannot be this one's.
        return Err(Error::AuthenticationFailed);
    }
    let iv: [u8; 12] = wrapped[1..13].try_into().expect("12 bytes");
    let mut key = Zeroizing::new([0u8; 32]);
    match master.kek() {
        Kek::Local(kek) => {
            let cipher = Aes256Gcm::new(kek.as_ref().into());
            key.copy_from_slice(&wrapped[13..45]);
            cipher
                .decrypt_in_place_detached(
                    Nonce::from_slice(&iv),
                    &aad(AAD_PREFIX, key_id, key_version),
                    key.as_mut(),
                    Tag::from_slice(&wrapped[45..]),
                )
                .map_err(|_| Error::AuthenticationFailed)?;
        }
        Kek::Token(token) => {
            let plain = token.open(
                &iv,
                &aad(AAD_PREFIX_TOKEN, key_id, key_version),
                &wrapped[13..],
            )?;
            if plain.len() != 32 {
                return Err(Error::AuthenticationFailed);
            }
            key.copy_from_slice(&plain);
        }
    }
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
        let mut v = w.clone();
        v[0] = 3;
        assert!(matches!(
            unwrap(&m, &[9; 16], 3, &v),
            Err(Error::UnsupportedVersion { .. })
        ));
        // A token's format under a local master key: not its own.
        v[0] = WRAP_VERSION_TOKEN;
        assert_eq!(
            unwrap(&m, &[9; 16], 3, &v).unwrap_err(),
            Error::AuthenticationFailed
        );
    }

    /// A token in software, as a PKCS#11 token computes: AES-256-GCM under its own key.
    pub(crate) struct SoftToken {
        pub key: [u8; 32],
        /// Like a token that generates IVs itself and ignores the caller's.
        pub own_ivs: bool,
    }

    impl crate::master::TokenKey for SoftToken {
        fn describe(&self) -> String {
            "soft token".into()
        }
        fn seal(&self, iv: &[u8; 12], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
            use aes_gcm::aead::{Aead, Payload};
            let mut iv = *iv;
            if self.own_ivs {
                OsRng.fill_bytes(&mut iv);
            }
            Ok(Aes256Gcm::new((&self.key).into())
                .encrypt(
                    Nonce::from_slice(&iv),
                    Payload {
                        msg: plaintext,
                        aad,
                    },
                )
                .unwrap())
        }
        fn open(&self, iv: &[u8; 12], aad: &[u8], ct: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
            use aes_gcm::aead::{Aead, Payload};
            Aes256Gcm::new((&self.key).into())
                .decrypt(Nonce::from_slice(iv), Payload { msg: ct, aad })
                .map(Zeroizing::new)
                .map_err(|_| Error::AuthenticationFailed)
        }
    }

    fn token(b: u8) -> MasterKey {
        MasterKey::from_token(Box::new(SoftToken {
            key: [b; 32],
            own_ivs: false,
        }))
        .unwrap()
    }

    #[test]
    fn a_token_wraps_with_its_own_key_in_format_2() {
        let t = token(1);
        assert!(t.in_token());
        let dk = generate_data_key().unwrap();
        let w = wrap(&t, &[9; 16], 3, &dk).unwrap();
        assert_eq!((w.len(), w[0]), (WRAPPED_LEN, WRAP_VERSION_TOKEN));
        assert_eq!(*unwrap(&t, &[9; 16], 3, &w).unwrap(), *dk);
        // The token's key itself, with the documented AAD: an outside client holding the key
        // (a backup of the token) unwraps it with plain AES-256-GCM.
        let plain = Aes256Gcm::new((&[1u8; 32]).into()).decrypt_in_place_detached(
            Nonce::from_slice(&w[1..13]),
            &aad(AAD_PREFIX_TOKEN, &[9; 16], 3),
            &mut w[13..45].to_vec(),
            Tag::from_slice(&w[45..]),
        );
        assert!(plain.is_ok());
        for (m, id, v) in [
            (token(2), [9; 16], 3),
            (token(1), [8; 16], 3),
            (token(1), [9; 16], 4),
        ] {
            assert_eq!(
                unwrap(&m, &id, v, &w).unwrap_err(),
                Error::AuthenticationFailed
            );
        }
        let mut t2 = w.clone();
        t2[30] ^= 1;
        assert_eq!(
            unwrap(&t, &[9; 16], 3, &t2).unwrap_err(),
            Error::AuthenticationFailed
        );
        // The same key bytes as a local master key: another format, not its own.
        assert_eq!(
            unwrap(&master(1), &[9; 16], 3, &w).unwrap_err(),
            Error::AuthenticationFailed
        );
    }

    #[test]
    fn a_token_key_is_known_by_its_value_and_must_take_the_callers_iv() {
        assert_eq!(token(1).fingerprint(), token(1).fingerprint());
        assert_ne!(token(1).fingerprint(), token(2).fingerprint());
        assert_ne!(token(1).fingerprint(), master(1).fingerprint());
        let e = MasterKey::from_token(Box::new(SoftToken {
            key: [1; 32],
            own_ivs: true,
        }));
        assert!(matches!(e, Err(Error::Token(_))));
    }
}
