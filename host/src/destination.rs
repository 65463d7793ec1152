//! Binding destinations: the third party of the two-party rule.
//!
//! A plugin names where an action goes (a channel, an email, a space); the
//! admin lists, per binding, where that binding's actions may go. An action
//! is delivered only if one of the binding's destinations allows it:
//!
//! | destination | allows |
//! | --- | --- |
//! | `slack:#eng` | `post-slack` to channel `#eng` (`slack:*`: any channel) |
//! | `slack:acme/#eng` | the same in Slack workspace `acme` only (`slack:acme/*`: any channel there) |
//! | `slack-dm:ada@example.com` | `dm-slack` to that address (`slack-dm:*`: anyone) |
//! | `slack-dm:acme/ada@example.com` | the same in workspace `acme` only |
//! | `teams:eng-news` | `post-teams` to the Teams connection `eng-news` (`teams:*`: any) |
//! | `teams:bot/Engineering` | `post-teams` through the Teams bot `bot` to the channel it was added to in the team `Engineering` (name or id) |
//! | `confluence:ENG` | `create-page` in space `ENG` (`confluence:*`: any space) |
//! | `comment:123` | `add-comment` on page 123 (`comment:*`: any page) |
//! | `slack-unfurl:acme` | `unfurl` of links shared in Slack workspace `acme` (`slack-unfurl:*`: any workspace) |
//! | `slack-respond:acme` | `respond` to slash commands typed in workspace `acme` (`slack-respond:*`: any) |
//! | `teams-dm:bot` | `dm-teams` through the Teams bot connection `bot`, to anyone (`teams-dm:bot/ada@example.com`: that person only; `teams-dm:*`: any bot) |
//! | `teams-reply:bot` | `reply-teams` to messages and card actions that came to the Teams bot `bot` (`teams-reply:*`: any) |
//!
//! Matching is exact (Slack channel names ignore case and a leading `#`).
//!
//! Several Slack workspaces: a workspace is a Slack connection, named before
//! a `/`. Plugins may name one too (`acme/#eng`). A destination that names a
//! workspace allows only actions for that workspace; an action that names
//! none goes to the destination's. Which workspace carries a delivery is
//! decided at dispatch ([`slack_workspace`]) and never guessed later.
//!
//! Chat answers (`unfurl`, `respond`) go back to where the chat event came
//! from: their workspace is the Slack connection the event arrived on (the
//! event's `source`), so their destinations name a workspace, not a channel
//! ([`Destination::allows_from`]). That the answer is to the event's own
//! message or command is dispatch's check, not a destination's.

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
    SlackUnfurl,
    SlackRespond,
    TeamsDm,
    TeamsReply,
}

