//! The "Add a binding" form, made from the plugin's manifest and the
//! connections there are, so an admin chooses instead of typing:
//!
//! - **Where to post**, chosen once: for each destination kind the plugin
//!   was granted, a picker fed by the connection (a Slack workspace's
//!   channels, searchable, private ones marked; the Teams connections; a
//!   Confluence connection's spaces). The choice fills both the binding's
//!   destination (`to[]`) and the plugin's setting that names it
//!   (`type = "destination"` in the manifest), so the two agree by
//!   construction; `bind` refuses them disagreeing anyway.
//! - **Events**, once: the binding's event kinds, ticked as the plugin's
//!   `event-kinds` setting would default; that setting follows them.
//! - **Settings by type**: booleans as checkboxes, lists as chips, choices
//!   as selects, page ids with a page search; every value starts at its
//!   default and `bind` stores only what differs.
//!
//! `forms.js` drives the pickers (it asks `/api/connections/{name}/channels`,
//! `.../spaces` and `.../pages`); without it, every field is still a plain
//! input that works. What it must never do: offer a space admin a space
//! that is not theirs, or hold a secret.

use maud::{Markup, html};

use super::{Viewer, field};
use crate::manifest::{Manifest, SettingSpec, SettingType, parse_bool, parse_list};
use crate::server::session::Principal;
use crate::store::{ConnectionKind, ConnectionRecord, PluginRecord};

/// The whole form for plugin `p`, scoped to `space` when one is chosen.
pub(super) fn add_form(
    viewer: &Viewer,
    p: &PluginRecord,
    space: Option<&str>,
    connections: &[ConnectionRecord],
) -> Markup {
    let m = &p.manifest;
    let granted = |kind: &str| p.grants.iter().any(|g| g == kind);
    let of_kind = |k: ConnectionKind| -> Vec<&ConnectionRecord> {
        connections.iter().filter(|c| c.kind == k).collect()
    };
    let slack = of_kind(ConnectionKind::Slack);
    let teams = of_kind(ConnectionKind::Teams);
    let confluence = of_kind(ConnectionKind::Confluence);
    let pickable = (granted("post-slack") && !slack.is_empty())
        || (granted("post-teams") && !teams.is_empty())
        || granted("create-page");
    html! {
        form class="binding-form" data-method="POST" data-path="/api/bindings" data-then="reload"
            data-describe="binding-added" {
            input type="hidden" name="plugin" value=(p.name);
            p { "Plugin " strong { (p.name) } " — " (m.description) }
            (space_field(viewer.principal(), space, "binding-space", "scope", true))
            @if pickable {
                fieldset class="where" {
                    legend { "Where to post" }
                    @if granted("post-slack") && !slack.is_empty() {
                        (slack_picker(m, &slack))
                    }
                    @if granted("post-teams") && !teams.is_empty() {
                        (teams_picker(m, &teams))
                    }
                    @if granted("create-page") {
                        (space_picker(viewer.principal(), m, &confluence))
                    }
                }
            } @else if !p.grants.is_empty() {
                p class="notice" {
                    "No connection to post through yet: "
                    a href="/console/connections" { "connect Slack, Teams or Confluence" }
                    " first, or type the destinations below."
                }
            }
            (chat_answers(p, &slack))
            (field("destinations", "More destinations", Some("Optional, comma separated: other places its actions may go, e.g. slack-dm:acme/*, comment:*. The plugin may deliver only to the destinations of its binding."), html! {
                input id="destinations" name="to[]" type="text" aria-describedby="destinations-help";
            }))
            (events_fieldset(m))
            (settings_fieldset(m, connections, space))
            label class="check" { input type="checkbox" name="dry_run" id="binding-dry-run"; "Dry run" }
            button type="submit" { "Add binding" }
        }
    }
}

/// The "Space key" field: a select of a space admin's spaces, free text for
/// the admin (empty: every space). `for_add` makes it the add form's
/// (`space:` prefixed) field.
pub(super) fn space_field(
    who: &Principal,
    current: Option<&str>,
    id: &str,
    name: &str,
    for_add: bool,
) -> Markup {
    let prefix = if for_add { Some("space:") } else { None };
    let label = if for_add { "Space key" } else { "Space" };
    match who {
        Principal::SpaceAdmin(s) => field(
            id,
            label,
            None,
            html! {
                select id=(id) name=(name) data-prefix=[prefix] {
                    @if !for_add { option value="" { "All my spaces" } }
                    @for key in &s.spaces {
                        option value=(key) selected[current.is_some_and(|c| c.eq_ignore_ascii_case(key))] { (key) }
                    }
                }
            },
        ),
        Principal::Admin => {
            let help = if for_add {
                "A space key such as ENG (any case). Empty binds it to every space (global)."
            } else {
                "Any case. Empty shows every binding."
            };
            field(
                id,
                label,
                Some(help),
                html! {
                    input id=(id) name=(name) type="text" value=[current] data-prefix=[prefix]
                        data-upper aria-describedby={ (id) "-help" } autocapitalize="characters";
                },
            )
        }
    }
}

