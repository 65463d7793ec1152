//! What the bindings use, per connection: which features a Confluence or
//! Slack connection must carry for the bindings to work, and which binding
//! needs each. `pagehook doctor` fails only for features something uses.
//!
//! Read from the bindings of enabled plugins, and only the destinations
//! whose action kind the plugin is granted (an action it may not return
//! uses nothing):
//!
//! | destination | Confluence features | Slack features |
//! | --- | --- | --- |
//! | `slack:#c`, `teams:x` | channel posts, restricted-content filtering | channel posts (Slack only) |
//! | `slack-dm:*` (anyone) | personal notifications, restricted-content filtering | personal notifications |
//! | `slack-dm:ada@…` (fixed) | — | personal notifications |
//! | `slack-unfurl:w` | linking by email, self-linking, restricted-content filtering | link previews |
//! | `slack-respond:w` | search, linking by email, self-linking, restricted-content filtering | slash commands |
//! | a `confluence-template` setting | templates | — |
//!
//! Page events come from the binding's source (every Confluence connection
//! when it names none). Chat events are looked up in the Confluence
//! connection their Slack connection names, else the only one with a
//! token; with several and none named, every one is counted and a note says
//! so. Space-admin sign-in is offered
//! by the console whatever the bindings are, so it is never "used".
//!
//! What it must never do: reach the network; it only reads records.

use std::collections::{BTreeMap, BTreeSet};

use super::Feature;
use crate::destination::Destination;
use crate::store::{Binding, ConnectionKind, ConnectionRecord, PluginRecord, Scope};

/// A template a binding names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateUse {
    /// Its space.
    pub space: String,
    /// Its name.
    pub name: String,
    /// Which binding names it.
    pub by: String,
}

/// What the bindings use of one Confluence connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfluenceUsage {
    /// Each used feature and the bindings that use it.
    pub features: BTreeMap<Feature, Vec<String>>,
    /// Spaces bindings that carry content to chat are scoped to.
    pub spaces: BTreeSet<String>,
    /// Spaces whose pages are shown to one person (DMs to people from
    /// events), for bindings scoped to a space.
    pub person_spaces: BTreeSet<String>,
    /// Pages of every space may be shown to one person (a global binding
    /// notifying people, or chat answers, which can be about any page).
    pub person_everywhere: bool,
    /// Templates bindings name.
    pub templates: Vec<TemplateUse>,
    /// Bindings that notify a page's watchers (`notify-watchers = true`).
    pub watchers_by: Vec<String>,
}

impl ConfluenceUsage {
    /// The bindings that use `feature` (empty: nothing does).
    pub fn by(&self, feature: Feature) -> &[String] {
        self.features.get(&feature).map_or(&[], Vec::as_slice)
    }

    fn add(&mut self, feature: Feature, by: &str) {
        let list = self.features.entry(feature).or_default();
        if !list.iter().any(|b| b == by) {
            list.push(by.to_owned());
        }
    }
}

/// What the bindings use of one Slack connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlackUsage {
    /// Each used feature and the bindings that use it.
    pub features: BTreeMap<Feature, Vec<String>>,
}

impl SlackUsage {
    /// The bindings that use `feature`.
    pub fn by(&self, feature: Feature) -> &[String] {
        self.features.get(&feature).map_or(&[], Vec::as_slice)
    }

    fn add(&mut self, feature: Feature, by: &str) {
        let list = self.features.entry(feature).or_default();
        if !list.iter().any(|b| b == by) {
            list.push(by.to_owned());
        }
    }
}

/// What every connection is used for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Usage {
    /// By Confluence connection.
    pub confluence: BTreeMap<String, ConfluenceUsage>,
    /// By Slack connection.
    pub slack: BTreeMap<String, SlackUsage>,
    /// Where the bindings left something open (which connection carries
    /// what), in words.
    pub notes: Vec<String>,
}

/// How a binding is named in the report: `binding #3 (slack-poster)`.
pub fn label(b: &Binding) -> String {
    format!(
        "binding #{} ({}{})",
        b.id,
        b.plugin,
        if b.dry_run { ", dry run" } else { "" }
    )
}

