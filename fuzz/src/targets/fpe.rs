//! Format-preserving encryption: `fpe::Alphabet::new`/`check`, `fpe::encrypt`/`decrypt` and
//! the card-number tokens `fpe::tokenize_pan`/`detokenize_pan`.
//!
//! Checks: what `check` accepts encrypts (with a tweak within bounds); encryption keeps the
//! alphabet and the length and decrypts back; a token keeps the separators and length,
//! detokenizes back and never passes the Luhn check; what detokenizes tokenizes back.
//!
//! Input: a selector byte, then up to three fields separated by 0xFF (which never occurs in
//! UTF-8): [alphabet,] value, tweak.

use crate::fixtures;
use encml_core::fpe::{self, Alphabet, FpeError};

thread_local! {
    static KEY: [u8; 32] = fixtures::fpe_key();
}

const ALPHABETS: &[&str] = &[
    "0123456789",
    "0123456789abcdef",
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "01",
    "αβγδεζηθικλμνξοπρστυφχψω",
    "0123456789 -",
];

pub fn init() {
    KEY.with(|_| ());
}

pub fn run(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    KEY.with(|key| {
        let mut fields = rest.split(|&b| b == 0xFF);
        let a = fields.next().unwrap_or_default();
        let b = fields.next().unwrap_or_default();
        let c = fields.next().unwrap_or_default();
        match sel % 4 {
            0 => pan(
                key,
                &String::from_utf8_lossy(a),
                if sel & 4 != 0 { 6 } else { 0 },
            ),
            1 => {
                // keep_first other than 0 and 6 is refused, never a panic.
                let kf = u16::from_le_bytes([b.first().copied().unwrap_or(0), sel]) as usize;
                let _ = fpe::tokenize_pan(key, &String::from_utf8_lossy(a), kf);
                let _ = fpe::detokenize_pan(key, &String::from_utf8_lossy(a), kf);
            }
            2 => {
                let alphabet = ALPHABETS[(sel as usize / 4) % ALPHABETS.len()];
                crypt(key, alphabet, &String::from_utf8_lossy(a), b);
            }
            _ => crypt(
                key,
                &String::from_utf8_lossy(a),
                &String::from_utf8_lossy(b),
                c,
            ),
        }
    });
}

fn crypt(key: &[u8; 32], alphabet: &str, value: &str, tweak: &[u8]) {
    let Ok(a) = Alphabet::new(alphabet) else {
        return;
    };
    let chars: Vec<char> = alphabet.chars().collect();
    assert_eq!(a.radix(), chars.len());
    let checked = a.check(value);
    let enc = fpe::encrypt(key, &a, value, tweak);
    if checked.is_ok() && tweak.len() <= fpe::MAX_LENGTH {
        assert!(
            enc.is_ok(),
            "check accepted {value:?} but encrypt refused: {enc:?}"
        );
    }
    if let Ok(e) = enc {
        assert!(
            checked.is_ok(),
            "encrypt accepted what check refuses: {checked:?}"
        );
        assert_eq!(e.chars().count(), value.chars().count());
        assert!(e.chars().all(|c| chars.contains(&c)));
        assert_eq!(fpe::decrypt(key, &a, &e, tweak).as_deref(), Ok(value));
    }
    let _ = fpe::decrypt(key, &a, value, tweak);
}

fn pan(key: &[u8; 32], text: &str, keep_first: usize) {
    match fpe::tokenize_pan(key, text, keep_first) {
        Ok(t) => {
            assert_eq!(t.chars().count(), text.chars().count());
            for (x, y) in text.chars().zip(t.chars()) {
                assert_eq!(x.is_ascii_digit(), y.is_ascii_digit(), "separators kept");
                if !x.is_ascii_digit() {
                    assert_eq!(x, y);
                }
            }
            let digits: Vec<u8> = t
                .bytes()
                .filter(u8::is_ascii_digit)
                .map(|d| d - b'0')
                .collect();
            let orig: Vec<u8> = text
                .bytes()
                .filter(u8::is_ascii_digit)
                .map(|d| d - b'0')
                .collect();
            assert!(fpe::luhn_valid(&orig));
            assert!(!fpe::luhn_valid(&digits), "a token fails the Luhn check");
            assert_eq!(
                digits[..keep_first],
                orig[..keep_first],
                "first digits kept"
            );
            assert_eq!(
                digits[digits.len() - 4..],
                orig[orig.len() - 4..],
                "last 4 kept"
            );
            assert_eq!(
                fpe::detokenize_pan(key, &t, keep_first).as_deref(),
                Ok(text)
            );
        }
        Err(FpeError::BadPan(_)) => {}
        Err(e) => panic!("tokenize_pan: unexpected error {e:?}"),
    }
    if let Ok(p) = fpe::detokenize_pan(key, text, keep_first) {
        assert_eq!(fpe::tokenize_pan(key, &p, keep_first).as_deref(), Ok(text));
    }
}
