//! Format-preserving encryption: FF1 (NIST SP 800-38G) with AES-256 over any alphabet, through
//! the `fpe` crate, and PAN tokenization built on it.
//!
//! FF1 is deterministic and keeps the length and the alphabet: equal inputs give equal outputs
//! (tokens join and index), and the output reveals the input's length. NIST SP 800-38G Rev. 1
//! requires a domain of at least 1,000,000 values (radix^length), which is enforced here.
//!
//! PAN tokens (`tokenize_pan`): the length, the separators, the last four digits and, when
//! asked, the first six stay in clear (what PCI DSS allows to display); FF1 encrypts the other
//! digits but one, under a tweak made of the clear digits; the remaining digit is then set so
//! that the token fails the Luhn check, so a token is never mistaken for a card number. The
//! original's digit there is recomputed from the card number's own Luhn check digit on
//! detokenization, so the map stays a bijection on Luhn-valid card numbers.

use crate::kdf::{derive_subkey, Purpose};
use aes::Aes256;
use fpe::ff1::{FlexibleNumeralString, FF1};
use std::fmt;
use zeroize::Zeroizing;

/// The FF1 key of one data-key version (HKDF sub-key of purpose "fpe"), zeroized on drop.
pub struct FpeKey {
    key: Zeroizing<[u8; 32]>,
}

impl FpeKey {
    pub fn from_root(root: &[u8; 32], key_id: [u8; 16], key_version: u32) -> Self {
        FpeKey {
            key: derive_subkey::<32>(root, &key_id, key_version, Purpose::Fpe),
        }
    }

    pub fn encrypt(
        &self,
        alphabet: &Alphabet,
        value: &str,
        tweak: &[u8],
    ) -> Result<String, FpeError> {
        encrypt(&self.key, alphabet, value, tweak)
    }

    pub fn decrypt(
        &self,
        alphabet: &Alphabet,
        value: &str,
        tweak: &[u8],
    ) -> Result<String, FpeError> {
        decrypt(&self.key, alphabet, value, tweak)
    }

    pub fn tokenize_pan(&self, pan: &str, keep_first: usize) -> Result<String, FpeError> {
        tokenize_pan(&self.key, pan, keep_first)
    }

    pub fn detokenize_pan(&self, token: &str, keep_first: usize) -> Result<String, FpeError> {
        detokenize_pan(&self.key, token, keep_first)
    }
}

/// NIST SP 800-38G Rev. 1: radix^length must be at least one million.
pub const MIN_DOMAIN: u128 = 1_000_000;

/// The longest value (characters) and tweak (bytes) FF1 takes here. FF1's cost grows with the
/// square of the length (150,000 digits took 16.7 s, and the crate's loop cannot be
/// interrupted); identifiers are far shorter.
pub const MAX_LENGTH: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FpeError {
    /// The alphabet has fewer than 2 or more than 65,536 characters, or a repeated one.
    BadAlphabet(String),
    /// A character of the value is not in the alphabet.
    NotInAlphabet(char),
    /// radix^length is below NIST's minimum domain.
    DomainTooSmall { radix: usize, length: usize },
    /// Not a card number (or token) this can tokenize.
    BadPan(String),
    /// The value or the tweak is longer than `MAX_LENGTH`.
    TooLong { what: &'static str, length: usize },
}

impl fmt::Display for FpeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FpeError::BadAlphabet(why) => write!(f, "invalid FPE alphabet: {why}"),
            FpeError::NotInAlphabet(c) => {
                write!(f, "the value contains {c:?}, which is not in the alphabet")
            }
            FpeError::DomainTooSmall { radix, length } => write!(
                f,
                "FF1 domain too small: {radix}^{length} values, NIST SP 800-38G requires at least 1,000,000"
            ),
            FpeError::BadPan(why) => write!(f, "{why}"),
            FpeError::TooLong { what, length } => write!(
                f,
                "FF1 takes at most {MAX_LENGTH} characters of value and bytes of tweak, not a {what} of {length}"
            ),
        }
    }
}

