//! Confluence: create a page or add a comment through the source's REST API,
//! at most once per once-key.
//!
//! Before creating, delivery looks for what an earlier attempt may already
//! have created: the once-key's recorded content id, else a page with the
//! same title in the space (titles are unique per space), or a comment with
//! the same body on the page. Only then does it POST, and it records the
//! created id under the once-key, so a retry or a restart never makes a
//! second page.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Attempt, Deliverer};
use crate::model::Action;
use crate::source::client::{ClientError, ClientOptions, ConfluenceAuth, ConfluenceClient};
use crate::store::{Claimed, ConnectionRecord};

pub(super) async fn deliver(
    w: &Deliverer,
    conn: &ConnectionRecord,
    d: &Claimed,
    dry_run: bool,
) -> Attempt {
    let (request, once_key) = request(&d.action);
    if dry_run {
        return Attempt::WouldSend(
            json!({"method": "POST", "path": "/rest/api/content", "connection": conn.name, "body": request}),
        );
    }
    let client = match client(w, conn) {
        Ok(c) => c,
        Err(a) => return a,
    };
    if let Some(key) = once_key {
        match w.store.once_key(&conn.name, key) {
            Ok(Some(id)) => return Attempt::sent(id.to_string()),
            Ok(None) => {}
            Err(e) => return Attempt::retry(e.to_string()),
        }
    }
    match existing(&client, &d.action).await {
        Ok(Some(id)) => {
            tracing::info!(
                delivery = d.id,
                id,
                "already in Confluence: not creating it again"
            );
            return record(w, conn, once_key, id);
        }
        Ok(None) => {}
        Err(e) => return verdict(conn, e),
    }
    match client.create(&request).await {
        Ok(created) => {
            let id = created["id"]
                .as_u64()
                .or_else(|| created["id"].as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(0);
            record(w, conn, once_key, id)
        }
        Err(e) => verdict(conn, e),
    }
}

fn record(w: &Deliverer, conn: &ConnectionRecord, once_key: Option<&str>, id: u64) -> Attempt {
    if let Some(key) = once_key
        && let Err(e) = w.store.set_once_key(&conn.name, key, id)
    {
        tracing::error!(error = %e, "cannot record the once-key");
    }
    Attempt::sent(id.to_string())
}

fn client(w: &Deliverer, conn: &ConnectionRecord) -> Result<ConfluenceClient, Attempt> {
    let auth = match ConfluenceAuth::of(conn) {
        Ok(Some(auth)) => auth,
        Ok(None) => {
            return Err(Attempt::Dead(format!(
                "Confluence connection `{}` is webhook-only (no token), so Pagehook cannot write to it",
                conn.name
            )));
        }
        Err(message) => return Err(Attempt::retry(message)),
    };
    Ok(ConfluenceClient::new(
        &conn.url,
        auth,
        ClientOptions {
            timeout: Duration::from_millis(w.config.timeout_ms.max(100)),
            max_retry_after: Duration::from_secs(w.config.max_retry_after_secs),
            max_inline_wait: Duration::ZERO,
            attempts: 1,
        },
    ))
}

/// The REST body for an action, and its once-key.
fn request(action: &Action) -> (Value, Option<&str>) {
    match action {
        Action::CreatePage {
            space_key,
            parent_id,
            title,
            body,
            labels,
            once_key,
        } => {
            let mut req = json!({
                "type": "page",
                "title": title,
                "space": {"key": space_key},
                "body": {"storage": {"value": body, "representation": "storage"}},
                "version": {"minorEdit": true},
            });
            if let Some(parent) = parent_id {
                req["ancestors"] = json!([{"id": parent}]);
            }
            if !labels.is_empty() {
                req["metadata"] = json!({"labels": labels.iter().map(|l| json!({"prefix": "global", "name": l})).collect::<Vec<_>>()});
            }
            (req, once_key.as_deref())
        }
        Action::AddComment {
            page_id,
            body,
            once_key,
        } => (
            json!({
                "type": "comment",
                "container": {"id": page_id, "type": "page"},
                "body": {"storage": {"value": body, "representation": "storage"}},
            }),
            once_key.as_deref(),
        ),
        _ => unreachable!("routed by action kind"),
    }
}

/// What an earlier attempt may already have created.
async fn existing(client: &ConfluenceClient, action: &Action) -> Result<Option<u64>, ClientError> {
    match action {
        Action::CreatePage {
            space_key, title, ..
        } => client.find_page(space_key, title).await,
        Action::AddComment { page_id, body, .. } => Ok(client
            .comments(*page_id)
            .await?
            .iter()
            .find(|c| {
                c.pointer("/body/storage/value").and_then(Value::as_str) == Some(body.as_str())
            })
            .and_then(|c| c["id"].as_u64().or_else(|| c["id"].as_str()?.parse().ok()))),
        _ => Ok(None),
    }
}

fn verdict(conn: &ConnectionRecord, e: ClientError) -> Attempt {
    match e {
        ClientError::Unauthorized(status) => Attempt::Reauth {
            connection: conn.name.clone(),
            error: format!(
                "Confluence refused the credentials of `{}` (HTTP {status}): update them with `pagehook connect confluence {} ...`; deliveries resume after that",
                conn.name, conn.name
            ),
        },
        ClientError::Rejected { status, message } => {
            Attempt::Dead(format!("Confluence refused it (HTTP {status}): {message}"))
        }
        ClientError::RateLimited { retry_after } => Attempt::Retry {
            error: "Confluence is rate limiting".into(),
            retry_after: Some(retry_after),
            uncertain: false,
        },
        other => Attempt::Retry {
            error: other.to_string(),
            retry_after: None,
            uncertain: true,
        },
    }
}
