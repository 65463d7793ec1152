//! `plugin.toml`: what a plugin says it is, wants and may do.
//!
//! The manifest is half of the two-party rule (an action runs only if the
//! manifest declares it *and* the admin granted it), so it is parsed
//! strictly: unknown fields, unknown event or action kinds and malformed
//! names are errors that name the offending field, never silently ignored.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::model::{ACTION_KINDS, EventKind};

use crate::runtime::Contract;

/// A parsed, validated `plugin.toml`.
///
/// ```toml
/// name = "hello"
/// version = "0.1.0"
/// description = "Posts new pages to a Slack channel"
/// wit = "0.1.0"
/// component = "hello_plugin.wasm"
/// events = ["page-created", "blog-created"]
/// actions = ["post-slack"]
/// [settings.channel]
/// description = "Slack channel to post to"
/// required = true
/// [limits]
/// fuel = 20000000
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Identifier used by `install`, `bind` and in logs: `[a-z0-9-]`, 1–64 chars.
    pub name: String,
    /// The plugin's own version, shown to admins.
    pub version: String,
    /// One line for `plugin list` and `audit`.
    pub description: String,
    /// The `pagehook:plugin` contract version the component was built against.
    pub wit: String,
    /// File name of the component, relative to the plugin directory.
    pub component: String,
    /// Event kinds it wants (WIT names), or `["*"]` for all.
    pub events: Vec<String>,
    /// Action kinds it may return; anything else it returns is rejected.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Settings a binding may give it.
    #[serde(default)]
    pub settings: BTreeMap<String, SettingSpec>,
    /// Limits it asks for above the defaults (an admin may cap them).
    #[serde(default)]
    pub limits: LimitRequest,
}

/// One setting a plugin understands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingSpec {
    /// What it does, for admins.
    pub description: String,
    /// A binding without it is refused.
    #[serde(default)]
    pub required: bool,
    /// Value used when a binding does not set it.
    #[serde(default)]
    pub default: Option<String>,
    /// The value names a Confluence page template (`KEY:Template name`, or
    /// the name alone in a binding scoped to one space); the plugin gets the
    /// template's storage body instead (see `source::templates`).
    /// `confluence-template = true`.
    #[serde(
        default,
        rename = "confluence-template",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub confluence_template: bool,
}

/// Limits a plugin requests; unset fields take the host defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitRequest {
    pub fuel: Option<u64>,
    pub deadline_ms: Option<u64>,
    pub memory_mib: Option<u64>,
    pub stack_kib: Option<u64>,
    pub max_actions: Option<usize>,
    pub action_bytes: Option<usize>,
    pub total_bytes: Option<usize>,
    pub log_bytes: Option<usize>,
}

