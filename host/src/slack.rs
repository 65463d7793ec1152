//! Slack Web API calls the host makes with a workspace's bot token.
//!
//! Slack answers HTTP 200 with `{"ok": false, "error": "..."}` for logical
//! errors, so every call reads the body, not only the status.

use std::time::Duration;

use serde::Deserialize;

use crate::admin::ConnectionTest;
use crate::secret::Secret;

#[derive(Deserialize)]
struct AuthTest {
    ok: bool,
    error: Option<String>,
    team: Option<String>,
    user: Option<String>,
    url: Option<String>,
}

/// `auth.test`: is the token valid, and for which workspace and bot user.
pub async fn auth_test(base_url: &str, token: &Secret, timeout: Duration) -> ConnectionTest {
    let url = format!("{}/auth.test", base_url.trim_end_matches('/'));
    let client = match reqwest::Client::builder().timeout(timeout).build() {
        Ok(c) => c,
        Err(e) => {
            return ConnectionTest {
                ok: false,
                message: format!("cannot make an HTTP client: {e}"),
            };
        }
    };
    let answer = client
        .post(&url)
        .bearer_auth(token.expose())
        .send()
        .await
        .and_then(|r| r.error_for_status());
    let body: AuthTest = match answer {
        Ok(r) => match r.json().await {
            Ok(b) => b,
            Err(e) => {
                return ConnectionTest {
                    ok: false,
                    message: format!("Slack at {base_url} gave an unreadable answer: {e}"),
                };
            }
        },
        Err(e) => {
            return ConnectionTest {
                ok: false,
                message: format!(
                    "Slack at {base_url} could not be reached: {}",
                    e.without_url()
                ),
            };
        }
    };
    if body.ok {
        ConnectionTest {
            ok: true,
            message: format!(
                "Slack accepts the token: bot user {} in workspace {} ({})",
                body.user.as_deref().unwrap_or("?"),
                body.team.as_deref().unwrap_or("?"),
                body.url.as_deref().unwrap_or("?")
            ),
        }
    } else {
        let error = body.error.unwrap_or_else(|| "unknown_error".into());
        let hint = match error.as_str() {
            "invalid_auth" | "not_authed" => {
                ": the token is wrong; copy the Bot User OAuth Token (xoxb-...) again"
            }
            "token_revoked" | "account_inactive" => {
                ": the app was uninstalled or the token revoked; reinstall the Slack app and update the token"
            }
            _ => "",
        };
        ConnectionTest {
            ok: false,
            message: format!("Slack refused the token: {error}{hint}"),
        }
    }
}
