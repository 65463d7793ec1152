//! Typed access to a binding's settings.
//!
//! The contract passes settings as plain `(name, value)` string pairs; every
//! plugin then needs the same few conversions (required, default, boolean,
//! number, comma list) and the same error messages. Doing them here once
//! means an admin sees one consistent wording whichever plugin complains.

use std::fmt;

/// The settings one binding gives a plugin, with typed accessors.
///
/// Values are trimmed, and a blank value counts as not set, so an admin who
/// clears a field gets the default rather than an empty string. When a name
/// appears twice, the last value wins.
///
/// ```
/// use pagehook_guest::Settings;
///
/// let s = Settings::from_pairs([("channel", "#eng"), ("skip-minor", "yes")]);
/// assert_eq!(s.required("channel").unwrap(), "#eng");
/// assert!(s.bool_or("skip-minor", false).unwrap());
/// assert_eq!(s.string_or("greeting", "New page"), "New page");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pairs: Vec<(String, String)>,
}

impl Settings {
    /// Build settings from name/value pairs; what tests and the export glue use.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Settings {
            pairs: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The trimmed value of `name`, or `None` when it is unset or blank.
    pub fn string(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The value of `name`, or `default` when it is unset or blank.
    pub fn string_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.string(name).unwrap_or(default)
    }

    /// The value of `name`, or an error telling the admin to set it.
    pub fn required(&self, name: &str) -> Result<&str, SettingError> {
        self.string(name).ok_or_else(|| SettingError::Missing {
            name: name.to_owned(),
        })
    }

    /// `name` as a boolean, or `default` when unset. Accepts `true`/`false`,
    /// `yes`/`no`, `on`/`off` and `1`/`0` in any case, because admins write
    /// all of them; anything else is an error rather than a silent `false`.
    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool, SettingError> {
        let Some(value) = self.string(name) else {
            return Ok(default);
        };
        match value.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err(SettingError::invalid(name, value, "true or false")),
        }
    }

    /// `name` as a whole number, or `default` when unset; anything that is
    /// not a non-negative integer (underscores allowed, `10_000`) is an error.
    pub fn u64_or(&self, name: &str, default: u64) -> Result<u64, SettingError> {
        let Some(value) = self.string(name) else {
            return Ok(default);
        };
        value
            .replace('_', "")
            .parse()
            .map_err(|_| SettingError::invalid(name, value, "a whole number"))
    }

    /// `name` as a comma-separated list: items trimmed, empty items dropped,
    /// and an empty list when unset (`"ENG, OPS,,"` is `["ENG", "OPS"]`).
    pub fn list(&self, name: &str) -> Vec<String> {
        self.string(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every pair as given (untrimmed, duplicates kept), for plugins that
    /// accept free-form settings.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl From<Vec<(String, String)>> for Settings {
    /// The contract's `list<tuple<string, string>>`, as the export glue receives it.
    fn from(pairs: Vec<(String, String)>) -> Self {
        Settings { pairs }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Settings {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Settings::from_pairs(iter)
    }
}

/// A setting is missing or malformed; its `Display` is meant for the admin
/// who configured the binding, so it names the setting and the bad value.
///
/// It converts into `String`, so `?` works in [`Plugin::handle`](crate::Plugin::handle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingError {
    /// A required setting is unset or blank.
    Missing {
        /// The setting's name.
        name: String,
    },
    /// A setting has a value of the wrong shape.
    Invalid {
        /// The setting's name.
        name: String,
        /// The value given (shortened if long).
        value: String,
        /// What was expected, e.g. `true or false`.
        expected: &'static str,
    },
}

impl SettingError {
    /// Longest bad value quoted back in a message; admins need to recognise
    /// it, not to read a pasted essay.
    const MAX_QUOTED_CHARS: usize = 80;

    fn invalid(name: &str, value: &str, expected: &'static str) -> Self {
        SettingError::Invalid {
            name: name.to_owned(),
            value: crate::text::truncate(value, Self::MAX_QUOTED_CHARS),
            expected,
        }
    }
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingError::Missing { name } => write!(f, "setting `{name}` is required"),
            SettingError::Invalid {
                name,
                value,
                expected,
            } => write!(f, "setting `{name}` must be {expected}, got `{value}`"),
        }
    }
}

