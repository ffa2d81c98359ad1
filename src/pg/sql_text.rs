//! Quoting for SQL text the extension builds (views, triggers, catalog queries): always quoted,
//! so that any name or value is safe where Postgres reads it back.

/// `'…'` with embedded quotes doubled; text with a backslash is written `E'…'` with the
/// backslashes doubled, as Postgres's own quote_literal does, so that it reads back the same
/// whatever standard_conforming_strings says (a database or role may turn it off).
pub fn quote_literal(s: &str) -> String {
    let quoted = s.replace('\'', "''");
    if quoted.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

/// `"…"` with embedded double quotes doubled, whether or not the name needs quoting.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b'c"), "E'a\\\\b''c'");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