/// The setting that names `action`'s destination, for the picker to fill.
fn setting_input(m: &Manifest, action: &str, id: &str) -> Markup {
    match m.destination_setting(action) {
        Some((name, _)) => html! {
            input type="hidden" id=(id) name={ "settings." (name) } data-setting=(name);
        },
        None => html! {},
    }
}

/// Slack: the workspace, a channel search and the channel list.
fn slack_picker(m: &Manifest, slack: &[&ConnectionRecord]) -> Markup {
    let setting = m.destination_setting("post-slack").map(|(n, _)| n);
    html! {
        div class="picker" data-picker="slack" {
            h3 { "Slack channel" }
            (field("pick-slack-workspace", "Slack workspace", None, html! {
                select id="pick-slack-workspace" data-pick-workspace {
                    @for c in slack {
                        option value=(c.name) { (c.name) @if c.dry_run { " (dry run)" } }
                    }
                }
            }))
            (field("pick-slack-search", "Find a channel", Some("Type part of its name. The list shows public channels, and private ones the bot is in (marked private)."), html! {
                input id="pick-slack-search" type="search" autocomplete="off" data-pick-search aria-describedby="pick-slack-search-help";
            }))
            (field("pick-slack-channel", "Channel", None, html! {
                select id="pick-slack-channel" size="6" data-pick-channel {
                    option value="" { "(no channel: choose one to post to)" }
                }
            }))
            p class="muted picker-status" aria-live="polite" data-pick-status {}
            input type="hidden" name="to[]" data-pick-destination;
            (setting_input(m, "post-slack", "pick-slack-setting"))
            p class="picked" data-pick-summary {
                "Posts nowhere yet."
                @if let Some(s) = setting { " The setting " code { (s) } " follows the channel chosen here." }
            }
        }
    }
}

/// Teams: one workflow per channel, so the connection is the channel.
fn teams_picker(m: &Manifest, teams: &[&ConnectionRecord]) -> Markup {
    let setting = m.destination_setting("post-teams").map(|(n, _)| n);
    html! {
        div class="picker" data-picker="teams" {
            h3 { "Teams channel" }
            (field("pick-teams", "Teams channel (connection)", Some("Each Teams connection is one channel's workflow."), html! {
                select id="pick-teams" data-pick-teams aria-describedby="pick-teams-help" {
                    option value="" { "(none)" }
                    @for c in teams {
                        option value=(c.name) { (c.name) @if c.dry_run { " (dry run)" } @if c.health.is_some() { " — failing" } }
                    }
                }
            }))
            input type="hidden" name="to[]" data-pick-destination;
            (setting_input(m, "post-teams", "pick-teams-setting"))
            p class="picked" data-pick-summary {
                "Posts to no Teams channel."
                @if let Some(s) = setting { " The setting " code { (s) } " follows the channel chosen here." }
            }
        }
    }
}

/// Confluence: the space pages are created in (from a connection's spaces).
fn space_picker(who: &Principal, m: &Manifest, confluence: &[&ConnectionRecord]) -> Markup {
    let setting = m.destination_setting("create-page").map(|(n, _)| n);
    let listable: Vec<&&ConnectionRecord> =
        confluence.iter().filter(|c| c.secret.is_some()).collect();
    html! {
        div class="picker" data-picker="confluence" {
            h3 { "Confluence space to write in" }
            @if let Some(c) = listable.first() {
                input type="hidden" data-pick-connection value=(c.name);
            }
            (field("pick-space", "Space to write in", Some("A space key; type to search the spaces Pagehook's account can see. Empty: any space."), html! {
                input id="pick-space" type="text" list="pick-space-options" autocomplete="off"
                    data-pick-space data-upper aria-describedby="pick-space-help";
                datalist id="pick-space-options" {
                    @if let Principal::SpaceAdmin(s) = who {
                        @for key in &s.spaces { option value=(key) {} }
                    }
                }
            }))
            input type="hidden" name="to[]" data-pick-destination;
            (setting_input(m, "create-page", "pick-space-setting"))
            p class="picked" data-pick-summary {
                "Writes in no space yet."
                @if let Some(s) = setting { " The setting " code { (s) } " follows the space chosen here." }
            }
        }
    }
}

