//! Text from a request or a guest on its way into a log line: every
//! character that could forge or hide a line is escaped (`\u{2028}`,
//! `\n`, ...): controls (Unicode category Cc, but tab), format characters
//! (Cf: bidirectional overrides, zero-width spaces, ...), the line and
//! paragraph separators (Zl, Zp) and every other non-ASCII space (NBSP
//! among them), which look like a plain space and are not one.
//!
//! The Cf ranges are written out (from Unicode 16): std offers only Cc
//! (`char::is_control`), and a character-database crate for one table of
//! twenty ranges would weigh more than the table.

use std::fmt::{self, Write as _};

/// The format characters (Unicode category Cf).
const FORMAT: [(char, char); 21] = [
    ('\u{00AD}', '\u{00AD}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
    ('\u{E0020}', '\u{E007F}'),
];

/// Whether `c` is escaped in a log line.
fn is_escaped(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_control() && c != '\t';
    }
    c.is_control()
        || c.is_whitespace()
        || FORMAT
            .iter()
            .any(|(first, last)| (*first..=*last).contains(&c))
}

/// `text`, escaped for a log line, appended to `out`.
pub(crate) fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        if is_escaped(c) {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
}

/// `text`, escaped as it is formatted into a log line.
pub(crate) struct Escaped<'a>(pub(crate) &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if is_escaped(c) {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_could_forge_or_hide_a_line_is_escaped() {
        let text = "a\r\nb\u{2028}c\u{2029}d\u{202E}e\u{00A0}f\u{200B}g\u{FEFF}h\u{85}i\tj";
        let mut escaped = String::new();
        escape_into(&mut escaped, text);
        assert_eq!(
            escaped,
            "a\\r\\nb\\u{2028}c\\u{2029}d\\u{202e}e\\u{a0}f\\u{200b}g\\u{feff}h\\u{85}i\tj"
        );
        assert_eq!(Escaped(text).to_string(), escaped);
    }

    #[test]
    fn letters_of_every_script_stay() {
        let text = "café 日本語 ÆØÅ Привет مرحبا 🚀";
        assert_eq!(Escaped(text).to_string(), text);
    }
}
