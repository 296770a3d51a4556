//! Regular expressions with RE2's syntax and semantics, as npm `re2` (used by Koncorde) gives.

/// Compiles `pattern` with JavaScript-style `flags`; the error is RE2's message.
pub(crate) fn compile(pattern: &str, flags: &str) -> Result<regex::Regex, String> {
    let mut builder = regex::RegexBuilder::new(pattern);
    builder
        .case_insensitive(flags.contains('i'))
        .multi_line(flags.contains('m'))
        .dot_matches_new_line(flags.contains('s'));
    builder.build().map_err(|e| e.to_string())
}
