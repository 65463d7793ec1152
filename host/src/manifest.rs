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
    /// The plugin takes digests (contract 0.3.0 and later): its component
    /// exports `handle-digest` (world `digest-plugin`), and a burst of a
    /// binding's events reaches it as one digest instead of one call per
    /// event (unless the binding turns digests off). `false` (the default):
    /// every event is its own call, whatever the component exports.
    ///
    /// ```toml
    /// wit = "0.3.0"
    /// digests = true
    /// ```
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub digests: bool,
}

/// One setting a plugin understands.
///
/// ```toml
/// [settings.channel]
/// description = "Slack channel to post to"
/// type = "destination"       # its value is where the plugin's post-slack actions go
/// action = "post-slack"
/// [settings.skip-minor-edits]
/// description = "Skip minor edits"
/// type = "bool"
/// default = "true"
/// [settings.events]
/// description = "Event kinds to post"
/// type = "event-kinds"
/// choices = ["page-created", "page-updated"]
/// default = "page-created"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// What kind of value it takes (`type = "bool"`); the console shows a
    /// control to match and `bind` refuses a value of another kind.
    /// Left out: free text.
    #[serde(default, rename = "type", skip_serializing_if = "SettingType::is_text")]
    pub kind: SettingType,
    /// `choice`: the values it takes; `event-kinds`: the kinds it
    /// understands (left out: every kind the plugin wants).
    /// `choices = ["compact", "full"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// `destination`: the action kind whose destination the value names
    /// (`post-slack`: a channel such as `#eng`; `post-teams`: a Teams
    /// connection; `create-page`: a space key; `dm-slack`: an email;
    /// `add-comment`: a page id). `bind` refuses a value the binding's
    /// destinations do not allow, and fills it from the one destination of
    /// that kind when it is not given. `action = "post-slack"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

/// What kind of value a setting takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SettingType {
    /// Any text (the default).
    #[default]
    Text,
    /// `true` or `false` (a checkbox in the console).
    Bool,
    /// Comma-separated items (chips in the console).
    List,
    /// One of `choices` (a select in the console).
    Choice,
    /// A Confluence page id, a number (a page picker in the console).
    PageId,
    /// Comma-separated event kinds, kept equal to the binding's own event
    /// kinds (the console shows them once, as the binding's events).
    EventKinds,
    /// Where the plugin's `action` actions go: kept equal to the binding's
    /// destination of that kind (the console's "where to post" picker fills both).
    Destination,
}

impl SettingType {
    /// Its name in `plugin.toml` (`page-id`).
    pub fn as_str(self) -> &'static str {
        match self {
            SettingType::Text => "text",
            SettingType::Bool => "bool",
            SettingType::List => "list",
            SettingType::Choice => "choice",
            SettingType::PageId => "page-id",
            SettingType::EventKinds => "event-kinds",
            SettingType::Destination => "destination",
        }
    }

    fn is_text(&self) -> bool {
        *self == SettingType::Text
    }
}

/// Action kinds whose destination a `destination` setting may name.
const DESTINATION_ACTIONS: [&str; 5] = [
    "post-slack",
    "dm-slack",
    "post-teams",
    "create-page",
    "add-comment",
];

