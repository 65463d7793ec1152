//! Confluence: create a page or add a comment through the source's REST API,
//! at most once per once-key.
//!
//! # The marker
//!
//! Confluence rewrites storage format when it saves a body (macro ids added,
//! entities re-encoded, attributes reordered, empty elements re-closed,
//! whitespace between blocks dropped), so what was sent can never be found
//! again by comparing bodies. Instead, everything Pagehook creates carries a
//! marker that survives the save: an `anchor` macro at the end of the body,
//!
//! ```xml
//! <ac:structured-macro ac:name="anchor" ac:schema-version="1">
//!   <ac:parameter ac:name="">pagehook-3f9c…(32 hex)</ac:parameter>
//! </ac:structured-macro>
//! ```
//!
//! whose name is `pagehook-` and the first 32 hex digits of the SHA-256 of
//! the connection and the once-key (or, without a once-key, of the delivery's
//! id and creation time). Why this marker:
//! - Confluence keeps macros and their parameters on save (it only adds an
//!   `ac:macro-id`), and the name uses only `[a-z0-9-]`, which no
//!   re-encoding touches, so the name is found verbatim in the saved body.
//! - An anchor renders as an empty, invisible element: readers see nothing;
//!   editors see a small anchor placeholder.
//! - It travels in the create request itself. A content property (the
//!   invisible alternative) cannot: Data Center has been reported to ignore
//!   `metadata.properties` on `POST /rest/api/content` (or to fail with 500),
//!   and a property set by a second request is missing exactly when the
//!   first request's answer was lost. HTML comments are stripped on save, and
//!   `data-` attributes are not guaranteed to be kept.
//!
//! # Before creating
//!
//! Delivery looks for what an earlier attempt may already have created: the
//! once-key's recorded content id; else, for a page, the page with the same
//! title in the space (titles are unique per space), confirmed by the marker
//! in its body (a same-titled page without it is someone else's, and the
//! delivery is a dead letter saying so); for a comment, a comment on the page
//! or blog post whose body holds the marker. Only then does it POST, and it
//! records the created id under the once-key, so a retry or a restart never
//! makes a second page or comment.
//!
//! Pages get their labels as Data Center documents them: `metadata.labels`
//! (`[{"prefix":"global","name":..}]`) in the create request and, because
//! that is not honoured by every version, once more through
//! `POST /rest/api/content/{id}/label` (idempotent) before the once-key is
//! recorded. Comments name their container with its real type (`page` or
//! `blogpost`, read from Confluence first), as Confluence refuses a blog post
//! named as a page.
//!
//! # Refusals
//!
//! 401 means the credentials: the connection is marked "re-authorise" and
//! the delivery waits for new ones. 403 means the account is known and
//! lacks a permission in that space (adding pages, comments, labels, or
//! viewing it): re-entering the token would not help, so the delivery
//! becomes a dead letter that names the account, the space and the
//! permission to grant, and the connection stays healthy.

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Attempt, Deliverer};
use crate::confluence::client::{ClientError, ClientOptions, ConfluenceAuth, ConfluenceClient};
use crate::model::Action;
use crate::store::{Claimed, ConnectionRecord, now_ms};

/// The request a dry run records instead of creating the page or comment.
pub(super) fn would_send(conn: &ConnectionRecord, d: &Claimed) -> Value {
    let (request, _) = request(&d.action, &marker(conn, d));
    json!({"method": "POST", "path": "/rest/api/content", "connection": conn.name, "body": request})
}

