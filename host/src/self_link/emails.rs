//! A linked person's email, for personal notifications: the seam
//! `source::emails::LinkedEmails`, answered from the store's links.
//!
//! Contract 0.2.0 is frozen and a DM action names its recipient by email,
//! which delivery turns into a Slack user with `users.lookupByEmail`. So a
//! Confluence user who linked themselves is given the email of the Slack
//! user they linked: Slack's own `user.profile.email` from `users.info`
//! (cached per workspace and user, see `slack::users`), which looks up to
//! that same Slack user again. Confluence is not asked at all, so this works
//! where Confluence hides emails. Where Slack shows no email (the app lacks
//! `users:read.email`, or the user is gone), the link gives none and the
//! other ways are tried.
//!
//! A person who linked themselves through a Teams bot (`link` written to
//! it) is given the email, else the user principal name, that Teams' member
//! lookup gave for that Teams user (kept with their conversation
//! reference), which is what `dm-teams` finds them by.
//!
//! What it must never do: give an email that is not the linked chat user's
//! own, or put an email or a token in an error or a log line.

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::enrich::emails::LinkedEmails;
use crate::slack::SlackClient;
use crate::slack::users::UserEmails;
use crate::store::{ConnectionKind, Store};

/// Linked people's emails, read through their Slack users.
pub struct SlackLinkedEmails {
    store: Arc<Store>,
    http: Arc<crate::http::clients::ClientsByProxy>,
    slack_emails: Arc<UserEmails>,
}

impl SlackLinkedEmails {
    /// Reads links from `store` and Slack users' emails with `http`,
    /// through the `slack_emails` cache (shared with chat events).
    pub fn new(
        store: Arc<Store>,
        http: Arc<crate::http::clients::ClientsByProxy>,
        slack_emails: Arc<UserEmails>,
    ) -> SlackLinkedEmails {
        SlackLinkedEmails {
            store,
            http,
            slack_emails,
        }
    }

    async fn email(&self, connection: &str, user_key: &str) -> Result<Option<String>, String> {
        let links = self
            .store
            .slack_links_of(connection, user_key)
            .await
            .map_err(|e| format!("reading chat links: {e}"))?;
        for link in links {
            let slack = match self.store.connection(&link.slack_connection).await {
                Ok(Some(c)) if c.kind == ConnectionKind::Slack => c,
                Ok(Some(c)) if c.kind == ConnectionKind::TeamsBot => {
                    match self
                        .store
                        .teams_conversation(&c.name, &link.slack_user)
                        .await
                    {
                        Ok(Some(t)) => match t.email.or(t.upn) {
                            Some(email) => return Ok(Some(email)),
                            None => continue,
                        },
                        // They removed the bot: it cannot write to them.
                        Ok(None) => continue,
                        Err(e) => return Err(format!("reading Teams conversations: {e}")),
                    }
                }
                // The chat connection was removed: its links lead nowhere.
                Ok(_) => continue,
                Err(e) => return Err(format!("reading connections: {e}")),
            };
            let Some(Ok(token)) = slack.secret.as_ref().map(|s| s.resolve()) else {
                tracing::warn!(slack = %slack.name, "a linked person's Slack email cannot be read: the Slack connection's bot token cannot be read");
                continue;
            };
            let http = self.http.get(slack.proxy.as_ref());
            let client = SlackClient::new(&http, &slack.url, &token);
            match self
                .slack_emails
                .email(&slack.name, &client, &link.slack_user)
                .await
            {
                Ok(Some(email)) => return Ok(Some(email)),
                Ok(None) => continue,
                Err(e) => {
                    return Err(format!(
                        "reading a linked Slack user's email in `{}` (users.info): {e}",
                        slack.name
                    ));
                }
            }
        }
        Ok(None)
    }
}

impl LinkedEmails for SlackLinkedEmails {
    fn linked_email<'a>(
        &'a self,
        connection: &'a str,
        user_key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(self.email(connection, user_key))
    }
}