/// What the bindings of enabled plugins use of `connections`.
pub fn usage(
    connections: &[ConnectionRecord],
    plugins: &[PluginRecord],
    bindings: &[Binding],
) -> Usage {
    let of_kind = |kind: ConnectionKind| -> Vec<&ConnectionRecord> {
        connections.iter().filter(|c| c.kind == kind).collect()
    };
    let confluence = of_kind(ConnectionKind::Confluence);
    let slack = of_kind(ConnectionKind::Slack);
    let mut out = Usage {
        confluence: confluence
            .iter()
            .map(|c| (c.name.clone(), ConfluenceUsage::default()))
            .collect(),
        slack: slack
            .iter()
            .map(|c| (c.name.clone(), SlackUsage::default()))
            .collect(),
        notes: Vec::new(),
    };
    let with_token: Vec<&str> = confluence
        .iter()
        .filter(|c| c.secret.is_some())
        .map(|c| c.name.as_str())
        .collect();
    let chat_confluence = |workspace: &str, notes: &mut Vec<String>| -> Vec<String> {
        let named = slack
            .iter()
            .find(|c| c.name == workspace)
            .and_then(|c| c.confluence.clone());
        if let Some(named) = named {
            return vec![named];
        }
        match with_token.as_slice() {
            [one] => vec![(*one).to_owned()],
            several => {
                if several.len() > 1 {
                    notes.push(format!(
                        "Slack connection `{workspace}` names no Confluence connection for its lookups (previews, search, linking) and there are several ({}): each is checked for them",
                        several.join(", ")
                    ));
                }
                several.iter().map(|s| (*s).to_owned()).collect()
            }
        }
    };
    let slack_names: Vec<&str> = slack.iter().map(|c| c.name.as_str()).collect();
    for b in bindings {
        let Some(plugin) = plugins.iter().find(|p| p.name == b.plugin) else {
            continue;
        };
        if !plugin.enabled {
            continue;
        }
        let by = label(b);
        let sources: Vec<String> = match &b.source {
            Some(s) if out.confluence.contains_key(s) => vec![s.clone()],
            Some(_) => Vec::new(),
            None => out.confluence.keys().cloned().collect(),
        };
        let setting = |name: &str| {
            b.settings
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.trim().eq_ignore_ascii_case("true"))
                .unwrap_or(false)
        };
        let space = match &b.scope {
            Scope::Space(key) => Some(key.clone()),
            Scope::Global | Scope::Page(_) => None,
        };
        for d in b
            .destinations
            .iter()
            .filter_map(|d| d.parse::<Destination>().ok())
        {
            let kind = d.action_kind();
            if !plugin.grants.iter().any(|g| g == kind) {
                continue;
            }
            let workspaces: Vec<String> = match d.workspace() {
                Some(w) => vec![w.to_owned()],
                None if slack_names.len() == 1 => vec![slack_names[0].to_owned()],
                None => {
                    if d.is_slack() && slack_names.len() > 1 {
                        out.notes.push(format!(
                            "{by}: destination {d} names no Slack workspace and there are several; dispatch refuses its actions until it names one"
                        ));
                    }
                    if d.is_chat_answer() {
                        slack_names.iter().map(|s| (*s).to_owned()).collect()
                    } else {
                        Vec::new()
                    }
                }
            };
            let mut on_slack = |feature: Feature| {
                for w in &workspaces {
                    if let Some(u) = out.slack.get_mut(w) {
                        u.add(feature, &by);
                    }
                }
            };
            match kind {
                "post-slack" | "post-teams" => {
                    if kind == "post-slack" {
                        on_slack(Feature::ChannelPosts);
                    }
                    for s in &sources {
                        let u = out.confluence.get_mut(s).expect("listed above");
                        u.add(Feature::ChannelPosts, &by);
                        u.add(Feature::RestrictedFiltering, &by);
                        u.spaces.extend(space.clone());
                    }
                }
                "dm-slack" => {
                    on_slack(Feature::PersonalNotifications);
                    if d.channel() != Some("*") {
                        continue;
                    }
                    for s in &sources {
                        let u = out.confluence.get_mut(s).expect("listed above");
                        u.add(Feature::PersonalNotifications, &by);
                        u.add(Feature::RestrictedFiltering, &by);
                        u.spaces.extend(space.clone());
                        match &space {
                            Some(key) => {
                                u.person_spaces.insert(key.clone());
                            }
                            None => u.person_everywhere = true,
                        }
                        if setting("notify-watchers") && !u.watchers_by.contains(&by) {
                            u.watchers_by.push(by.clone());
                        }
                    }
                }
                "unfurl" | "respond" => {
                    on_slack(if kind == "unfurl" {
                        Feature::LinkPreviews
                    } else {
                        Feature::SlashCommands
                    });
                    let mut lookups: Vec<String> = Vec::new();
                    for w in &workspaces {
                        for c in chat_confluence(w, &mut out.notes) {
                            if !lookups.contains(&c) {
                                lookups.push(c);
                            }
                        }
                    }
                    for s in &lookups {
                        let Some(u) = out.confluence.get_mut(s) else {
                            continue;
                        };
                        if kind == "respond" {
                            u.add(Feature::Search, &by);
                        }
                        u.add(Feature::LinkingByEmail, &by);
                        u.add(Feature::SelfLinking, &by);
                        u.add(Feature::RestrictedFiltering, &by);
                        u.person_everywhere = true;
                    }
                }
                _ => {}
            }
        }
        for (name, spec) in &plugin.manifest.settings {
            if !spec.confluence_template {
                continue;
            }
            let Some((_, value)) = b.settings.iter().find(|(n, _)| n == name) else {
                continue;
            };
            let Ok((space, template)) =
                crate::confluence::templates::template_ref(value, space.as_deref())
            else {
                continue;
            };
            for s in &sources {
                let u = out.confluence.get_mut(s).expect("listed above");
                u.add(Feature::Templates, &by);
                u.templates.push(TemplateUse {
                    space: space.clone(),
                    name: template.clone(),
                    by: by.clone(),
                });
            }
        }
    }
    out.notes.sort();
    out.notes.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Manifest, SettingSpec};

    fn conn(name: &str, kind: ConnectionKind, token: bool) -> ConnectionRecord {
        let mut c = ConnectionRecord::new(name, kind, "http://127.0.0.1:1");
        if token {
            c.secret = Some(crate::secret::SecretSource::Env("T".into()));
        }
        c
    }

    fn plugin(name: &str, grants: &[&str], template_setting: bool) -> PluginRecord {
        let mut settings = std::collections::BTreeMap::new();
        if template_setting {
            settings.insert(
                "space-template".to_owned(),
                SettingSpec {
                    description: "t".into(),
                    required: false,
                    default: None,
                    confluence_template: true,
                    ..SettingSpec::default()
                },
            );
        }
        crate::testing::plugin(
            Manifest {
                name: name.into(),
                version: "0.2.0".into(),
                description: String::new(),
                wit: "0.2.0".into(),
                component: "p.wasm".into(),
                events: vec!["*".into()],
                actions: grants.iter().map(|g| (*g).to_owned()).collect(),
                settings,
                limits: Default::default(),
                digests: false,
            },
            grants,
        )
    }

    fn binding(
        id: i64,
        plugin: &str,
        scope: Scope,
        to: &[&str],
        settings: &[(&str, &str)],
    ) -> Binding {
        Binding {
            id,
            plugin: plugin.into(),
            source: None,
            scope,
            events: vec![],
            destinations: to.iter().map(|d| (*d).to_owned()).collect(),
            settings: settings
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            dry_run: false,
            created_at: 0,
        }
    }

    #[test]
    fn destinations_say_which_features_each_connection_carries() {
        let conns = [
            conn("wiki", ConnectionKind::Confluence, true),
            conn("acme", ConnectionKind::Slack, true),
        ];
        let plugins = [
            plugin(
                "slack-poster",
                &["post-slack", "dm-slack", "unfurl", "respond"],
                false,
            ),
            plugin("retro-writer", &["create-page"], true),
        ];
        let bindings = [
            binding(
                1,
                "slack-poster",
                Scope::Space("ENG".into()),
                &["slack:#eng", "slack-dm:*"],
                &[("notify-watchers", "true")],
            ),
            binding(
                2,
                "slack-poster",
                Scope::Global,
                &["slack-unfurl:acme", "slack-respond:acme"],
                &[],
            ),
            binding(
                3,
                "retro-writer",
                Scope::Space("OPS".into()),
                &["confluence:OPS"],
                &[("space-template", "Retro")],
            ),
        ];
        let u = usage(&conns, &plugins, &bindings);
        let wiki = &u.confluence["wiki"];
        const B1: &str = "binding #1 (slack-poster)";
        const B2: &str = "binding #2 (slack-poster)";
        assert_eq!(wiki.by(Feature::ChannelPosts), [B1]);
        assert_eq!(wiki.by(Feature::PersonalNotifications), [B1]);
        assert_eq!(wiki.by(Feature::Search), [B2]);
        assert_eq!(wiki.by(Feature::LinkingByEmail), [B2]);
        assert_eq!(wiki.by(Feature::SelfLinking), [B2]);
        assert_eq!(wiki.by(Feature::RestrictedFiltering), [B1, B2]);
        assert!(wiki.by(Feature::SpaceAdminSignIn).is_empty());
        assert_eq!(wiki.watchers_by, [B1]);
        assert_eq!(wiki.spaces, BTreeSet::from(["ENG".to_owned()]));
        assert_eq!(wiki.person_spaces, BTreeSet::from(["ENG".to_owned()]));
        assert!(wiki.person_everywhere, "chat answers are about any page");
        assert_eq!(
            wiki.templates,
            [TemplateUse {
                space: "OPS".into(),
                name: "Retro".into(),
                by: "binding #3 (retro-writer)".into()
            }]
        );
        let acme = &u.slack["acme"];
        assert_eq!(acme.by(Feature::ChannelPosts), [B1]);
        assert_eq!(acme.by(Feature::PersonalNotifications), [B1]);
        assert_eq!(acme.by(Feature::LinkPreviews), [B2]);
        assert_eq!(acme.by(Feature::SlashCommands), [B2]);
        assert!(u.notes.is_empty(), "{:?}", u.notes);
    }

    #[test]
    fn ungranted_actions_disabled_plugins_and_fixed_dms_use_no_confluence_feature() {
        let conns = [
            conn("wiki", ConnectionKind::Confluence, true),
            conn("acme", ConnectionKind::Slack, true),
        ];
        let mut off = plugin("off", &["post-slack"], false);
        off.enabled = false;
        let plugins = [plugin("poster", &["post-slack", "dm-slack"], false), off];
        let bindings = [
            binding(
                1,
                "poster",
                Scope::Global,
                &["slack-dm:ada@example.com"],
                &[],
            ),
            binding(2, "poster", Scope::Global, &["slack-unfurl:acme"], &[]),
            binding(3, "off", Scope::Global, &["slack:#eng"], &[]),
        ];
        let u = usage(&conns, &plugins, &bindings);
        assert!(
            u.confluence["wiki"].features.is_empty(),
            "{:?}",
            u.confluence
        );
        assert_eq!(
            u.slack["acme"].by(Feature::PersonalNotifications),
            ["binding #1 (poster)".to_owned()],
            "a fixed address is still a DM through Slack"
        );
        assert!(u.slack["acme"].by(Feature::LinkPreviews).is_empty());
        assert!(u.slack["acme"].by(Feature::ChannelPosts).is_empty());
    }

    #[test]
    fn a_binding_from_one_source_uses_only_that_confluence() {
        let conns = [
            conn("wiki", ConnectionKind::Confluence, true),
            conn("docs", ConnectionKind::Confluence, true),
            conn("acme", ConnectionKind::Slack, true),
            conn("beta", ConnectionKind::Slack, true),
        ];
        let plugins = [plugin("poster", &["post-slack", "respond"], false)];
        let mut b = binding(1, "poster", Scope::Global, &["slack:acme/#eng"], &[]);
        b.source = Some("docs".into());
        let chat = binding(2, "poster", Scope::Global, &["slack-respond:*"], &[]);
        let u = usage(&conns, &plugins, &[b, chat]);
        assert!(u.confluence["wiki"].by(Feature::ChannelPosts).is_empty());
        assert_eq!(u.confluence["docs"].by(Feature::ChannelPosts).len(), 1);
        assert_eq!(u.slack["acme"].by(Feature::ChannelPosts).len(), 1);
        assert!(u.slack["beta"].by(Feature::ChannelPosts).is_empty());
        assert_eq!(u.slack["beta"].by(Feature::SlashCommands).len(), 1);
        assert_eq!(u.confluence["wiki"].by(Feature::Search).len(), 1);
        assert_eq!(u.confluence["docs"].by(Feature::Search).len(), 1);
        assert_eq!(u.notes.len(), 2, "one per Slack connection: {:?}", u.notes);
    }
}
