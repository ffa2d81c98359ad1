//! Master keys (key-encryption keys) as the provider hands them over: one key per line, 64 hex
//! characters; the first line is current, further lines are previous keys still accepted for
//! unwrapping. Each key is known by a fingerprint (a key check value derived with HKDF), which is
//! stored next to every wrapped data key; the key itself never is.
//!
//! A master key may instead stay inside a token (an HSM over PKCS#11, `TokenKey`): then it wraps
//! and unwraps data keys itself (AES-256-GCM in the token, wrap format 2), and the keys derived
//! from a master key (the Citus tenant tokens' and dp states' keys, and the audit keys imported
//! before 0.2.0) come from one value the token computes: AES-256-GCM of 32 zero bytes under a
//! fixed IV and AAD (`TOKEN_PRF_*`), a pseudorandom function of the key that never reveals it.
//! The fingerprint of a token key is derived from that value too, so it identifies the key
//! itself and not its label.

use crate::error::{Error, Result};
use hkdf::Hkdf;
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

const CHECK_VALUE_INFO: &[u8] = b"pg_encrypt_ml/v1/master-key-check-value";
const KEK_INFO: &[u8] = b"pg_encrypt_ml/v1/key-encryption-key";
const AUDIT_CHAIN_INFO: &[u8] = b"pg_encrypt_ml/v1/audit-chain-mac";
const AUDIT_REDACT_INFO: &[u8] = b"pg_encrypt_ml/v1/audit-redaction";
const TENANT_TOKEN_INFO: &[u8] = b"pg_encrypt_ml/v1/tenant-token";
const DP_STATE_SEAL_INFO: &[u8] = b"pg_encrypt_ml/v1/dp-state-seal";

/// AES-256-GCM inside a token, under a key that never leaves it.
pub trait TokenKey {
    /// The token's and the key's labels, for errors (never secret).
    fn describe(&self) -> String;
    /// `plaintext` encrypted under the token's key with this 12-byte IV and AAD: ciphertext
    /// followed by the 16-byte tag.
    fn seal(&self, iv: &[u8; 12], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>>;
    /// The plaintext of `ciphertext_and_tag`, or `Error::AuthenticationFailed` when the tag does
    /// not verify (or the token reports any failure of the decryption itself).
    fn open(
        &self,
        iv: &[u8; 12],
        aad: &[u8],
        ciphertext_and_tag: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>>;
}

/// The IV and AAD of the token's pseudorandom function (module documentation).
pub const TOKEN_PRF_IV: [u8; 12] = *b"encml-mk-prf";
pub const TOKEN_PRF_AAD: &[u8] = b"pg_encrypt_ml/v2/master-key-prf";

/// How a master key wraps data keys.
pub(crate) enum Kek {
    /// An AES-256 key derived from the provider's key bytes (wrap format 1).
    Local(Zeroizing<[u8; 32]>),
    /// The token's own key (wrap format 2).
    Token(Box<dyn TokenKey>),
}

pub struct MasterKey {
    kek: Kek,
    /// HMAC key of the audit log's chain.
    audit_chain: Zeroizing<[u8; 32]>,
    /// HMAC key of redacted audit values.
    audit_redact: Zeroizing<[u8; 32]>,
    /// HMAC key of the tenant tokens that carry the tenant context to Citus workers.
    tenant_token: Zeroizing<[u8; 32]>,
    /// AES-256-GCM key of the partial dp states Citus sends between nodes (`dp_seal`).
    dp_state_seal: Zeroizing<[u8; 32]>,
    fingerprint: String,
}

impl MasterKey {
    pub fn from_bytes(raw: &[u8; 32]) -> Self {
        let hk = Hkdf::<Sha256>::new(None, raw);
        let mut kek = Zeroizing::new([0u8; 32]);
        hk.expand(KEK_INFO, kek.as_mut())
            .expect("32 bytes is a valid HKDF length");
        Self::derive(&hk, Kek::Local(kek))
    }

    /// A master key held in a token. The token computes its pseudorandom value twice: a token
    /// that ignored the IV given (generating its own) would give two different values, and every
    /// backend would derive other keys; that is refused here.
    pub fn from_token(token: Box<dyn TokenKey>) -> Result<Self> {
        let prf = |t: &dyn TokenKey| t.seal(&TOKEN_PRF_IV, TOKEN_PRF_AAD, &[0u8; 32]);
        let first = Zeroizing::new(prf(token.as_ref())?);
        let second = Zeroizing::new(prf(token.as_ref())?);
        if first.len() != 48 || *first != *second {
            return Err(Error::Token(format!(
                "{}: AES-GCM with a caller's IV is not deterministic on this token (it may generate \
                 IVs itself), which pg_encrypt_ml needs for its derived keys",
                token.describe()
            )));
        }
        let hk = Hkdf::<Sha256>::new(Some(TOKEN_PRF_AAD), &first);
        Ok(Self::derive(&hk, Kek::Token(token)))
    }

    /// Whether this key stays inside a token.
    pub fn in_token(&self) -> bool {
        matches!(self.kek, Kek::Token(_))
    }

    pub(crate) fn kek(&self) -> &Kek {
        &self.kek
    }

    fn derive(hk: &Hkdf<Sha256>, kek: Kek) -> Self {
        let mut check = [0u8; 8];
        hk.expand(CHECK_VALUE_INFO, &mut check)
            .expect("8 bytes is a valid HKDF length");
        let mut audit_chain = Zeroizing::new([0u8; 32]);
        hk.expand(AUDIT_CHAIN_INFO, audit_chain.as_mut())
            .expect("32 bytes is a valid HKDF length");
        let mut audit_redact = Zeroizing::new([0u8; 32]);
        hk.expand(AUDIT_REDACT_INFO, audit_redact.as_mut())
            .expect("32 bytes is a valid HKDF length");
        let mut tenant_token = Zeroizing::new([0u8; 32]);
        hk.expand(TENANT_TOKEN_INFO, tenant_token.as_mut())
            .expect("32 bytes is a valid HKDF length");
        let mut dp_state_seal = Zeroizing::new([0u8; 32]);
        hk.expand(DP_STATE_SEAL_INFO, dp_state_seal.as_mut())
            .expect("32 bytes is a valid HKDF length");
        MasterKey {
            kek,
            audit_chain,
            audit_redact,
            tenant_token,
            dp_state_seal,
            fingerprint: hex::encode(check),
        }
    }

    /// 16 hex characters identifying this master key; reveals nothing about it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub(crate) fn audit_chain_key(&self) -> &[u8; 32] {
        &self.audit_chain
    }

    pub(crate) fn audit_redact_key(&self) -> &[u8; 32] {
        &self.audit_redact
    }

    pub(crate) fn tenant_token_key(&self) -> &[u8; 32] {
        &self.tenant_token
    }

    pub(crate) fn dp_state_seal_key(&self) -> &[u8; 32] {
        &self.dp_state_seal
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.fingerprint)
    }
}

