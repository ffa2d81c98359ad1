//! The audit log's cryptography: the keyed chain that makes the log tamper-evident, and the
//! keyed hash that stands in for redacted values.
//!
//! Chain: `mac_n = HMAC-SHA256(K_chain, "pg_encrypt_ml/v1/audit-row" || mac_{n-1} || row_n)`,
//! where `row_n` is the canonical encoding of the row's fields (see [`Record`]) and `mac_0` is 32
//! zero bytes. `K_chain` is a service key (`service_key`), stored only wrapped by the master key,
//! which never enters the database: whoever can only write SQL cannot produce a MAC, so an edited, inserted, deleted or reordered
//! row breaks the chain at that row. Deleting the newest rows leaves a valid shorter chain; only a
//! witness of the head kept elsewhere detects that.
//!
//! Redaction: `"hmac:" || hex(HMAC-SHA256(K_redact, value)[..16])`: equal values give equal
//! tokens (linkable across rows and tables), without the master key nobody can test a guess.

use crate::service_key::ServiceKey;
use hmac::{HmacReset, KeyInit, Mac};
use sha2::Sha256;

// HmacReset: finalized in place (`finalize_reset`), so the keyed state is not moved out of
// the local that zeroes it when dropped.
type HmacSha256 = HmacReset<Sha256>;

/// An HMAC keyed with a service key, its state zeroed when dropped.
fn keyed(key: &ServiceKey) -> HmacSha256 {
    HmacSha256::new_from_slice(key.bytes()).expect("any key length")
}

const ROW_DOMAIN: &[u8] = b"pg_encrypt_ml/v1/audit-row";
pub const MAC_LEN: usize = 32;
/// Where every chain starts (and continues from after a purge, with the anchor's MAC).
pub const GENESIS: [u8; MAC_LEN] = [0u8; MAC_LEN];

/// The canonical encoding of one audit row: each field in a fixed order, as a tag byte (0 for
/// NULL, 1 for a value) followed, for a value, by its length (u32, big-endian) and its bytes.
/// Integers are encoded as 8 bytes big-endian; text as UTF-8; jsonb as its canonical text.
#[derive(Default)]
pub struct Record {
    buf: Vec<u8>,
}

impl Record {
    pub fn new() -> Self {
        Record::default()
    }

    pub fn bytes(&mut self, v: Option<&[u8]>) -> &mut Self {
        match v {
            None => self.buf.push(0),
            Some(b) => {
                self.buf.push(1);
                self.buf.extend_from_slice(&(b.len() as u32).to_be_bytes());
                self.buf.extend_from_slice(b);
            }
        }
        self
    }

    pub fn text(&mut self, v: Option<&str>) -> &mut Self {
        self.bytes(v.map(str::as_bytes))
    }

