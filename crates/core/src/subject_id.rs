//! A data subject's identifier as a value of the identifier column's type (docs/gdpr.md): the
//! erasure and the export compare it with the column's values as that type, so that `1001`
//! finds `1001.00` in a numeric column and `A0EEBC99-…` finds the uuid in lower case (attacker
//! round 8, issue 27: compared as text, both matched nothing after an allowed type change).
//! None when the identifier is no value of the type: it then cannot occur in the column.

/// Longest numeric literal accepted (Postgres's own limit is far larger; an identifier is short).
const MAX_NUMERIC_LEN: usize = 1000;

/// The identifier as an integer (written in decimal, optionally signed), in canonical form.
pub fn integer(subject: &str) -> Option<String> {
    subject.parse::<i64>().ok().map(|v| v.to_string())
}

/// The identifier as a decimal number (`[+-]digits[.digits]`, no exponent, NaN or infinity), as
/// written: the comparison is numeric, so `1001` equals `1001.00`.
pub fn numeric(subject: &str) -> Option<String> {
    let unsigned = subject.strip_prefix(['+', '-']).unwrap_or(subject);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    (subject.len() <= MAX_NUMERIC_LEN
        && !(whole.is_empty() && fraction.is_empty())
        && digits(whole)
        && digits(fraction))
    .then(|| subject.to_string())
}

/// The identifier as a uuid in any form Postgres reads (upper or lower case, with or without
/// braces and hyphens), in canonical lower-case hyphenated form.
pub fn uuid(subject: &str) -> Option<String> {
    let inner = subject
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(subject);
    let hex: String = inner.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) || inner.starts_with('-') {
        return None;
    }
    let hex = hex.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_canonical() {
        assert_eq!(integer("1001").as_deref(), Some("1001"));
        assert_eq!(integer("+0042").as_deref(), Some("42"));
        assert_eq!(integer("-7").as_deref(), Some("-7"));
        assert_eq!(integer(" 7"), None);
        assert_eq!(integer("1001.00"), None);
        assert_eq!(integer("99999999999999999999"), None);
        assert_eq!(integer(""), None);
    }

    #[test]
    fn numerics_are_decimal_literals() {
        assert_eq!(numeric("1001").as_deref(), Some("1001"));
        assert_eq!(numeric("1001.00").as_deref(), Some("1001.00"));
        assert_eq!(numeric("-.5").as_deref(), Some("-.5"));
        assert_eq!(numeric("5."), Some("5.".into()));
        for bad in ["", ".", "-", "1e3", "NaN", "Infinity", "1 ", "1,5", "0x10"] {
            assert_eq!(numeric(bad), None, "{bad}");
        }
        assert_eq!(numeric(&"9".repeat(MAX_NUMERIC_LEN + 1)), None);
    }

    #[test]
    fn uuids_in_every_form_postgres_reads() {
        let canonical = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        for form in [
            canonical,
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
        ] {
            assert_eq!(uuid(form).as_deref(), Some(canonical), "{form}");
        }
        for bad in [
            "",
            "alice",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            "g0eebc999c0b4ef8bb6d6bb9bd380a11",
        ] {
            assert_eq!(uuid(bad), None, "{bad}");
        }
    }
}
