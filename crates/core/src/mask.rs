//! Display masks for personal data (card numbers, e-mail addresses, phone numbers, any text),
//! character by character so multi-byte text keeps its shape. Masks hide, they do not encrypt:
//! what they keep is meant to be shown.

/// Keeps the first `keep_prefix` and the last `keep_suffix` characters and replaces each other
/// character with `pad`. At most half of the characters (rounded down) are ever kept, the
/// prefix first: a short value is not shown whole because its prefix and suffix overlap.
pub fn partial(value: &str, keep_prefix: usize, keep_suffix: usize, pad: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    let budget = n / 2;
    let prefix = keep_prefix.min(budget);
    let suffix = keep_suffix.min(budget - prefix);
    let mut out = String::with_capacity(value.len());
    for (i, c) in chars.iter().enumerate() {
        if i < prefix || i >= n - suffix {
            out.push(*c);
        } else {
            out.push_str(pad);
        }
    }
    out
}

/// A card number with every digit but the last four (and the first `keep_first`) replaced by
/// `*`; separators and other characters stay.
pub fn pan(value: &str, keep_first: usize) -> String {
    digits_masked(value, keep_first, 4)
}

/// A phone number with every digit but the last `keep_last` replaced by `*`, formatting kept.
pub fn phone(value: &str, keep_last: usize) -> String {
    digits_masked(value, 0, keep_last)
}

fn digits_masked(value: &str, keep_first: usize, keep_last: usize) -> String {
    let total = value.chars().filter(char::is_ascii_digit).count();
    let mut seen = 0;
    value
        .chars()
        .map(|c| {
            if !c.is_ascii_digit() {
                return c;
            }
            seen += 1;
            if seen <= keep_first || seen > total.saturating_sub(keep_last) {
                c
            } else {
                '*'
            }
        })
        .collect()
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
    let mut out = first_kept(local);
    out.push('@');
    out.push_str(&first_kept(host));
    if let Some(t) = tld {
        out.push('.');
        out.push_str(t);
    }
    out
}

fn first_kept(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        None => String::new(),
        Some(first) => std::iter::once(first).chain(chars.map(|_| '*')).collect(),
    }
}

#[cfg(test)]
mod tests {
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
    fn pan_phone_email() {
        assert_eq!(pan("4111 1111 1111 1111", 0), "**** **** **** 1111");
        assert_eq!(pan("4111-1111-1111-1111", 6), "4111-11**-****-1111");
        assert_eq!(phone("+1 (555) 123-4567", 4), "+* (***) ***-4567");
        assert_eq!(phone("12", 4), "12");
        assert_eq!(email("jane.doe@example.org"), "j*******@e******.org");
        assert_eq!(email("émile@café.fr"), "é****@c***.fr");
        assert_eq!(email("root@localhost"), "r***@l********");
        assert_eq!(email("not an address"), "n*************");
        assert_eq!(email("a@b@c"), "a****");
    }
}
