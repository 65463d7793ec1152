//! A binding's settings kept in step with the binding itself, for `bind`
//! (CLI, API and console alike):
//!
//! - a setting the manifest declares `type = "destination"` (slack-poster's
//!   `channel`) must name a place one of the binding's destinations of that
//!   action kind allows (`channel=#general` with `--to slack:#eng` is
//!   refused, saying both); left out, it takes the binding's one concrete
//!   destination of that kind;
//! - the `type = "event-kinds"` setting follows the binding's own event
//!   kinds (`--events`); given as well, it must agree with them;
//! - typed values are checked (`true`/`false`, a choice, a page id, event
//!   kinds), and a value equal to the default is not stored.
//!
//! It only computes: it reads nothing and writes nothing. What it must
//! never do: accept a setting that would make every delivery of the
//! binding be refused by its own destinations.

use crate::destination::{Destination, split_workspace};
use crate::manifest::{Manifest, SettingSpec, SettingType, parse_list};
use crate::model::Action;

use super::{AdminError, AdminResult};

/// The settings to store for a binding of `plugin` with `manifest`,
/// event kinds `events` (as given; empty: every kind it handles) and
/// `destinations` (parsed, Slack ones in their workspace), from the
/// settings the admin gave: checked, filled where the binding decides
/// them, and without the values that are the defaults anyway.
pub fn in_step(
    plugin: &str,
    manifest: &Manifest,
    events: &[String],
    destinations: &[Destination],
    given: &[(String, String)],
) -> AdminResult<Vec<(String, String)>> {
    // The last value given for a name wins, as in `resolve_settings`.
    let mut settings: Vec<(String, String)> = Vec::new();
    for (name, value) in given {
        let Some(spec) = manifest.settings.get(name) else {
            // `resolve_settings` names the settings there are.
            return manifest
                .resolve_settings(given)
                .map(|_| Vec::new())
                .map_err(AdminError::Invalid);
        };
        spec.check_value(name, value, &manifest.event_kinds(spec))
            .map_err(|m| AdminError::Invalid(format!("plugin `{plugin}`: {m}")))?;
        settings.retain(|(n, _)| n != name);
        settings.push((name.clone(), value.trim().to_owned()));
    }
    for (name, spec) in &manifest.settings {
        match spec.kind {
            SettingType::Destination => {
                destination_in_step(plugin, name, spec, destinations, &mut settings)?
            }
            SettingType::EventKinds => {
                events_in_step(plugin, manifest, name, spec, events, &mut settings)?
            }
            _ => {}
        }
    }
    settings.retain(|(name, value)| !manifest.settings[name].is_default(value));
    Ok(settings)
}

