//! Which Confluence connection a Slack connection's chat uses: where a Slack
//! user is looked up (by their link, or their email), where their shared
//! links and searches are read, and where `/confluence link` sends them to
//! sign in.
//!
//! The Slack connection names it (`pagehook connect slack NAME --confluence
//! CONF`); unnamed, it is the only Confluence connection with a token. What
//! it must never do: guess. With several Confluence connections that have
//! tokens and none named, or a named one that is gone, it answers why
//! instead, so chat events fail with that reason (and the console shows it)
//! rather than wait for an admin to remove a connection.

use crate::confluence::client::ConfluenceAuth;
use crate::store::{ConnectionKind, ConnectionRecord};

/// Why a Slack connection's chat has no Confluence connection to use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoChatConfluence {
    /// No Confluence connection has a token yet: chat events wait for one.
    #[error(
        "{who} `{slack}` has no Confluence connection with a token to read what its users may see: connect one with `pagehook connect confluence NAME --url URL --token-env VAR --webhook-secret-env VAR`"
    )]
    NoneConnected {
        /// What the chat connection is (`Slack connection`, `Teams bot`).
        who: &'static str,
        /// The chat connection.
        slack: String,
    },
    /// Several have tokens and the Slack connection names none of them.
    #[error(
        "{who} `{slack}` names no Confluence connection, and {} all have tokens: name the one its users' links, previews and searches use with `pagehook connect {command} {slack} ... --confluence NAME` (or on the console's People page)",
        .candidates.join(", ")
    )]
    Ambiguous {
        /// What the chat connection is.
        who: &'static str,
        /// How it is connected (`slack`, `teams-bot`).
        command: &'static str,
        /// The chat connection.
        slack: String,
        /// The Confluence connections it could mean.
        candidates: Vec<String>,
    },
    /// The one it names is gone, is not a Confluence connection, or has no token.
    #[error(
        "{who} `{slack}` uses Confluence connection `{named}`, which {why}: name another with `pagehook connect {command} {slack} ... --confluence NAME`, or connect `{named}` again"
    )]
    Unusable {
        /// What the chat connection is.
        who: &'static str,
        /// How it is connected.
        command: &'static str,
        /// The chat connection.
        slack: String,
        /// What it names.
        named: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

impl NoChatConfluence {
    /// Whether an admin must act before chat can work, as opposed to a
    /// Confluence connection not having been made yet (events wait for that).
    pub fn needs_admin(&self) -> bool {
        !matches!(self, NoChatConfluence::NoneConnected { .. })
    }
}

/// Whether a Confluence connection can read pages (it has REST credentials).
fn readable(c: &ConnectionRecord) -> bool {
    c.kind == ConnectionKind::Confluence && !matches!(ConfluenceAuth::of(c), Ok(None))
}

/// The Confluence connection the chat of Slack connection `slack` uses,
/// among `all` connections (see the module doc).
pub fn chat_confluence<'a>(
    slack: &ConnectionRecord,
    all: &'a [ConnectionRecord],
) -> Result<&'a ConnectionRecord, NoChatConfluence> {
    let (who, command) = match slack.kind {
        ConnectionKind::TeamsBot => ("Teams bot", "teams-bot"),
        _ => ("Slack connection", "slack"),
    };
    if let Some(named) = slack.confluence.as_deref() {
        let unusable = |why| NoChatConfluence::Unusable {
            who,
            command,
            slack: slack.name.clone(),
            named: named.to_owned(),
            why,
        };
        return match all.iter().find(|c| c.name == named) {
            None => Err(unusable("no longer exists")),
            Some(c) if c.kind != ConnectionKind::Confluence => {
                Err(unusable("is not a Confluence connection"))
            }
            Some(c) if !readable(c) => Err(unusable("has no token to read pages with")),
            Some(c) => Ok(c),
        };
    }
    let candidates: Vec<&ConnectionRecord> = all.iter().filter(|c| readable(c)).collect();
    match candidates.as_slice() {
        [only] => Ok(only),
        [] => Err(NoChatConfluence::NoneConnected {
            who,
            slack: slack.name.clone(),
        }),
        several => Err(NoChatConfluence::Ambiguous {
            who,
            command,
            slack: slack.name.clone(),
            candidates: several.iter().map(|c| c.name.clone()).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretSource;

    fn confluence(name: &str, token: bool) -> ConnectionRecord {
        let mut c =
            ConnectionRecord::new(name, ConnectionKind::Confluence, "https://wiki.example.com");
        if token {
            c.secret = Some(SecretSource::Value("pat".into()));
        }
        c
    }

    fn slack(names: Option<&str>) -> ConnectionRecord {
        let mut s = ConnectionRecord::new("acme", ConnectionKind::Slack, "https://slack.com/api/");
        s.confluence = names.map(str::to_owned);
        s
    }

    #[test]
    fn the_only_confluence_with_a_token_is_the_default() {
        let all = vec![confluence("hooks-only", false), confluence("wiki", true)];
        assert_eq!(chat_confluence(&slack(None), &all).unwrap().name, "wiki");
        let err = chat_confluence(&slack(None), &[confluence("hooks-only", false)]).unwrap_err();
        assert!(!err.needs_admin(), "waits for a Confluence connection");
        assert!(
            err.to_string().contains("pagehook connect confluence"),
            "{err}"
        );
    }

    #[test]
    fn several_with_none_named_is_an_error_that_names_the_fix() {
        let all = vec![confluence("wiki", true), confluence("docs", true)];
        let err = chat_confluence(&slack(None), &all).unwrap_err();
        assert!(err.needs_admin());
        let text = err.to_string();
        assert!(text.contains("wiki, docs"), "{text}");
        assert!(text.contains("--confluence NAME"), "{text}");
        assert_eq!(
            chat_confluence(&slack(Some("docs")), &all).unwrap().name,
            "docs"
        );
    }

    #[test]
    fn a_named_connection_must_exist_be_confluence_and_have_a_token() {
        let mut teams = ConnectionRecord::new("ops", ConnectionKind::Teams, "https://x");
        teams.secret = None;
        let all = vec![
            confluence("wiki", true),
            confluence("hooks-only", false),
            teams,
        ];
        for (named, why) in [
            ("gone", "no longer exists"),
            ("ops", "is not a Confluence connection"),
            ("hooks-only", "has no token"),
        ] {
            let err = chat_confluence(&slack(Some(named)), &all).unwrap_err();
            assert!(err.needs_admin());
            assert!(err.to_string().contains(why), "{err}");
        }
    }
}
