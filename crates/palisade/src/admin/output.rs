//! Output: aligned text tables for people, JSON for scripts.
//!
//! Much of what is shown came from the network (user names, display names, User-Agent, Contact, event details,
//! call records, voicemail caller names), so every table cell and field value goes through [`clean`]: a control
//! character in a name must not move the cursor, recolour or clear the operator's terminal, forge an extra line
//! or reverse the text around it. JSON needs nothing more: serde escapes control characters itself.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Serialize;

/// Whether `c` must not reach a terminal as it is: C0 controls (newline and tab too: one cell, one line), DEL,
/// C1 controls (0x80–0x9f, which some terminals take as escape sequences) and the Unicode bidirectional
/// controls (which reorder the text shown around them: "Trojan Source").
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `s` with the characters a terminal would act on written as escapes: `\x1b` for C0 controls and DEL,
/// `\u{9b}` for C1 controls and bidi controls. Borrowed when there is nothing to escape (the usual case).
pub fn clean(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !needs_escape(c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// `println!` that never panics: a closed stdout (e.g. `palisade events | head`) just ends the output.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Prints `value` as pretty JSON on stdout.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    crate::say!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints a table with a header row; columns are as wide as their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<Cow<'_, str>>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| clean(cell)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        crate::say!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(|c| c.as_ref()).collect());
    }
}

/// Prints `key: value` lines with the keys aligned.
pub fn fields(pairs: &[(&str, String)]) {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (k, v) in pairs {
        crate::say!("{:<w$} {}", format!("{k}:"), clean(v));
    }
}

/// A cell for an optional value.
pub fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

/// Prints a list command's result: `items` as JSON for scripts, else `empty` when there is nothing
/// to show, else a table with one `row` per item.
pub fn list<T: Serialize>(
    json: bool,
    items: &[T],
    empty: &str,
    headers: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<()> {
    if json {
        return self::json(&items);
    }
    if items.is_empty() {
        crate::say!("{empty}");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = items.iter().map(row).collect();
    table(headers, &rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in [
            "Alice Müller",
            "Yealink SIP-T46S 66.86.0.15",
            "sip:201@127.0.0.1:5060;ob",
            "日本語",
            "",
        ] {
            assert!(matches!(clean(s), std::borrow::Cow::Borrowed(t) if t == s));
        }
    }

    #[test]
    fn terminal_controls_are_escaped() {
        assert_eq!(
            clean("\x1b[2J\x1b]0;pwned\x07Bob"),
            "\\x1b[2J\\x1b]0;pwned\\x07Bob"
        );
        assert_eq!(clean("a\nb\rc\td\0"), "a\\x0ab\\x0dc\\x09d\\x00");
        assert_eq!(clean("del\x7f"), "del\\x7f");
        assert_eq!(clean("c1\u{9b}31m"), "c1\\u{9b}31m");
        assert_eq!(clean("evil\u{202e}gpj.exe"), "evil\\u{202e}gpj.exe");
        assert_eq!(
            clean("\u{2066}x\u{2069}\u{200f}"),
            "\\u{2066}x\\u{2069}\\u{200f}"
        );
    }

    #[test]
    fn escaped_output_has_no_control_characters() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let out = clean(&all);
        assert!(!out.chars().any(super::needs_escape), "{out:?}");
    }
}
