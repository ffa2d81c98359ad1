//! Master-key provider output: `master::parse_master_keys`.
//!
//! Checks: keys found are distinct (by fingerprint), one per distinct key line at most, and
//! their fingerprints are 16 lowercase hex digits; an error names no key material.

use encml_core::master::parse_master_keys;
use encml_core::Error;

pub fn init() {}

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match parse_master_keys(&text) {
        Ok(keys) => {
            assert!(!keys.is_empty());
            let lines = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .count();
            assert!(keys.len() <= lines);
            for (i, k) in keys.iter().enumerate() {
                let fp = k.fingerprint();
                assert_eq!(fp.len(), 16);
                assert!(fp
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
                assert!(keys[..i].iter().all(|o| o.fingerprint() != fp));
            }
        }
        Err(Error::MasterKeyFormat(msg)) => {
            // Errors name the line, never its content.
            for line in text
                .lines()
                .map(str::trim)
                .filter(|l| l.len() >= 32 && l.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                assert!(!msg.contains(line), "error message quotes the input: {msg}");
            }
        }
        Err(e) => panic!("unexpected error kind: {e:?}"),
    }
}
