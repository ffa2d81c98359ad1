//! Tenant tokens: how a tenant context set on a Citus coordinator reaches the workers.
//!
//! Citus forwards `SET LOCAL` statements to the worker connections of a transaction; a plain
//! tenant name sent that way could be sent by anyone. So the coordinator, after checking the
//! caller's membership, sends a token instead: the tenant, the time it was issued and an
//! HMAC-SHA256 (truncated to 128 bits) over the tenant, the role and the database it was issued
//! for and that time, under a key derived from the master key, which every node shares. A
//! worker accepts the token only for the same role and database, within its lifetime.
//!
//! Format (docs/formats.md): `encml-tenant.v1.<tenant, base64url>.<issued, µs since the Unix
//! epoch>.<fingerprint of the master key>.<MAC, base64url>`.

use crate::master::MasterKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{HmacReset, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const PREFIX: &str = "encml-tenant.v1.";
const MAC_LEN: usize = 16;
/// Clocks of the nodes may differ by this much.
const CLOCK_SKEW_US: i64 = 300 * 1_000_000;

#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    UnknownMasterKey,
    BadMac,
    Expired,
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenError::Malformed => "malformed tenant token",
            TokenError::UnknownMasterKey => "tenant token made under a master key this node lacks",
            TokenError::BadMac => "tenant token does not verify for this role and database",
            TokenError::Expired => "tenant token expired",
        })
    }
}

pub fn is_token(value: &str) -> bool {
    value.starts_with(PREFIX)
}

fn mac(key: &MasterKey, tenant: &str, role: &str, database: &str, issued_us: i64) -> [u8; 32] {
    // Zeroed when dropped; finalized in place so the keyed state is not moved out first.
    let mut m = HmacReset::<Sha256>::new_from_slice(key.tenant_token_key())
        .expect("HMAC takes any key length");
    for field in [tenant.as_bytes(), role.as_bytes(), database.as_bytes()] {
        m.update(&(field.len() as u64).to_be_bytes());
        m.update(field);
    }
    m.update(&issued_us.to_be_bytes());
    m.finalize_reset().into_bytes().into()
}

/// The tenant a token names, without verifying it (for a value the check hook already verified).
pub fn tenant_of(token: &str) -> Option<String> {
    let encoded = token.strip_prefix(PREFIX)?.split('.').next()?;
    String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()
}

/// When a token says it was issued (µs since the Unix epoch), without verifying it.
pub fn issued_of(token: &str) -> Option<i64> {
    parse_issued(token.strip_prefix(PREFIX)?.split('.').nth(1)?)
}

/// The issue time in its one canonical form: decimal digits, no sign, no leading zero (i64's
/// parser takes "+17..." and "0017...", which gave one token several spellings).
fn parse_issued(text: &str) -> Option<i64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

/// A token for `tenant`, issued now (`issued_us`) for `role` in `database`.
pub fn issue(key: &MasterKey, tenant: &str, role: &str, database: &str, issued_us: i64) -> String {
    let tag = mac(key, tenant, role, database, issued_us);
    format!(
        "{PREFIX}{}.{issued_us}.{}.{}",
        URL_SAFE_NO_PAD.encode(tenant),
        key.fingerprint(),
        URL_SAFE_NO_PAD.encode(&tag[..MAC_LEN])
    )
}