impl std::error::Error for SettingError {}

impl From<SettingError> for String {
    fn from(e: SettingError) -> String {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_trims_and_treats_blank_as_unset() {
        let s = Settings::from_pairs([("a", "  x "), ("b", "   "), ("c", "")]);
        assert_eq!(s.string("a"), Some("x"));
        assert_eq!(s.string("b"), None);
        assert_eq!(s.string("c"), None);
        assert_eq!(s.string("missing"), None);
        assert_eq!(s.string_or("b", "dflt"), "dflt");
        assert_eq!(s.string_or("a", "dflt"), "x");
    }

    #[test]
    fn last_value_wins() {
        let s = Settings::from_pairs([("a", "1"), ("a", "2")]);
        assert_eq!(s.string("a"), Some("2"));
        assert_eq!(s.iter().count(), 2);
    }

    #[test]
    fn required_names_the_setting() {
        let s = Settings::default();
        let err = s.required("channel").unwrap_err();
        assert_eq!(err.to_string(), "setting `channel` is required");
        let as_string: String = err.into();
        assert_eq!(as_string, "setting `channel` is required");
    }

    #[test]
    fn question_mark_converts_into_string() {
        fn handle(s: &Settings) -> Result<String, String> {
            Ok(s.required("channel")?.to_owned())
        }
        assert_eq!(
            handle(&Settings::default()).unwrap_err(),
            "setting `channel` is required"
        );
    }

    #[test]
    fn bool_accepts_common_spellings() {
        for (v, want) in [
            ("true", true),
            ("TRUE", true),
            ("Yes", true),
            ("on", true),
            ("1", true),
            ("false", false),
            ("No", false),
            ("OFF", false),
            ("0", false),
        ] {
            let s = Settings::from_pairs([("x", v)]);
            assert_eq!(s.bool_or("x", !want).unwrap(), want, "value {v}");
        }
        assert!(Settings::default().bool_or("x", true).unwrap());
    }

    #[test]
    fn bool_rejects_anything_else_with_the_value() {
        let s = Settings::from_pairs([("skip-minor", "maybe")]);
        assert_eq!(
            s.bool_or("skip-minor", true).unwrap_err().to_string(),
            "setting `skip-minor` must be true or false, got `maybe`"
        );
    }

    #[test]
    fn u64_parses_and_reports() {
        let s = Settings::from_pairs([("n", "10_000"), ("bad", "-3")]);
        assert_eq!(s.u64_or("n", 1).unwrap(), 10_000);
        assert_eq!(s.u64_or("unset", 7).unwrap(), 7);
        assert_eq!(
            s.u64_or("bad", 1).unwrap_err().to_string(),
            "setting `bad` must be a whole number, got `-3`"
        );
    }

    #[test]
    fn long_bad_values_are_shortened_in_messages() {
        let long = "x".repeat(1000);
        let s = Settings::from_pairs([("flag", long.as_str())]);
        let msg = s.bool_or("flag", false).unwrap_err().to_string();
        assert!(msg.len() < 200, "{msg}");
        assert!(msg.contains('…'));
    }

    #[test]
    fn list_splits_trims_and_drops_empties() {
        let s = Settings::from_pairs([("spaces", " ENG, OPS,, ,~ada ")]);
        assert_eq!(s.list("spaces"), ["ENG", "OPS", "~ada"]);
        assert!(s.list("unset").is_empty());
    }

    #[test]
    fn from_wit_pairs() {
        let s = Settings::from(vec![("a".to_string(), "b".to_string())]);
        assert_eq!(s, Settings::from_pairs([("a", "b")]));
        let collected: Settings = [("a", "b")].into_iter().collect();
        assert_eq!(collected, s);
    }
}
