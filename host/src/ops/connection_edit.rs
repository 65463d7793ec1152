//! Editing a connection in place: a new URL (a Teams workflow made again,
//! Confluence moved), a new token or secret, another Confluence username.
//! Everything is checked before anything is written, the connection keeps
//! its name, kind, dry run, proxy and chat Confluence, and the change-log
//! line names what changed, never the values of secrets (nor a URL's
//! query, which may hold a workflow's signature).
//!
//! A change of URL or credentials is the fix for what a health mark said
//! (a deleted workflow, a revoked token), so it clears the mark; the next
//! delivery or test says whether it worked.

use serde_json::json;

use crate::secret::SecretSource;
use crate::store::{ConnectionKind, ConnectionRecord, Store, redacted_url};

use super::changes::{ChangeAction, log_change};
use super::{AdminError, AdminResult};

/// What to change; `None` keeps what is there.
#[derive(Debug, Clone, Default)]
pub struct ConnectionEdit {
    /// Its URL: Slack's API base, a Teams workflow's URL, Confluence's base.
    pub url: Option<String>,
    /// Confluence: the Basic-auth user; `Some("")` goes back to a personal
    /// access token.
    pub username: Option<String>,
    /// The token (Slack bot token, Confluence PAT or password).
    pub token: Option<SecretSource>,
    /// Confluence's webhook secret, or a Slack app's signing secret.
    pub hook_secret: Option<SecretSource>,
    /// Slack: the app-level token (Socket Mode).
    pub app_token: Option<SecretSource>,
}

impl ConnectionEdit {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.url.is_none()
            && self.username.is_none()
            && self.token.is_none()
            && self.hook_secret.is_none()
            && self.app_token.is_none()
    }
}

/// Connection `name` as it would be after `edit`, or why not: nothing is
/// written. Adapters that change several things check all of them first.
pub async fn check(
    store: &Store,
    name: &str,
    edit: &ConnectionEdit,
) -> AdminResult<(ConnectionRecord, Vec<&'static str>)> {
    let mut c = store
        .connection(name)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no connection named `{name}`")))?;
    let mut changed = Vec::new();
    if let Some(url) = edit.url.as_deref().map(str::trim) {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(AdminError::Invalid(format!(
                "`{}`: the URL must start with https:// (or http:// for a local test server)",
                redacted_url(url)
            )));
        }
        if reqwest::Url::parse(url).is_err() {
            return Err(AdminError::Invalid(format!(
                "`{}` is not a URL",
                redacted_url(url)
            )));
        }
        if url != c.url {
            c.url = url.to_owned();
            changed.push("url");
        }
    }
    if let Some(username) = edit.username.as_deref().map(str::trim) {
        if c.kind != ConnectionKind::Confluence {
            return Err(AdminError::Invalid(format!(
                "`{name}` is a {} connection; only Confluence connections have a username",
                c.kind.as_str()
            )));
        }
        let username = Some(username.to_owned()).filter(|u| !u.is_empty());
        if username != c.username {
            c.username = username;
            changed.push("username");
        }
    }
    let hook_secret_name = match c.kind {
        ConnectionKind::Slack => "signing secret",
        _ => "webhook secret",
    };
    for (what, source) in [
        ("token", &edit.token),
        (hook_secret_name, &edit.hook_secret),
        ("app-level token", &edit.app_token),
    ] {
        if let Some(source) = source {
            source
                .resolve()
                .map_err(|m| AdminError::Invalid(format!("{what}: {m}")))?;
        }
    }
    if let Some(token) = &edit.token {
        if c.kind == ConnectionKind::Teams {
            return Err(AdminError::Invalid(
                "a Teams connection has no token: its workflow URL carries its signature".into(),
            ));
        }
        c.secret = Some(token.clone());
        changed.push("token");
    }
    if let Some(secret) = &edit.hook_secret {
        if c.kind == ConnectionKind::Teams {
            return Err(AdminError::Invalid(
                "a Teams connection takes no webhook or signing secret (its URL carries its signature)".into(),
            ));
        }
        c.hook_secret = Some(secret.clone());
        changed.push(if c.kind == ConnectionKind::Slack {
            "signing_secret"
        } else {
            "webhook_secret"
        });
    }
    if let Some(app_token) = &edit.app_token {
        if c.kind != ConnectionKind::Slack {
            return Err(AdminError::Invalid(
                "an app-level token is for Slack connections (Socket Mode) only".into(),
            ));
        }
        let token = app_token
            .resolve()
            .map_err(|m| AdminError::Invalid(format!("app-level token: {m}")))?;
        if !token.expose().trim().starts_with("xapp-") {
            return Err(AdminError::Invalid(
                "the app-level token starts with xapp- (Slack app settings, Basic Information, App-Level Tokens, with the scope connections:write); the bot token (xoxb-) goes to the token".into(),
            ));
        }
        c.app_token = Some(app_token.clone());
        changed.push("app_token");
    }
    Ok((c, changed))
}

