//! `/confluence link` and `/confluence unlink`: slash commands the host
//! answers itself, before (and instead of) any plugin.
//!
//! Both are answered in the HTTP response to Slack's signed request (or,
//! over Socket Mode, in the envelope's acknowledgement: [`answer_payload`]),
//! which Slack shows only to the person who typed the command
//! (`response_type` `ephemeral`): nothing leaves Pagehook for it, and
//! nothing is stored as an event. `link` answers a
//! one-time link to the console (see [`crate::self_link`]) on the address
//! people reach this Pagehook at ([`super::public_url`]); `unlink` removes
//! the person's link and says which it was.
//!
//! What it must never do: answer a token to anything but a request whose
//! Slack signature was checked, give a second token for the same command
//! (a replayed request within Slack's five minutes gets none), log a
//! token, or link anyone (the link is made only after a Confluence sign-in).

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};

use super::AppState;
use super::public_url::public_base;
use crate::enrich::chat_confluence::chat_confluence;
use crate::ops::changes::{ChangeAction, log_change};
use crate::self_link::{self, LinkRequest, TOKEN_TTL};
use crate::store::ConnectionKind;

/// A slash command the host answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostCommand {
    /// `link`: a one-time link to link this Slack user to a Confluence user.
    Link,
    /// `unlink`: remove this Slack user's link.
    Unlink,
}

/// The host's own command a stored slash command is (its `text` is `link`
/// or `unlink`, in any case, with nothing else), if it is one.
pub fn host_command(payload: &Value) -> Option<HostCommand> {
    let text = payload.get("text").and_then(Value::as_str)?.trim();
    if text.eq_ignore_ascii_case("link") {
        Some(HostCommand::Link)
    } else if text.eq_ignore_ascii_case("unlink") {
        Some(HostCommand::Unlink)
    } else {
        None
    }
}

/// An answer Slack shows only to the person who typed the command.
fn ephemeral(text: String) -> Value {
    json!({ "response_type": "ephemeral", "text": text })
}

/// Escapes text for Slack's mrkdwn (`&`, `<`, `>`), so names never become
/// mentions or links.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Answers `command`, typed in Slack connection `connection` and sent to
/// `/hooks/slack/{connection}`; `payload` is the verified slash command's
/// form as stored. Links start with the address the request came to,
/// unless `[server] public-url` says otherwise.
pub(super) async fn answer(
    state: &Arc<AppState>,
    connection: &str,
    headers: &HeaderMap,
    payload: &Value,
    command: HostCommand,
) -> Response {
    let base = public_base(state.config.server.public_url.as_deref(), headers);
    Json(answer_payload(state, connection, Some(&base), payload, command).await).into_response()
}

/// The immediate answer (`{"response_type": "ephemeral", "text": ...}`) to
/// `command`, typed in Slack connection `connection`, whose verified fields
/// are `payload`; links start with `base`. For a transport without a
/// request address (Socket Mode) `base` is `[server] public-url`, and
/// without one `link` says that the admin must set it.
pub async fn answer_payload(
    state: &AppState,
    connection: &str,
    base: Option<&str>,
    payload: &Value,
    command: HostCommand,
) -> Value {
    let field = |k: &str| {
        payload
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
    };
    let (user, team, trigger) = (field("user_id"), field("team_id"), field("trigger_id"));
    if user.is_empty() {
        return ephemeral(
            "Slack did not say who typed this command, so Pagehook cannot link anyone.".into(),
        );
    }
    match command {
        HostCommand::Link => match base {
            Some(base) => link(state, connection, base, user, team, trigger).await,
            None => ephemeral("Pagehook cannot give you a link yet: its admin has not said where people reach it (`[server] public-url` in pagehook.toml).".into()),
        },
        HostCommand::Unlink => unlink(state, connection, user).await,
    }
}