/// Why a manifest was refused, worded for the person who wrote it.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl Manifest {
    /// Reads and validates `<dir>/plugin.toml`.
    pub fn load(dir: &Path) -> Result<Manifest, ManifestError> {
        let path = dir.join("plugin.toml");
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
            path: shown.clone(),
            source,
        })?;
        Manifest::parse(&text).map_err(|e| match e {
            ManifestError::Parse { message, .. } => ManifestError::Parse {
                path: shown.clone(),
                message,
            },
            ManifestError::Invalid { message, .. } => ManifestError::Invalid {
                path: shown.clone(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates manifest text.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: "plugin.toml".into(),
            message: e.to_string().trim_end().to_string(),
        })?;
        manifest
            .validate()
            .map_err(|message| ManifestError::Invalid {
                path: "plugin.toml".into(),
                message,
            })?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), String> {
        if !valid_name(&self.name) {
            return Err(format!(
                "`name` must be 1-64 characters of a-z, 0-9 and '-', got `{}`",
                self.name
            ));
        }
        let Some(contract) = Contract::from_version(&self.wit) else {
            return Err(format!(
                "`wit` = `{}` is not a contract version this host runs (supported: {})",
                self.wit,
                Contract::ALL.map(|c| c.version()).join(", ")
            ));
        };
        let component = Path::new(&self.component);
        if self.component.is_empty()
            || component.is_absolute()
            || component.components().count() != 1
            || !self.component.ends_with(".wasm")
        {
            return Err(format!(
                "`component` must be a .wasm file name inside the plugin directory, got `{}`",
                self.component
            ));
        }
        if self.events.is_empty() {
            return Err(
                "`events` is empty: list the event kinds the plugin wants, or \"*\"".into(),
            );
        }
        for event in &self.events {
            if event != "*" && EventKind::from_name(event).is_none() {
                return Err(format!(
                    "`events` names unknown event kind `{event}` (known: {})",
                    EventKind::ALL.map(|k| k.name()).join(", ")
                ));
            }
            if let Some(kind) = EventKind::from_name(event)
                && !contract.has_event(kind)
            {
                return Err(format!(
                    "`events` names `{event}`, which contract {} does not have: set `wit = \"{}\"` and rebuild against it",
                    self.wit,
                    Contract::LATEST.version()
                ));
            }
        }
        for action in &self.actions {
            if !ACTION_KINDS.contains(&action.as_str()) {
                return Err(format!(
                    "`actions` names unknown action kind `{action}` (known: {})",
                    ACTION_KINDS.join(", ")
                ));
            }
            if !contract.has_action(action) {
                return Err(format!(
                    "`actions` names `{action}`, which contract {} does not have: set `wit = \"{}\"` and rebuild against it",
                    self.wit,
                    Contract::LATEST.version()
                ));
            }
        }
        for (name, spec) in &self.settings {
            if !valid_name(name) {
                return Err(format!(
                    "setting name `{name}` must be 1-64 characters of a-z, 0-9 and '-'"
                ));
            }
            if spec.required && spec.default.is_some() {
                return Err(format!(
                    "setting `{name}` is required and has a default: choose one"
                ));
            }
        }
        Ok(())
    }

    /// Whether the plugin wants events of this kind.
    pub fn wants(&self, kind: EventKind) -> bool {
        let speaks = Contract::from_version(&self.wit).is_some_and(|c| c.has_event(kind));
        speaks && self.events.iter().any(|e| e == "*" || e == kind.name())
    }

    /// Merges a binding's (or the command line's) settings over the
    /// manifest defaults and checks required and unknown names.
    pub fn resolve_settings(
        &self,
        given: &[(String, String)],
    ) -> Result<Vec<(String, String)>, String> {
        for (name, _) in given {
            if !self.settings.contains_key(name) {
                let known: Vec<&str> = self.settings.keys().map(String::as_str).collect();
                return Err(format!(
                    "plugin `{}` has no setting `{name}` (settings: {})",
                    self.name,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ));
            }
        }
        let mut out = Vec::new();
        for (name, spec) in &self.settings {
            match given.iter().rev().find(|(n, _)| n == name) {
                Some((_, value)) => out.push((name.clone(), value.clone())),
                None => match &spec.default {
                    Some(default) => out.push((name.clone(), default.clone())),
                    None if spec.required => {
                        return Err(format!(
                            "plugin `{}` needs setting `{name}`: {}",
                            self.name, spec.description
                        ));
                    }
                    None => {}
                },
            }
        }
        Ok(out)
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "hello"
version = "0.1.0"
description = "d"
wit = "0.1.0"
component = "hello.wasm"
events = ["page-created"]
actions = ["post-slack"]
[settings.channel]
description = "where"
required = true
[settings.greeting]
description = "words"
default = "Hi"
[limits]
fuel = 5
memory-mib = 64
"#;

    #[test]
    fn good_manifest_parses_with_limits() {
        let m = Manifest::parse(GOOD).unwrap();
        assert_eq!(m.limits.fuel, Some(5));
        assert_eq!(m.limits.memory_mib, Some(64));
        assert!(m.wants(EventKind::PageCreated));
        assert!(!m.wants(EventKind::PageUpdated));
    }

    #[test]
    fn chat_events_and_actions_need_contract_0_2_0() {
        let v1_chat = GOOD.replace(
            "events = [\"page-created\"]",
            "events = [\"page-created\", \"slash-command\"]",
        );
        let err = Manifest::parse(&v1_chat).unwrap_err().to_string();
        assert!(
            err.contains("`slash-command`") && err.contains("contract 0.1.0 does not have"),
            "{err}"
        );
        let v1_respond = GOOD.replace("actions = [\"post-slack\"]", "actions = [\"respond\"]");
        let err = Manifest::parse(&v1_respond).unwrap_err().to_string();
        assert!(err.contains("`respond`"), "{err}");
        let v2 = v1_chat
            .replace("wit = \"0.1.0\"", "wit = \"0.2.0\"")
            .replace("actions = [\"post-slack\"]", "actions = [\"respond\"]");
        let m = Manifest::parse(&v2).unwrap();
        assert!(m.wants(EventKind::SlashCommand));

        // "*" is every kind the plugin's contract has.
        let every = |wit: &str| {
            Manifest::parse(
                &GOOD
                    .replace("events = [\"page-created\"]", "events = [\"*\"]")
                    .replace("wit = \"0.1.0\"", &format!("wit = \"{wit}\"")),
            )
            .unwrap()
        };
        assert!(every("0.1.0").wants(EventKind::PageMoved));
        assert!(!every("0.1.0").wants(EventKind::LinkShared));
        assert!(every("0.2.0").wants(EventKind::LinkShared));
    }

    #[test]
    fn unknown_field_is_named() {
        let err = Manifest::parse(&format!("{GOOD}\n[extra]\n")).unwrap_err();
        assert!(err.to_string().contains("extra"), "{err}");
        let err = Manifest::parse(&GOOD.replace("fuel = 5", "fuell = 5")).unwrap_err();
        assert!(err.to_string().contains("fuell"), "{err}");
    }

    #[test]
    fn unknown_kinds_and_bad_names_are_refused() {
        let err =
            Manifest::parse(&GOOD.replace("\"page-created\"", "\"page_created\"")).unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown event kind `page_created`"),
            "{err}"
        );
        let err = Manifest::parse(&GOOD.replace("\"post-slack\"", "\"http-get\"")).unwrap_err();
        assert!(
            err.to_string().contains("unknown action kind `http-get`"),
            "{err}"
        );
        let err = Manifest::parse(&GOOD.replace("name = \"hello\"", "name = \"Hello World\""))
            .unwrap_err();
        assert!(err.to_string().contains("`name`"), "{err}");
        let err = Manifest::parse(&GOOD.replace("hello.wasm", "../x.wasm")).unwrap_err();
        assert!(err.to_string().contains("`component`"), "{err}");
        let err = Manifest::parse(&GOOD.replace("wit = \"0.1.0\"", "wit = \"9.0.0\"")).unwrap_err();
        assert!(err.to_string().contains("9.0.0"), "{err}");
    }

    #[test]
    fn settings_resolve_defaults_required_and_unknown() {
        let m = Manifest::parse(GOOD).unwrap();
        let err = m.resolve_settings(&[]).unwrap_err();
        assert!(err.contains("needs setting `channel`"), "{err}");
        let s = m
            .resolve_settings(&[("channel".into(), "#eng".into())])
            .unwrap();
        assert_eq!(
            s,
            vec![
                ("channel".to_string(), "#eng".to_string()),
                ("greeting".to_string(), "Hi".to_string())
            ]
        );
        let err = m
            .resolve_settings(&[("chanel".into(), "#eng".into())])
            .unwrap_err();
        assert!(err.contains("no setting `chanel`"), "{err}");
    }
}