/// The tenant of a token that verifies for `role` in `database` at `now_us` under one of
/// `keys`, if it was issued at most `lifetime_us` ago.
pub fn verify(
    keys: &[MasterKey],
    token: &str,
    role: &str,
    database: &str,
    now_us: i64,
    lifetime_us: i64,
) -> Result<String, TokenError> {
    let rest = token.strip_prefix(PREFIX).ok_or(TokenError::Malformed)?;
    let mut parts = rest.split('.');
    let (Some(tenant), Some(issued), Some(fingerprint), Some(tag), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(TokenError::Malformed);
    };
    let tenant = URL_SAFE_NO_PAD
        .decode(tenant)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(TokenError::Malformed)?;
    let issued = parse_issued(issued).ok_or(TokenError::Malformed)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| TokenError::Malformed)?;
    if tag.len() != MAC_LEN {
        return Err(TokenError::Malformed);
    }
    let key = keys
        .iter()
        .find(|k| k.fingerprint() == fingerprint)
        .ok_or(TokenError::UnknownMasterKey)?;
    let expected = mac(key, &tenant, role, database, issued);
    if !bool::from(expected[..MAC_LEN].ct_eq(&tag)) {
        return Err(TokenError::BadMac);
    }
    // Checked: an issue time far from now overflowed the subtraction (found by fuzzing; a
    // release build wrapped and accepted an ancient token).
    let too_new = issued > now_us.saturating_add(CLOCK_SKEW_US);
    let too_old = now_us
        .checked_sub(issued)
        .is_none_or(|age| age > lifetime_us);
    if too_new || too_old {
        return Err(TokenError::Expired);
    }
    Ok(tenant)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000;

    fn key(b: u8) -> MasterKey {
        MasterKey::from_bytes(&[b; 32])
    }

    #[test]
    fn a_token_verifies_for_its_role_and_database_within_its_lifetime() {
        let k = key(1);
        let t = issue(&k, "acme corp.", "alice", "app", 1_000 * HOUR);
        assert!(is_token(&t));
        assert_eq!(
            verify(&[k], &t, "alice", "app", 1_000 * HOUR + 5, HOUR),
            Ok("acme corp.".into())
        );
    }

    #[test]
    fn another_role_database_time_or_key_is_refused() {
        let k = key(1);
        let now = 1_000 * HOUR;
        let t = issue(&k, "acme", "alice", "app", now);
        assert_eq!(
            verify(&[key(1)], &t, "mallory", "app", now, HOUR),
            Err(TokenError::BadMac)
        );
        assert_eq!(
            verify(&[key(1)], &t, "alice", "other", now, HOUR),
            Err(TokenError::BadMac)
        );
        assert_eq!(
            verify(&[key(1)], &t, "alice", "app", now + 2 * HOUR, HOUR),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(&[key(1)], &t, "alice", "app", now - HOUR, HOUR),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(&[key(2)], &t, "alice", "app", now, HOUR),
            Err(TokenError::UnknownMasterKey)
        );
    }

    #[test]
    fn crafted_and_altered_tokens_are_refused() {
        let k = key(1);
        let now = 1_000 * HOUR;
        let t = issue(&k, "acme", "alice", "app", now);
        // Another tenant with the MAC of the first.
        let forged = t.replacen(
            &URL_SAFE_NO_PAD.encode("acme"),
            &URL_SAFE_NO_PAD.encode("globex"),
            1,
        );
        assert_eq!(
            verify(&[key(1)], &forged, "alice", "app", now, HOUR),
            Err(TokenError::BadMac)
        );
        // A later issue time to extend the lifetime.
        let later = t.replacen(&format!(".{now}."), &format!(".{}.", now + HOUR), 1);
        assert_eq!(
            verify(&[key(1)], &later, "alice", "app", now + HOUR, HOUR),
            Err(TokenError::BadMac)
        );
        for bad in [
            "acme",
            "encml-tenant.v1.",
            "encml-tenant.v1.YWNtZQ.1.fp.x",
            &format!("{t}.extra"),
        ] {
            assert!(
                verify(&[key(1)], bad, "alice", "app", now, HOUR).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn tenant_and_issue_time_read_back_without_the_key() {
        let t = issue(&key(1), "acme corp.", "alice", "app", 1_000 * HOUR);
        assert_eq!(tenant_of(&t).as_deref(), Some("acme corp."));
        assert_eq!(issued_of(&t), Some(1_000 * HOUR));
        assert_eq!(tenant_of("acme"), None);
        assert_eq!(issued_of("encml-tenant.v1.YWNtZQ.x.fp.t"), None);
    }

    #[test]
    fn tokens_of_a_previous_master_key_verify_while_it_is_listed() {
        let (old, new) = (key(1), key(2));
        let now = 1_000 * HOUR;
        let t = issue(&old, "acme", "alice", "app", now);
        assert_eq!(
            verify(&[new, old], &t, "alice", "app", now, HOUR),
            Ok("acme".into())
        );
    }

    #[test]
    fn extreme_and_non_canonical_issue_times_are_refused() {
        // Found by fuzzing: now - i64::MIN overflowed (a panic in debug, a wrap to "fresh" in
        // release).
        let k = key(1);
        let now = 1_700_000_000_000_000;
        let t = issue(&k, "t", "r", "d", i64::MIN);
        assert_eq!(
            verify(&[key(1)], &t, "r", "d", now, HOUR),
            Err(TokenError::Malformed)
        );
        let t = issue(&k, "t", "r", "d", i64::MAX);
        assert_eq!(
            verify(&[key(1)], &t, "r", "d", now, HOUR),
            Err(TokenError::Expired)
        );
        let good = issue(&k, "t", "r", "d", now);
        for spelling in [format!(".+{now}."), format!(".00{now}.")] {
            let odd = good.replacen(&format!(".{now}."), &spelling, 1);
            assert_eq!(
                verify(&[key(1)], &odd, "r", "d", now, HOUR),
                Err(TokenError::Malformed)
            );
        }
        assert_eq!(
            verify(&[key(1)], &good, "r", "d", now, HOUR),
            Ok("t".into())
        );
    }
}