pub(super) async fn deliver(
    w: &Deliverer,
    conn: &ConnectionRecord,
    d: &Claimed,
    dry_run: bool,
) -> Attempt {
    if dry_run {
        return Attempt::WouldSend(would_send(conn, d));
    }
    let marker = marker(conn, d);
    let (request, once_key) = request(&d.action, &marker);
    let client = match client(w, conn) {
        Ok(c) => c,
        Err(a) => return a,
    };
    if let Some(key) = once_key {
        match w.store.once_key(&conn.name, key).await {
            Ok(Some(id)) => return Attempt::sent(id.to_string()),
            Ok(None) => {}
            Err(e) => return Attempt::retry(e.to_string()),
        }
    }
    match existing(&client, &d.action, &marker).await {
        Ok(Found::Ours(id)) => {
            tracing::info!(
                delivery = d.id,
                id,
                %marker,
                "already in Confluence (found by its marker): not creating it again"
            );
            return finish(w, conn, &client, &d.action, once_key, id).await;
        }
        Ok(Found::Nothing) => {}
        Ok(Found::Theirs(id)) => {
            let Action::CreatePage {
                space_key, title, ..
            } = &d.action
            else {
                unreachable!("only pages are found by title")
            };
            return Attempt::Dead(format!(
                "a page titled \"{title}\" already exists in space {space_key} (id {id}) and Pagehook did not create it for this action (its body has no anchor `{marker}`); page titles are unique per space: rename or move that page, or change the plugin's title, then `pagehook retry`"
            ));
        }
        Err(e) => return judge(conn, &client, e, &Step::Look(&d.action)).await,
    }
    let mut request = request;
    let mut comment_space = None;
    if let Action::AddComment { page_id, .. } = &d.action {
        match client.content_type_and_space(*page_id).await {
            Ok(Some((kind, space))) if kind == "page" || kind == "blogpost" => {
                request["container"]["type"] = json!(kind);
                comment_space = space;
            }
            Ok(Some((kind, _))) => {
                return Attempt::Dead(format!(
                    "content {page_id} is a {kind}: comments go on pages and blog posts"
                ));
            }
            Ok(None) => {
                return Attempt::Dead(format!(
                    "no page or blog post {page_id} in Confluence (deleted, or the connection's account may not see it)"
                ));
            }
            Err(e) => return judge(conn, &client, e, &Step::Look(&d.action)).await,
        }
    }
    match client.create(&request).await {
        Ok(created) => {
            let id = created["id"]
                .as_u64()
                .or_else(|| created["id"].as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(0);
            finish(w, conn, &client, &d.action, once_key, id).await
        }
        Err(e) => {
            let step = match &d.action {
                Action::AddComment { page_id, .. } => Step::Comment {
                    page_id: *page_id,
                    space: comment_space.as_deref(),
                },
                action => Step::Create(action),
            };
            judge(conn, &client, e, &step).await
        }
    }
}

/// After the content exists: labels (pages), then the once-key.
async fn finish(
    w: &Deliverer,
    conn: &ConnectionRecord,
    client: &ConfluenceClient,
    action: &Action,
    once_key: Option<&str>,
    id: u64,
) -> Attempt {
    if let Action::CreatePage {
        labels, space_key, ..
    } = action
        && !labels.is_empty()
        && let Err(e) = client.add_labels(id, labels).await
    {
        // The page exists and carries its marker: the retry finds it and
        // labels it then.
        let step = Step::Labels {
            page_id: id,
            space: space_key,
        };
        return match judge(conn, client, e, &step).await {
            Attempt::Retry {
                error, retry_after, ..
            } => Attempt::Retry {
                error: format!("page {id} was created, but labelling it failed: {error}"),
                retry_after,
                uncertain: false,
            },
            other => other,
        };
    }
    if let Some(key) = once_key
        && let Err(e) = w.store.set_once_key(&conn.name, key, id).await
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
            proxy: conn.proxy.clone(),
        },
    ))
}

/// The anchor name that marks what this delivery creates:
/// `pagehook-<32 hex>`, from the connection and once-key, or from the
/// delivery's id and creation time when there is no once-key.
fn marker(conn: &ConnectionRecord, d: &Claimed) -> String {
    let once_key = match &d.action {
        Action::CreatePage { once_key, .. } | Action::AddComment { once_key, .. } => {
            once_key.as_deref()
        }
        _ => None,
    };
    let seed = match once_key {
        Some(key) => format!("once-key\n{}\n{key}", conn.name),
        None => format!("delivery\n{}\n{}", d.id, d.created_at),
    };
    let digest = hex::encode(Sha256::digest(seed.as_bytes()));
    format!("pagehook-{}", &digest[..32])
}

/// The storage-format anchor macro carrying `marker`.
fn anchor(marker: &str) -> String {
    format!(
        "<ac:structured-macro ac:name=\"anchor\" ac:schema-version=\"1\"><ac:parameter ac:name=\"\">{marker}</ac:parameter></ac:structured-macro>"
    )
}

/// The REST body for an action (its storage body ending in the marker), and
/// its once-key.
fn request<'a>(action: &'a Action, marker: &str) -> (Value, Option<&'a str>) {
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
                "body": {"storage": {"value": format!("{body}{}", anchor(marker)), "representation": "storage"}},
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
                "body": {"storage": {"value": format!("{body}{}", anchor(marker)), "representation": "storage"}},
            }),
            once_key.as_deref(),
        ),
        _ => unreachable!("routed by action kind"),
    }
}

/// What an earlier attempt may have left in Confluence.
enum Found {
    /// Nothing: create it.
    Nothing,
    /// Content carrying this delivery's marker.
    Ours(u64),
    /// A page with the title but without the marker.
    Theirs(u64),
}

