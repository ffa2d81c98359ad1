//! enc_bytea, det_text and the shared ciphertext header: `format::Header::decode`/`decode_as`,
//! `aead::Parts::parse`, `ciphertext_body`, `plaintext_len`, `AeadKey::open*` and
//! `DetKey::open*` (the structural checks before and around authentication).
//!
//! Checks: a decoded header re-encodes to the input's first 24 bytes (the algorithm byte may
//! be the "described" one); `Parts` tiles the value exactly; the length functions agree with
//! `Parts`; seal/open round trips with the input as plaintext, AAD and descriptor.

use crate::fixtures;
use encml_core::aead::{self, AeadKey, Parts};
use encml_core::format::{
    Header, Kind, ALG_GCM_DESCRIBED, HEADER_LEN, NONCE_LEN, OVERHEAD, TAG_LEN,
};
use encml_core::siv::{DetKey, DET_OVERHEAD};

thread_local! {
    static AEAD: AeadKey = fixtures::aead();
    static DET: DetKey = fixtures::det();
}

pub fn init() {
    AEAD.with(|_| ());
    DET.with(|_| ());
}

pub fn run(data: &[u8]) {
    headers(data);
    parts(data);
    AEAD.with(|k| open_aead(k, data));
    DET.with(|k| open_det(k, data));
    AEAD.with(|k| round_trip_aead(k, data));
    DET.with(|k| round_trip_det(k, data));
}

fn headers(data: &[u8]) {
    for kind in [Kind::Randomized, Kind::Deterministic, Kind::OrderRevealing] {
        let Ok(h) = Header::decode_as(data, kind) else {
            continue;
        };
        assert_eq!(h.kind, kind);
        assert!(data.len() >= kind.min_len() && data.len() >= HEADER_LEN);
        let enc = h.encode();
        assert_eq!(enc[..3], data[..3], "magic and version re-encode");
        assert_eq!(
            enc[4..],
            data[4..HEADER_LEN],
            "key id and version re-encode"
        );
        if enc[3] != data[3] {
            assert!(
                kind == Kind::Randomized && data[3] == ALG_GCM_DESCRIBED,
                "algorithm byte {} accepted for {kind:?}",
                data[3]
            );
        }
    }
    assert_eq!(
        Header::decode(data),
        Header::decode_as(data, Kind::Randomized)
    );
}

fn parts(data: &[u8]) {
    match Parts::parse(data) {
        Ok(p) => {
            assert_eq!(Ok(p.header), Header::decode(data));
            assert_eq!(p.nonce.len(), NONCE_LEN);
            assert_eq!(p.tag.len(), TAG_LEN);
            assert_eq!(
                p.prefix.len() + p.nonce.len() + p.body.len() + p.tag.len(),
                data.len(),
                "parts tile the value"
            );
            assert_eq!(p.prefix, &data[..p.prefix.len()]);
            assert_eq!(p.tag, &data[data.len() - TAG_LEN..]);
            match p.descriptor {
                Some(d) => {
                    assert_eq!(data[3], ALG_GCM_DESCRIBED);
                    assert_eq!(p.prefix.len(), HEADER_LEN + 2 + d.len());
                    assert_eq!(
                        u16::from_be_bytes([data[HEADER_LEN], data[HEADER_LEN + 1]]) as usize,
                        d.len()
                    );
                }
                None => assert_eq!(p.prefix.len(), HEADER_LEN),
            }
            assert_eq!(aead::ciphertext_body(data), Ok(p.body));
            assert_eq!(aead::plaintext_len(data), Ok(p.body.len()));
        }
        Err(e) => {
            assert_eq!(aead::ciphertext_body(data), Err(e.clone()));
            assert_eq!(aead::plaintext_len(data), Err(e));
        }
    }
}

fn open_aead(k: &AeadKey, data: &[u8]) {
    let opened = k.open(data, b"");
    if let Ok(pt) = &opened {
        assert_eq!(Ok(pt.len()), aead::plaintext_len(data));
    }
    let _ = k.open(data, b"fuzz aad");
    // open_into and open_in_place with a right and a wrong output length.
    let n = aead::plaintext_len(data).unwrap_or(data.len());
    for len in [n, n + 1, n.saturating_sub(1)] {
        let mut out = vec![0u8; len];
        let r = k.open_into(data, b"", &mut out);
        if r.is_ok() {
            assert_eq!(Ok(&out), opened.as_ref());
        }
        let mut out = vec![0u8; len];
        if let Ok(p) = Parts::parse(data) {
            if len == p.body.len() {
                out.copy_from_slice(p.body);
            }
        }
        let r2 = k.open_in_place(data, b"", &mut out);
        assert_eq!(r.is_ok(), r2.is_ok(), "open_into and open_in_place agree");
    }
}

fn open_det(k: &DetKey, data: &[u8]) {
    let opened = k.open(data);
    if let Ok(pt) = &opened {
        assert_eq!(pt.len() + DET_OVERHEAD, data.len());
        assert_eq!(&k.seal(pt), data, "det_text is deterministic and canonical");
    }
    let mut out = vec![0u8; data.len().saturating_sub(DET_OVERHEAD)];
    if data.len() >= DET_OVERHEAD {
        out.copy_from_slice(&data[DET_OVERHEAD..]);
    }
    assert_eq!(k.open_in_place(data, &mut out).is_ok(), opened.is_ok());
}

fn round_trip_aead(k: &AeadKey, data: &[u8]) {
    let (aad, pt) = crate::split_at_byte(data, 0);
    let ct = k.seal(&fixtures::NONCE, pt, aad);
    assert_eq!(ct.len(), OVERHEAD + pt.len());
    assert_eq!(k.open(&ct, aad).as_deref(), Ok(pt));
    // A descriptor of up to 255 bytes from the input.
    let (d, rest) = data
        .split_first()
        .map(|(&n, r)| (n as usize, r))
        .unwrap_or((0, &[]));
    let d = d.min(rest.len());
    let (desc, pt) = rest.split_at(d);
    let ct = k.seal_described(&fixtures::NONCE, desc, pt, aad);
    let p = Parts::parse(&ct).expect("own described value parses");
    assert_eq!(p.descriptor, Some(desc));
    assert_eq!(k.open(&ct, aad).as_deref(), Ok(pt));
}

fn round_trip_det(k: &DetKey, data: &[u8]) {
    let ct = k.seal(data);
    assert_eq!(k.open(&ct).as_deref(), Ok(data));
}