    pub fn int(&mut self, v: Option<i64>) -> &mut Self {
        self.bytes(v.map(|i| i.to_be_bytes()).as_ref().map(|b| &b[..]))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// The MAC of a row that follows `previous` in the chain.
pub fn chain_mac(key: &ServiceKey, previous: &[u8; MAC_LEN], row: &Record) -> [u8; MAC_LEN] {
    let mut mac = keyed(key);
    mac.update(ROW_DOMAIN);
    mac.update(previous);
    mac.update(row.as_bytes());
    mac.finalize_reset().into_bytes().into()
}

/// Whether `claimed` is the MAC of `row` after `previous` (compared in constant time).
pub fn verify_mac(
    key: &ServiceKey,
    previous: &[u8; MAC_LEN],
    row: &Record,
    claimed: &[u8],
) -> bool {
    let mut mac = keyed(key);
    mac.update(ROW_DOMAIN);
    mac.update(previous);
    mac.update(row.as_bytes());
    mac.verify_slice_reset(claimed).is_ok()
}

const WITNESS_DOMAIN: &[u8] = b"pg_encrypt_ml/v1/audit-witness-digest";

/// The digest a purge anchor keeps of the seal witnesses it leaves behind (each `(seq, mac)` in
/// seq order: 8 bytes big-endian, then the 32-byte MAC), so that a head an external system
/// recorded can still be checked once its rows are purged.
pub fn witness_digest<'a>(
    key: &ServiceKey,
    heads: impl IntoIterator<Item = (i64, &'a [u8; MAC_LEN])>,
) -> [u8; MAC_LEN] {
    let mut mac = keyed(key);
    mac.update(WITNESS_DOMAIN);
    for (seq, head) in heads {
        mac.update(&seq.to_be_bytes());
        mac.update(head);
    }
    mac.finalize_reset().into_bytes().into()
}

/// The token that replaces a redacted value.
pub fn redact(key: &ServiceKey, value: &[u8]) -> String {
    let mut mac = keyed(key);
    mac.update(value);
    let tag = mac.finalize_reset().into_bytes();
    format!("hmac:{}", hex::encode(&tag[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::master::MasterKey;
    use crate::service_key::ServicePurpose;

    /// The chain key master key `b` derived before 0.2.0 (what an imported service key holds).
    fn master(b: u8) -> ServiceKey {
        ServiceKey::derived_from(
            &MasterKey::from_bytes(&[b; 32]),
            ServicePurpose::AuditChain,
            1,
        )
    }

    fn row(id: i64, op: &str, data: Option<&str>) -> Record {
        let mut r = Record::new();
        r.int(Some(id)).text(Some(op)).text(data);
        r
    }

    #[test]
    fn a_chain_verifies_and_any_edit_breaks_it() {
        let m = master(1);
        let rows = [
            row(1, "INSERT", Some("{}")),
            row(2, "UPDATE", None),
            row(3, "DELETE", Some("x")),
        ];
        let mut macs = vec![];
        let mut prev = GENESIS;
        for r in &rows {
            prev = chain_mac(&m, &prev, r);
            macs.push(prev);
        }
        let mut prev = GENESIS;
        for (r, mac) in rows.iter().zip(&macs) {
            assert!(verify_mac(&m, &prev, r, mac));
            prev = *mac;
        }
        // An edited field, a different key, or a reordered row does not verify.
        assert!(!verify_mac(
            &m,
            &macs[0],
            &row(2, "UPDATE", Some("")),
            &macs[1]
        ));
        assert!(!verify_mac(&master(2), &macs[0], &rows[1], &macs[1]));
        assert!(!verify_mac(&m, &GENESIS, &rows[1], &macs[1]));
    }

    #[test]
    fn a_witness_digest_covers_every_head_and_its_order() {
        let m = master(1);
        let (a, b) = ([1u8; MAC_LEN], [2u8; MAC_LEN]);
        let d = witness_digest(&m, [(1, &a), (2, &b)]);
        assert_eq!(d, witness_digest(&m, [(1, &a), (2, &b)]));
        assert_ne!(d, witness_digest(&m, [(2, &b), (1, &a)]));
        assert_ne!(d, witness_digest(&m, [(1, &a)]));
        assert_ne!(d, witness_digest(&m, [(1, &a), (3, &b)]));
        assert_ne!(d, witness_digest(&master(2), [(1, &a), (2, &b)]));
    }

    #[test]
    fn null_and_empty_and_field_boundaries_are_distinct() {
        let m = master(1);
        let mut a = Record::new();
        a.text(None);
        let mut b = Record::new();
        b.text(Some(""));
        assert_ne!(chain_mac(&m, &GENESIS, &a), chain_mac(&m, &GENESIS, &b));
        let mut c = Record::new();
        c.text(Some("ab")).text(Some("c"));
        let mut d = Record::new();
        d.text(Some("a")).text(Some("bc"));
        assert_ne!(c.as_bytes(), d.as_bytes());
    }

    #[test]
    fn redaction_is_deterministic_per_master_key_and_hides_the_value() {
        let t = redact(&master(1), b"alice@example.com");
        assert_eq!(t, redact(&master(1), b"alice@example.com"));
        assert_ne!(t, redact(&master(1), b"bob@example.com"));
        assert_ne!(t, redact(&master(2), b"alice@example.com"));
        assert!(t.starts_with("hmac:") && t.len() == 5 + 32 && !t.contains("alice"));
    }
}
