//! Binding destinations: the third party of the two-party rule.
//!
//! A plugin names where an action goes (a channel, an email, a space); the
//! admin lists, per binding, where that binding's actions may go. An action
//! is delivered only if one of the binding's destinations allows it:
//!
//! | destination | allows |
//! | --- | --- |
//! | `slack:#eng` | `post-slack` to channel `#eng` (`slack:*`: any channel) |
//! | `slack-dm:ada@example.com` | `dm-slack` to that address (`slack-dm:*`: anyone) |
//! | `teams:eng-news` | `post-teams` to the Teams connection `eng-news` (`teams:*`: any) |
//! | `confluence:ENG` | `create-page` in space `ENG` (`confluence:*`: any space) |
//! | `comment:123` | `add-comment` on page 123 (`comment:*`: any page) |
//!
//! Matching is exact (Slack channel names ignore case and a leading `#`).

use std::fmt;
use std::str::FromStr;

use crate::model::Action;

/// One parsed `--to` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    kind: Kind,
    target: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Slack,
    SlackDm,
    Teams,
    Confluence,
    Comment,
}

const KINDS: [(Kind, &str, &str); 5] = [
    (Kind::Slack, "slack", "post-slack"),
    (Kind::SlackDm, "slack-dm", "dm-slack"),
    (Kind::Teams, "teams", "post-teams"),
    (Kind::Confluence, "confluence", "create-page"),
    (Kind::Comment, "comment", "add-comment"),
];

impl Destination {
    /// The action kind this destination can receive.
    pub fn action_kind(&self) -> &'static str {
        KINDS
            .iter()
            .find(|k| k.0 == self.kind)
            .map(|k| k.2)
            .unwrap_or_default()
    }

    /// Whether `action` may go here.
    pub fn allows(&self, action: &Action) -> bool {
        if action.kind() != self.action_kind() {
            return false;
        }
        if self.target == "*" {
            return true;
        }
        let wanted = action.destination();
        match self.kind {
            Kind::Slack => slack_channel(&self.target) == slack_channel(&wanted),
            Kind::SlackDm => self.target.eq_ignore_ascii_case(&wanted),
            _ => self.target == wanted,
        }
    }
}

fn slack_channel(name: &str) -> String {
    name.trim_start_matches('#').to_ascii_lowercase()
}

impl FromStr for Destination {
    type Err = String;

    fn from_str(s: &str) -> Result<Destination, String> {
        let usage = || {
            format!(
                "`{s}`: a destination is slack:<#channel>, slack-dm:<email>, teams:<connection>, confluence:<SPACE> or comment:<page id> (target * for any)"
            )
        };
        let (kind, target) = s.split_once(':').ok_or_else(usage)?;
        let kind = KINDS
            .iter()
            .find(|k| k.1 == kind)
            .map(|k| k.0)
            .ok_or_else(usage)?;
        let target = target.trim();
        if target.is_empty() {
            return Err(usage());
        }
        if kind == Kind::Comment && target != "*" && target.parse::<u64>().is_err() {
            return Err(format!(
                "`{s}`: comment destinations take a numeric page id or *"
            ));
        }
        Ok(Destination {
            kind,
            target: target.to_owned(),
        })
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = KINDS
            .iter()
            .find(|k| k.0 == self.kind)
            .map(|k| k.1)
            .unwrap_or_default();
        write!(f, "{name}:{}", self.target)
    }
}

/// The first of a binding's destinations that allows `action`.
pub fn first_allowing<'a>(destinations: &'a [String], action: &Action) -> Option<&'a str> {
    destinations
        .iter()
        .find(|d| d.parse::<Destination>().is_ok_and(|d| d.allows(action)))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slack(channel: &str) -> Action {
        Action::PostSlack {
            channel: channel.into(),
            text: "t".into(),
            blocks: None,
            thread_key: None,
        }
    }

    #[test]
    fn destinations_allow_only_their_kind_and_target() {
        let eng: Destination = "slack:#eng".parse().unwrap();
        assert!(eng.allows(&slack("#eng")));
        assert!(
            eng.allows(&slack("ENG")),
            "case and # do not matter in Slack"
        );
        assert!(!eng.allows(&slack("#random")));
        let any: Destination = "slack:*".parse().unwrap();
        assert!(any.allows(&slack("#random")));
        let page = Action::CreatePage {
            space_key: "ENG".into(),
            parent_id: None,
            title: "t".into(),
            body: "<p/>".into(),
            labels: vec![],
            once_key: None,
        };
        assert!(!any.allows(&page));
        assert!(
            "confluence:ENG"
                .parse::<Destination>()
                .unwrap()
                .allows(&page)
        );
        assert!(
            !"confluence:OPS"
                .parse::<Destination>()
                .unwrap()
                .allows(&page)
        );
        let comment = Action::AddComment {
            page_id: 7,
            body: "<p/>".into(),
            once_key: None,
        };
        assert!("comment:7".parse::<Destination>().unwrap().allows(&comment));
        assert!("comment:*".parse::<Destination>().unwrap().allows(&comment));
        assert_eq!(
            first_allowing(&["teams:x".into(), "slack:#eng".into()], &slack("#eng")),
            Some("slack:#eng")
        );
    }

    #[test]
    fn bad_destinations_explain_the_syntax() {
        assert!(
            "#eng"
                .parse::<Destination>()
                .unwrap_err()
                .contains("slack:<#channel>")
        );
        assert!("email:x".parse::<Destination>().is_err());
        assert!("slack:".parse::<Destination>().is_err());
        assert!(
            "comment:abc"
                .parse::<Destination>()
                .unwrap_err()
                .contains("numeric")
        );
        assert_eq!(
            "teams:eng".parse::<Destination>().unwrap().to_string(),
            "teams:eng"
        );
    }
}