/// A boolean as plugins read it (the guest SDK's `bool_or`).
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// A comma-separated list as plugins read it: items trimmed, empty ones dropped.
pub fn parse_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl SettingSpec {
    /// Whether `value` is what the setting holds anyway when a binding
    /// does not set it (compared as the plugin reads it: `yes` is `true`,
    /// lists in any order): such a value need not be stored.
    pub fn is_default(&self, value: &str) -> bool {
        let Some(default) = &self.default else {
            return false;
        };
        match self.kind {
            SettingType::Bool => {
                parse_bool(value).is_some() && parse_bool(value) == parse_bool(default)
            }
            SettingType::List | SettingType::EventKinds => {
                let mut a = parse_list(value);
                let mut b = parse_list(default);
                a.sort();
                a.dedup();
                b.sort();
                b.dedup();
                a == b
            }
            _ => value.trim() == default.trim(),
        }
    }

    /// Refuses a value of the wrong kind, in words for the admin; `name`
    /// is the setting's, `known_kinds` the kinds an `event-kinds` setting
    /// takes.
    pub fn check_value(
        &self,
        name: &str,
        value: &str,
        known_kinds: &[String],
    ) -> Result<(), String> {
        match self.kind {
            SettingType::Text | SettingType::List | SettingType::Destination => Ok(()),
            SettingType::Bool => parse_bool(value)
                .map(|_| ())
                .ok_or_else(|| format!("setting `{name}` is true or false, not `{value}`")),
            SettingType::Choice => {
                if self.choices.iter().any(|c| c == value.trim()) {
                    Ok(())
                } else {
                    Err(format!(
                        "setting `{name}` is one of {}, not `{value}`",
                        self.choices.join(", ")
                    ))
                }
            }
            SettingType::PageId => match value.trim().parse::<u64>() {
                Ok(_) => Ok(()),
                Err(_) => Err(format!(
                    "setting `{name}` is a Confluence page id (a number such as 2818051), not `{value}`"
                )),
            },
            SettingType::EventKinds => {
                for kind in parse_list(value) {
                    if !known_kinds.contains(&kind) {
                        return Err(format!(
                            "setting `{name}` takes the event kinds {}, not `{kind}`",
                            known_kinds.join(", ")
                        ));
                    }
                }
                Ok(())
            }
        }
    }
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
        if self.digests && !contract.has_digests() {
            return Err(format!(
                "`digests = true` needs contract 0.3.0 or later, and contract {} does not have digests: set `wit = \"{}\"` and rebuild against it",
                self.wit,
                Contract::LATEST.version()
            ));
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
            self.validate_typed(name, spec)?;
        }
        let event_settings: Vec<&String> = self
            .settings
            .iter()
            .filter(|(_, s)| s.kind == SettingType::EventKinds)
            .map(|(n, _)| n)
            .collect();
        if event_settings.len() > 1 {
            return Err(format!(
                "settings {} are all `type = \"event-kinds\"`: a plugin has one place for event kinds",
                event_settings
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for action in DESTINATION_ACTIONS {
            let naming: Vec<&String> = self
                .settings
                .iter()
                .filter(|(_, s)| s.action.as_deref() == Some(action))
                .map(|(n, _)| n)
                .collect();
            if naming.len() > 1 {
                return Err(format!(
                    "settings {} all name the destination of `{action}`: one setting per action kind",
                    naming
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        Ok(())
    }

    /// The checks that depend on a setting's `type`.
    fn validate_typed(&self, name: &str, spec: &SettingSpec) -> Result<(), String> {
        let kind = spec.kind.as_str();
        if !spec.choices.is_empty()
            && !matches!(spec.kind, SettingType::Choice | SettingType::EventKinds)
        {
            return Err(format!(
                "setting `{name}` has `choices`, which only `type = \"choice\"` and `type = \"event-kinds\"` take"
            ));
        }
        if spec.action.is_some() && spec.kind != SettingType::Destination {
            return Err(format!(
                "setting `{name}` has `action`, which only `type = \"destination\"` takes"
            ));
        }
        if spec.confluence_template && spec.kind != SettingType::Text {
            return Err(format!(
                "setting `{name}` names a Confluence template, so it is text, not `{kind}`"
            ));
        }
        match spec.kind {
            SettingType::Choice if spec.choices.is_empty() => {
                return Err(format!(
                    "setting `{name}` is `type = \"choice\"`: list its values in `choices`"
                ));
            }
            SettingType::EventKinds => {
                for choice in &spec.choices {
                    match EventKind::from_name(choice) {
                        Some(k) if self.wants(k) => {}
                        _ => {
                            return Err(format!(
                                "setting `{name}`: `choices` names `{choice}`, which is not an event kind this plugin wants (`events`: {})",
                                self.events.join(", ")
                            ));
                        }
                    }
                }
            }
            SettingType::Destination => match spec.action.as_deref() {
                None => {
                    return Err(format!(
                        "setting `{name}` is `type = \"destination\"`: say whose destination with `action` ({})",
                        DESTINATION_ACTIONS.join(", ")
                    ));
                }
                Some(action) if !DESTINATION_ACTIONS.contains(&action) => {
                    return Err(format!(
                        "setting `{name}`: `action = \"{action}\"` has no destination a setting can name ({})",
                        DESTINATION_ACTIONS.join(", ")
                    ));
                }
                Some(action) if !self.actions.iter().any(|a| a == action) => {
                    return Err(format!(
                        "setting `{name}` names the destination of `{action}`, which `actions` does not declare"
                    ));
                }
                Some(_) => {}
            },
            _ => {}
        }
        if let Some(default) = &spec.default {
            spec.check_value(name, default, &self.event_kinds(spec))
                .map_err(|m| format!("`default` of {m}"))?;
        }
        Ok(())
    }

    /// The event kinds this plugin wants, by name (`"*"` spelled out as
    /// every kind of its contract).
    pub fn wanted_kinds(&self) -> Vec<String> {
        EventKind::ALL
            .into_iter()
            .filter(|k| self.wants(*k))
            .map(|k| k.name().to_owned())
            .collect()
    }

    /// The event kinds an `event-kinds` setting takes: its `choices`, or
    /// every kind the plugin wants.
    pub fn event_kinds(&self, spec: &SettingSpec) -> Vec<String> {
        if spec.choices.is_empty() {
            self.wanted_kinds()
        } else {
            spec.choices.clone()
        }
    }

    /// The setting that holds the binding's event kinds, if any.
    pub fn event_kinds_setting(&self) -> Option<(&str, &SettingSpec)> {
        self.settings
            .iter()
            .find(|(_, s)| s.kind == SettingType::EventKinds)
            .map(|(n, s)| (n.as_str(), s))
    }

    /// The setting that names where `action` actions go, if any.
    pub fn destination_setting(&self, action: &str) -> Option<(&str, &SettingSpec)> {
        self.settings
            .iter()
            .find(|(_, s)| {
                s.kind == SettingType::Destination && s.action.as_deref() == Some(action)
            })
            .map(|(n, s)| (n.as_str(), s))
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
    fn digests_need_contract_0_3_0() {
        let digests = GOOD.replace("wit = \"0.1.0\"", "wit = \"0.3.0\"\ndigests = true");
        assert!(Manifest::parse(&digests).unwrap().digests);
        assert!(
            !Manifest::parse(GOOD).unwrap().digests,
            "off unless asked for"
        );
        for old in ["0.1.0", "0.2.0"] {
            let err = Manifest::parse(&GOOD.replace(
                "wit = \"0.1.0\"",
                &format!("wit = \"{old}\"\ndigests = true"),
            ))
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("`digests = true` needs contract 0.3.0")
                    && err.contains(&format!("contract {old} does not have digests")),
                "{err}"
            );
        }
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

    const TYPED: &str = r#"
name = "typed"
version = "0.1.0"
description = "d"
wit = "0.2.0"
component = "typed.wasm"
events = ["page-created", "page-updated", "link-shared"]
actions = ["post-slack", "unfurl"]
[settings.channel]
description = "where"
type = "destination"
action = "post-slack"
[settings.events]
description = "which"
type = "event-kinds"
choices = ["page-created", "page-updated"]
default = "page-created, page-updated"
[settings.quiet]
description = "no"
type = "bool"
default = "false"
[settings.style]
description = "how"
type = "choice"
choices = ["compact", "full"]
default = "full"
[settings.labels]
description = "which labels"
type = "list"
[settings.under-page]
description = "below"
type = "page-id"
"#;

    #[test]
    fn typed_settings_parse_and_find_their_roles() {
        let m = Manifest::parse(TYPED).unwrap();
        assert_eq!(m.settings["quiet"].kind, SettingType::Bool);
        assert_eq!(m.destination_setting("post-slack").unwrap().0, "channel");
        assert!(m.destination_setting("post-teams").is_none());
        let (name, spec) = m.event_kinds_setting().unwrap();
        assert_eq!(name, "events");
        assert_eq!(m.event_kinds(spec), ["page-created", "page-updated"]);
        assert_eq!(
            m.wanted_kinds(),
            ["page-created", "page-updated", "link-shared"]
        );
        // A manifest without types reads as before: every setting is text.
        let plain = Manifest::parse(GOOD).unwrap();
        assert!(plain.settings.values().all(|s| s.kind == SettingType::Text));
        // Serialized (stored with the plugin) and read back unchanged.
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), m);
        let json = serde_json::to_string(&plain).unwrap();
        assert!(!json.contains("\"type\""), "{json}");
    }

    #[test]
    fn typed_values_are_checked_and_defaults_compared_as_read() {
        let m = Manifest::parse(TYPED).unwrap();
        let kinds = m.event_kinds(&m.settings["events"]);
        let check = |name: &str, value: &str| m.settings[name].check_value(name, value, &kinds);
        assert!(check("quiet", "yes").is_ok());
        assert!(
            check("quiet", "maybe")
                .unwrap_err()
                .contains("true or false")
        );
        assert!(check("style", "compact").is_ok());
        assert!(
            check("style", "tiny")
                .unwrap_err()
                .contains("compact, full")
        );
        assert!(check("under-page", "2818051").is_ok());
        assert!(
            check("under-page", "Q3 plan")
                .unwrap_err()
                .contains("page id")
        );
        assert!(check("events", "page-updated").is_ok());
        let err = check("events", "page-created, link-shared").unwrap_err();
        assert!(err.contains("not `link-shared`"), "{err}");
        assert!(m.settings["quiet"].is_default("no"));
        assert!(!m.settings["quiet"].is_default("true"));
        assert!(m.settings["events"].is_default("page-updated,page-created"));
        assert!(!m.settings["events"].is_default("page-created"));
        assert!(m.settings["style"].is_default(" full"));
        assert!(
            !m.settings["labels"].is_default(""),
            "no default: always stored"
        );
    }

    #[test]
    fn typed_settings_that_cannot_work_are_refused_by_name() {
        for (from, to, expected) in [
            ("action = \"post-slack\"", "", "say whose destination"),
            (
                "action = \"post-slack\"",
                "action = \"post-teams\"",
                "`actions` does not declare",
            ),
            (
                "action = \"post-slack\"",
                "action = \"unfurl\"",
                "no destination a setting can name",
            ),
            (
                "choices = [\"compact\", \"full\"]\n",
                "",
                "list its values in `choices`",
            ),
            (
                "default = \"full\"",
                "default = \"tiny\"",
                "`default` of setting `style`",
            ),
            (
                "default = \"false\"",
                "default = \"nope\"",
                "`default` of setting `quiet`",
            ),
            (
                "type = \"page-id\"",
                "type = \"page-id\"\ndefault = \"home\"",
                "page id",
            ),
            (
                "choices = [\"page-created\", \"page-updated\"]",
                "choices = [\"blog-created\"]",
                "not an event kind this plugin wants",
            ),
            (
                "type = \"list\"",
                "type = \"list\"\nchoices = [\"a\"]",
                "only `type = \"choice\"`",
            ),
            (
                "type = \"list\"",
                "type = \"list\"\naction = \"post-slack\"",
                "only `type = \"destination\"`",
            ),
            ("type = \"list\"", "type = \"lists\"", "lists"),
            (
                "type = \"list\"",
                "type = \"event-kinds\"",
                "one place for event kinds",
            ),
            (
                "type = \"page-id\"",
                "type = \"destination\"\naction = \"post-slack\"",
                "one setting per action kind",
            ),
        ] {
            assert!(TYPED.contains(from), "{from}");
            let err = Manifest::parse(&TYPED.replacen(from, to, 1))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{from} -> {to}: {err}");
        }
    }
}
