//! Regular expressions with RE2's syntax and semantics, as npm `re2` (used by Koncorde) gives.
//!
//! RE2's Perl classes are ASCII (`\d`, `\w`, `\s` without `\v`, `\b`), while the `regex` crate's
//! are Unicode: we rewrite them before compiling. `\cX` control escapes are rewritten too.
//! Syntax errors are reported with RE2's wording for the common cases.

use regex_syntax::ast::ErrorKind;

/// Rewrites JavaScript/RE2 escapes that the `regex` crate reads differently.
fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let (inside, outside) = match next {
                    'd' => ("0-9", "[0-9]"),
                    'D' => ("", "[^0-9]"),
                    'w' => ("0-9A-Za-z_", "[0-9A-Za-z_]"),
                    'W' => ("", "[^0-9A-Za-z_]"),
                    's' => ("\\t\\n\\x0C\\r ", "[\\t\\n\\x0C\\r ]"),
                    'S' => ("", "[^\\t\\n\\x0C\\r ]"),
                    'b' if !in_class => ("", "(?-u:\\b)"),
                    'B' if !in_class => ("", "(?-u:\\B)"),
                    'c' if chars.peek().is_some_and(char::is_ascii_alphabetic) => {
                        let letter = chars.next().unwrap_or('@');
                        out.push_str(&format!("\\x{{{:02X}}}", (letter as u32) % 32));
                        continue;
                    }
                    _ => {
                        out.push('\\');
                        out.push(next);
                        continue;
                    }
                };
                if in_class && !inside.is_empty() {
                    out.push_str(inside);
                } else if in_class {
                    // Negated classes inside a class: keep RE2's meaning via the regex crate's
                    // ASCII classes.
                    out.push_str(match next {
                        'D' => "[:^digit:]",
                        'W' => "[:^word:]",
                        _ => "[:^space:]",
                    });
                } else {
                    out.push_str(outside);
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push(chars.next().unwrap_or('^'));
                }
                if chars.peek() == Some(&']') {
                    out.push_str("\\]");
                    chars.next();
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '[' if in_class && chars.peek() == Some(&':') => {
                // POSIX class: copy through to its closing ":]".
                out.push('[');
                for d in chars.by_ref() {
                    out.push(d);
                    if d == ']' {
                        break;
                    }
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// `\cA` -> `\x{01}`: the only escape RE2 (through npm re2) reads that `regex_syntax` rejects.
fn replace_control_escapes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('c') if chars.peek().is_some_and(char::is_ascii_alphabetic) => {
                    let letter = chars.next().unwrap_or('@');
                    out.push_str(&format!("\\x{{{:02X}}}", (letter as u32) % 32));
                }
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// RE2's message for a syntax error found by `regex_syntax` in `pattern`.
fn re2_message(pattern: &str, error: &regex_syntax::ast::Error, multi_line: bool) -> String {
    // npm re2 compiles the `m` flag as a `(?m)` prefix, which shows in whole-pattern messages.
    let whole = if multi_line {
        format!("(?m){pattern}")
    } else {
        pattern.to_owned()
    };
    let span = error.span();
    let text = pattern
        .get(span.start.offset..span.end.offset)
        .unwrap_or("");
    let rest = pattern.get(span.start.offset..).unwrap_or("");
    match error.kind() {
        ErrorKind::GroupUnclosed => format!("missing ): {whole}"),
        ErrorKind::GroupUnopened => format!("unexpected ): {whole}"),
        ErrorKind::ClassUnclosed => format!("missing ]: {rest}"),
        ErrorKind::ClassRangeInvalid => format!("invalid character class range: {text}"),
        ErrorKind::RepetitionMissing => {
            let op: String = rest.chars().take(1).collect();
            format!("no argument for repetition operator: {op}")
        }
        ErrorKind::RepetitionCountInvalid => format!("invalid repetition size: {text}"),
        ErrorKind::RepetitionCountDecimalEmpty | ErrorKind::RepetitionCountUnclosed => {
            format!("invalid repetition size: {text}")
        }
        ErrorKind::EscapeUnexpectedEof => "trailing \\".to_owned(),
        ErrorKind::EscapeUnrecognized | ErrorKind::EscapeHexInvalid | ErrorKind::EscapeHexEmpty => {
            format!("invalid escape sequence: {text}")
        }
        ErrorKind::GroupNameDuplicate { .. } => "duplicate capture group name".to_owned(),
        ErrorKind::GroupNameInvalid
        | ErrorKind::GroupNameEmpty
        | ErrorKind::GroupNameUnexpectedEof => {
            format!("invalid named capture group: {text}")
        }
        ErrorKind::FlagUnrecognized
        | ErrorKind::FlagUnexpectedEof
        | ErrorKind::UnsupportedLookAround => {
            let start = pattern[..span.start.offset].rfind("(?").unwrap_or(0);
            let end = (span.end.offset).min(pattern.len());
            format!("invalid perl operator: {}", &pattern[start..end])
        }
        _ => format!("invalid regular expression: {pattern}"),
    }
}

/// RE2's message for a program over its memory budget.
const TOO_LARGE: &str = "pattern too large - compile failed";

/// Compiles `pattern` with JavaScript-style `flags` (`i`, `m`, `s`; others are ignored, as
/// npm `re2` ignores them for a single test); the error is RE2's message. A compiled program
/// over `size_limit` bytes is refused as RE2 refuses one over its memory budget, and so is a
/// pattern longer than `size_limit`, before any compiling (its program could not be smaller).
pub(crate) fn compile(
    pattern: &str,
    flags: &str,
    size_limit: usize,
) -> Result<regex::Regex, String> {
    if pattern.len() > size_limit {
        return Err(TOO_LARGE.to_owned());
    }
    let control_free = replace_control_escapes(pattern);
    if let Err(e) = regex_syntax::ast::parse::Parser::new().parse(&control_free) {
        return Err(re2_message(&control_free, &e, flags.contains('m')));
    }
    let translated = translate(pattern);
    let mut builder = regex::RegexBuilder::new(&translated);
    builder
        .case_insensitive(flags.contains('i'))
        .multi_line(flags.contains('m'))
        .dot_matches_new_line(flags.contains('s'))
        .size_limit(size_limit);
    builder.build().map_err(|e| match e {
        regex::Error::Syntax(text) => {
            if text.contains("Unicode property") || text.contains("class") {
                format!("invalid character class range: {pattern}")
            } else {
                format!("invalid regular expression: {pattern}")
            }
        }
        _ => TOO_LARGE.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    /// Compiles with RE2's default budget.
    fn compile(pattern: &str, flags: &str) -> Result<regex::Regex, String> {
        super::compile(pattern, flags, crate::DEFAULT_REGEXP_SIZE_LIMIT)
    }

    #[test]
    fn messages_follow_re2() {
        let cases = [
            ("ab(", "missing ): ab("),
            ("a)", "unexpected ): a)"),
            ("[a", "missing ]: [a"),
            ("*a", "no argument for repetition operator: *"),
            ("[z-a]", "invalid character class range: z-a"),
            ("a{2,1}", "invalid repetition size: {2,1}"),
            ("a\\", "trailing \\"),
            ("(?z)a", "invalid perl operator: (?z"),
        ];
        for (pattern, want) in cases {
            assert_eq!(compile(pattern, "").unwrap_err(), want, "{pattern}");
        }
    }

    #[test]
    fn perl_classes_are_ascii() {
        assert!(!compile(r"\d", "").unwrap().is_match("٣"));
        assert!(compile(r"^\w$", "").unwrap().is_match("e"));
        assert!(!compile(r"^\w$", "").unwrap().is_match("é"));
        assert!(!compile(r"^\s$", "").unwrap().is_match("\u{b}"));
        assert!(compile(r"\bx", "").unwrap().is_match("éx"));
        assert!(compile(r"\cA", "").unwrap().is_match("\u{1}"));
        assert!(compile(r"[\d]", "").unwrap().is_match("5"));
    }
}