/// Parses provider output. Blank lines and lines starting with '#' are ignored. Errors name the
/// line number, never its content.
pub fn parse_master_keys(text: &str) -> Result<Vec<MasterKey>> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.len() != 64 {
            return Err(Error::MasterKeyFormat(format!(
                "line {} is not 64 hexadecimal characters (it has {})",
                n + 1,
                line.len()
            )));
        }
        let mut raw = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(line, raw.as_mut())
            .map_err(|_| Error::MasterKeyFormat(format!("line {} is not hexadecimal", n + 1)))?;
        let key = MasterKey::from_bytes(&raw);
        if keys
            .iter()
            .any(|k: &MasterKey| k.fingerprint == key.fingerprint)
        {
            continue;
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(Error::MasterKeyFormat("no key found".into()));
    }
    Ok(keys)
}

/// A fresh random master key in provider format (64 hex characters and a newline).
pub fn generate_master_key_hex() -> Result<Zeroizing<String>> {
    let mut raw = Zeroizing::new([0u8; 32]);
    OsRng
        .try_fill_bytes(raw.as_mut())
        .map_err(|_| Error::Random)?;
    // Encoded straight into its final zeroized buffer: no intermediate copy is left behind.
    let mut text = Zeroizing::new([0u8; 65]);
    hex::encode_to_slice(raw.as_ref(), &mut text[..64]).expect("64 hex digits for 32 bytes");
    text[64] = b'\n';
    let mut s = Zeroizing::new(String::with_capacity(65));
    s.push_str(std::str::from_utf8(text.as_ref()).expect("hex is ASCII"));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const K2: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";

    #[test]
    fn parses_current_and_previous_keys() {
        let keys = parse_master_keys(&format!("# comment\n{K1}\n\n  {K2}  \n")).unwrap();
        assert_eq!(keys.len(), 2);
        assert_ne!(keys[0].fingerprint(), keys[1].fingerprint());
        assert_eq!(keys[0].fingerprint().len(), 16);
        assert!(!keys[0].fingerprint().contains("0001020304"));
    }

    #[test]
    fn rejects_bad_lines_without_echoing_them() {
        let e = parse_master_keys("deadbeef").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        assert!(!e.contains("deadbeef"));
        let bad = K1.replace('0', "z");
        let e = parse_master_keys(&bad).unwrap_err().to_string();
        assert!(!e.contains(&bad));
        assert!(parse_master_keys("\n# only a comment\n").is_err());
    }

    #[test]
    fn generated_keys_parse_and_differ() {
        let a = generate_master_key_hex().unwrap();
        let b = generate_master_key_hex().unwrap();
        assert_ne!(*a, *b);
        assert_eq!(parse_master_keys(&a).unwrap().len(), 1);
    }
}
