//! Service keys: the extension's own keys (not data keys). Until 0.2.0 they were derived from the
//! master key bytes, so removing an old master key (crypto-shredding) made every audit row it had
//! sealed unverifiable, and a master key that never leaves an HSM could not have produced them.
//! Now each is a catalog row, wrapped by the master key like a data key (`wrap`, with the
//! purpose's fixed 16-byte id and the version as associated data), rewrapped by master-key
//! rotation and never deleted.
//!
//! A key imported from a master key (`derived_from`) equals what that master key derived before
//! 0.2.0, so rows sealed and values redacted then keep verifying and matching.
//!
//! An audit row names the key that sealed it by its label, `svc:<purpose>:<version>` (rows sealed
//! before 0.2.0 name the master key's fingerprint instead).

use crate::error::{Error, Result};
use crate::master::MasterKey;
use crate::wrap;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// What a service key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServicePurpose {
    /// HMAC key of the audit log's chain and of purge anchors' witness digests.
    AuditChain,
    /// HMAC key of redacted audit values.
    AuditRedact,
}

impl ServicePurpose {
    pub const ALL: [ServicePurpose; 2] = [ServicePurpose::AuditChain, ServicePurpose::AuditRedact];

    pub fn label(self) -> &'static str {
        match self {
            ServicePurpose::AuditChain => "audit-chain",
            ServicePurpose::AuditRedact => "audit-redact",
        }
    }

    pub fn from_label(s: &str) -> Option<ServicePurpose> {
        ServicePurpose::ALL.into_iter().find(|p| p.label() == s)
    }

    /// The 16 bytes that stand for the purpose where a wrapped data key has its key id.
    pub fn wrap_id(self) -> [u8; 16] {
        let digest = Sha256::digest(format!("pg_encrypt_ml/v1/service-key/{}", self.label()));
        digest[..16]
            .try_into()
            .expect("a SHA-256 digest has 32 bytes")
    }
}

pub struct ServiceKey {
    purpose: ServicePurpose,
    version: u32,
    key: Zeroizing<[u8; 32]>,
}

impl ServiceKey {
    /// A fresh random key.
    pub fn generate(purpose: ServicePurpose, version: u32) -> Result<ServiceKey> {
        Ok(ServiceKey {
            purpose,
            version,
            key: wrap::generate_data_key()?,
        })
    }

    /// The key `master` derived for `purpose` before 0.2.0.
    pub fn derived_from(master: &MasterKey, purpose: ServicePurpose, version: u32) -> ServiceKey {
        let bytes = match purpose {
            ServicePurpose::AuditChain => master.audit_chain_key(),
            ServicePurpose::AuditRedact => master.audit_redact_key(),
        };
        ServiceKey {
            purpose,
            version,
            key: Zeroizing::new(*bytes),
        }
    }

    pub fn unwrap(
        master: &MasterKey,
        purpose: ServicePurpose,
        version: u32,
        wrapped: &[u8],
    ) -> Result<ServiceKey> {
        let key = wrap::unwrap(master, &purpose.wrap_id(), version, wrapped)?;
        Ok(ServiceKey {
            purpose,
            version,
            key,
        })
    }

    pub fn wrap(&self, master: &MasterKey) -> Result<Vec<u8>> {
        wrap::wrap(master, &self.purpose.wrap_id(), self.version, &self.key)
    }

    pub fn purpose(&self) -> ServicePurpose {
        self.purpose
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// `svc:<purpose>:<version>`: how an audit row names the key that sealed it.
    pub fn label(&self) -> String {
        format!("svc:{}:{}", self.purpose.label(), self.version)
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.key
    }
}

impl std::fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServiceKey({})", self.label())
    }
}

/// The purpose and version a label names, or None for anything else (a master key fingerprint).
pub fn parse_label(label: &str) -> Option<(ServicePurpose, u32)> {
    let rest = label.strip_prefix("svc:")?;
    let (purpose, version) = rest.rsplit_once(':')?;
    // Only the canonical decimal form (u32's parser also takes "+42" and "042"): one label per key.
    if version.starts_with('0') || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let version: u32 = version.parse().ok()?;
    (version > 0).then_some(())?;
    Some((ServicePurpose::from_label(purpose)?, version))
}

/// A wrapped service key that does not unwrap is an error of its own.
pub fn unwrap_error(purpose: ServicePurpose, version: u32, e: Error) -> String {
    match e {
        Error::AuthenticationFailed => format!(
            "the wrapped service key {}:{version} does not unwrap under its master key",
            purpose.label()
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(b: u8) -> MasterKey {
        MasterKey::from_bytes(&[b; 32])
    }

    #[test]
    fn a_wrapped_key_unwraps_only_under_its_master_purpose_and_version() {
        let k = ServiceKey::generate(ServicePurpose::AuditChain, 3).unwrap();
        let wrapped = k.wrap(&master(1)).unwrap();
        let back = ServiceKey::unwrap(&master(1), ServicePurpose::AuditChain, 3, &wrapped).unwrap();
        assert_eq!(back.bytes(), k.bytes());
        for (m, p, v) in [
            (2, ServicePurpose::AuditChain, 3),
            (1, ServicePurpose::AuditRedact, 3),
            (1, ServicePurpose::AuditChain, 4),
        ] {
            assert_eq!(
                ServiceKey::unwrap(&master(m), p, v, &wrapped).unwrap_err(),
                Error::AuthenticationFailed
            );
        }
    }

    #[test]
    fn an_imported_key_equals_the_old_derivation_and_survives_rewrapping() {
        let old = master(7);
        let k = ServiceKey::derived_from(&old, ServicePurpose::AuditChain, 1);
        assert_eq!(k.bytes(), old.audit_chain_key());
        // Rewrapped under a new master, the old one can go.
        let wrapped = k.wrap(&master(8)).unwrap();
        let back = ServiceKey::unwrap(&master(8), ServicePurpose::AuditChain, 1, &wrapped).unwrap();
        assert_eq!(back.bytes(), old.audit_chain_key());
        assert_ne!(
            ServiceKey::derived_from(&old, ServicePurpose::AuditRedact, 1).bytes(),
            k.bytes()
        );
    }

    #[test]
    fn labels_round_trip_and_fingerprints_are_not_labels() {
        let k = ServiceKey::generate(ServicePurpose::AuditRedact, 12).unwrap();
        assert_eq!(k.label(), "svc:audit-redact:12");
        assert_eq!(
            parse_label(&k.label()),
            Some((ServicePurpose::AuditRedact, 12))
        );
        for bad in [
            "0123456789abcdef",
            "svc:audit-chain:0",
            "svc:other:1",
            "svc:audit-chain:x",
            "svc:",
        ] {
            assert_eq!(parse_label(bad), None, "{bad}");
        }
        assert_ne!(
            ServicePurpose::AuditChain.wrap_id(),
            ServicePurpose::AuditRedact.wrap_id()
        );
    }

    #[test]
    fn only_canonical_labels_parse() {
        assert!(parse_label("svc:audit-chain:42").is_some());
        // Found by fuzzing (fuzz/, target wrap): u32's parser took these.
        for bad in [
            "svc:audit-chain:+42",
            "svc:audit-chain:042",
            "svc:audit-chain:0",
            "svc:audit-chain:",
        ] {
            assert_eq!(parse_label(bad), None, "{bad}");
        }
    }
}
