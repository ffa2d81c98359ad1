//! Quoting for SQL text the extension builds (views, triggers, catalog queries): always quoted,
//! so that any name or value is safe where Postgres reads it back.

/// `'…'` with embedded quotes doubled (standard_conforming_strings is on in every supported
/// release, so backslashes need no escaping).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
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
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
