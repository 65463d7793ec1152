//! What the console's pickers offer: a Slack connection's channels, a
//! Confluence connection's spaces and pages, so an admin chooses where a
//! binding posts instead of typing it (twice).
//!
//! Slack channels come from the same [`Directory`] delivery resolves names
//! with (one cache per workspace, tier-2 friendly): listing costs Slack
//! nothing while a scan is fresh. Spaces and pages are asked of Confluence
//! with the connection's service account, at most [`MAX_RESULTS`] at a time.
//!
//! What it must never do: offer a space admin anything outside their
//! spaces, or a page whose view restrictions could hide it from them (the
//! service account may see more than they do); show a token; write
//! anything.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::confluence::client::{ClientError, ClientOptions, ConfluenceAuth, ConfluenceClient};
use crate::http::clients::ClientsByProxy;
use crate::slack::client::SlackClient;
use crate::slack::directory::{ChannelList, Directory, LookupError};
use crate::store::{ConnectionKind, ConnectionRecord};

/// Most entries one look-up answers.
pub const MAX_RESULTS: usize = 50;

/// Pages a page search answers (a person picks among a few).
const PAGE_RESULTS: usize = 10;

/// Why a picker has nothing to offer; worded for the admin.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PickerError {
    /// Not a connection of the kind asked for.
    #[error("{0}")]
    WrongKind(String),
    /// The connection cannot be asked (webhook-only, no token, a token
    /// that cannot be read): the admin types the value instead.
    #[error("{0}")]
    CannotAsk(String),
    /// The service refused or failed; the words say what to do.
    #[error("{0}")]
    Service(String),
}

/// A Confluence space a binding may be scoped to or create pages in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SpaceEntry {
    /// Its key (`ENG`).
    pub key: String,
    /// Its name, when Confluence gave one.
    pub name: Option<String>,
}

/// A Confluence page a setting may name (a page id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PageEntry {
    /// Its content id.
    pub id: u64,
    /// Its title.
    pub title: String,
    /// Its space's key.
    pub space: Option<String>,
}

/// The shared look-ups behind the pickers.
pub struct Pickers {
    slack: Arc<Directory>,
    http: ClientsByProxy,
    timeout: Duration,
}

impl std::fmt::Debug for Pickers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pickers").finish_non_exhaustive()
    }
}

impl Pickers {
    /// Pickers over `slack` (delivery's directory, so both share one
    /// cache), asking services within `timeout`.
    pub fn new(slack: Arc<Directory>, timeout: Duration) -> Pickers {
        let user_agent = concat!("pagehook/", env!("CARGO_PKG_VERSION"));
        Pickers {
            slack,
            http: ClientsByProxy::new(move |b| b.timeout(timeout).user_agent(user_agent)),
            timeout,
        }
    }

    /// Pickers with a directory of their own, sized as `config`'s delivery
    /// directory, asking services within the enrichment timeout.
    pub fn for_config(config: &crate::config::Config) -> Pickers {
        let d = &config.delivery;
        let directory = Directory::new(crate::slack::directory::DirectoryOptions {
            ttl: Duration::from_secs(d.slack_directory_ttl_secs.max(1)),
            pages_per_attempt: d.slack_list_pages_per_attempt.max(1),
        });
        Pickers::new(Arc::new(directory), config.enrichment_timeout())
    }

    /// The channels of Slack connection `conn` whose name contains `query`.
    pub async fn channels(
        &self,
        conn: &ConnectionRecord,
        query: &str,
    ) -> Result<ChannelList, PickerError> {
        if conn.kind != ConnectionKind::Slack {
            return Err(PickerError::WrongKind(format!(
                "`{}` is a {} connection; channels are listed for Slack connections",
                conn.name,
                conn.kind.as_str()
            )));
        }
        let token = conn
            .secret
            .as_ref()
            .ok_or_else(|| {
                PickerError::CannotAsk(format!("Slack connection `{}` has no token", conn.name))
            })?
            .resolve()
            .map_err(|m| PickerError::CannotAsk(format!("the token of `{}`: {m}", conn.name)))?;
        let http = self.http.get(conn.proxy.as_ref());
        let client = SlackClient::new(&http, &conn.url, &token);
        self.slack
            .channels(&conn.name, &client, query, MAX_RESULTS)
            .await
            .map_err(|e| match e {
                LookupError::Slack(e) => PickerError::Service(match e.code() {
                    Some(code) => format!(
                        "Slack did not list the channels of `{}`: {code}{}",
                        conn.name,
                        crate::slack::auth::refusal_hint(code)
                    ),
                    None => format!("Slack did not list the channels of `{}`: {e}", conn.name),
                }),
                LookupError::NotFound | LookupError::Incomplete { .. } => {
                    PickerError::Service("Slack's channel list is not complete yet".into())
                }
            })
    }