impl std::error::Error for FpeError {}

/// An FF1 alphabet: its characters, numbered in order.
pub struct Alphabet {
    chars: Vec<char>,
    /// Numeral of each ASCII character (u32::MAX: not in the alphabet).
    ascii: [u32; 128],
    /// The other characters with their numerals, sorted by character (binary search: an
    /// alphabet has up to 65,536 characters).
    others: Vec<(char, u32)>,
}

impl Alphabet {
    pub fn new(alphabet: &str) -> Result<Alphabet, FpeError> {
        let chars: Vec<char> = alphabet.chars().collect();
        if chars.len() < 2 || chars.len() > 1 << 16 {
            return Err(FpeError::BadAlphabet(format!(
                "it needs 2 to 65536 characters, not {}",
                chars.len()
            )));
        }
        let mut ascii = [u32::MAX; 128];
        let mut others = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, &c) in chars.iter().enumerate() {
            if !seen.insert(c) {
                return Err(FpeError::BadAlphabet(format!("{c:?} appears twice")));
            }
            if c.is_ascii() {
                ascii[c as usize] = i as u32;
            } else {
                others.push((c, i as u32));
            }
        }
        others.sort_unstable();
        Ok(Alphabet {
            chars,
            ascii,
            others,
        })
    }

    pub fn radix(&self) -> usize {
        self.chars.len()
    }

    /// Whether `value` can be encrypted over this alphabet: every character in it and a domain
    /// of at least NIST's minimum (the errors `encrypt` would return).
    pub fn check(&self, value: &str) -> Result<(), FpeError> {
        // The length first: no character of a value far too long is looked up.
        check_length("value", value.chars().count())?;
        let mut length = 0;
        for c in value.chars() {
            self.numeral(c)?;
            length += 1;
        }
        check_length("value", length)?;
        check_domain(self.radix(), length)
    }

    fn numeral(&self, c: char) -> Result<u16, FpeError> {
        let n = if c.is_ascii() {
            Some(self.ascii[c as usize]).filter(|&n| n != u32::MAX)
        } else {
            self.others
                .binary_search_by_key(&c, |&(a, _)| a)
                .ok()
                .map(|i| self.others[i].1)
        };
        // Numerals are below the radix, at most 65536: they fit in u16.
        n.map(|n| n as u16).ok_or(FpeError::NotInAlphabet(c))
    }

    fn numerals(&self, value: &str) -> Result<Vec<u16>, FpeError> {
        // (Bytes bound characters: no numeral is read from a value far too long.)
        if value.len() > MAX_LENGTH * 4 {
            return Err(FpeError::TooLong {
                what: "value",
                length: value.chars().count(),
            });
        }
        value.chars().map(|c| self.numeral(c)).collect()
    }

    fn text(&self, numerals: &[u16]) -> String {
        numerals.iter().map(|&n| self.chars[n as usize]).collect()
    }
}

/// Refuses a value or tweak longer than `MAX_LENGTH`.
fn check_length(what: &'static str, length: usize) -> Result<(), FpeError> {
    if length > MAX_LENGTH {
        return Err(FpeError::TooLong { what, length });
    }
    Ok(())
}

/// Refuses a domain below NIST's minimum.
fn check_domain(radix: usize, length: usize) -> Result<(), FpeError> {
    let mut domain: u128 = 1;
    for _ in 0..length {
        domain = domain.saturating_mul(radix as u128);
        if domain >= MIN_DOMAIN {
            return Ok(());
        }
    }
    Err(FpeError::DomainTooSmall { radix, length })
}

fn ff1(key: &[u8; 32], radix: usize) -> Result<FF1<Aes256>, FpeError> {
    FF1::<Aes256>::new(key, radix as u32)
        .map_err(|_| FpeError::BadAlphabet(format!("FF1 does not take radix {radix}")))
}

