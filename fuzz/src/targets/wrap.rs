//! Wrapped data keys and service keys: `wrap::unwrap`, `ServiceKey::unwrap`,
//! `service_key::parse_label`, `kdf::Purpose::from_label`.
//!
//! Checks: a key that unwraps re-wraps to one that unwraps to it; own wrappings of any key
//! round trip and bind the key id and version; a parsed label is the canonical label of what
//! it names.

use crate::fixtures;
use encml_core::kdf::Purpose;
use encml_core::master::MasterKey;
use encml_core::service_key::{self, ServiceKey, ServicePurpose};
use encml_core::wrap::{self, WRAPPED_LEN};

thread_local! {
    static KEYS: Vec<MasterKey> = fixtures::masters();
}

pub fn init() {
    KEYS.with(|_| ());
}

pub fn run(data: &[u8]) {
    KEYS.with(|keys| {
        let m = &keys[0];
        if let Ok(k) = wrap::unwrap(m, &fixtures::KEY_ID, fixtures::KEY_VERSION, data) {
            assert_eq!(data.len(), WRAPPED_LEN);
            let again = wrap::wrap(m, &fixtures::KEY_ID, fixtures::KEY_VERSION, &k).unwrap();
            assert_eq!(
                wrap::unwrap(m, &fixtures::KEY_ID, fixtures::KEY_VERSION, &again).map(|x| *x),
                Ok(*k)
            );
        }
        for p in ServicePurpose::ALL {
            if let Ok(k) = ServiceKey::unwrap(m, p, 1, data) {
                assert_eq!((k.purpose(), k.version()), (p, 1));
            }
        }

        let text = String::from_utf8_lossy(data);
        if let Some((p, v)) = service_key::parse_label(&text) {
            assert!(v > 0);
            assert_eq!(
                format!("svc:{}:{v}", p.label()),
                text,
                "a parsed service-key label is canonical"
            );
        }
        if let Some(p) = ServicePurpose::from_label(&text) {
            assert_eq!(p.label(), text);
        }
        if let Some(p) = Purpose::from_label(&text) {
            assert_eq!(p.label(), text);
        }

        // Own wrappings: the key is the input's first 32 bytes, the version the next 4.
        let (dk, rest) = crate::take::<32>(data);
        let (v, _) = crate::take::<4>(rest);
        let v = u32::from_le_bytes(v);
        let dk = zeroize_box(dk);
        let w = wrap::wrap(m, &fixtures::KEY_ID, v, &dk).unwrap();
        assert_eq!(w.len(), WRAPPED_LEN);
        assert_eq!(
            wrap::unwrap(m, &fixtures::KEY_ID, v, &w).map(|x| *x),
            Ok(*dk)
        );
        assert!(wrap::unwrap(m, &fixtures::KEY_ID, v.wrapping_add(1), &w).is_err());
        assert!(wrap::unwrap(&keys[1], &fixtures::KEY_ID, v, &w).is_err());
        assert!(wrap::unwrap(m, &[0; 16], v, &w).is_err());
    });
}

fn zeroize_box(k: [u8; 32]) -> wrap::DataKey {
    wrap::DataKey::new(k)
}