    /// The global spaces of Confluence connection `conn` whose key or name
    /// contains `query` (any case); only `allowed` ones when given (a space
    /// admin's).
    pub async fn spaces(
        &self,
        conn: &ConnectionRecord,
        query: &str,
        allowed: Option<&[String]>,
    ) -> Result<Vec<SpaceEntry>, PickerError> {
        let client = self.confluence(conn)?;
        let spaces = client
            .space_list()
            .await
            .map_err(|e| confluence_error(conn, &e))?;
        let wanted = query.trim().to_lowercase();
        Ok(spaces
            .into_iter()
            .filter(|(key, _)| allowed.is_none_or(|a| a.iter().any(|k| k == key)))
            .filter(|(key, name)| {
                key.to_lowercase().contains(&wanted)
                    || name
                        .as_deref()
                        .is_some_and(|n| n.to_lowercase().contains(&wanted))
            })
            .take(MAX_RESULTS)
            .map(|(key, name)| SpaceEntry { key, name })
            .collect())
    }

    /// Pages of Confluence connection `conn` whose title contains `query`
    /// (in `space`, when given), for a page-id setting. For a space admin
    /// (`allowed`), only pages of their spaces with no view restriction of
    /// their own or their ancestors'.
    pub async fn pages(
        &self,
        conn: &ConnectionRecord,
        query: &str,
        space: Option<&str>,
        allowed: Option<&[String]>,
    ) -> Result<Vec<PageEntry>, PickerError> {
        let client = self.confluence(conn)?;
        // One search per space of a space admin's (they have a few), else one.
        let spaces: Vec<Option<&str>> = match (space, allowed) {
            (Some(s), _) => vec![Some(s)],
            (None, Some(allowed)) => allowed.iter().map(|s| Some(s.as_str())).collect(),
            (None, None) => vec![None],
        };
        let mut results = Vec::new();
        for space in spaces {
            let Some(cql) = page_cql(query, space, allowed) else {
                continue;
            };
            results.extend(
                client
                    .search(&cql, PAGE_RESULTS)
                    .await
                    .map_err(|e| confluence_error(conn, &e))?,
            );
            if results.len() >= PAGE_RESULTS {
                break;
            }
        }
        Ok(results
            .iter()
            .filter(|r| allowed.is_none() || !restricted(r))
            .filter_map(|r| {
                let id = r.get("id")?;
                let id = id
                    .as_u64()
                    .or_else(|| id.as_str().and_then(|s| s.parse().ok()))?;
                let space = r
                    .pointer("/space/key")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if let (Some(allowed), Some(s)) = (allowed, &space)
                    && !allowed.contains(s)
                {
                    return None;
                }
                Some(PageEntry {
                    id,
                    title: r.get("title")?.as_str()?.to_owned(),
                    space,
                })
            })
            .take(PAGE_RESULTS)
            .collect())
    }

