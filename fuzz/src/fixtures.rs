//! The fixed keys of the harness and of the seed corpus. Test keys only.

use encml_core::aead::AeadKey;
use encml_core::master::MasterKey;
use encml_core::ore::OreKey;
use encml_core::siv::DetKey;

/// Data-key root, key id and version of the enc_bytea, det_text, ORE, FPE and stream seeds.
pub const ROOT: [u8; 32] = [0x11; 32];
pub const KEY_ID: [u8; 16] = [0x22; 16];
pub const KEY_VERSION: u32 = 1;
/// The nonce of every seed (a fixed nonce keeps the corpus reproducible).
pub const NONCE: [u8; 12] = [0x55; 12];
/// Two master keys as a provider would print them (the first seals and wraps).
pub const MASTER_KEYS_TEXT: &str = "\
# fuzz master keys
3333333333333333333333333333333333333333333333333333333333333333
4444444444444444444444444444444444444444444444444444444444444444
";
/// Private key of the recipient of the key-export seeds (X25519).
pub const EXPORT_SK: [u8; 32] = [0x66; 32];
/// "Now" for tenant tokens (2023-11-14), and the extension's token lifetime (an hour).
pub const NOW_US: i64 = 1_700_000_000_000_000;
pub const TOKEN_LIFETIME_US: i64 = 3_600 * 1_000_000;
pub const ROLE: &str = "app_user";
pub const DATABASE: &str = "appdb";

pub fn masters() -> Vec<MasterKey> {
    encml_core::master::parse_master_keys(MASTER_KEYS_TEXT).expect("fixture master keys")
}

pub fn aead() -> AeadKey {
    AeadKey::from_root(&ROOT, KEY_ID, KEY_VERSION)
}

pub fn det() -> DetKey {
    DetKey::from_root(&ROOT, KEY_ID, KEY_VERSION)
}

pub fn ore() -> OreKey {
    OreKey::from_root(&ROOT, KEY_ID, KEY_VERSION)
}

pub fn fpe_key() -> [u8; 32] {
    // The FF1 key of `ROOT` as FpeKey derives it (purpose "fpe").
    *encml_core::kdf::derive_subkey::<32>(
        &ROOT,
        &KEY_ID,
        KEY_VERSION,
        encml_core::kdf::Purpose::Fpe,
    )
}

/// The public key of `EXPORT_SK`.
pub fn export_pk() -> [u8; 32] {
    use hpke::kem::X25519HkdfSha256;
    use hpke::{Deserializable, Kem, Serializable};
    let sk = <X25519HkdfSha256 as Kem>::PrivateKey::from_bytes(&EXPORT_SK).expect("32 bytes");
    <X25519HkdfSha256 as Kem>::sk_to_pk(&sk).to_bytes().into()
}