const KINDS: [(Kind, &str, &str); 9] = [
    (Kind::Slack, "slack", "post-slack"),
    (Kind::SlackDm, "slack-dm", "dm-slack"),
    (Kind::Teams, "teams", "post-teams"),
    (Kind::Confluence, "confluence", "create-page"),
    (Kind::Comment, "comment", "add-comment"),
    (Kind::SlackUnfurl, "slack-unfurl", "unfurl"),
    (Kind::SlackRespond, "slack-respond", "respond"),
    (Kind::TeamsDm, "teams-dm", "dm-teams"),
    (Kind::TeamsReply, "teams-reply", "reply-teams"),
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

    /// The Slack workspace (connection) this destination names, if any.
    pub fn workspace(&self) -> Option<&str> {
        match self.kind {
            Kind::Slack | Kind::SlackDm => split_workspace(&self.target).0,
            Kind::SlackUnfurl | Kind::SlackRespond => {
                Some(self.target.as_str()).filter(|t| *t != "*")
            }
            _ => None,
        }
    }

    /// The Teams bot connection a `teams-dm:` or `teams-reply:` destination
    /// names; `None` for `*` and for every other kind.
    pub fn teams_bot(&self) -> Option<&str> {
        match self.kind {
            Kind::TeamsDm => split_workspace(&self.target)
                .0
                .or(Some(self.target.as_str())),
            Kind::TeamsReply => Some(self.target.as_str()),
            _ => None,
        }
        .filter(|t| *t != "*")
    }

    /// Whether this destination answers chat events (`slack-unfurl:`,
    /// `slack-respond:`): its target is a workspace, not a channel.
    pub fn is_chat_answer(&self) -> bool {
        matches!(
            self.kind,
            Kind::SlackUnfurl | Kind::SlackRespond | Kind::TeamsReply
        )
    }

    /// The channel (or email) of a Slack destination, without its workspace.
    pub fn channel(&self) -> Option<&str> {
        self.is_slack().then(|| split_workspace(&self.target).1)
    }

    /// Whether this is a Slack destination.
    pub fn is_slack(&self) -> bool {
        matches!(self.kind, Kind::Slack | Kind::SlackDm)
    }

    /// This destination bound to `workspace` (unchanged if it names one
    /// already or is not a Slack destination).
    pub fn in_workspace(&self, workspace: &str) -> Destination {
        if !self.is_slack() || self.workspace().is_some() {
            return self.clone();
        }
        Destination {
            kind: self.kind,
            target: format!("{workspace}/{}", self.target),
        }
    }

    /// Whether `action` may go here, not knowing which connection its event
    /// came from: a chat answer is allowed only by a `*` destination (see
    /// [`Destination::allows_from`]).
    pub fn allows(&self, action: &Action) -> bool {
        self.allows_from(action, "")
    }

    /// Whether `action`, from an event that came from connection `source`,
    /// may go here. Only chat answers look at `source`: theirs is the Slack
    /// workspace they go back to.
    pub fn allows_from(&self, action: &Action, source: &str) -> bool {
        if action.kind() != self.action_kind() {
            return false;
        }
        let wanted = action.destination();
        match self.kind {
            Kind::SlackUnfurl | Kind::SlackRespond | Kind::TeamsReply => {
                self.target == "*" || (!source.is_empty() && self.target == source)
            }
            // `bot` (anyone), `bot/email` (that person), `*` (anyone, any
            // bot); which bot carries it is decided at dispatch.
            Kind::TeamsDm => match split_workspace(&self.target) {
                (Some(_), person) => person.eq_ignore_ascii_case(wanted.trim()),
                (None, _) => true,
            },
            Kind::Slack | Kind::SlackDm => {
                let (ours_ws, ours) = split_workspace(&self.target);
                let (theirs_ws, theirs) = split_workspace(&wanted);
                if let (Some(a), Some(b)) = (ours_ws, theirs_ws)
                    && a != b
                {
                    return false;
                }
                ours == "*"
                    || if self.kind == Kind::Slack {
                        slack_channel(ours) == slack_channel(theirs)
                    } else {
                        ours.eq_ignore_ascii_case(theirs)
                    }
            }
            _ => self.target == "*" || self.target == wanted,
        }
    }
}

fn slack_channel(name: &str) -> String {
    name.trim_start_matches('#').to_ascii_lowercase()
}

/// `acme/#eng` → (`Some("acme")`, `#eng`); `#eng` → (`None`, `#eng`).
pub fn split_workspace(target: &str) -> (Option<&str>, &str) {
    match target.split_once('/') {
        Some((ws, rest)) if !ws.is_empty() && is_connection_name(ws) => (Some(ws), rest),
        _ => (None, target),
    }
}