    fn confluence(&self, conn: &ConnectionRecord) -> Result<ConfluenceClient, PickerError> {
        if conn.kind != ConnectionKind::Confluence {
            return Err(PickerError::WrongKind(format!(
                "`{}` is a {} connection; spaces and pages are listed for Confluence connections",
                conn.name,
                conn.kind.as_str()
            )));
        }
        let auth = ConfluenceAuth::of(conn)
            .map_err(PickerError::CannotAsk)?
            .ok_or_else(|| {
                PickerError::CannotAsk(format!(
                    "Confluence connection `{}` only receives webhooks (it has no token), so Pagehook cannot list its spaces: type the key",
                    conn.name
                ))
            })?;
        Ok(ConfluenceClient::new(
            &conn.url,
            auth,
            ClientOptions {
                timeout: self.timeout,
                max_retry_after: self.timeout,
                max_inline_wait: Duration::ZERO,
                attempts: 1,
                proxy: conn.proxy.clone(),
            },
        ))
    }
}

fn confluence_error(conn: &ConnectionRecord, e: &ClientError) -> PickerError {
    PickerError::Service(format!(
        "Confluence `{}` did not answer the list: {e}",
        conn.name
    ))
}

/// The CQL of a page search: title words, the space (or a space admin's
/// spaces); `None` when there is nothing to look for.
fn page_cql(query: &str, space: Option<&str>, allowed: Option<&[String]>) -> Option<String> {
    let words: String = query
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == ' ' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let words = words.split_whitespace().collect::<Vec<_>>().join(" ");
    if words.is_empty() {
        return None;
    }
    let key_ok = |k: &str| {
        k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '~' || c == '_')
    };
    // A trailing * finds titles with a word that starts so (CQL's wildcard).
    let mut cql = format!("type = page and title ~ \"{words}*\"");
    match (space, allowed) {
        (Some(s), _) if !key_ok(s) => return None,
        (Some(s), Some(allowed)) if !allowed.iter().any(|a| a == s) => return None,
        (Some(s), _) => cql.push_str(&format!(" and space = \"{s}\"")),
        // A space admin's searches always name one of their spaces.
        (None, Some(_)) => return None,
        (None, None) => {}
    }
    Some(cql)
}

/// Whether a search result shows a view restriction of its own or of an
/// ancestor (as `SEARCH_EXPAND` returns them); unknown counts as restricted.
fn restricted(r: &Value) -> bool {
    let has = |v: &Value| {
        let read = v.pointer("/restrictions/read/restrictions");
        match read {
            None => false,
            Some(r) => ["user", "group"].iter().any(|k| {
                r.pointer(&format!("/{k}/results"))
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty())
            }),
        }
    };
    if r.pointer("/restrictions/read").is_none() {
        return true;
    }
    has(r)
        || r.get("ancestors")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(has))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn page_searches_keep_to_words_and_to_a_space_admins_spaces() {
        assert_eq!(
            page_cql("Q3 \"plan\" or", None, None).unwrap(),
            "type = page and title ~ \"Q3 plan or*\""
        );
        assert_eq!(page_cql(" \"\\ ", None, None), None, "nothing to look for");
        assert_eq!(
            page_cql("plan", Some("ENG"), None).unwrap(),
            "type = page and title ~ \"plan*\" and space = \"ENG\""
        );
        let eng = ["ENG".to_owned()];
        assert_eq!(
            page_cql("plan", Some("ENG"), Some(&eng)).unwrap(),
            "type = page and title ~ \"plan*\" and space = \"ENG\""
        );
        assert_eq!(page_cql("plan", Some("OPS"), Some(&eng)), None);
        assert_eq!(
            page_cql("plan", None, Some(&eng)),
            None,
            "always one of theirs"
        );
        assert_eq!(
            page_cql("plan", Some("E\" or space = \"OPS"), None),
            None,
            "a key that is not one searches nothing"
        );
    }

    #[test]
    fn restricted_pages_are_told_from_their_own_and_their_ancestors_restrictions() {
        let open = json!({"restrictions": {"read": {"restrictions": {"user": {"results": []}, "group": {"results": []}}}}});
        assert!(!restricted(&open));
        let mut own = open.clone();
        own["restrictions"]["read"]["restrictions"]["group"]["results"] = json!([{"name": "hr"}]);
        assert!(restricted(&own));
        let mut below = open.clone();
        below["ancestors"] = json!([own.clone()]);
        assert!(restricted(&below));
        assert!(restricted(&json!({"id": "1"})), "not known: restricted");
    }
}