fn crypt_numerals(
    key: &[u8; 32],
    radix: usize,
    numerals: Vec<u16>,
    tweak: &[u8],
    encrypt: bool,
) -> Result<Vec<u16>, FpeError> {
    check_length("value", numerals.len())?;
    check_length("tweak", tweak.len())?;
    check_domain(radix, numerals.len())?;
    let f = ff1(key, radix)?;
    let input = FlexibleNumeralString::from(numerals);
    let out = if encrypt {
        f.encrypt(tweak, &input)
    } else {
        f.decrypt(tweak, &input)
    };
    // The numerals are below the radix (they came from the alphabet) and the length is far
    // below FF1's maximum, the only failures of the crate.
    Ok(Vec::from(out.expect("numerals within the radix")))
}

/// FF1-encrypts `value` (every character in `alphabet`) under `key` and `tweak`.
pub fn encrypt(
    key: &[u8; 32],
    alphabet: &Alphabet,
    value: &str,
    tweak: &[u8],
) -> Result<String, FpeError> {
    let n = alphabet.numerals(value)?;
    Ok(alphabet.text(&crypt_numerals(key, alphabet.radix(), n, tweak, true)?))
}

/// Inverse of [`encrypt`].
pub fn decrypt(
    key: &[u8; 32],
    alphabet: &Alphabet,
    value: &str,
    tweak: &[u8],
) -> Result<String, FpeError> {
    let n = alphabet.numerals(value)?;
    Ok(alphabet.text(&crypt_numerals(key, alphabet.radix(), n, tweak, false)?))
}

/// Whether the digits pass the Luhn check (ISO/IEC 7812-1).
pub fn luhn_valid(digits: &[u8]) -> bool {
    luhn_sum(digits).is_multiple_of(10)
}

fn luhn_sum(digits: &[u8]) -> u32 {
    digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = d as u32;
            if i % 2 == 1 {
                let x = 2 * d;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum()
}

/// The digit at `at` that makes the Luhn sum of `digits` congruent to `residue` mod 10 (one
/// exists and is unique: a position's contribution is a permutation of 0..9).
fn digit_for_residue(digits: &mut [u8], at: usize, residue: u32) -> u8 {
    for d in 0..10 {
        digits[at] = d;
        if luhn_sum(digits) % 10 == residue {
            return d;
        }
    }
    unreachable!("every residue is reachable")
}

/// The Luhn residue every token has (any non-zero value fails the check; fixed so that
/// tokenization is deterministic).
const TOKEN_RESIDUE: u32 = 5;

/// A card number or token as written: its digits, and where the separators were.
struct Pan {
    digits: Vec<u8>,
    /// (position in the text, separator) of each space or dash.
    separators: Vec<(usize, char)>,
}

impl Pan {
    fn parse(text: &str, what: &str) -> Result<Pan, FpeError> {
        let mut digits = Vec::with_capacity(19);
        let mut separators = Vec::new();
        for (i, c) in text.chars().enumerate() {
            match c {
                '0'..='9' => digits.push(c as u8 - b'0'),
                ' ' | '-' => separators.push((i, c)),
                _ => {
                    return Err(FpeError::BadPan(format!(
                        "a {what} holds only digits, spaces and dashes, not {c:?}"
                    )))
                }
            }
        }
        if !(12..=19).contains(&digits.len()) {
            return Err(FpeError::BadPan(format!(
                "a {what} has 12 to 19 digits, not {}",
                digits.len()
            )));
        }
        Ok(Pan { digits, separators })
    }

    fn text(&self) -> String {
        let mut out = String::with_capacity(self.digits.len() + self.separators.len());
        let mut digits = self.digits.iter();
        let mut seps = self.separators.iter().peekable();
        for i in 0..self.digits.len() + self.separators.len() {
            match seps.peek() {
                Some(&&(at, c)) if at == i => {
                    out.push(c);
                    seps.next();
                }
                _ => out.push((b'0' + digits.next().expect("counted")) as char),
            }
        }
        out
    }
}

/// Which digits FF1 encrypts (`start..redundant`) and the redundant digit's position, for a
/// number of `len` digits keeping the first `keep_first` and the last four in clear.
fn layout(len: usize, keep_first: usize) -> Result<(usize, usize), FpeError> {
    if keep_first != 0 && keep_first != 6 {
        return Err(FpeError::BadPan(format!(
            "keep_first must be 0 or 6 (the digits PCI DSS allows to display), not {keep_first}"
        )));
    }
    let redundant = len - 5;
    let encrypted = redundant.saturating_sub(keep_first);
    check_domain(10, encrypted).map_err(|_| {
        FpeError::BadPan(format!(
            "a {len}-digit card number keeping its first {keep_first} and last 4 digits leaves \
             {encrypted} digits to encrypt: 10^{encrypted} is below NIST SP 800-38G's minimum \
             domain of 1,000,000 (keep fewer digits, or use a longer number)"
        ))
    })?;
    Ok((keep_first, redundant))
}

/// The tweak: the digits left in clear and the layout, so equal middle digits of numbers with
/// other visible digits give unrelated tokens.
fn pan_tweak(digits: &[u8], keep_first: usize) -> Vec<u8> {
    let mut t = b"encml-pan-v1:".to_vec();
    t.push(digits.len() as u8);
    t.push(keep_first as u8);
    t.extend_from_slice(&digits[..keep_first]);
    t.extend_from_slice(&digits[digits.len() - 4..]);
    t
}

/// The token of a Luhn-valid card number (see the module comment).
pub fn tokenize_pan(key: &[u8; 32], pan: &str, keep_first: usize) -> Result<String, FpeError> {
    map_pan(key, pan, keep_first, Direction::Tokenize)
}

/// The card number of a token made by [`tokenize_pan`] with the same key and `keep_first`.
pub fn detokenize_pan(key: &[u8; 32], token: &str, keep_first: usize) -> Result<String, FpeError> {
    map_pan(key, token, keep_first, Direction::Detokenize)
}

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    Tokenize,
    Detokenize,
}