fn is_connection_name(s: &str) -> bool {
    s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The Slack workspace that carries `action`, allowed by `destination`,
/// given the Slack connections that exist: the one the action names, else
/// the destination's, else the only workspace. `Err` explains an ambiguity.
pub fn slack_workspace(
    action: &Action,
    destination: &str,
    workspaces: &[&str],
) -> Result<Option<String>, String> {
    let wanted = action.destination();
    let named = split_workspace(&wanted).0.map(str::to_owned).or_else(|| {
        destination
            .parse::<Destination>()
            .ok()
            .and_then(|d| d.workspace().map(str::to_owned))
    });
    if named.is_some() {
        return Ok(named);
    }
    match workspaces {
        [] => Ok(None),
        [only] => Ok(Some((*only).to_owned())),
        several => Err(format!(
            "`{wanted}` does not say which Slack workspace to use and Pagehook has {} ({}): name one in the binding (e.g. slack:{}/{}) or in the action",
            several.len(),
            several.join(", "),
            several[0],
            if action.kind() == "dm-slack" {
                wanted.clone()
            } else {
                format!("#{}", wanted.trim_start_matches('#'))
            }
        )),
    }
}

impl FromStr for Destination {
    type Err = String;

    fn from_str(s: &str) -> Result<Destination, String> {
        let usage = || {
            format!(
                "`{s}`: a destination is slack:[<workspace>/]<#channel>, slack-dm:[<workspace>/]<email>, teams:<connection>[/<team>], confluence:<SPACE>, comment:<page id>, slack-unfurl:<workspace>, slack-respond:<workspace>, teams-dm:<bot>[/<email>] or teams-reply:<bot> (target * for any)"
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
        if matches!(kind, Kind::TeamsDm | Kind::TeamsReply)
            && target != "*"
            && !is_connection_name(split_workspace(target).0.unwrap_or(target))
        {
            return Err(format!(
                "`{s}`: Teams bot destinations name the Teams bot connection (teams-dm:<bot> or teams-dm:<bot>/<email>, teams-reply:<bot>), or *"
            ));
        }
        if matches!(kind, Kind::SlackUnfurl | Kind::SlackRespond)
            && target != "*"
            && !is_connection_name(target)
        {
            return Err(format!(
                "`{s}`: chat answers name the Slack workspace (connection) their events come from, or *"
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

/// The chat connections that exist, by kind: which Slack workspace or
/// Teams bot carries an action is chosen among them at dispatch.
#[derive(Debug, Clone, Default)]
pub struct ChatConnections<'a> {
    /// The Slack connections (workspaces).
    pub slack: Vec<&'a str>,
    /// The Teams bot connections.
    pub teams_bots: Vec<&'a str>,
}

impl<'a> ChatConnections<'a> {
    /// Sorts `connections` by kind.
    pub fn of(connections: &'a [crate::store::ConnectionRecord]) -> ChatConnections<'a> {
        use crate::store::ConnectionKind;
        let named = |kind| {
            connections
                .iter()
                .filter(|c| c.kind == kind)
                .map(|c| c.name.as_str())
                .collect()
        };
        ChatConnections {
            slack: named(ConnectionKind::Slack),
            teams_bots: named(ConnectionKind::TeamsBot),
        }
    }
}

/// The Teams bot that carries a `dm-teams` allowed by `destination`: the
/// one it names, else the only bot. `Err` explains why there is none.
pub fn teams_bot(destination: &str, bots: &[&str]) -> Result<String, String> {
    let named = destination
        .parse::<Destination>()
        .ok()
        .and_then(|d| d.teams_bot().map(str::to_owned));
    match (named, bots) {
        (Some(bot), _) if bots.contains(&bot.as_str()) => Ok(bot),
        (Some(bot), _) => Err(format!(
            "`{destination}` names the Teams bot `{bot}`, and there is no Teams bot connection by that name"
        )),
        (None, [only]) => Ok((*only).to_owned()),
        (None, []) => Err(
            "there is no Teams bot connection: add one with `pagehook connect teams-bot <name> --app-id ...`".to_owned(),
        ),
        (None, several) => Err(format!(
            "`{destination}` does not say which Teams bot to use and Pagehook has {} ({}): name one in the binding (e.g. teams-dm:{})",
            several.len(),
            several.join(", "),
            several[0]
        )),
    }
}

/// The first of a binding's destinations that allows `action`, not knowing
/// its event's source (see [`first_allowing_from`]).
pub fn first_allowing<'a>(destinations: &'a [String], action: &Action) -> Option<&'a str> {
    first_allowing_from(destinations, action, "")
}

/// The first of a binding's destinations that allows `action`, from an
/// event that came from connection `source`.
pub fn first_allowing_from<'a>(
    destinations: &'a [String],
    action: &Action,
    source: &str,
) -> Option<&'a str> {
    destinations
        .iter()
        .find(|d| {
            d.parse::<Destination>()
                .is_ok_and(|d| d.allows_from(action, source))
        })
        .map(String::as_str)
}

/// The lane a delivery is ordered in: one per Slack thread (or channel,
/// for messages without a thread key), DM, Teams channel, Confluence space
/// or page, so messages about one page arrive in the order their events
/// happened while unrelated ones go out side by side. Slack lanes are per
/// workspace: `#eng` in two workspaces are two channels.
pub fn lane(action: &Action, source: &str, workspace: Option<&str>) -> String {
    let ws = workspace.unwrap_or("");
    match action {
        Action::PostSlack {
            channel,
            thread_key,
            ..
        } => {
            let channel = split_workspace(channel)
                .1
                .trim_start_matches('#')
                .to_lowercase();
            match thread_key {
                Some(key) => format!("slack:{ws}/{channel}:{key}"),
                None => format!("slack:{ws}/{channel}"),
            }
        }
        Action::DmSlack { email, .. } => {
            format!("slack-dm:{ws}/{}", split_workspace(email).1.to_lowercase())
        }
        Action::PostTeams { channel, .. } => format!("teams:{channel}"),
        Action::CreatePage { space_key, .. } => format!("confluence:{source}:{space_key}"),
        Action::AddComment { page_id, .. } => format!("confluence:{source}:page-{page_id}"),
        // Chat answers go back through the connection the event came from
        // (its source): one lane per message unfurled, one per command.
        Action::Unfurl {
            channel,
            message_ts,
            ..
        } => format!("slack-unfurl:{source}/{channel}:{message_ts}"),
        Action::Respond { response_url, .. } => {
            use sha2::Digest;
            // Never the URL itself: lanes are shown to admins and logged.
            let digest = hex::encode(sha2::Sha256::digest(response_url.as_bytes()));
            format!("slack-respond:{source}/{}", &digest[..16])
        }
        // One lane per person a bot writes to: Teams limits each
        // conversation's pace, and one person's messages stay in order.
        Action::DmTeams { email, .. } => format!("teams-dm:{ws}/{}", email.trim().to_lowercase()),
        Action::ReplyTeams { activity_id, .. } => {
            format!("teams-reply:{source}/{activity_id}")
        }
    }
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
    fn workspaces_narrow_slack_destinations() {
        let acme: Destination = "slack:acme/#eng".parse().unwrap();
        assert_eq!(acme.workspace(), Some("acme"));
        assert!(acme.allows(&slack("#eng")), "an action naming no workspace");
        assert!(acme.allows(&slack("acme/#ENG")));
        assert!(!acme.allows(&slack("beta/#eng")), "another workspace");
        assert!(!acme.allows(&slack("acme/#ops")));
        let any_in_acme: Destination = "slack:acme/*".parse().unwrap();
        assert!(any_in_acme.allows(&slack("#ops")));
        assert!(!any_in_acme.allows(&slack("beta/#ops")));
        let plain: Destination = "slack:#eng".parse().unwrap();
        assert_eq!(plain.workspace(), None);
        assert_eq!(plain.in_workspace("acme").to_string(), "slack:acme/#eng");
        assert_eq!(acme.in_workspace("beta"), acme, "already named");
        let dm: Destination = "slack-dm:acme/Ada@Example.com".parse().unwrap();
        let ada = Action::DmSlack {
            email: "ada@example.com".into(),
            text: "t".into(),
            blocks: None,
        };
        assert!(dm.allows(&ada));
    }

    #[test]
    fn the_workspace_comes_from_the_action_the_destination_or_the_only_one() {
        let one = ["acme"];
        let two = ["acme", "beta"];
        assert_eq!(
            slack_workspace(&slack("#eng"), "slack:#eng", &one).unwrap(),
            Some("acme".into())
        );
        assert_eq!(
            slack_workspace(&slack("beta/#eng"), "slack:#eng", &two).unwrap(),
            Some("beta".into())
        );
        assert_eq!(
            slack_workspace(&slack("#eng"), "slack:beta/#eng", &two).unwrap(),
            Some("beta".into())
        );
        assert_eq!(
            slack_workspace(&slack("#eng"), "slack:#eng", &[]).unwrap(),
            None
        );
        let err = slack_workspace(&slack("#eng"), "slack:#eng", &two).unwrap_err();
        assert!(
            err.contains("acme, beta") && err.contains("slack:acme/#eng"),
            "{err}"
        );
    }

    fn unfurl() -> Action {
        Action::Unfurl {
            channel: "C0ENG".into(),
            message_ts: "1700000000.000100".into(),
            unfurls: serde_json::json!({"https://wiki.example.com/x/1": {"blocks": []}}),
        }
    }

    fn respond() -> Action {
        Action::Respond {
            response_url: "https://hooks.slack.com/commands/T1/1/secret".into(),
            text: "t".into(),
            blocks: None,
            in_channel: false,
        }
    }

    #[test]
    fn chat_answers_go_back_to_the_workspace_their_event_came_from() {
        let acme: Destination = "slack-unfurl:acme".parse().unwrap();
        assert_eq!(acme.action_kind(), "unfurl");
        assert_eq!(acme.workspace(), Some("acme"));
        assert!(acme.is_chat_answer() && !acme.is_slack());
        assert!(acme.allows_from(&unfurl(), "acme"));
        assert!(!acme.allows_from(&unfurl(), "beta"), "another workspace");
        assert!(!acme.allows(&unfurl()), "the source unknown");
        assert!(!acme.allows_from(&respond(), "acme"), "another kind");
        let any: Destination = "slack-unfurl:*".parse().unwrap();
        assert_eq!(any.workspace(), None);
        assert!(any.allows_from(&unfurl(), "beta"));
        assert!(any.allows(&unfurl()));
        let answer: Destination = "slack-respond:acme".parse().unwrap();
        assert_eq!(answer.action_kind(), "respond");
        assert!(answer.allows_from(&respond(), "acme"));
        assert!(!answer.allows_from(&respond(), "beta"));
        assert!(!answer.allows_from(&unfurl(), "acme"));
        assert!(
            "slack-respond:*"
                .parse::<Destination>()
                .unwrap()
                .allows_from(&respond(), "beta")
        );
        assert!(
            !"slack:*"
                .parse::<Destination>()
                .unwrap()
                .allows_from(&unfurl(), "acme"),
            "a channel destination never allows a chat answer"
        );
        assert_eq!(acme.in_workspace("beta"), acme, "already its workspace");
        assert_eq!(acme.to_string(), "slack-unfurl:acme");
        let dests = vec!["slack:#eng".to_owned(), "slack-respond:acme".to_owned()];
        assert_eq!(
            first_allowing_from(&dests, &respond(), "acme"),
            Some("slack-respond:acme")
        );
        assert_eq!(first_allowing_from(&dests, &respond(), "beta"), None);
        assert_eq!(first_allowing(&dests, &respond()), None);
    }

    #[test]
    fn chat_answer_destinations_name_a_workspace() {
        for bad in [
            "slack-unfurl:#eng",
            "slack-respond:acme/#eng",
            "slack-unfurl:a b",
        ] {
            let err = bad.parse::<Destination>().unwrap_err();
            assert!(err.contains("workspace"), "{bad}: {err}");
        }
        assert!("slack-unfurl:".parse::<Destination>().is_err());
        assert!(
            "nope:x"
                .parse::<Destination>()
                .unwrap_err()
                .contains("slack-unfurl:<workspace>")
        );
    }

    #[test]
    fn bad_destinations_explain_the_syntax() {
        assert!(
            "#eng"
                .parse::<Destination>()
                .unwrap_err()
                .contains("slack:[<workspace>/]<#channel>")
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
