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

/// The UTC day of `ms` (milliseconds since the Unix epoch) as people read
/// it, `Jan 12, 2026`: plugins have no clock or time zone, and Confluence
/// gives times as epoch milliseconds.
///
/// ```
/// assert_eq!(pagehook_guest::text::utc_date(1_768_241_233_603), "Jan 12, 2026");
/// ```
pub fn utc_date(ms: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = (ms / 86_400_000) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{} {day}, {year}", MONTHS[(month - 1) as usize])
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

/// Defines a safe-text type: a `String` newtype whose content was either
/// escaped for one destination's markup (by `escape`, when made from a
/// string) or written by the plugin author (the `trusted` constructor).
/// Each module passes its own docs, escape function and name for the
/// trusted constructor; an `extra { .. }` holds methods only that type has.
/// The logic (constructors, appending, conversions from strings, `Display`,
/// collecting) is the same for [`Mrkdwn`](crate::slack::Mrkdwn),
/// [`Markdown`](crate::teams::Markdown) and [`Xml`](crate::storage::Xml).
macro_rules! safe_text {
    (
        $(#[$attr:meta])*
        pub struct $name:ident;
        escape: $escape:path;
        $(#[$new_doc:meta])* fn new;
        $(#[$text_doc:meta])* fn text($text:ident);
        $(#[$trusted_doc:meta])* fn $trusted:ident;
        $(extra { $($extra:tt)* })?
        $(#[$push_doc:meta])* fn push;
        $(#[$then_doc:meta])* fn then;
        $(#[$is_empty_doc:meta])* fn is_empty;
        $(#[$as_str_doc:meta])* fn as_str;
        $(#[$into_string_doc:meta])* fn into_string;
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            $(#[$new_doc])*
            pub fn new() -> Self {
                $name(String::new())
            }

            $(#[$text_doc])*
            pub fn text($text: &str) -> Self {
                $name($escape($text))
            }

            $(#[$trusted_doc])*
            pub fn $trusted(markup: impl Into<String>) -> Self {
                $name(markup.into())
            }

            $($($extra)*)?

            $(#[$push_doc])*
            pub fn push(&mut self, part: impl Into<$name>) -> &mut Self {
                self.0.push_str(&part.into().0);
                self
            }

            $(#[$then_doc])*
            pub fn then(mut self, part: impl Into<$name>) -> Self {
                self.push(part);
                self
            }

            $(#[$is_empty_doc])*
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }

            $(#[$as_str_doc])*
            pub fn as_str(&self) -> &str {
                &self.0
            }

            $(#[$into_string_doc])*
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl From<&str> for $name {
            fn from(content: &str) -> Self {
                $name::text(content)
            }
        }

        impl From<String> for $name {
            fn from(content: String) -> Self {
                $name::text(&content)
            }
        }

        impl From<&String> for $name {
            fn from(content: &String) -> Self {
                $name::text(content)
            }
        }

        impl From<$name> for String {
            fn from(markup: $name) -> String {
                markup.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromIterator<$name> for $name {
            fn from_iter<I: IntoIterator<Item = $name>>(iter: I) -> Self {
                let mut out = $name::new();
                for part in iter {
                    out.push(part);
                }
                out
            }
        }
    };
}
pub(crate) use safe_text;

/// What makes a `safe_text!` type an argument of its formatting macro
/// ([`mrkdwn!`](crate::mrkdwn!), [`markdown!`](crate::markdown!)): a
/// reference or a number converts as it is (a number needs no escaping),
/// and the text compares with a string literal.
macro_rules! safe_text_argument {
    ($name:ident) => {
        impl From<&$name> for $name {
            fn from(markup: &$name) -> Self {
                markup.clone()
            }
        }

        $crate::text::safe_text_argument!(
            @numbers $name: u8, u16, u32, u64, usize, i8, i16, i32, i64, isize
        );

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
    (@numbers $name:ident: $($t:ty),*) => {$(
        impl From<$t> for $name {
            fn from(n: $t) -> Self {
                $name(n.to_string())
            }
        }
    )*};
}
pub(crate) use safe_text_argument;

/// The one implementation of [`mrkdwn!`](crate::mrkdwn!) and
/// [`markdown!`](crate::markdown!): `format!` with `$ty::trusted` around the
/// template and `$ty::from` around each argument, after checking at compile
/// time that the template has only `{}` placeholders.
#[doc(hidden)]
#[macro_export]
macro_rules! __safe_text_format {
    ($ty:ty; $template:literal $(, $arg:expr)*) => {{
        const _: () = $crate::text::__only_empty_placeholders($template);
        <$ty>::trusted(::std::format!($template $(, <$ty>::from($arg))*))
    }};
}

/// `url` trimmed when it is an absolute `http://` or `https://` URL with a
/// host, the only kind a Slack button or a Teams `Action.OpenUrl` may open;
/// `None` for anything else (`javascript:`, `data:`, `file:`, a relative
/// path). Content URLs come from Confluence and from webhooks; a link
/// builder that is given one of the others leaves the link out.
///
/// ```
/// use pagehook_guest::text::web_url;
/// assert_eq!(web_url(" https://wiki.example.com/x "), Some("https://wiki.example.com/x"));
/// assert_eq!(web_url("javascript:alert(1)"), None);
/// assert_eq!(web_url("/pages/1"), None);
/// ```
pub fn web_url(url: &str) -> Option<&str> {
    let url = url.trim();
    let lower = |n: usize| url.get(..n).map(str::to_ascii_lowercase);
    let rest = if lower(8).as_deref() == Some("https://") {
        &url[8..]
    } else if lower(7).as_deref() == Some("http://") {
        &url[7..]
    } else {
        return None;
    };
    let host = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let usable = !host.is_empty() && !host.starts_with('@') && !url.chars().any(|c| c.is_control());
    usable.then_some(url)
}

/// `url` trimmed, with every character `escape` maps replaced by what it
/// maps to and other control characters percent-encoded: how each
/// destination's link builder keeps a URL from ending or splitting its link.
pub(crate) fn escape_url(url: &str, escape: impl Fn(char) -> Option<&'static str>) -> String {
    let mut out = String::with_capacity(url.len());
    for c in url.trim().chars() {
        match escape(c) {
            Some(escaped) => out.push_str(escaped),
            None if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_with_a_host_are_web_urls() {
        for ok in [
            "https://wiki.example.com/x",
            "HTTP://127.0.0.1:8090/p?a=1",
            " https://x ",
        ] {
            assert!(web_url(ok).is_some(), "{ok}");
        }
        for bad in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            " javascript:alert(1)",
            "java\tscript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox(1)",
            "file:///etc/passwd",
            "mailto:a@example.com",
            "/pages/viewpage.action?pageId=1",
            "//evil.example/x",
            "https://",
            "https:///x",
            "http://\u{0}x",
            "",
        ] {
            assert_eq!(web_url(bad), None, "{bad:?}");
        }
    }

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
    fn utc_dates_follow_the_calendar() {
        assert_eq!(utc_date(0), "Jan 1, 1970");
        assert_eq!(utc_date(951_782_400_000), "Feb 29, 2000");
        assert_eq!(utc_date(1_767_225_599_999), "Dec 31, 2025");
        assert_eq!(utc_date(1_767_225_600_000), "Jan 1, 2026");
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