/// Both directions: the input's Luhn residue must be the one its kind has (0 for a card
/// number, `TOKEN_RESIDUE` for a token); FF1 maps the hidden digits; the redundant digit is
/// set to give the output the other kind's residue.
fn map_pan(
    key: &[u8; 32],
    text: &str,
    keep_first: usize,
    direction: Direction,
) -> Result<String, FpeError> {
    let tokenize = direction == Direction::Tokenize;
    let (what, residue_in, residue_out) = if tokenize {
        ("card number", 0, TOKEN_RESIDUE)
    } else {
        ("token", TOKEN_RESIDUE, 0)
    };
    let mut p = Pan::parse(text, what)?;
    let (start, redundant) = layout(p.digits.len(), keep_first)?;
    if luhn_sum(&p.digits) % 10 != residue_in {
        return Err(FpeError::BadPan(if tokenize {
            "the card number fails the Luhn check (a token needs a valid number to stay reversible)"
                .into()
        } else {
            "not a card-number token: its Luhn residue is not a token's (a real card number?)"
                .into()
        }));
    }
    let tweak = pan_tweak(&p.digits, keep_first);
    let middle: Vec<u16> = p.digits[start..redundant]
        .iter()
        .map(|&d| d as u16)
        .collect();
    let mapped = crypt_numerals(key, 10, middle, &tweak, tokenize)?;
    for (slot, d) in p.digits[start..redundant].iter_mut().zip(mapped) {
        *slot = d as u8;
    }
    digit_for_residue(&mut p.digits, redundant, residue_out);
    Ok(p.text())
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_and_tweaks_beyond_the_limit_are_refused() {
        let key = [7u8; 32];
        let digits = Alphabet::new("0123456789").unwrap();
        let at_limit = "7".repeat(MAX_LENGTH);
        let out = encrypt(&key, &digits, &at_limit, b"").unwrap();
        assert_eq!(decrypt(&key, &digits, &out, b"").unwrap(), at_limit);
        let over = "7".repeat(MAX_LENGTH + 1);
        assert!(matches!(
            encrypt(&key, &digits, &over, b""),
            Err(FpeError::TooLong { what: "value", .. })
        ));
        assert!(matches!(digits.check(&over), Err(FpeError::TooLong { .. })));
        let long_tweak = vec![0u8; MAX_LENGTH + 1];
        assert!(matches!(
            encrypt(&key, &digits, "1234567", &long_tweak),
            Err(FpeError::TooLong { what: "tweak", .. })
        ));
    }

    use super::*;

    #[test]
    fn large_non_ascii_alphabets_look_up_in_logarithmic_time() {
        // 60,000 CJK and other characters: a linear search per character took 2 s for a
        // 100,000-character value (found by fuzzing, issue 27).
        let alphabet: String = (0x4E00u32..0x4E00 + 60_000)
            .filter_map(char::from_u32)
            .collect();
        let a = Alphabet::new(&alphabet).unwrap();
        let last = alphabet.chars().last().unwrap();
        assert_eq!(a.numeral(last).unwrap() as usize, a.radix() - 1);
        assert_eq!(a.numeral('\u{4E01}').unwrap(), 1);
        assert!(matches!(a.numeral('x'), Err(FpeError::NotInAlphabet('x'))));
        let start = std::time::Instant::now();
        let long: String = std::iter::repeat_n(last, 100_000).collect();
        assert!(matches!(a.check(&long), Err(FpeError::TooLong { .. })));
        let fits: String = std::iter::repeat_n(last, MAX_LENGTH).collect();
        assert!(a.check(&fits).is_ok());
        assert!(
            start.elapsed() < std::time::Duration::from_millis(200),
            "{:?}",
            start.elapsed()
        );
        let key = [3u8; 32];
        let v: String = alphabet.chars().rev().take(12).collect();
        let c = encrypt(&key, &a, &v, b"t").unwrap();
        assert_eq!(decrypt(&key, &a, &c, b"t").unwrap(), v);
    }

    fn key(hex_key: &str) -> [u8; 32] {
        hex::decode(hex_key).unwrap().try_into().unwrap()
    }

    const NIST_KEY: &str = "2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F7F036D6F04FC6A94";

    // NIST SP 800-38G FF1 samples 7-9 (AES-256).
    #[test]
    fn nist_ff1_aes256_samples() {
        let k = key(NIST_KEY);
        let digits = Alphabet::new("0123456789").unwrap();
        assert_eq!(
            encrypt(&k, &digits, "0123456789", &[]).unwrap(),
            "6657667009"
        );
        let tweak = hex::decode("39383736353433323130").unwrap();
        assert_eq!(
            encrypt(&k, &digits, "0123456789", &tweak).unwrap(),
            "1001623463"
        );
        let base36 = Alphabet::new("0123456789abcdefghijklmnopqrstuvwxyz").unwrap();
        let tweak = hex::decode("3737373770717273373737").unwrap();
        let ct = encrypt(&k, &base36, "0123456789abcdefghi", &tweak).unwrap();
        assert_eq!(ct, "xs8a0azh2avyalyzuwd");
        assert_eq!(
            decrypt(&k, &base36, &ct, &tweak).unwrap(),
            "0123456789abcdefghi"
        );
    }

    #[test]
    fn domain_and_alphabet_are_checked() {
        let k = [7u8; 32];
        let digits = Alphabet::new("0123456789").unwrap();
        assert_eq!(
            encrypt(&k, &digits, "12345", &[]),
            Err(FpeError::DomainTooSmall {
                radix: 10,
                length: 5
            })
        );
        assert!(encrypt(&k, &digits, "123456", &[]).is_ok());
        assert_eq!(
            encrypt(&k, &digits, "12a456", &[]),
            Err(FpeError::NotInAlphabet('a'))
        );
        assert!(matches!(Alphabet::new("0"), Err(FpeError::BadAlphabet(_))));
        assert!(matches!(
            Alphabet::new("001"),
            Err(FpeError::BadAlphabet(_))
        ));
        // Multi-byte alphabets work character by character.
        let greek = Alphabet::new("αβγδεζηθικ").unwrap();
        let ct = encrypt(&k, &greek, "αβγδεζηθ", b"t").unwrap();
        assert_eq!(ct.chars().count(), 8);
        assert_eq!(decrypt(&k, &greek, &ct, b"t").unwrap(), "αβγδεζηθ");
    }

    #[test]
    fn pan_tokens_keep_the_visible_digits_and_fail_luhn() {
        let k = [9u8; 32];
        for (pan, keep) in [
            ("4111 1111 1111 1111", 0),
            ("4111-1111-1111-1111", 0),
            ("5500005555555559", 0),
            ("378282246310005", 0),
            ("6011000990139424", 0),
            ("4222222222222", 0),
            ("3530111333300000", 0),
            ("4000056655665556783", 6), // 19 digits
            ("4000 0566 5566 5556 783", 6),
        ] {
            let tok = tokenize_pan(&k, pan, keep).unwrap();
            assert_eq!(tok.len(), pan.len(), "{pan}");
            let digits = |s: &str| -> Vec<u8> {
                s.bytes()
                    .filter(u8::is_ascii_digit)
                    .map(|b| b - b'0')
                    .collect()
            };
            let (d, t) = (digits(pan), digits(&tok));
            assert_eq!(d[d.len() - 4..], t[t.len() - 4..]);
            assert_eq!(d[..keep], t[..keep]);
            assert!(!luhn_valid(&t), "{tok}");
            for (a, b) in pan.chars().zip(tok.chars()) {
                assert_eq!(a.is_ascii_digit(), b.is_ascii_digit());
                if !a.is_ascii_digit() {
                    assert_eq!(a, b);
                }
            }
            assert_ne!(tok, pan);
            assert_eq!(detokenize_pan(&k, &tok, keep).unwrap(), pan);
            // Deterministic, key-dependent.
            assert_eq!(tokenize_pan(&k, pan, keep).unwrap(), tok);
            assert_ne!(tokenize_pan(&[8u8; 32], pan, keep).unwrap(), tok);
        }
    }

    #[test]
    fn pans_refused_with_reasons() {
        let k = [9u8; 32];
        let err = |r: Result<String, FpeError>| r.unwrap_err().to_string();
        assert!(err(tokenize_pan(&k, "4111111111111111", 6)).contains("minimum domain"));
        assert!(err(tokenize_pan(&k, "4111111111111112", 0)).contains("Luhn"));
        assert!(err(tokenize_pan(&k, "4111x111111111111", 0)).contains("not 'x'"));
        assert!(err(tokenize_pan(&k, "41111111111", 0)).contains("12 to 19"));
        assert!(err(tokenize_pan(&k, "4111111111111111", 4)).contains("0 or 6"));
        // A real card number is not a token.
        assert!(err(detokenize_pan(&k, "4111111111111111", 0)).contains("not a card-number token"));
    }

    #[test]
    fn luhn_known_numbers() {
        let d = |s: &str| -> Vec<u8> { s.bytes().map(|b| b - b'0').collect() };
        assert!(luhn_valid(&d("79927398713")));
        assert!(!luhn_valid(&d("79927398710")));
        assert!(luhn_valid(&d("4111111111111111")));
    }

    #[test]
    fn check_reports_what_encrypt_would_refuse() {
        let digits = Alphabet::new("0123456789").unwrap();
        assert!(digits.check("123456").is_ok());
        assert!(matches!(
            digits.check("12345"),
            Err(FpeError::DomainTooSmall { .. })
        ));
        assert!(matches!(
            digits.check("12345a"),
            Err(FpeError::NotInAlphabet('a'))
        ));
    }
}
