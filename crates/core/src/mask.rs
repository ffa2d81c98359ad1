//! Display masks for personal data (card numbers, e-mail addresses, phone numbers, any text),
//! character by character so multi-byte text keeps its shape. Masks hide, they do not encrypt:
//! what they keep is meant to be shown.

/// The length in bytes of `partial`'s result, computed without building it (a long pad
/// multiplies the value's length: callers refuse results a Postgres value cannot hold first);
/// saturates at `usize::MAX`.
pub fn partial_len(value: &str, keep_prefix: usize, keep_suffix: usize, pad: &str) -> usize {
    let n = value.chars().count();
    let budget = n / 2;
    let prefix = keep_prefix.min(budget);
    let suffix = keep_suffix.min(budget - prefix);
    let kept: usize = value
        .chars()
        .enumerate()
        .filter(|&(i, _)| i < prefix || i >= n - suffix)
        .map(|(_, c)| c.len_utf8())
        .sum();
    (n - prefix - suffix)
        .saturating_mul(pad.len())
        .saturating_add(kept)
}

/// Keeps the first `keep_prefix` and the last `keep_suffix` characters and replaces each other
/// character with `pad`. At most half of the characters (rounded down) are ever kept, the
/// prefix first: a short value is not shown whole because its prefix and suffix overlap.
pub fn partial(value: &str, keep_prefix: usize, keep_suffix: usize, pad: &str) -> String {
    let n = value.chars().count();
    let budget = n / 2;
    let prefix = keep_prefix.min(budget);
    let suffix = keep_suffix.min(budget - prefix);
    let mut out = String::with_capacity(value.len().max(n * pad.len()));
    for (i, c) in value.chars().enumerate() {
        if i < prefix || i >= n - suffix {
            out.push(c);
        } else {
            out.push_str(pad);
        }
    }
    out
}

/// A card number with every digit but the last four (and the first `keep_first`) replaced by
/// `*`; separators and other characters stay. Digits of every script count (`٤١١١`, full-width
/// `４１１１`: any numeric character), not only ASCII ones.
pub fn pan(value: &str, keep_first: usize) -> String {
    digits(value, keep_first, 4)
}

/// A phone number with every digit but the last `keep_last` replaced by `*`, formatting kept;
/// digits of every script count, as for `pan`.
pub fn phone(value: &str, keep_last: usize) -> String {
    digits(value, 0, keep_last)
}

/// The separators `pan` and `phone` leave in place; every other character (digits, letters,
/// symbols, emoji, combining marks) is masked like a digit (attacker rounds 3 and 4 found
/// letters and symbols shown whole).
const SEPARATORS: &[u8] = b"-()+./,:#";

fn maskable(c: char) -> bool {
    !(c.is_whitespace() || (c.is_ascii() && SEPARATORS.contains(&(c as u8))))
}

fn maskable_byte(b: u8) -> bool {
    !(b.is_ascii_whitespace() || SEPARATORS.contains(&b))
}

/// A value with no more digits than the first and last kept would be shown whole: then at most
/// half of its digits are kept (the first ones first), as `partial` does.
fn kept_digits(digits: usize, keep_first: usize, keep_last: usize) -> (usize, usize) {
    if keep_first.saturating_add(keep_last) < digits {
        return (keep_first, keep_last);
    }
    let budget = digits / 2;
    let first = keep_first.min(budget);
    (first, keep_last.min(budget - first))
}

/// Every character of `value` that is not whitespace or a separator (`SEPARATORS`) counts as a
/// digit: all but the first `keep_first` and the last `keep_last` are replaced by `*`.
pub fn digits(value: &str, keep_first: usize, keep_last: usize) -> String {
    if value.is_ascii() {
        let mut out = value.as_bytes().to_vec();
        digits_masked_in_place(&mut out, keep_first, keep_last);
        return String::from_utf8(out).expect("ASCII replaced by ASCII");
    }
    let digits = value.chars().filter(|&c| maskable(c)).count();
    let (keep_first, keep_last) = kept_digits(digits, keep_first, keep_last);
    let mut seen = 0;
    value
        .chars()
        .map(|c| {
            if !maskable(c) {
                return c;
            }
            seen += 1;
            if seen <= keep_first || seen > digits.saturating_sub(keep_last) {
                c
            } else {
                '*'
            }
        })
        .collect()
}