/// Applies `edit` to connection `name` and logs what changed
/// (`connection.edit`). Nothing changed, nothing written.
pub async fn edit(
    store: &Store,
    actor: &str,
    name: &str,
    edit: &ConnectionEdit,
) -> AdminResult<(ConnectionRecord, Vec<&'static str>)> {
    let (record, changed) = check(store, name, edit).await?;
    if changed.is_empty() {
        return Ok((record, changed));
    }
    let had_mark = record.health.clone();
    // Replacing keeps the name, kind, dry run, proxy, chat Confluence and
    // creation time, and forgets the health mark and the token check.
    store.add_connection(&record).await?;
    let record = store
        .connection(name)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no connection named `{name}`")))?;
    let detail = json!({
        "changed": changed,
        "url": redacted_url(&record.url),
        "health_cleared": had_mark.is_some(),
    });
    log_change(store, actor, ChangeAction::ConnectionEdit, name, detail).await;
    Ok((record, changed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ChangeQuery;

    const OLD: &str = "xoxb-old-token-1111";
    const NEW: &str = "xoxb-new-token-2222";

    /// A store holding Slack connection `acme` (token [`OLD`], dry run,
    /// its own proxy, marked as refusing its token).
    async fn store_with_acme() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("p.db")).unwrap();
        let mut c = ConnectionRecord::new("acme", ConnectionKind::Slack, "https://slack.com/api/");
        c.secret = Some(SecretSource::Value(OLD.into()));
        c.hook_secret = Some(SecretSource::Value("signing-secret-3333".into()));
        c.dry_run = true;
        c.proxy = Some(crate::http::proxy::ProxyOverride::parse("direct").unwrap());
        store.add_connection(&c).await.unwrap();
        store
            .set_connection_health(
                "acme",
                Some("Slack refused the token of `acme` (token_revoked): reinstall the app"),
            )
            .await
            .unwrap();
        (dir, store)
    }

    async fn changes(store: &Store) -> Vec<crate::store::ChangeRecord> {
        store
            .changes(&ChangeQuery {
                before: None,
                limit: 50,
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_new_token_is_stored_clears_the_mark_and_is_logged_by_name_only() {
        let (_dir, store) = store_with_acme().await;
        let before = store.connection("acme").await.unwrap().unwrap();
        let (record, changed) = edit(
            &store,
            "admin",
            "acme",
            &ConnectionEdit {
                token: Some(SecretSource::Value(NEW.into())),
                ..ConnectionEdit::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(changed, ["token"]);
        // The new token is the one the connection now uses.
        let stored = store.connection("acme").await.unwrap().unwrap();
        assert_eq!(
            stored.secret.as_ref().unwrap().resolve().unwrap().expose(),
            NEW
        );
        assert_eq!(stored.health, None, "the edit is the fix: the mark goes");
        // Everything else is kept.
        assert_eq!(stored.hook_secret, before.hook_secret);
        assert!(stored.dry_run);
        assert_eq!(stored.proxy, before.proxy);
        assert_eq!(stored.url, before.url);
        // Neither the answer nor the change log holds a token.
        let shown = serde_json::to_string(&record).unwrap();
        assert!(!shown.contains(NEW) && !shown.contains(OLD), "{shown}");
        let log = changes(&store).await;
        assert_eq!(log.len(), 1, "{log:?}");
        assert_eq!(log[0].action, "connection.edit");
        assert_eq!(log[0].target, "acme");
        assert_eq!(log[0].detail["changed"], json!(["token"]));
        assert_eq!(log[0].detail["health_cleared"], true);
        let logged = serde_json::to_string(&log[0].detail).unwrap();
        assert!(
            !logged.contains(NEW) && !logged.contains(OLD) && !logged.contains("xoxb"),
            "{logged}"
        );
    }

    #[tokio::test]
    async fn a_refused_edit_changes_nothing_not_even_the_parts_that_were_fine() {
        let (_dir, store) = store_with_acme().await;
        let before = store.connection("acme").await.unwrap().unwrap();
        let refused = [
            // A good token beside a URL that is not one.
            (
                ConnectionEdit {
                    url: Some("ftp://slack.example/api/".into()),
                    token: Some(SecretSource::Value(NEW.into())),
                    ..ConnectionEdit::default()
                },
                "https://",
            ),
            // A good token beside an app-level token that is a bot token.
            (
                ConnectionEdit {
                    token: Some(SecretSource::Value(NEW.into())),
                    app_token: Some(SecretSource::Value("xoxb-not-an-app-token".into())),
                    ..ConnectionEdit::default()
                },
                "xapp-",
            ),
            // A token that cannot be read.
            (
                ConnectionEdit {
                    url: Some("https://slack.example/api/".into()),
                    token: Some(SecretSource::Env(
                        "PAGEHOOK_CONNECTION_EDIT_TEST_UNSET_7781".into(),
                    )),
                    ..ConnectionEdit::default()
                },
                "PAGEHOOK_CONNECTION_EDIT_TEST_UNSET_7781 is not set",
            ),
            // An empty one.
            (
                ConnectionEdit {
                    token: Some(SecretSource::Value("  ".into())),
                    ..ConnectionEdit::default()
                },
                "the secret is empty",
            ),
            // A username is Confluence's.
            (
                ConnectionEdit {
                    token: Some(SecretSource::Value(NEW.into())),
                    username: Some("ada".into()),
                    ..ConnectionEdit::default()
                },
                "only Confluence connections have a username",
            ),
        ];
        for (edit_, why) in refused {
            let e = edit(&store, "admin", "acme", &edit_).await.unwrap_err();
            let said = e.to_string();
            assert!(matches!(e, AdminError::Invalid(_)), "{said}");
            assert!(said.contains(why), "{said}");
            assert!(
                !said.contains(NEW),
                "a refusal never repeats a secret: {said}"
            );
            assert_eq!(
                store.connection("acme").await.unwrap().unwrap(),
                before,
                "refused ({said}), yet the connection changed"
            );
        }
        assert!(changes(&store).await.is_empty(), "nothing is logged");
        let missing = edit(
            &store,
            "admin",
            "nope",
            &ConnectionEdit {
                token: Some(SecretSource::Value(NEW.into())),
                ..ConnectionEdit::default()
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(missing, AdminError::NotFound(_)), "{missing}");
    }

    #[tokio::test]
    async fn a_teams_connection_takes_no_secret_and_an_empty_edit_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("p.db")).unwrap();
        let teams = ConnectionRecord::new(
            "eng-news",
            ConnectionKind::Teams,
            "https://teams.example/workflows/1?sig=secret-signature",
        );
        store.add_connection(&teams).await.unwrap();
        store
            .set_connection_health("eng-news", Some("gone"))
            .await
            .unwrap();
        for edit_ in [
            ConnectionEdit {
                token: Some(SecretSource::Value("a-token".into())),
                ..ConnectionEdit::default()
            },
            ConnectionEdit {
                hook_secret: Some(SecretSource::Value("a-secret".into())),
                ..ConnectionEdit::default()
            },
        ] {
            let e = edit(&store, "admin", "eng-news", &edit_).await.unwrap_err();
            assert!(e.to_string().contains("Teams connection"), "{e}");
        }
        // The same URL again: nothing changed, nothing written or logged,
        // and the mark stays (nothing was fixed).
        let (_, changed) = edit(
            &store,
            "admin",
            "eng-news",
            &ConnectionEdit {
                url: Some(" https://teams.example/workflows/1?sig=secret-signature ".into()),
                ..ConnectionEdit::default()
            },
        )
        .await
        .unwrap();
        assert!(changed.is_empty(), "{changed:?}");
        let kept = store.connection("eng-news").await.unwrap().unwrap();
        assert_eq!(kept.health.as_deref(), Some("gone"));
        assert!(changes(&store).await.is_empty());
        // A new URL: logged without its signature.
        let (_, changed) = edit(
            &store,
            "admin",
            "eng-news",
            &ConnectionEdit {
                url: Some("https://teams.example/workflows/2?sig=another-signature".into()),
                ..ConnectionEdit::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(changed, ["url"]);
        let logged = serde_json::to_string(&changes(&store).await[0].detail).unwrap();
        assert!(
            !logged.contains("another-signature") && !logged.contains("sig="),
            "{logged}"
        );
    }
}
