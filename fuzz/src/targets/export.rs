//! Key export to a client (HPKE): `export::unwrap_with` (the client's parser) and
//! `export::wrap_for`'s check of the recipient key.
//!
//! Checks: an export that opens carries the key id and version of its header; wrapping a root
//! from the input for the fixed recipient opens to it; any 32 bytes as a recipient key give a
//! well-formed export or an error.

use crate::fixtures;
use encml_core::export::{self, EXPORT_LEN};

thread_local! {
    static PK: [u8; 32] = fixtures::export_pk();
}

pub fn init() {
    PK.with(|_| ());
}

pub fn run(data: &[u8]) {
    if let Ok((key_id, version, _root)) = export::unwrap_with(&fixtures::EXPORT_SK, data) {
        assert_eq!(data.len(), EXPORT_LEN);
        assert_eq!(&key_id[..], &data[4..20]);
        assert_eq!(version.to_be_bytes(), data[20..24]);
    }
    // The input as the private key (any 32 bytes are one in X25519).
    let (sk, rest) = crate::take::<32>(data);
    let _ = export::unwrap_with(&sk, rest);

    // The input as a recipient public key (wrap_for checks its length and validity).
    let recipient = if data.len() > 32 { &data[..32] } else { data };
    let (root, _) = crate::take::<32>(data);
    if let Ok(e) = export::wrap_for(recipient, &fixtures::KEY_ID, 7, &root) {
        assert_eq!(e.len(), EXPORT_LEN);
        assert_eq!(recipient.len(), 32);
    }
    let e = PK
        .with(|pk| export::wrap_for(pk, &fixtures::KEY_ID, 7, &root))
        .expect("the fixed recipient key is valid");
    let (id, v, r) = export::unwrap_with(&fixtures::EXPORT_SK, &e).expect("own export opens");
    assert_eq!((id, v, *r), (fixtures::KEY_ID, 7, root));
}