/// `pan`/`phone` on the bytes of an all-ASCII text, in place: every digit but the first
/// `keep_first` and the last `keep_last` becomes `*`. (Other text goes through `pan`/`phone`:
/// digits of other scripts are several bytes long.)
pub fn digits_masked_in_place(bytes: &mut [u8], keep_first: usize, keep_last: usize) {
    let digits = bytes.iter().filter(|&&b| maskable_byte(b)).count();
    let (keep_first, keep_last) = kept_digits(digits, keep_first, keep_last);
    // One pass from the end past the kept last digits, one from the start over the rest.
    let mut end = bytes.len();
    let mut kept_last = 0;
    while kept_last < keep_last && end > 0 {
        end -= 1;
        kept_last += usize::from(maskable_byte(bytes[end]));
    }
    let mut kept_first = 0;
    for b in bytes[..end].iter_mut().filter(|b| maskable_byte(**b)) {
        if kept_first < keep_first {
            kept_first += 1;
        } else {
            *b = b'*';
        }
    }
}

/// `email` in place for an all-ASCII address (the result has the same length); false, with
/// `bytes` untouched, for anything else, which `email` handles.
pub fn email_ascii_in_place(bytes: &mut [u8]) -> bool {
    if !bytes.is_ascii() {
        return false;
    }
    let Some(at) = bytes.iter().position(|&b| b == b'@') else {
        return false;
    };
    if bytes[at + 1..].contains(&b'@') {
        return false;
    }
    let domain_end = match bytes[at + 1..].iter().rposition(|&b| b == b'.') {
        Some(dot) if dot > 0 => at + 1 + dot,
        _ => bytes.len(),
    };
    // Kept: the first character of the local part, the '@', the first of the domain and the
    // top-level domain from its dot on.
    // A part of one character would be kept whole: it is masked too.
    if at == 1 {
        bytes[0] = b'*';
    } else if at > 1 {
        bytes[1..at].fill(b'*');
    }
    if domain_end == at + 2 {
        bytes[at + 1] = b'*';
    } else if domain_end > at + 2 {
        bytes[at + 2..domain_end].fill(b'*');
    }
    true
}

/// An e-mail address with the first character of the local part and of the domain kept, the
/// top-level domain kept, everything else `*`: `jane.doe@example.org` → `j*******@e******.org`.
/// Text without a single `@` is masked like `partial(value, 1, 0, "*")`.
pub fn email(value: &str) -> String {
    let Some((local, domain)) = value.split_once('@').filter(|(_, d)| !d.contains('@')) else {
        return partial(value, 1, 0, "*");
    };
    let (host, tld) = match domain.rsplit_once('.') {
        Some((h, t)) if !h.is_empty() => (h, Some(t)),
        _ => (domain, None),
    };
    let mut out = String::with_capacity(value.len());
    push_first_kept(&mut out, local);
    out.push('@');
    push_first_kept(&mut out, host);
    if let Some(t) = tld {
        out.push('.');
        out.push_str(t);
    }
    out
}