/// Checks (or fills) the setting naming where `spec.action` actions go.
fn destination_in_step(
    plugin: &str,
    name: &str,
    spec: &SettingSpec,
    destinations: &[Destination],
    settings: &mut Vec<(String, String)>,
) -> AdminResult<()> {
    let Some(action) = spec.action.as_deref() else {
        return Ok(());
    };
    let of_kind: Vec<&Destination> = destinations
        .iter()
        .filter(|d| d.action_kind() == action)
        .collect();
    match settings.iter().find(|(n, _)| n == name) {
        Some((_, value)) if !value.is_empty() => {
            let probe = probe(action, value).ok_or_else(|| {
                AdminError::Invalid(format!(
                    "plugin `{plugin}`: setting `{name}` = `{value}` is not {}",
                    what(action)
                ))
            })?;
            if of_kind.iter().any(|d| d.allows(&probe)) {
                return Ok(());
            }
            let listed = if of_kind.is_empty() {
                "none".to_owned()
            } else {
                of_kind
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let hint = match of_kind.as_slice() {
                [only] if target(only) != "*" => format!(
                    "set {name}={} (what the binding allows), or allow `{value}` with --to",
                    target(only)
                ),
                _ => format!(
                    "allow it with --to (e.g. {}), or leave `{name}` out",
                    example(action, value)
                ),
            };
            Err(AdminError::Invalid(format!(
                "plugin `{plugin}`: setting `{name}` = `{value}` names {} this binding does not allow (its {action} destinations: {listed}), so every such post would be refused: {hint}",
                what(action)
            )))
        }
        _ => {
            // Left out: the one place the binding allows, if there is one.
            let concrete: Vec<String> = of_kind
                .iter()
                .map(|d| target(d))
                .filter(|t| t != "*")
                .collect();
            if let [only] = concrete.as_slice() {
                settings.retain(|(n, _)| n != name);
                settings.push((name.to_owned(), only.clone()));
            }
            Ok(())
        }
    }
}

/// Keeps the `event-kinds` setting equal to the binding's event kinds.
fn events_in_step(
    plugin: &str,
    manifest: &Manifest,
    name: &str,
    spec: &SettingSpec,
    events: &[String],
    settings: &mut Vec<(String, String)>,
) -> AdminResult<()> {
    if events.is_empty() {
        // The binding takes every kind; the setting says which it posts.
        return Ok(());
    }
    let kinds = manifest.event_kinds(spec);
    let following: Vec<String> = events
        .iter()
        .filter(|e| kinds.contains(e))
        .cloned()
        .collect();
    match settings.iter().find(|(n, _)| n == name) {
        Some((_, value)) => {
            let mut given = parse_list(value);
            let mut wanted = following.clone();
            given.sort();
            given.dedup();
            wanted.sort();
            wanted.dedup();
            if given == wanted {
                Ok(())
            } else {
                Err(AdminError::Invalid(format!(
                    "plugin `{plugin}`: the binding's events ({}) and setting `{name}` ({value}) disagree; give the event kinds once, with --events: `{name}` follows them",
                    events.join(", ")
                )))
            }
        }
        None if following.is_empty() => Ok(()),
        None => {
            settings.push((name.to_owned(), following.join(", ")));
            Ok(())
        }
    }
}

/// An action of kind `action` going to `target`, to ask a destination
/// whether it allows it; `None` when `target` cannot be one.
fn probe(action: &str, target: &str) -> Option<Action> {
    Some(match action {
        "post-slack" => Action::PostSlack {
            channel: target.to_owned(),
            text: String::new(),
            blocks: None,
            thread_key: None,
        },
        "dm-slack" => Action::DmSlack {
            email: target.to_owned(),
            text: String::new(),
            blocks: None,
        },
        "post-teams" => Action::PostTeams {
            channel: target.to_owned(),
            card: serde_json::Value::Null,
        },
        "create-page" => Action::CreatePage {
            space_key: target.to_owned(),
            parent_id: None,
            title: String::new(),
            body: String::new(),
            labels: Vec::new(),
            once_key: None,
        },
        "add-comment" => Action::AddComment {
            page_id: target.parse().ok()?,
            body: String::new(),
            once_key: None,
        },
        _ => return None,
    })
}

/// A destination's target without its kind and Slack workspace
/// (`slack:acme/#eng` → `#eng`, `teams:eng-news` → `eng-news`).
fn target(d: &Destination) -> String {
    let text = d.to_string();
    let target = text.split_once(':').map_or("", |(_, t)| t);
    if d.is_slack() {
        split_workspace(target).1.to_owned()
    } else {
        target.to_owned()
    }
}

/// What a setting naming `action`'s destination names, in words.
fn what(action: &str) -> &'static str {
    match action {
        "post-slack" => "a Slack channel",
        "dm-slack" => "a Slack user's email",
        "post-teams" => "a Teams connection",
        "create-page" => "a Confluence space",
        "add-comment" => "a Confluence page id",
        _ => "a destination",
    }
}