async fn link(
    state: &AppState,
    connection: &str,
    base: &str,
    user: &str,
    team: &str,
    trigger: &str,
) -> Value {
    let unavailable = || {
        ephemeral("Pagehook cannot read its database right now, so it cannot link you. Try again in a moment.".into())
    };
    let all = match state.store.connections().await {
        Ok(all) => all,
        Err(e) => {
            tracing::error!(error = %e, %connection, "/confluence link: cannot read connections");
            return unavailable();
        }
    };
    let Some(slack) = all
        .iter()
        .find(|c| c.name == connection && c.kind == ConnectionKind::Slack)
    else {
        return unavailable();
    };
    let confluence = match chat_confluence(slack, &all) {
        Ok(c) => c,
        Err(why) => {
            return ephemeral(format!(
                "Pagehook cannot link you yet: it does not know which Confluence this Slack workspace uses. Please tell your Pagehook admin: {}",
                escaped(&why.to_string())
            ));
        }
    };
    let request = LinkRequest {
        slack_connection: connection,
        slack_team: team,
        slack_user: user,
        trigger_id: trigger,
        confluence_connection: &confluence.name,
    };
    let token = match self_link::issue(&state.store, &request).await {
        Ok(Some(token)) => token,
        Ok(None) => {
            tracing::warn!(%connection, user, "/confluence link: the same command arrived again (a replay?); no second link given");
            return ephemeral(
                "This command was answered already. Type `/confluence link` again for a new link."
                    .into(),
            );
        }
        Err(e) => {
            tracing::error!(error = %e, %connection, "/confluence link: cannot store the link request");
            return unavailable();
        }
    };
    let url = format!("{}/console/link/{token}", base.trim_end_matches('/'));
    let now = match state.store.user_link(connection, user).await {
        Ok(Some(l)) if l.confluence_connection == confluence.name => format!(
            " You are linked to *{}* now; linking again replaces that.",
            escaped(&l.confluence_label())
        ),
        _ => String::new(),
    };
    tracing::info!(%connection, user, confluence = %confluence.name, "/confluence link: one-time link given");
    ephemeral(format!(
        "<{url}|Link your Slack account to Confluence `{}`> — the link works once, for {} minutes, and only you see it. It asks you to sign in to Confluence and shows who will be linked before anything changes.{now}",
        escaped(&confluence.name),
        TOKEN_TTL.as_secs() / 60,
    ))
}

async fn unlink(state: &AppState, connection: &str, user: &str) -> Value {
    match state.store.remove_user_link(connection, user).await {
        Ok(Some(link)) => {
            let actor = format!("Slack user {user} of `{connection}` (/confluence unlink)");
            log_change(
                &state.store,
                &actor,
                ChangeAction::LinkRemove,
                &self_link::target(&link),
                self_link::detail(&link),
            )
            .await;
            ephemeral(format!(
                "Unlinked: your Slack account is no longer linked to Confluence user *{}* of `{}`. Link previews and searches now find you by email, if at all; `/confluence link` links you again.",
                escaped(&link.confluence_label()),
                escaped(&link.confluence_connection)
            ))
        }
        Ok(None) => ephemeral(
            "Your Slack account is not linked to a Confluence user, so there was nothing to unlink. `/confluence link` links it.".into(),
        ),
        Err(e) => {
            tracing::error!(error = %e, %connection, "/confluence unlink: cannot remove the link");
            ephemeral("Pagehook cannot change its database right now, so your link stays. Try again in a moment.".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_link_and_unlink_alone_are_the_hosts() {
        let cmd = |text: &str| host_command(&json!({"command": "/confluence", "text": text}));
        assert_eq!(cmd("link"), Some(HostCommand::Link));
        assert_eq!(cmd("  LINK "), Some(HostCommand::Link));
        assert_eq!(cmd("unlink"), Some(HostCommand::Unlink));
        assert_eq!(cmd("link me"), None);
        assert_eq!(cmd("search link"), None);
        assert_eq!(cmd(""), None);
        assert_eq!(host_command(&json!({"command": "/confluence"})), None);
    }

    #[test]
    fn names_in_answers_cannot_become_mentions() {
        assert_eq!(escaped("<!channel> & co"), "&lt;!channel&gt; &amp; co");
    }
}