/// Appends the first character of `s` and a `*` for each other character; a single character
/// is masked too (it would be the whole part).
fn push_first_kept(out: &mut String, s: &str) {
    let mut chars = s.chars();
    if let Some(first) = chars.next() {
        // One letter, perhaps with combining marks (`j\u{301}`): the whole part.
        if s.chars().filter(|c| c.is_alphanumeric()).count() <= 1 {
            out.extend(s.chars().map(|_| '*'));
            return;
        }
        out.push(first);
        out.extend(chars.map(|_| '*'));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn digits_of_every_script_are_masked() {
        // Arabic-Indic and full-width digits (issue 27: they came back unchanged).
        assert_eq!(pan("٤١١١١١١١١١١١١١١١", 0), "************١١١١");
        assert_eq!(
            pan("４１１１ １１１１ １１１１ １１１１", 6),
            "４１１１ １１** **** １１１１"
        );
        assert_eq!(phone("+١ ٥٥٥ ١٢٣ ٤٥٦٧", 4), "+* *** *** ٤٥٦٧");
        assert_eq!(pan("4111 1111 1111 1111", 0), "**** **** **** 1111");
    }

    use super::*;

    #[test]
    fn partial_keeps_at_most_half() {
        assert_eq!(partial("4111111111111111", 0, 4, "*"), "************1111");
        assert_eq!(partial("abcdef", 1, 1, "*"), "a****f");
        assert_eq!(partial("abc", 2, 2, "*"), "a**"); // 3 chars: one kept
        assert_eq!(partial("ab", 5, 5, "#"), "a#");
        assert_eq!(partial("", 1, 1, "*"), "");
        assert_eq!(partial("Ünïcödé", 2, 1, "·"), "Ün····é");
        assert_eq!(partial("東京都千代田区", 1, 2, "＊"), "東＊＊＊＊田区");
        assert_eq!(partial("secret", 0, 0, "xy"), "xyxyxyxyxyxy");
    }

    #[test]
    fn partial_len_is_the_length_of_partial() {
        for (v, p, s, pad) in [
            ("4111111111111111", 0, 4, "*"),
            ("abc", 2, 2, "*"),
            ("", 1, 1, "*"),
            ("Ünïcödé", 2, 1, "·"),
            ("東京都千代田区", 1, 2, "＊"),
            ("secret", 0, 0, "xy"),
        ] {
            assert_eq!(
                partial_len(v, p, s, pad),
                partial(v, p, s, pad).len(),
                "{v}"
            );
        }
    }

    #[test]
    fn pan_phone_email() {
        assert_eq!(pan("4111 1111 1111 1111", 0), "**** **** **** 1111");
        assert_eq!(pan("4111-1111-1111-1111", 6), "4111-11**-****-1111");
        assert_eq!(phone("+1 (555) 123-4567", 4), "+* (***) ***-4567");
        // Never the whole value (attacker round 2): when the kept digits would cover every digit,
        // at most half are kept.
        assert_eq!(phone("12", 4), "*2");
        assert_eq!(pan("41111111", 6), "4111****");
        assert_eq!(pan("٤١١١١١١١", 6), "٤١١١****");
        assert_eq!(email("a@b"), "*@*");
        // Letters count as digits (vanity numbers, CJK numerals, text that is no number): no
        // value without digits is shown whole (attacker round 3).
        assert_eq!(phone("1-800-FLOWERS", 4), "*-***-***WERS");
        assert_eq!(pan("ABCDEFGH", 0), "****EFGH");
        assert_eq!(pan("一二三四五六七八", 0), "****五六七八");
        assert_eq!(phone("call me", 4), "**ll me");
        // Symbols and emoji too; whitespace and the separators -()+./,:# stay.
        assert_eq!(pan("12🙂34🙂56🙂78", 0), "*******6🙂78");
        assert_eq!(pan("∑∏√∞±", 0), "*∏√∞±");
        assert_eq!(phone("$$$$$", 4), "*$$$$");
        assert_eq!(phone("+1 (555) 123-4567", 4), "+* (***) ***-4567");
        assert_eq!(email("j\u{301}@q\u{301}.com"), "**@**.com");
        assert_eq!(email("a@b.org"), "*@*.org");
        assert_eq!(email("ab@cd.org"), "a*@c*.org");
        assert_eq!(email("jane.doe@example.org"), "j*******@e******.org");
        assert_eq!(email("émile@café.fr"), "é****@c***.fr");
        assert_eq!(email("root@localhost"), "r***@l********");
        assert_eq!(email("not an address"), "n*************");
        assert_eq!(email("a@b@c"), "a****");
        for e in [
            "jane.doe@example.org",
            "root@localhost",
            "a@b.c",
            "a@b",
            "x@.com",
            "@example.org",
            "me@",
        ] {
            let mut b = e.as_bytes().to_vec();
            assert!(email_ascii_in_place(&mut b), "{e}");
            assert_eq!(String::from_utf8(b).unwrap(), email(e), "{e}");
        }
        assert!(!email_ascii_in_place(&mut b"plain".to_vec()));
        assert!(!email_ascii_in_place(&mut "é@x.fr".as_bytes().to_vec()));
    }

    #[test]
    fn digits_in_place_keeps_first_and_last() {
        // Reference: number the digits, mask those after the first `first` and before the
        // last `last`.
        fn reference(v: &str, first: usize, last: usize) -> String {
            let total = v.bytes().filter(|&b| maskable_byte(b)).count();
            let (first, last) = kept_digits(total, first, last);
            let mut seen = 0;
            v.bytes()
                .map(|b| {
                    if !maskable_byte(b) {
                        return b as char;
                    }
                    seen += 1;
                    if seen > first && seen + last <= total {
                        '*'
                    } else {
                        b as char
                    }
                })
                .collect()
        }
        for v in [
            "",
            "1",
            "12345",
            "4111 1111 1111 1111",
            "+1 (555) 123-4567",
            "ab-12-cd-3",
            "--",
        ] {
            for first in [0, 1, 6, 20] {
                for last in [0, 1, 4, 20] {
                    let mut b = v.as_bytes().to_vec();
                    digits_masked_in_place(&mut b, first, last);
                    assert_eq!(
                        String::from_utf8(b).unwrap(),
                        reference(v, first, last),
                        "{v} {first} {last}"
                    );
                }
            }
        }
    }
}
