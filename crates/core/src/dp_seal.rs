//! Sealed dp states: the text form of `encml.dp_state` (docs/formats.md). A partial state is
//! exact, and Citus carries it from the shards to the coordinator as text, the output of
//! `worker_partial_agg`, which anyone may call over rows they can read; sealed, the text shows
//! nothing but its length. Every node derives the same key from the master key (a Citus cluster
//! has one, docs/citus.md); a state sealed under one master key opens wherever that key is
//! still configured (during a rotation, the previous key too).
//!
//! Text: `dp1s:` + master-key fingerprint (16 hex) + `:` + hex(nonce (12) || AES-256-GCM
//! ciphertext of the 96-byte state || tag (16)); the AAD is `pg_encrypt_ml/v1/dp-state` and the
//! fingerprint. The variable-length summaries of the quantile and variance aggregates
//! (`encml.dp_summary`) are sealed the same way under the prefix `dps1s:` and the AAD
//! `pg_encrypt_ml/v1/dp-summary` (`SUMMARY`), so that neither kind opens as the other.

use crate::error::{Error, Result};
use crate::master::MasterKey;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};

pub const PREFIX: &str = "dp1s:";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// One kind of sealed value: its text prefix and its AAD.
pub struct Kind {
    pub prefix: &'static str,
    aad: &'static [u8],
}

/// `encml.dp_state` (96 bytes).
pub const STATE: Kind = Kind {
    prefix: PREFIX,
    aad: b"pg_encrypt_ml/v1/dp-state",
};
/// `encml.dp_summary` (variable length).
pub const SUMMARY: Kind = Kind {
    prefix: "dps1s:",
    aad: b"pg_encrypt_ml/v1/dp-summary",
};

fn aad(kind: &Kind, fingerprint: &str) -> Vec<u8> {
    [kind.aad, fingerprint.as_bytes()].concat()
}

/// Seals `state` under `master`'s dp-state key with `nonce` (never reused: random per value).
pub fn seal(master: &MasterKey, nonce: &[u8; NONCE_LEN], state: &[u8]) -> String {
    seal_as(&STATE, master, nonce, state)
}

/// Seals `value` as a value of `kind`.
pub fn seal_as(kind: &Kind, master: &MasterKey, nonce: &[u8; NONCE_LEN], value: &[u8]) -> String {
    let cipher = Aes256Gcm::new(master.dp_state_seal_key().into());
    let mut body = value.to_vec();
    let tag = cipher
        .encrypt_in_place_detached(
            Nonce::from_slice(nonce),
            &aad(kind, master.fingerprint()),
            &mut body,
        )
        .expect("a dp state or summary is within AES-GCM limits");
    let mut out = Vec::with_capacity(NONCE_LEN + body.len() + TAG_LEN);
    out.extend_from_slice(nonce);
    out.extend_from_slice(&body);
    out.extend_from_slice(&tag);
    format!(
        "{}{}:{}",
        kind.prefix,
        master.fingerprint(),
        hex::encode(out)
    )
}

/// Whether `text` is a sealed state (it may still fail to open).
pub fn is_sealed(text: &str) -> bool {
    text.starts_with(PREFIX)
}

/// Opens a sealed state of `len` bytes with whichever of `masters` sealed it.
pub fn open(masters: &[MasterKey], text: &str, len: usize) -> Result<Vec<u8>> {
    open_as(&STATE, masters, text, Some(len))
}

/// Opens a sealed value of `kind` (of `len` bytes when given).
pub fn open_as(
    kind: &Kind,
    masters: &[MasterKey],
    text: &str,
    len: Option<usize>,
) -> Result<Vec<u8>> {
    let rest = text
        .strip_prefix(kind.prefix)
        .ok_or(Error::Malformed("not a sealed dp state"))?;
    let (fingerprint, body) = rest.split_once(':').ok_or(Error::Malformed(
        "sealed dp state without a key fingerprint",
    ))?;
    let master = masters
        .iter()
        .find(|m| m.fingerprint() == fingerprint)
        .ok_or_else(|| Error::UnknownMasterKey {
            fingerprint: fingerprint.chars().take(16).collect(),
        })?;
    let bytes = hex::decode(body).map_err(|_| Error::Malformed("sealed dp state is not hex"))?;
    let len = len.unwrap_or(bytes.len().saturating_sub(NONCE_LEN + TAG_LEN));
    if bytes.len() != NONCE_LEN + len + TAG_LEN {
        return Err(Error::Malformed("sealed dp state has the wrong length"));
    }
    let (nonce, rest) = bytes.split_at(NONCE_LEN);
    let (body, tag) = rest.split_at(len);
    let mut plain = body.to_vec();
    Aes256Gcm::new(master.dp_state_seal_key().into())
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            &aad(kind, fingerprint),
            &mut plain,
            Tag::from_slice(tag),
        )
        .map_err(|_| Error::AuthenticationFailed)?;
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(b: u8) -> MasterKey {
        MasterKey::from_bytes(&[b; 32])
    }

    #[test]
    fn round_trip_and_rotation() {
        let state = [7u8; 96];
        let sealed = seal(&master(1), &[3; 12], &state);
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains(&hex::encode(state)));
        assert_eq!(open(&[master(2), master(1)], &sealed, 96).unwrap(), state);
    }

    #[test]
    fn refuses_tampering_wrong_keys_and_lengths() {
        let sealed = seal(&master(1), &[3; 12], &[7u8; 96]);
        assert!(matches!(
            open(&[master(2)], &sealed, 96),
            Err(Error::UnknownMasterKey { .. })
        ));
        // The same fingerprint with another key cannot happen; a flipped ciphertext digit can.
        let i = sealed.len() - 40;
        let flipped: String = sealed
            .char_indices()
            .map(|(j, c)| {
                if j == i {
                    if c == '0' {
                        '1'
                    } else {
                        '0'
                    }
                } else {
                    c
                }
            })
            .collect();
        assert!(matches!(
            open(&[master(1)], &flipped, 96),
            Err(Error::AuthenticationFailed)
        ));
        // A state sealed under a key whose fingerprint was swapped for another's does not open.
        let (_, body) = sealed
            .strip_prefix(PREFIX)
            .unwrap()
            .split_once(':')
            .unwrap();
        let relabelled = format!("{PREFIX}{}:{body}", master(2).fingerprint());
        assert!(open(&[master(2)], &relabelled, 96).is_err());
        assert!(open(&[master(1)], &sealed, 95).is_err());
        assert!(open(&[master(1)], &sealed[..sealed.len() - 2], 96).is_err());
        assert!(open(&[master(1)], "dp1s:zz", 96).is_err());
        assert!(open(&[master(1)], "dp1:00", 96).is_err());
    }

    #[test]
    fn summaries_round_trip_and_never_open_as_states() {
        let summary = vec![9u8; 300];
        let sealed = seal_as(&SUMMARY, &master(1), &[4; 12], &summary);
        assert!(sealed.starts_with("dps1s:"));
        assert_eq!(
            open_as(&SUMMARY, &[master(1)], &sealed, None).unwrap(),
            summary
        );
        // The same bytes under the state's prefix fail the AAD.
        let as_state = sealed.replacen("dps1s:", PREFIX, 1);
        assert!(open_as(&STATE, &[master(1)], &as_state, None).is_err());
        let state = seal(&master(1), &[4; 12], &[7u8; 96]);
        let as_summary = state.replacen(PREFIX, "dps1s:", 1);
        assert!(open_as(&SUMMARY, &[master(1)], &as_summary, None).is_err());
    }
}
