//! Exporting a data key to a client, wrapped for the holder of an X25519 private key with HPKE
//! (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM; the `hpke`
//! crate). The key never appears in clear outside the two ends.
//!
//! ```text
//! offset  size  field
//!      0     2  magic "EX"
//!      2     1  format version (1)
//!      3     1  suite (1 = X25519 / HKDF-SHA256 / AES-256-GCM)
//!      4    16  key id
//!     20     4  key version (big-endian)
//!     24    32  HPKE encapsulated key (the sender's ephemeral X25519 public key)
//!     56    48  HPKE ciphertext of the 32-byte data-key root (with its 16-byte tag)
//! ```
//! The HPKE `info` is the 24-byte header, so the wrapped root is bound to its key id and
//! version; the HPKE AAD is empty. A client derives sub-keys from the root as in `kdf`.

use crate::error::{Error, Result};
use crate::format::FORMAT_VERSION;
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use zeroize::Zeroizing;

pub const MAGIC: [u8; 2] = *b"EX";
pub const SUITE_X25519_SHA256_AES256GCM: u8 = 1;
pub const HEADER_LEN: usize = 24;
pub const EXPORT_LEN: usize = HEADER_LEN + 32 + 32 + 16;
pub const PUBLIC_KEY_LEN: usize = 32;

fn header(key_id: &[u8; 16], key_version: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..2].copy_from_slice(&MAGIC);
    h[2] = FORMAT_VERSION;
    h[3] = SUITE_X25519_SHA256_AES256GCM;
    h[4..20].copy_from_slice(key_id);
    h[20..24].copy_from_slice(&key_version.to_be_bytes());
    h
}

/// Wraps `root` for the holder of the private key matching `recipient` (a raw 32-byte X25519
/// public key).
pub fn wrap_for(
    recipient: &[u8],
    key_id: &[u8; 16],
    key_version: u32,
    root: &[u8; 32],
) -> Result<Vec<u8>> {
    if recipient.len() != PUBLIC_KEY_LEN {
        return Err(Error::Malformed(
            "recipient public key must be 32 bytes (raw X25519)",
        ));
    }
    let pk = <X25519HkdfSha256 as Kem>::PublicKey::from_bytes(recipient)
        .map_err(|_| Error::Malformed("recipient public key is not a valid X25519 key"))?;
    let h = header(key_id, key_version);
    let mut rng = rand_core_09::UnwrapErr(rand_core_09::OsRng);
    let (enc, ct) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, X25519HkdfSha256, _>(
        &OpModeS::Base,
        &pk,
        &h,
        root,
        b"",
        &mut rng,
    )
    .map_err(|_| Error::Malformed("recipient public key is not a valid X25519 key"))?;
    let mut out = Vec::with_capacity(EXPORT_LEN);
    out.extend_from_slice(&h);
    out.extend_from_slice(&enc.to_bytes());
    out.extend_from_slice(&ct);
    debug_assert_eq!(out.len(), EXPORT_LEN);
    Ok(out)
}

/// The recipient's side (a client; also the test of the format): key id, version and root.
pub fn unwrap_with(
    private_key: &[u8; 32],
    exported: &[u8],
) -> Result<([u8; 16], u32, Zeroizing<[u8; 32]>)> {
    if exported.len() != EXPORT_LEN || exported[0..2] != MAGIC {
        return Err(Error::Malformed("not an exported key"));
    }
    if exported[2] != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            format: "exported key",
            version: exported[2],
        });
    }
    if exported[3] != SUITE_X25519_SHA256_AES256GCM {
        return Err(Error::UnsupportedAlgorithm(exported[3]));
    }
    let sk = <X25519HkdfSha256 as Kem>::PrivateKey::from_bytes(private_key)
        .map_err(|_| Error::Malformed("invalid X25519 private key"))?;
    let enc = <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(&exported[24..56])
        .map_err(|_| Error::Malformed("invalid encapsulated key"))?;
    let pt = Zeroizing::new(
        hpke::single_shot_open::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
            &OpModeR::Base,
            &sk,
            &enc,
            &exported[..HEADER_LEN],
            &exported[56..],
            b"",
        )
        .map_err(|_| Error::AuthenticationFailed)?,
    );
    let mut root = Zeroizing::new([0u8; 32]);
    root.copy_from_slice(&pt);
    let key_id = exported[4..20].try_into().expect("16 bytes");
    let version = u32::from_be_bytes(exported[20..24].try_into().expect("4 bytes"));
    Ok((key_id, version, root))
}

/// A fresh X25519 key pair (private, public), for tests and the client tool.
pub fn generate_recipient() -> (Zeroizing<[u8; 32]>, [u8; 32]) {
    let mut rng = rand_core_09::UnwrapErr(rand_core_09::OsRng);
    let (sk, pk) = X25519HkdfSha256::gen_keypair(&mut rng);
    let mut private = Zeroizing::new([0u8; 32]);
    private.copy_from_slice(&sk.to_bytes());
    (private, pk.to_bytes().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aead::AeadKey;

    #[test]
    fn round_trip_and_binding() {
        let (sk, pk) = generate_recipient();
        let root = [7u8; 32];
        let wrapped = wrap_for(&pk, &[1; 16], 3, &root).unwrap();
        assert_eq!(wrapped.len(), EXPORT_LEN);
        let (id, v, got) = unwrap_with(&sk, &wrapped).unwrap();
        assert_eq!((id, v, *got), ([1; 16], 3, root));
        // The client can open values with the exported root.
        let k = AeadKey::from_root(&got, id, v);
        let ct = AeadKey::from_root(&root, [1; 16], 3).seal(&[0; 12], b"hi", b"");
        assert_eq!(k.open(&ct, b"").unwrap(), b"hi");
        // Relabelling the key id or version breaks the HPKE info binding.
        let mut t = wrapped.clone();
        t[23] ^= 1;
        assert_eq!(
            unwrap_with(&sk, &t).unwrap_err(),
            Error::AuthenticationFailed
        );
        let (other_sk, _) = generate_recipient();
        assert!(unwrap_with(&other_sk, &wrapped).is_err());
        // Two exports differ (fresh ephemeral key each time).
        assert_ne!(wrapped, wrap_for(&pk, &[1; 16], 3, &root).unwrap());
    }

    #[test]
    fn bad_public_keys_are_refused() {
        assert!(wrap_for(&[1; 31], &[1; 16], 1, &[0; 32]).is_err());
    }
}
