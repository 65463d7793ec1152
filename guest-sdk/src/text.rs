//! Shortening text to a limit without breaking it.
//!
//! Every destination has length limits (a Slack header holds 150 characters,
//! a Teams message 28 KB) and Confluence titles and excerpts are as long as
//! their authors made them. Cutting a Rust string at a byte index can panic
//! in the middle of a character, and a silent cut hides that text is
//! missing; these helpers cut on character boundaries and mark the cut.

/// What marks a cut: one character, so it costs one unit of a limit.
pub const ELLIPSIS: char = '…';

/// `text` shortened to at most `max_chars` characters (Unicode scalar
/// values), ending in [`ELLIPSIS`] when something was cut.
///
/// ```
/// use pagehook_guest::text::truncate;
/// assert_eq!(truncate("Release notes", 8), "Release…");
/// assert_eq!(truncate("short", 8), "short");
/// ```
pub fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_owned(),
        Some(_) if max_chars == 0 => String::new(),
        Some(_) => {
            // Keep max_chars - 1 characters and the ellipsis.
            let cut = text
                .char_indices()
                .nth(max_chars - 1)
                .map(|(i, _)| i)
                .unwrap_or(text.len());
            let mut out = String::with_capacity(cut + ELLIPSIS.len_utf8());
            out.push_str(text[..cut].trim_end());
            out.push(ELLIPSIS);
            out
        }
    }
}

/// `text` shortened to at most `max_bytes` bytes of UTF-8, cut on a
/// character boundary and ending in [`ELLIPSIS`] when something was cut;
/// for limits that are counted in bytes (payload sizes) rather than characters.
pub fn truncate_bytes(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let room = max_bytes.saturating_sub(ELLIPSIS.len_utf8());
    if room == 0 {
        return String::new();
    }
    let mut cut = room;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(max_bytes);
    out.push_str(text[..cut].trim_end());
    out.push(ELLIPSIS);
    out
}

/// Compile-time check behind [`mrkdwn!`](crate::mrkdwn!) and
/// [`markdown!`](crate::markdown!): the template may hold only `{}`
/// placeholders (and `{{`, `}}`), because a captured `{name}` or a format
/// spec would bypass the conversion that escapes each argument.
#[doc(hidden)]
pub const fn __only_empty_placeholders(template: &str) {
    let b = template.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'{' {
            if i + 1 < b.len() && (b[i + 1] == b'{' || b[i + 1] == b'}') {
                i += 2;
                continue;
            }
            panic!(
                "use only `{{}}` placeholders and pass each value as an argument, so that it is escaped"
            );
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_untouched() {
        assert_eq!(truncate("", 0), "");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate_bytes("abc", 3), "abc");
    }

    #[test]
    fn long_text_ends_in_ellipsis_within_limit() {
        let t = truncate("abcdef", 4);
        assert_eq!(t, "abc…");
        assert_eq!(t.chars().count(), 4);
        assert_eq!(truncate("abcdef", 1), "…");
        assert_eq!(truncate("abcdef", 0), "");
    }

    #[test]
    fn counts_characters_not_bytes() {
        let t = truncate("ééééé", 3);
        assert_eq!(t, "éé…");
        let emoji = "🎉🎉🎉🎉";
        assert_eq!(truncate(emoji, 2), "🎉…");
    }

    #[test]
    fn cut_does_not_leave_trailing_space_before_ellipsis() {
        assert_eq!(truncate("one two three", 5), "one…");
    }

    #[test]
    fn byte_truncation_respects_char_boundaries() {
        let text = "aé🎉".repeat(50);
        for max in 0..text.len() {
            let t = truncate_bytes(&text, max);
            assert!(t.len() <= max, "{max}: {} bytes", t.len());
        }
    }
}
