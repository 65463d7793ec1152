//! `apps.connections.open`: the WebSocket URL of a Socket Mode connection,
//! asked for with the app-level token (`xapp-`, scope `connections:write`).
//!
//! Slack documents the method at api.slack.com/methods/apps.connections.open
//! (it is newer than the published OpenAPI description in
//! `shared/specs/slack/`, so it is not in [`super::methods::ALL`], whose
//! test holds every method to that file): `POST`, the token only in
//! `Authorization: Bearer` ("passing it as a POST parameter will result in
//! an error"), and `{"ok": true, "url": "wss://..."}`. The URL is single
//! use and short lived: ask again for every socket.
//!
//! Never logs or returns the token, nor the URL (its `ticket` admits one
//! socket).

use super::client::{SlackClient, SlackError};
use super::methods::{Encoding, Method};

/// `apps.connections.open`: a Socket Mode WebSocket URL (app-level token).
pub const APPS_CONNECTIONS_OPEN: Method = Method {
    name: "apps.connections.open",
    encoding: Encoding::Form,
    arguments: &[],
};

/// Asks for a WebSocket URL; `client` carries the app-level token.
pub async fn open_connection(client: &SlackClient<'_>) -> Result<String, SlackError> {
    let answer = client.post_form(APPS_CONNECTIONS_OPEN, &[]).await?;
    answer
        .get("url")
        .and_then(|u| u.as_str())
        .filter(|u| u.starts_with("wss://") || u.starts_with("ws://"))
        .map(str::to_owned)
        .ok_or_else(|| SlackError::Unreadable {
            method: APPS_CONNECTIONS_OPEN.name,
            message: "no wss:// `url` in the answer".into(),
        })
}

/// What an admin should do about a refused app-level token.
pub fn refusal_hint(code: &str) -> &'static str {
    match code {
        "not_authed" | "invalid_auth" => {
            ": the app-level token is wrong; copy it again (Slack app settings, Basic Information, App-Level Tokens: xapp-...)"
        }
        "not_allowed_token_type" => {
            ": this is not an app-level token; Socket Mode needs the xapp- token from Basic Information, App-Level Tokens, not the bot token"
        }
        "missing_scope" => {
            ": the app-level token lacks connections:write; generate one with that scope"
        }
        "token_revoked" | "token_expired" | "account_inactive" => {
            ": the app-level token was revoked; generate a new one and update the connection"
        }
        "forbidden_team" | "access_denied" => {
            ": Slack does not let this app use Socket Mode in this workspace"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_an_admin_can_fix_says_how() {
        for code in [
            "not_authed",
            "invalid_auth",
            "not_allowed_token_type",
            "missing_scope",
            "token_revoked",
        ] {
            assert!(refusal_hint(code).starts_with(": "), "{code}");
        }
        assert_eq!(refusal_hint("internal_error"), "");
    }
}