/// Chat answers (link previews, `/confluence`) in a workspace: checkboxes
/// for the grants that need them.
fn chat_answers(p: &PluginRecord, slack: &[&ConnectionRecord]) -> Markup {
    let kinds: Vec<(&str, &str, &str)> = [
        (
            "unfurl",
            "slack-unfurl",
            "Preview Confluence links shared in",
        ),
        ("respond", "slack-respond", "Answer /confluence in"),
        ("dm-slack", "slack-dm", "Direct messages to anyone in"),
    ]
    .into_iter()
    .filter(|(g, _, _)| p.grants.iter().any(|x| x == g))
    .collect();
    if kinds.is_empty() || slack.is_empty() {
        return html! {};
    }
    html! {
        fieldset {
            legend { "Chat" }
            @for (_, prefix, words) in &kinds {
                @for c in slack {
                    @let value = if *prefix == "slack-dm" { format!("{prefix}:{}/*", c.name) } else { format!("{prefix}:{}", c.name) };
                    label class="check" {
                        input type="checkbox" name="to[]" value=(value);
                        (words) " " (c.name)
                    }
                }
            }
        }
    }
}

/// The binding's event kinds, once. With an `event-kinds` setting, its
/// default kinds start ticked and the setting follows the ticks.
fn events_fieldset(m: &Manifest) -> Markup {
    let kinds = m.wanted_kinds();
    let setting = m.event_kinds_setting();
    let ticked: Vec<String> = setting
        .and_then(|(_, s)| s.default.as_deref())
        .map(parse_list)
        .unwrap_or_default();
    html! {
        fieldset {
            legend { "Events" }
            p class="muted" {
                @match setting {
                    Some((name, s)) => {
                        "The plugin's setting " code { (name) } " follows these. None ticked: "
                        (s.default.clone().unwrap_or_else(|| "every kind it subscribes to".into())) "."
                    }
                    None => "None ticked: every event it subscribes to.",
                }
            }
            @for kind in &kinds {
                label class="check" {
                    input type="checkbox" name="events[]" value=(kind) id={ "event-" (kind) } checked[ticked.contains(kind)];
                    (kind)
                }
            }
        }
    }
}

/// Every setting an admin sets here: not the ones the pickers and the
/// event ticks fill.
fn settings_fieldset(
    m: &Manifest,
    connections: &[ConnectionRecord],
    space: Option<&str>,
) -> Markup {
    let shown: Vec<(&String, &SettingSpec)> = m
        .settings
        .iter()
        .filter(|(_, s)| !matches!(s.kind, SettingType::EventKinds))
        .filter(|(_, s)| {
            // A destination setting is the picker's, when there is one.
            !(s.kind == SettingType::Destination
                && matches!(
                    s.action.as_deref(),
                    Some("post-slack" | "post-teams" | "create-page")
                ))
        })
        .collect();
    if shown.is_empty() {
        return html! {};
    }
    let page_source = connections
        .iter()
        .find(|c| c.kind == ConnectionKind::Confluence && c.secret.is_some())
        .map(|c| c.name.as_str());
    html! {
        fieldset {
            legend { "Settings" }
            p class="muted" { "Each starts at its default; only what you change is stored with the binding." }
            @for (name, s) in shown {
                (setting_field(name, s, page_source, space))
            }
        }
    }
}

/// One setting's control, by its type.
fn setting_field(name: &str, s: &SettingSpec, pages: Option<&str>, space: Option<&str>) -> Markup {
    let id = format!("setting-{name}");
    let help = format!("{}-help", id);
    let input_name = format!("settings.{name}");
    match s.kind {
        SettingType::Bool => html! {
            div class="field check-field" {
                label class="check" {
                    input type="checkbox" id=(id) name=(input_name) data-type="text"
                        checked[s.default.as_deref().and_then(parse_bool).unwrap_or(false)]
                        aria-describedby=(help);
                    (name)
                }
                small id=(help) class="help" { (s.description) }
            }
        },
        SettingType::Choice => field(
            &id,
            name,
            Some(&s.description),
            html! {
                select id=(id) name=(input_name) aria-describedby=(help) {
                    @if s.default.is_none() && !s.required { option value="" { "(not set)" } }
                    @for c in &s.choices {
                        option value=(c) selected[s.default.as_deref() == Some(c.as_str())] { (c) }
                    }
                }
            },
        ),
        SettingType::List => field(
            &id,
            name,
            Some(&s.description),
            html! {
                input id=(id) name=(input_name) type="text" value=[s.default.as_deref()]
                    required[s.required] data-chips aria-describedby=(help);
            },
        ),
        SettingType::PageId => field(
            &id,
            name,
            Some(&s.description),
            html! {
                input id=(id) name=(input_name) type="text" inputmode="numeric" value=[s.default.as_deref()]
                    required[s.required] list={ (id) "-pages" } autocomplete="off"
                    data-page-picker=[pages] data-space=[space] aria-describedby=(help)
                    placeholder=[pages.map(|_| "a page id, or type a title to search")];
                datalist id={ (id) "-pages" } {}
            },
        ),
        _ => field(
            &id,
            name,
            Some(&s.description),
            html! {
                input id=(id) name=(input_name) type="text" value=[s.default.as_deref()]
                    required[s.required] aria-describedby=(help);
            },
        ),
    }
}
