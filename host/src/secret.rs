//! Secrets (tokens, passwords, webhook secrets) that must never be shown.
//!
//! A [`Secret`] prints as `[redacted]` through `Debug`, `Display` and
//! `Serialize`, so putting one in a log line, an error or an API answer by
//! mistake leaks nothing. The only way to the value is [`Secret::expose`],
//! which makes every real use easy to find.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A secret value; see the module documentation.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value read from a file, an environment variable or the database.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself: only for putting it on the wire or into the store.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

/// Where a secret comes from, as written in config files and CLI flags:
/// the value itself, an environment variable, or a file (trailing newline
/// trimmed). Env and file keep the value out of shell history and configs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum SecretSource {
    /// The value, inline.
    Value(String),
    /// The name of an environment variable holding it.
    Env(String),
    /// A file holding it.
    File(PathBuf),
}

impl SecretSource {
    /// Reads the secret, with an error that names where it looked (never the value).
    pub fn resolve(&self) -> Result<Secret, String> {
        let value = match self {
            SecretSource::Value(v) => v.clone(),
            SecretSource::Env(name) => std::env::var(name)
                .map_err(|_| format!("environment variable {name} is not set"))?,
            SecretSource::File(path) => read_secret_file(path)?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        };
        if value.trim().is_empty() {
            return Err(match self {
                SecretSource::Value(_) => "the secret is empty".to_owned(),
                SecretSource::Env(name) => format!("environment variable {name} is empty"),
                SecretSource::File(path) => format!("secret file {} is empty", path.display()),
            });
        }
        Ok(Secret(value))
    }
}

/// Longest secret file read: tokens are short, and a path such as
/// `/dev/zero` must not exhaust memory.
const MAX_SECRET_FILE: u64 = 64 * 1024;

fn read_secret_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read as _;
    let cannot = |e: std::io::Error| format!("cannot read secret file {}: {e}", path.display());
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(cannot)?
        .take(MAX_SECRET_FILE + 1)
        .read_to_string(&mut text)
        .map_err(cannot)?;
    if text.len() as u64 > MAX_SECRET_FILE {
        return Err(format!(
            "secret file {} is larger than {} KiB: not a secret",
            path.display(),
            MAX_SECRET_FILE / 1024
        ));
    }
    Ok(text)
}

impl SecretSource {
    /// Parses the stored form `value:<secret>`, `env:<VAR>` or `file:<path>`.
    pub fn from_spec(spec: &str) -> Result<SecretSource, String> {
        match spec.split_once(':') {
            Some(("value", v)) => Ok(SecretSource::Value(v.to_owned())),
            Some(("env", v)) => Ok(SecretSource::Env(v.to_owned())),
            Some(("file", v)) => Ok(SecretSource::File(PathBuf::from(v))),
            _ => Err("a secret must be stored as value:, env: or file:".to_owned()),
        }
    }

    /// The stored form (see [`SecretSource::from_spec`]).
    pub fn to_spec(&self) -> String {
        match self {
            SecretSource::Value(v) => format!("value:{v}"),
            SecretSource::Env(v) => format!("env:{v}"),
            SecretSource::File(p) => format!("file:{}", p.display()),
        }
    }

    /// What an admin may see: where the secret comes from, never its value.
    pub fn redacted(&self) -> String {
        match self {
            SecretSource::Value(_) => "[redacted]".to_owned(),
            SecretSource::Env(v) => format!("env:{v}"),
            SecretSource::File(p) => format!("file:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("xoxb-very-secret");
        assert_eq!(format!("{s} {s:?}"), "[redacted] [redacted]");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[redacted]\"");
        assert_eq!(s.expose(), "xoxb-very-secret");
    }

    #[test]
    fn a_huge_secret_file_is_refused_without_reading_it_all() {
        let err = SecretSource::File("/dev/zero".into())
            .resolve()
            .unwrap_err();
        assert!(err.contains("larger than 64 KiB"), "{err}");
    }

    #[test]
    fn resolves_from_file_and_env_with_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc\n").unwrap();
        assert_eq!(SecretSource::File(path).resolve().unwrap().expose(), "abc");
        let missing = SecretSource::Env("PAGEHOOK_TEST_SURELY_UNSET_VAR".into());
        assert_eq!(
            missing.resolve().unwrap_err(),
            "environment variable PAGEHOOK_TEST_SURELY_UNSET_VAR is not set"
        );
        assert!(SecretSource::Value("  ".into()).resolve().is_err());
    }

    #[test]
    fn stored_form_round_trips_and_redacts_values_only() {
        for spec in ["value:xoxb-1", "env:SLACK_TOKEN", "file:/run/secrets/t"] {
            assert_eq!(SecretSource::from_spec(spec).unwrap().to_spec(), spec);
        }
        assert_eq!(
            SecretSource::from_spec("value:xoxb-1").unwrap().redacted(),
            "[redacted]"
        );
        assert_eq!(
            SecretSource::from_spec("env:T").unwrap().redacted(),
            "env:T"
        );
        assert!(SecretSource::from_spec("xoxb-1").is_err());
    }
}
