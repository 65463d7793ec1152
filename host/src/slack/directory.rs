//! Channel names and emails to Slack ids, per workspace.
//!
//! Slack posts to ids; admins and plugins write `#eng` and emails. Names
//! are resolved with `conversations.list` (public and private channels the
//! bot can see, archived ones left out), read a page of 1,000 at a time with
//! Slack's cursor. That method is in Slack's tier 2 (about 20 calls a
//! minute), so:
//! - a scan reads at most a bounded number of pages per attempt; one that
//!   needs more keeps its cursor and goes on at the next attempt;
//! - one scan runs at a time per workspace, and every name a scan sees is
//!   cached, so a burst to many channels costs one scan;
//! - entries expire (renames, new channels), and a channel Slack no longer
//!   knows (`channel_not_found`) can be forgotten and looked up once more;
//! - a name a complete scan did not find is answered from that scan for a
//!   minute instead of scanning the workspace again per delivery.
//!
//! Emails resolve with `users.lookupByEmail` (tier 3) and are cached the
//! same way. Nothing here is shared between workspaces, and a 429 is
//! returned to the caller with its `Retry-After`, never slept on here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::client::{SlackClient, SlackError};
use super::methods::{CONVERSATIONS_LIST, USERS_LOOKUP_BY_EMAIL};

/// How long a complete scan's "not there" is believed.
const NEGATIVE_TTL: Duration = Duration::from_secs(60);
/// Channels asked for per `conversations.list` page (Slack's maximum).
const PAGE: u32 = 1000;

/// Why a name could not be resolved now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// Slack refused or failed the call.
    Slack(SlackError),
    /// No channel (or user) by that name: a complete scan did not find it.
    NotFound,
    /// The scan used its pages for this attempt; it goes on next time.
    Incomplete {
        /// Channels seen so far in this scan.
        seen: usize,
    },
}

impl From<SlackError> for LookupError {
    fn from(e: SlackError) -> Self {
        LookupError::Slack(e)
    }
}

/// Lookup settings.
#[derive(Debug, Clone, Copy)]
pub struct DirectoryOptions {
    /// How long a resolved name is reused.
    pub ttl: Duration,
    /// `conversations.list` pages per attempt.
    pub pages_per_attempt: u32,
}

/// The directories of every workspace.
pub struct Directory {
    options: DirectoryOptions,
    workspaces: Mutex<HashMap<String, Arc<Workspace>>>,
}

/// How a scan ended.
enum ScanEnd {
    /// The wanted name's id.
    Found(String),
    /// Every page was read.
    Complete,
    /// The page budget ran out; the cursor is kept.
    Incomplete { seen: usize },
}

#[derive(Default)]
struct Workspace {
    /// What is known; held only between calls, never across one.
    channels: Mutex<Channels>,
    /// Held by the one scan running in this workspace, across its calls:
    /// lookups of cached names never wait for it.
    scan: tokio::sync::Mutex<()>,
    users: Mutex<HashMap<String, (String, Instant)>>,
}

/// A channel as a scan saw it.
#[derive(Debug, Clone)]
struct Seen {
    id: String,
    /// Its name as Slack spells it.
    name: String,
    private: bool,
    member: bool,
    at: Instant,
}

/// A channel the bot can post to, as the console's picker lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ChannelEntry {
    /// Its name with `#` (`#eng`).
    pub name: String,
    /// Slack's id (`C0ENG00001`).
    pub id: String,
    /// A private channel (listed only because the bot is in it).
    pub private: bool,
    /// The bot is a member (it may post; a public channel it is not in
    /// needs the `chat:write.public` scope or an invitation).
    pub member: bool,
}

/// Channels whose name contains a query, from the directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ChannelList {
    /// Matching channels, by name.
    pub channels: Vec<ChannelEntry>,
    /// Whether every channel of the workspace was read; `false` when the
    /// scan stopped at its page budget (the next look goes on).
    pub complete: bool,
    /// Matches beyond `channels` (the list is cut at its limit).
    pub more: usize,
}

#[derive(Default)]
struct Channels {
    /// Lower-case name → what was seen.
    by_name: HashMap<String, Seen>,
    /// The unfinished scan's next cursor.
    cursor: Option<String>,
    /// Channels seen by the unfinished scan.
    seen: usize,
    /// When the unfinished (or last) scan read its first page.
    started: Option<Instant>,
    /// When the last scan finished.
    completed: Option<Instant>,
}

