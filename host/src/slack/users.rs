//! Slack users to emails, with `users.info` (cached), so a chat event's
//! Slack user can be matched to a Confluence user.
//!
//! `users.info` is a read method (query arguments, token as Bearer; see
//! [`super::methods::USERS_INFO`]) in Slack's tier 4. The email is in
//! `user.profile.email` only when the app has the `users:read.email` scope;
//! without it, or for a user Slack does not know (`user_not_found`), the
//! answer is "no email", which resolves to nobody in Confluence (the safe
//! answer: nothing is shown). Answers are cached per workspace and user for
//! a TTL; failures are not cached, and a 429 is returned with its
//! `Retry-After`, never slept on here. Emails are personal data: they go to
//! the caller, never into a log line.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::client::{SlackClient, SlackError};
use super::methods::USERS_INFO;

/// Most entries kept before the cache is emptied (it refills from Slack).
const CACHE_CAP: usize = 10_000;

/// (workspace, user id) → (when read, email).
type Entries = HashMap<(String, String), (Instant, Option<String>)>;

/// Emails of Slack users, by workspace and user id.
pub struct UserEmails {
    ttl: Duration,
    entries: Mutex<Entries>,
}

impl UserEmails {
    /// An empty cache whose answers are reused for `ttl`.
    pub fn new(ttl: Duration) -> UserEmails {
        UserEmails {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The email of `user` in `workspace`; `None` when Slack does not know
    /// the user or does not show its email to this app.
    pub async fn email(
        &self,
        workspace: &str,
        client: &SlackClient<'_>,
        user: &str,
    ) -> Result<Option<String>, SlackError> {
        let key = (workspace.to_owned(), user.to_owned());
        if let Some((at, email)) = self.lock().get(&key)
            && at.elapsed() < self.ttl
        {
            return Ok(email.clone());
        }
        let email = match client.read(USERS_INFO, &[("user", user.to_owned())]).await {
            Ok(answer) => email_of(&answer),
            Err(e) if e.code() == Some("user_not_found") => None,
            Err(e) => return Err(e),
        };
        let mut entries = self.lock();
        if entries.len() >= CACHE_CAP {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), email.clone()));
        Ok(email)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The name Slack shows for `user` (`profile.display_name`, else
/// `real_name`, else `name`), read with `users.info`, not cached: for the
/// self-link page, which shows a person which Slack account they link.
/// `None` when Slack does not know the user.
pub async fn user_name(client: &SlackClient<'_>, user: &str) -> Result<Option<String>, SlackError> {
    match client.read(USERS_INFO, &[("user", user.to_owned())]).await {
        Ok(answer) => Ok(name_of(&answer)),
        Err(e) if e.code() == Some("user_not_found") => Ok(None),
        Err(e) => Err(e),
    }
}

fn name_of(answer: &Value) -> Option<String> {
    [
        "/user/profile/display_name",
        "/user/real_name",
        "/user/name",
    ]
    .iter()
    .filter_map(|p| answer.pointer(p).and_then(Value::as_str))
    .map(str::trim)
    .find(|n| !n.is_empty())
    .map(str::to_owned)
}

/// `user.profile.email` of a `users.info` answer, if it is there and not empty.
fn email_of(answer: &Value) -> Option<String> {
    answer
        .pointer("/user/profile/email")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|e| e.contains('@'))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_email_is_read_from_the_profile_only() {
        let answer = serde_json::json!({"ok": true, "user": {"id": "U1", "profile": {"email": " ada@example.com "}}});
        assert_eq!(email_of(&answer).as_deref(), Some("ada@example.com"));
        let hidden =
            serde_json::json!({"ok": true, "user": {"id": "U1", "profile": {"real_name": "Ada"}}});
        assert_eq!(email_of(&hidden), None);
        let empty = serde_json::json!({"ok": true, "user": {"profile": {"email": ""}}});
        assert_eq!(email_of(&empty), None);
    }

    #[test]
    fn the_shown_name_is_the_display_name_then_the_real_name() {
        let answer = |v: Value| serde_json::json!({"ok": true, "user": v});
        assert_eq!(
            name_of(&answer(serde_json::json!({"name": "ada", "real_name": "Ada L", "profile": {"display_name": "Ada"}}))).as_deref(),
            Some("Ada")
        );
        assert_eq!(
            name_of(&answer(serde_json::json!({"name": "ada", "real_name": "Ada L", "profile": {"display_name": ""}}))).as_deref(),
            Some("Ada L")
        );
        assert_eq!(
            name_of(&answer(serde_json::json!({"name": "ada"}))).as_deref(),
            Some("ada")
        );
        assert_eq!(name_of(&answer(serde_json::json!({}))), None);
    }
}
