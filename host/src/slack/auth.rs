//! `auth.test`: which workspace and bot user a token belongs to.
//!
//! Used by `pagehook connection test`, by `connect slack --notify` to
//! name the workspace in its greeting, and by `pagehook doctor` (with the
//! token's scopes). Never shows the token.

use serde_json::Value;

use super::client::{SlackClient, SlackError};
use super::methods::AUTH_TEST;

/// What `auth.test` says about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// The workspace's name.
    pub team: String,
    /// The workspace's id (`T...`).
    pub team_id: String,
    /// The bot user's name.
    pub user: String,
    /// The workspace's URL.
    pub url: String,
}

/// Asks Slack who the token is.
pub async fn auth_test(client: &SlackClient<'_>) -> Result<Workspace, SlackError> {
    Ok(workspace(&client.read(AUTH_TEST, &[]).await?))
}

/// Asks Slack who the token is and which scopes it has (the
/// `x-oauth-scopes` header; `None` when Slack sent none): `pagehook doctor`.
pub async fn auth_test_with_scopes(
    client: &SlackClient<'_>,
) -> Result<(Workspace, Option<Vec<String>>), SlackError> {
    let (answer, scopes) = client.read_with_scopes(AUTH_TEST, &[]).await?;
    Ok((workspace(&answer), scopes))
}

fn workspace(answer: &Value) -> Workspace {
    let field = |name: &str| answer[name].as_str().unwrap_or("?").to_owned();
    Workspace {
        team: field("team"),
        team_id: field("team_id"),
        user: field("user"),
        url: answer
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned(),
    }
}

/// What an admin should do about a refused token, for Slack's error code.
pub fn refusal_hint(code: &str) -> &'static str {
    match code {
        "invalid_auth" | "not_authed" => {
            ": the token is wrong; copy the Bot User OAuth Token (xoxb-...) again"
        }
        "token_revoked" | "account_inactive" | "token_expired" => {
            ": the app was uninstalled or the token revoked; reinstall the Slack app and update the token"
        }
        "missing_scope" => {
            ": the app lacks a scope; add the scopes listed in docs/admin.md and reinstall it"
        }
        _ => "",
    }
}
