//! Text that other roles' code chose (what a table owner's trigger raises, the names it gives its
//! tables and columns) made safe to show as part of the extension's own messages: characters
//! that move the cursor, reorder or hide text are written as escapes, and the text is cut to a
//! bounded length (attacker rounds 7 and 9, issue 27).

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Bytes kept of one relayed field (message, detail, hint or context): a notice of megabytes
/// would otherwise be kept, carried and raised again whole (attacker round 9).
pub const MAX_FIELD_BYTES: usize = 4096;

/// `text` with every control (Cc), format (Cf: bidirectional overrides such as U+202E,
/// zero-width characters such as U+200B) and line or paragraph separator (Zl, Zp: U+2028,
/// U+2029) character written as an escape (`\n`, `\r`, `\t`, else `\u{202e}`), line feeds
/// too, also between lines of a context: the owner's SQL text and function names are part of
/// those lines, so a line break in them started a line that looked like one of the server's
/// (attacker round 10). The backslash itself is kept: an escape in the output is either one of
/// these or was typed as text, and both read the same harmlessly.
pub fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if hides_or_moves(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn hides_or_moves(c: char) -> bool {
    c.is_control()
        || matches!(
            c.general_category(),
            GeneralCategory::Control
                | GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        )
}

/// `text` as the caller is shown it: escaped (`visible`), then cut to `MAX_FIELD_BYTES`. In that
/// order: an escape is up to ten bytes for one character of up to four, so a field cut before
/// escaping grew again (a notice of 4,096 bytes of U+202E reached the caller as 11 KB).
pub fn shown(text: &str) -> String {
    truncated(&visible(text), MAX_FIELD_BYTES)
}

/// `text` cut to at most `max` bytes (at a character boundary), with how much was left out.
pub fn truncated(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes more)", &text[..end], text.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(visible("a\nb\r\t\u{1b}[2K"), "a\\nb\\r\\t\\u{1b}[2K");
    }

    #[test]
    fn separators_and_format_characters_are_escaped() {
        // Line and paragraph separators, right-to-left override, zero-width space and joiner,
        // byte order mark, soft hyphen, a tag character.
        for c in [
            '\u{2028}',
            '\u{2029}',
            '\u{202e}',
            '\u{200b}',
            '\u{200d}',
            '\u{feff}',
            '\u{ad}',
            '\u{e0041}',
            '\u{85}',
        ] {
            let shown = visible(&format!("x{c}y"));
            assert_eq!(shown, format!("x\\u{{{:x}}}y", c as u32), "{:x}", c as u32);
        }
    }

    #[test]
    fn ordinary_text_is_kept() {
        let text = "Tabelle «Kunden» — 顧客 ✓ \\u{41}";
        assert_eq!(visible(text), text);
    }

    #[test]
    fn shown_text_is_cut_after_escaping() {
        let overrides = "\u{202e}".repeat(MAX_FIELD_BYTES / 3);
        let shown = shown(&overrides);
        assert!(shown.starts_with("\\u{202e}\\u{202e}"), "{}", &shown[..20]);
        let suffix = format!(
            "… ({} bytes more)",
            overrides.len() / 3 * 8 - MAX_FIELD_BYTES
        );
        assert_eq!(shown.len(), MAX_FIELD_BYTES + suffix.len());
        assert!(shown.ends_with(&suffix), "{}", &shown[shown.len() - 40..]);
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        assert_eq!(truncated("short", 10), "short");
        let long = "é".repeat(10); // 20 bytes
        let cut = truncated(&long, 5);
        assert_eq!(cut, "éé… (16 bytes more)");
        assert_eq!(
            truncated(&"x".repeat(5_000_000), MAX_FIELD_BYTES).len(),
            4096 + "… (4995904 bytes more)".len()
        );
    }
}
