//! Sealed dp states (the text Citus sends between nodes): `dp_seal::open` and `is_sealed`.
//!
//! Checks: a text that opens is the canonical sealing of what it holds (hex case aside); own
//! sealings of any state under either master key open to it, and to nothing at another length.

use crate::fixtures;
use encml_core::dp_seal;
use encml_core::master::MasterKey;
use encml_dp::flat;

thread_local! {
    static KEYS: Vec<MasterKey> = fixtures::masters();
}

pub fn init() {
    KEYS.with(|_| ());
}

pub fn run(data: &[u8]) {
    KEYS.with(|keys| {
        let text = String::from_utf8_lossy(data);
        for len in [flat::LEN, 0, 1, 16] {
            let r = dp_seal::open(keys, &text, len);
            if let Ok(plain) = r {
                assert!(dp_seal::is_sealed(&text));
                assert_eq!(plain.len(), len);
                let rest = &text[dp_seal::PREFIX.len()..];
                let (fp, hex) = rest.split_once(':').unwrap();
                let key = keys.iter().find(|k| k.fingerprint() == fp).unwrap();
                let nonce: [u8; 12] = (0..12)
                    .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                    .collect::<Vec<_>>()
                    .try_into()
                    .unwrap();
                let again = dp_seal::seal(key, &nonce, &plain);
                assert!(
                    again.eq_ignore_ascii_case(&text)
                        && again[..dp_seal::PREFIX.len() + 17]
                            == text[..dp_seal::PREFIX.len() + 17],
                    "an opened state is the canonical sealing of its content"
                );
            }
        }

        // Own sealings: key from the first byte, nonce the next 12, state the rest.
        let (sel, rest) = data.split_first().map(|(&s, r)| (s, r)).unwrap_or((0, &[]));
        let (nonce, state) = crate::take::<12>(rest);
        let key = &keys[sel as usize % keys.len()];
        let sealed = dp_seal::seal(key, &nonce, state);
        assert!(dp_seal::is_sealed(&sealed));
        assert_eq!(
            dp_seal::open(keys, &sealed, state.len()).as_deref(),
            Ok(state)
        );
        assert!(dp_seal::open(keys, &sealed, state.len() + 1).is_err());
        assert!(dp_seal::open(&keys[..0], &sealed, state.len()).is_err());
    });
}
