//! The statement a plugin signature covers: a few lines of text that bind
//! the plugin's name, version and contract version to the sha256 of its
//! component and of its `plugin.toml`.
//!
//! Signing this text rather than the component alone is what keeps a
//! signature from being moved: a signature made for `slack-poster 0.2.1`
//! says so inside what was signed, so it cannot vouch for another plugin,
//! another version or another manifest of the same component. The text is
//! kept beside the signature (`plugin.statement`) so anyone can read what
//! was signed and check it with the stock `minisign` tool and `sha256sum`.
//!
//! What it must never do: accept a statement that is not exactly in its
//! canonical form (a second reading of the same signed bytes must not be
//! possible).

use std::fmt;

use serde::Serialize;

/// The first line of every statement; the version of this format.
pub const HEADER: &str = "pagehook plugin statement v1";

/// What a publisher vouches for when signing one version of a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    /// The manifest's `name`.
    pub name: String,
    /// The manifest's `version`.
    pub version: String,
    /// The contract version (`wit`) the manifest names.
    pub contract: String,
    /// The component's file name (the manifest's `component`).
    pub component: String,
    /// Lowercase hex sha256 of the component's bytes.
    pub component_sha256: String,
    /// Lowercase hex sha256 of `plugin.toml`'s bytes.
    pub manifest_sha256: String,
}

/// The field names, in the one order a statement lists them.
const FIELDS: [&str; 6] = [
    "name",
    "version",
    "contract",
    "component",
    "component-sha256",
    "manifest-sha256",
];

impl Statement {
    /// The canonical text: the header, then one `field: value` line per
    /// field in a fixed order, each ending in `\n`.
    pub fn render(&self) -> String {
        let mut out = format!("{HEADER}\n");
        for (field, value) in FIELDS.iter().zip(self.values()) {
            out.push_str(field);
            out.push_str(": ");
            out.push_str(value);
            out.push('\n');
        }
        out
    }

    fn values(&self) -> [&str; 6] {
        [
            &self.name,
            &self.version,
            &self.contract,
            &self.component,
            &self.component_sha256,
            &self.manifest_sha256,
        ]
    }

    /// Reads a statement, accepting only the canonical text [`render`]
    /// makes: same header, same fields in the same order, nothing else.
    ///
    /// [`render`]: Statement::render
    pub fn parse(text: &str) -> Result<Statement, String> {
        let Some(body) = text.strip_prefix(HEADER).and_then(|t| t.strip_prefix('\n')) else {
            return Err(format!("it does not start with `{HEADER}`"));
        };
        let mut values = Vec::with_capacity(FIELDS.len());
        let mut lines = body.split_terminator('\n');
        for field in FIELDS {
            let line = lines
                .next()
                .ok_or_else(|| format!("the line `{field}: ...` is missing"))?;
            let value = line
                .strip_prefix(field)
                .and_then(|l| l.strip_prefix(": "))
                .ok_or_else(|| format!("expected `{field}: ...`, found `{}`", clip(line)))?;
            if value.is_empty() || value.trim() != value || value.contains('\r') {
                return Err(format!("`{field}` has an empty or padded value"));
            }
            values.push(value.to_owned());
        }
        if let Some(extra) = lines.next() {
            return Err(format!("unexpected line `{}`", clip(extra)));
        }
        if !body.ends_with('\n') {
            return Err("the last line does not end with a newline".into());
        }
        for (field, value) in FIELDS[4..].iter().zip(&values[4..]) {
            if value.len() != 64
                || !value
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(format!("`{field}` is not a lowercase hex sha256"));
            }
        }
        let mut values = values.into_iter();
        let mut next = || values.next().unwrap_or_default();
        let statement = Statement {
            name: next(),
            version: next(),
            contract: next(),
            component: next(),
            component_sha256: next(),
            manifest_sha256: next(),
        };
        if statement.render() != text {
            return Err("it is not in canonical form".into());
        }
        Ok(statement)
    }
}

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} (contract {})",
            self.name, self.version, self.contract
        )
    }
}

fn clip(line: &str) -> String {
    line.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Statement {
        Statement {
            name: "slack-poster".into(),
            version: "0.2.1".into(),
            contract: "0.2.0".into(),
            component: "slack_poster.wasm".into(),
            component_sha256: "a".repeat(64),
            manifest_sha256: "0123456789abcdef".repeat(4),
        }
    }

    #[test]
    fn renders_and_reads_back_the_canonical_text() {
        let text = sample().render();
        assert!(text.starts_with("pagehook plugin statement v1\nname: slack-poster\n"));
        assert!(text.ends_with(&format!(
            "manifest-sha256: {}\n",
            "0123456789abcdef".repeat(4)
        )));
        assert_eq!(Statement::parse(&text).unwrap(), sample());
    }

    #[test]
    fn anything_but_the_canonical_form_is_refused() {
        let text = sample().render();
        let cases = [
            (text.replace("v1", "v2"), "does not start with"),
            (text.replace("name: ", "name:  "), "padded"),
            (text.replace("version: 0.2.1\n", ""), "expected `version"),
            (format!("{text}extra: 1\n"), "unexpected line"),
            (text.trim_end().to_string(), "newline"),
            (text.replace("\n", "\r\n"), "does not start with"),
            (
                text.replace(&"a".repeat(64), &"A".repeat(64)),
                "lowercase hex",
            ),
            (text.replace(&"a".repeat(64), "abc"), "lowercase hex"),
            (
                text.replace(
                    "version: 0.2.1\ncontract: 0.2.0",
                    "contract: 0.2.0\nversion: 0.2.1",
                ),
                "expected `version",
            ),
        ];
        for (bad, why) in cases {
            let err = Statement::parse(&bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