impl Directory {
    /// An empty directory.
    pub fn new(options: DirectoryOptions) -> Directory {
        Directory {
            options,
            workspaces: Mutex::new(HashMap::new()),
        }
    }

    fn workspace(&self, name: &str) -> Arc<Workspace> {
        self.workspaces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    /// The id of channel `name` (with or without `#`) in `workspace`.
    pub async fn channel_id(
        &self,
        workspace: &str,
        client: &SlackClient<'_>,
        name: &str,
    ) -> Result<String, LookupError> {
        let wanted = name.trim_start_matches('#').to_lowercase();
        let ws = self.workspace(workspace);
        if let Some(known) = self.known(&ws, &wanted) {
            return known;
        }
        // One scan per workspace at a time; a lookup that waited for
        // another's scan may find its answer there.
        let _scan = ws.scan.lock().await;
        if let Some(known) = self.known(&ws, &wanted) {
            return known;
        }
        match self.scan(&ws, client, Some(&wanted)).await? {
            ScanEnd::Found(id) => Ok(id),
            ScanEnd::Complete => Err(LookupError::NotFound),
            ScanEnd::Incomplete { seen } => Err(LookupError::Incomplete { seen }),
        }
    }

    /// The id of channel `name` in `workspace` if the directory already
    /// knows it (and it has not expired): never asks Slack.
    pub fn cached_channel_id(&self, workspace: &str, name: &str) -> Option<String> {
        let wanted = name.trim_start_matches('#').to_lowercase();
        self.known(&self.workspace(workspace), &wanted)?.ok()
    }

    /// Reads `conversations.list` pages from where the unfinished scan
    /// stopped (or from the start), at most `pages_per_attempt` of them,
    /// recording every channel; stops early at `wanted`. The caller holds
    /// the workspace's scan lock.
    async fn scan(
        &self,
        ws: &Workspace,
        client: &SlackClient<'_>,
        wanted: Option<&str>,
    ) -> Result<ScanEnd, LookupError> {
        let mut cursor = {
            let mut channels = lock(&ws.channels);
            let cursor = channels.cursor.take().unwrap_or_default();
            if cursor.is_empty() {
                channels.seen = 0;
                channels.started = Some(Instant::now());
            }
            cursor
        };
        for _ in 0..self.options.pages_per_attempt.max(1) {
            let mut args = vec![
                ("types", "public_channel,private_channel".to_owned()),
                ("exclude_archived", "true".to_owned()),
                ("limit", PAGE.to_string()),
            ];
            if !cursor.is_empty() {
                args.push(("cursor", cursor.clone()));
            }
            let page = match client.read(CONVERSATIONS_LIST, &args).await {
                Ok(page) => page,
                Err(e) => {
                    // Keep the place: the next attempt goes on from here.
                    lock(&ws.channels).cursor = (!cursor.is_empty()).then_some(cursor);
                    return Err(e.into());
                }
            };
            let seen_at = Instant::now();
            let mut channels = lock(&ws.channels);
            let mut found = None;
            for c in page["channels"].as_array().into_iter().flatten() {
                let (Some(n), Some(id)) = (c["name"].as_str(), c["id"].as_str()) else {
                    continue;
                };
                let key = n.to_lowercase();
                if wanted == Some(key.as_str()) {
                    found = Some(id.to_owned());
                }
                let seen = Seen {
                    id: id.to_owned(),
                    name: n.to_owned(),
                    private: c["is_private"].as_bool().unwrap_or(false),
                    member: c["is_member"].as_bool().unwrap_or(false),
                    at: seen_at,
                };
                channels.by_name.insert(key, seen);
                channels.seen += 1;
            }
            cursor = page
                .pointer("/response_metadata/next_cursor")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if cursor.is_empty() {
                channels.completed = Some(seen_at);
                // Names a complete scan did not see are gone (renamed, archived).
                let started = channels.started.unwrap_or(seen_at);
                channels.by_name.retain(|_, seen| seen.at >= started);
            }
            if let Some(id) = found {
                // Found mid-scan: later pages stay unread for now.
                return Ok(ScanEnd::Found(id));
            }
            if cursor.is_empty() {
                return Ok(ScanEnd::Complete);
            }
        }
        let mut channels = lock(&ws.channels);
        channels.cursor = Some(cursor);
        Ok(ScanEnd::Incomplete {
            seen: channels.seen,
        })
    }

    /// The channels of `workspace` whose name contains `query` (any case,
    /// `#` ignored), at most `limit`, by name: what the directory knows if
    /// a scan completed within the entries' lifetime, else after reading
    /// on (within the page budget of one attempt, so a workspace of many
    /// thousand channels answers `complete: false` at first). The same
    /// cache delivery resolves names with: listing costs Slack nothing
    /// while it is fresh.
    pub async fn channels(
        &self,
        workspace: &str,
        client: &SlackClient<'_>,
        query: &str,
        limit: usize,
    ) -> Result<ChannelList, LookupError> {
        let ws = self.workspace(workspace);
        let fresh = |c: &Channels| {
            c.cursor.is_none()
                && c.completed
                    .is_some_and(|at| at.elapsed() < self.options.ttl)
        };
        if !fresh(&lock(&ws.channels)) {
            let _scan = ws.scan.lock().await;
            if !fresh(&lock(&ws.channels)) {
                self.scan(&ws, client, None).await?;
            }
        }
        let channels = lock(&ws.channels);
        let complete = fresh(&channels);
        let wanted = query.trim().trim_start_matches('#').to_lowercase();
        let mut matching: Vec<&Seen> = channels
            .by_name
            .iter()
            .filter(|(key, _)| key.contains(&wanted))
            .map(|(_, seen)| seen)
            .collect();
        // Names that start with the query first, then by name.
        matching.sort_by(|a, b| {
            let starts = |s: &Seen| !s.name.to_lowercase().starts_with(&wanted);
            (starts(a), a.name.to_lowercase()).cmp(&(starts(b), b.name.to_lowercase()))
        });
        let more = matching.len().saturating_sub(limit);
        Ok(ChannelList {
            channels: matching
                .into_iter()
                .take(limit)
                .map(|s| ChannelEntry {
                    name: format!("#{}", s.name),
                    id: s.id.clone(),
                    private: s.private,
                    member: s.member,
                })
                .collect(),
            complete,
            more,
        })
    }

    /// What the directory already knows of `wanted`: its fresh id, or that
    /// a recent complete scan did not find it; `None` when it must ask.
    fn known(&self, ws: &Workspace, wanted: &str) -> Option<Result<String, LookupError>> {
        let channels = lock(&ws.channels);
        let now = Instant::now();
        if let Some(seen) = channels.by_name.get(wanted)
            && now.duration_since(seen.at) < self.options.ttl
        {
            return Some(Ok(seen.id.clone()));
        }
        let recently_complete = channels.cursor.is_none()
            && channels
                .completed
                .is_some_and(|at| now.duration_since(at) < NEGATIVE_TTL);
        (recently_complete && !channels.by_name.contains_key(wanted))
            .then_some(Err(LookupError::NotFound))
    }

    /// Forgets a channel name (Slack said `channel_not_found` for its id:
    /// deleted, or made again under the same name), so the next lookup
    /// asks Slack again.
    pub async fn forget_channel(&self, workspace: &str, name: &str) {
        let ws = self.workspace(workspace);
        // Not in the middle of someone's scan: it would put the name back.
        let _scan = ws.scan.lock().await;
        let mut channels = lock(&ws.channels);
        channels
            .by_name
            .remove(&name.trim_start_matches('#').to_lowercase());
        // The next lookup reads the whole list again: the channel's new
        // incarnation may sit on a page an unfinished scan already passed.
        channels.completed = None;
        channels.cursor = None;
    }

    /// The id of the user with `email` in `workspace`.
    pub async fn user_id(
        &self,
        workspace: &str,
        client: &SlackClient<'_>,
        email: &str,
    ) -> Result<String, LookupError> {
        let key = email.trim().to_lowercase();
        let ws = self.workspace(workspace);
        if let Some((id, at)) = ws.users.lock().unwrap_or_else(|p| p.into_inner()).get(&key)
            && at.elapsed() < self.options.ttl
        {
            return Ok(id.clone());
        }
        let answer = match client
            .read(USERS_LOOKUP_BY_EMAIL, &[("email", email.trim().to_owned())])
            .await
        {
            Ok(a) => a,
            Err(e) if e.code() == Some("users_not_found") => return Err(LookupError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let id = answer
            .pointer("/user/id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or(LookupError::NotFound)?
            .to_owned();
        lock(&ws.users).insert(key, (id.clone(), Instant::now()));
        Ok(id)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