/// Looks for what an earlier attempt may already have created.
async fn existing(
    client: &ConfluenceClient,
    action: &Action,
    marker: &str,
) -> Result<Found, ClientError> {
    let id_of = |c: &Value| c["id"].as_u64().or_else(|| c["id"].as_str()?.parse().ok());
    match action {
        Action::CreatePage {
            space_key, title, ..
        } => {
            let Some(id) = client.find_page(space_key, title).await? else {
                return Ok(Found::Nothing);
            };
            Ok(match client.storage(id).await? {
                Some(body) if body.contains(marker) => Found::Ours(id),
                _ => Found::Theirs(id),
            })
        }
        Action::AddComment { page_id, .. } => Ok(client
            .comments(*page_id)
            .await?
            .iter()
            .find(|c| {
                c.pointer("/body/storage/value")
                    .and_then(Value::as_str)
                    .is_some_and(|b| b.contains(marker))
            })
            .and_then(id_of)
            .map_or(Found::Nothing, Found::Ours)),
        _ => Ok(Found::Nothing),
    }
}

/// What a delivery was doing when Confluence answered: which permission a
/// 403 is about.
enum Step<'a> {
    /// Looking for what an earlier attempt created (reads).
    Look(&'a Action),
    /// Creating the page.
    Create(&'a Action),
    /// Adding the comment on `page_id` (in `space`, when read).
    Comment {
        page_id: u64,
        space: Option<&'a str>,
    },
    /// Labelling page `page_id`, created already.
    Labels { page_id: u64, space: &'a str },
}

/// The attempt for a failure at `step`: a 403 is a dead letter naming the
/// permission the account lacks (see the module doc), the rest as
/// [`verdict`] says.
async fn judge(
    conn: &ConnectionRecord,
    client: &ConfluenceClient,
    e: ClientError,
    step: &Step<'_>,
) -> Attempt {
    if !e.is_forbidden() {
        return verdict(conn, e);
    }
    let account = match &conn.username {
        Some(name) => format!("`{name}`"),
        None => match client.current_user().await {
            Ok(me) => format!("`{}`", me.username.unwrap_or(me.key)),
            Err(_) => "of this connection".to_owned(),
        },
    };
    Attempt::Dead(forbidden(&conn.name, &account, step))
}

/// The dead letter for a 403 at `step`, for the account named `account`.
fn forbidden(connection: &str, account: &str, step: &Step<'_>) -> String {
    const WHERE: &str = "in the space's permissions (Space tools > Permissions)";
    let space_of = |s: Option<&str>| s.map_or("its space".to_owned(), |s| format!("space {s}"));
    let what = match step {
        Step::Create(Action::CreatePage {
            space_key,
            parent_id,
            ..
        }) => format!(
            "may not add pages in space {space_key}: grant it 'Add' under Pages {WHERE}{}",
            parent_id.map_or(String::new(), |p| format!(
                ", and check that the parent page {p} has no edit restriction that leaves it out"
            ))
        ),
        Step::Comment { page_id, space } => format!(
            "may not add comments on page {page_id} in {}: grant it 'Add' under Comments {WHERE}",
            space_of(*space)
        ),
        Step::Labels { page_id, space } => format!(
            "may not add labels to page {page_id} in space {space} (it created the page; labels need the right to edit it): grant it 'Add' under Pages {WHERE}, and check the page's edit restrictions"
        ),
        Step::Look(Action::CreatePage { space_key, .. }) => {
            format!("may not read pages in space {space_key}: grant it 'View' {WHERE}")
        }
        Step::Look(Action::AddComment { page_id, .. }) => format!(
            "may not read page {page_id} or its comments: grant it 'View' {WHERE}, and check the page's view restrictions"
        ),
        Step::Create(_) | Step::Look(_) => "may not do this".to_owned(),
    };
    format!(
        "Confluence refused it (HTTP 403): the service account {account} (connection `{connection}`) {what}; the token is fine. Then `pagehook retry`"
    )
}

fn verdict(conn: &ConnectionRecord, e: ClientError) -> Attempt {
    match e {
        ClientError::Unauthorized(status) => {
            let expired = conn
                .token
                .as_ref()
                .and_then(|t| Some((t.name.as_str(), t.expires_at?)))
                .filter(|(_, at)| *at <= now_ms());
            let error = match expired {
                Some((name, at)) => format!(
                    "Confluence refused the credentials of `{}` (HTTP {status}): its personal access token `{name}` expired on {}; create a new one in Confluence and run `pagehook connect confluence {} ...` with it; deliveries resume after that",
                    conn.name,
                    crate::clock::utc_minutes(at),
                    conn.name
                ),
                None => format!(
                    "Confluence refused the credentials of `{}` (HTTP {status}): update them with `pagehook connect confluence {} ...`; deliveries resume after that",
                    conn.name, conn.name
                ),
            };
            Attempt::Reauth {
                connection: conn.name.clone(),
                error,
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ConnectionKind;

    fn claimed(id: i64, created_at: i64, action: Action) -> Claimed {
        Claimed {
            id,
            event_id: 1,
            destination: "comment:*".into(),
            action,
            dry_run: false,
            lane: "l".into(),
            source: "prod".into(),
            connection: None,
            attempts: 0,
            uncertain: false,
            due: true,
            created_at,
        }
    }

    fn comment(once_key: Option<&str>) -> Action {
        Action::AddComment {
            page_id: 7,
            body: "<p>hi</p>".into(),
            once_key: once_key.map(str::to_owned),
        }
    }

    #[test]
    fn the_marker_follows_the_once_key_or_the_delivery() {
        let prod = ConnectionRecord::new("prod", ConnectionKind::Confluence, "https://wiki");
        let test = ConnectionRecord::new("test", ConnectionKind::Confluence, "https://wiki");
        let keyed = marker(&prod, &claimed(1, 10, comment(Some("retro-1"))));
        assert!(
            keyed.starts_with("pagehook-") && keyed.len() == 41,
            "{keyed}"
        );
        assert!(
            keyed[9..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(
            keyed,
            marker(&prod, &claimed(2, 20, comment(Some("retro-1")))),
            "another delivery with the same once-key finds the same content"
        );
        assert_ne!(
            keyed,
            marker(&test, &claimed(1, 10, comment(Some("retro-1"))))
        );
        let plain = marker(&prod, &claimed(1, 10, comment(None)));
        assert_eq!(plain, marker(&prod, &claimed(1, 10, comment(None))));
        assert_ne!(plain, marker(&prod, &claimed(1, 11, comment(None))));
        assert_ne!(plain, keyed);
    }

    #[test]
    fn a_403_names_the_account_the_space_and_the_permission() {
        let page = Action::CreatePage {
            space_key: "ENG".into(),
            parent_id: Some(5),
            title: "T".into(),
            body: "<p/>".into(),
            labels: vec![],
            once_key: None,
        };
        let m = forbidden("prod", "`svc`", &Step::Create(&page));
        assert!(m.contains("HTTP 403"), "{m}");
        assert!(
            m.contains("the service account `svc` (connection `prod`) may not add pages in space ENG: grant it 'Add' under Pages in the space's permissions"),
            "{m}"
        );
        assert!(m.contains("parent page 5"), "{m}");
        let m = forbidden(
            "prod",
            "`svc`",
            &Step::Comment {
                page_id: 7,
                space: Some("OPS"),
            },
        );
        assert!(
            m.contains(
                "may not add comments on page 7 in space OPS: grant it 'Add' under Comments"
            ),
            "{m}"
        );
        let m = forbidden(
            "prod",
            "`svc`",
            &Step::Labels {
                page_id: 9,
                space: "ENG",
            },
        );
        assert!(
            m.contains("may not add labels to page 9 in space ENG"),
            "{m}"
        );
        let m = forbidden("prod", "`svc`", &Step::Look(&comment(None)));
        assert!(m.contains("may not read page 7"), "{m}");
        assert!(
            !m.contains("re-author") && !m.contains("pagehook connect"),
            "{m}"
        );
    }

    #[test]
    fn the_body_ends_with_the_anchor() {
        let action = comment(Some("k"));
        let (req, key) = request(&action, "pagehook-abc");
        assert_eq!(key, Some("k"));
        assert_eq!(
            req["body"]["storage"]["value"],
            "<p>hi</p><ac:structured-macro ac:name=\"anchor\" ac:schema-version=\"1\"><ac:parameter ac:name=\"\">pagehook-abc</ac:parameter></ac:structured-macro>"
        );
        let page = Action::CreatePage {
            space_key: "ENG".into(),
            parent_id: Some(5),
            title: "T".into(),
            body: "<p/>".into(),
            labels: vec!["retro".into()],
            once_key: None,
        };
        let (req, _) = request(&page, "pagehook-abc");
        assert_eq!(
            req["metadata"]["labels"],
            json!([{"prefix": "global", "name": "retro"}])
        );
        assert!(
            req["body"]["storage"]["value"]
                .as_str()
                .unwrap()
                .ends_with("pagehook-abc</ac:parameter></ac:structured-macro>")
        );
    }
}