fn example(action: &str, value: &str) -> String {
    let kind = match action {
        "post-slack" => "slack",
        "dm-slack" => "slack-dm",
        "post-teams" => "teams",
        "create-page" => "confluence",
        "add-comment" => "comment",
        _ => action,
    };
    format!("{kind}:{value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const POSTER: &str = r#"
name = "poster"
version = "0.1.0"
description = "d"
wit = "0.2.0"
component = "poster.wasm"
events = ["page-created", "page-updated", "blog-created", "link-shared"]
actions = ["post-slack", "post-teams", "unfurl"]
[settings.channel]
description = "where"
type = "destination"
action = "post-slack"
[settings.team]
description = "Teams connection"
type = "destination"
action = "post-teams"
[settings.events]
description = "which"
type = "event-kinds"
choices = ["page-created", "page-updated", "blog-created"]
default = "page-created, blog-created"
[settings.quiet]
description = "q"
type = "bool"
default = "false"
"#;

    fn dests(list: &[&str]) -> Vec<Destination> {
        list.iter().map(|d| d.parse().unwrap()).collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn run(
        events: &[&str],
        to: &[&str],
        given: &[(&str, &str)],
    ) -> AdminResult<Vec<(String, String)>> {
        let m = Manifest::parse(POSTER).unwrap();
        let events: Vec<String> = events.iter().map(|e| e.to_string()).collect();
        in_step("poster", &m, &events, &dests(to), &pairs(given))
    }

    #[test]
    fn a_channel_the_binding_does_not_allow_is_refused_naming_both() {
        let err = run(&[], &["slack:acme/#eng"], &[("channel", "#general")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`channel` = `#general`")
                && err.contains("slack:acme/#eng")
                && err.contains("set channel=#eng"),
            "{err}"
        );
        let err = run(&[], &["teams:ops"], &[("team", "eng-news")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a Teams connection") && err.contains("teams:ops"),
            "{err}"
        );
        let err = run(&[], &[], &[("channel", "#eng")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("destinations: none") && err.contains("slack:#eng"),
            "{err}"
        );
        // Allowed: the same channel in any case, with or without #, or a wildcard.
        assert!(run(&[], &["slack:acme/#eng"], &[("channel", "ENG")]).is_ok());
        assert!(run(&[], &["slack:acme/*"], &[("channel", "#random")]).is_ok());
    }

    #[test]
    fn a_channel_left_out_is_the_bindings_one_destination() {
        assert_eq!(
            run(&[], &["slack:acme/#eng", "teams:eng-news"], &[]).unwrap(),
            pairs(&[("channel", "#eng"), ("team", "eng-news")])
        );
        // Several, or only a wildcard: left out (the plugin says what it needs).
        assert_eq!(
            run(&[], &["slack:acme/#eng", "slack:acme/#ops"], &[]).unwrap(),
            vec![]
        );
        assert_eq!(run(&[], &["slack:acme/*"], &[]).unwrap(), vec![]);
    }

    #[test]
    fn the_event_kinds_setting_follows_the_bindings_events() {
        assert_eq!(
            run(&["page-updated", "link-shared"], &[], &[]).unwrap(),
            pairs(&[("events", "page-updated")])
        );
        // The default, as a set: not stored.
        assert_eq!(
            run(&["blog-created", "page-created"], &[], &[]).unwrap(),
            vec![]
        );
        assert_eq!(
            run(&[], &[], &[("events", "page-updated")]).unwrap(),
            pairs(&[("events", "page-updated")])
        );
        let err = run(&["page-created"], &[], &[("events", "page-updated")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("disagree") && err.contains("--events"),
            "{err}"
        );
        assert!(run(&["page-created"], &[], &[("events", "page-created")]).is_ok());
    }

    #[test]
    fn typed_values_are_checked_and_defaults_dropped() {
        let err = run(&[], &[], &[("quiet", "maybe")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("true or false"), "{err}");
        assert_eq!(run(&[], &[], &[("quiet", "no")]).unwrap(), vec![]);
        assert_eq!(
            run(&[], &[], &[("quiet", "false"), ("quiet", "true")]).unwrap(),
            pairs(&[("quiet", "true")]),
            "the last value given wins"
        );
        let err = run(&[], &[], &[("chanel", "#eng")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no setting `chanel`"), "{err}");
    }
}
