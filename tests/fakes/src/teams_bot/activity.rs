//! Inbound activities as Teams sends them to a bot in a personal (1:1) conversation, and a
//! small HTTP client that delivers them to the host with a Bot Framework JWT.
//!
//! Shapes follow the Activity spec (`shared/specs/teams/botframework-activity.md`) and
//! Microsoft's Teams samples, cited in REFERENCE.md: `channelId` `msteams`, `serviceUrl` the
//! fake's service URL, `from` the user (`29:...`, name, `aadObjectId`), `recipient` the bot
//! (`28:<appId>`), `conversation` `{id, conversationType: personal, tenantId}`,
//! `channelData.tenant.id`, a unique `id` and a UTC `timestamp`. It must never build an
//! activity for a user the fake does not know.

use std::time::Duration;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use axum::http::{Request, Uri};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::{FakeTeamsBot, TokenSpec};
use crate::server::{MAX_BODY, iso_now, lock};

/// What kind of inbound activity to build; see [`FakeTeamsBot::activity`].
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A `message` with this text, typed by the user.
    Message(String),
    /// An Adaptive Card `Action.Submit`: a `message` with no text whose `value` is the
    /// action's data merged with the card's inputs, replying to the card's activity.
    CardSubmit {
        /// The id of the bot's activity that carried the card.
        reply_to_id: String,
        /// The submitted data.
        value: Value,
    },
    /// An Adaptive Card Universal Action (`Action.Execute`): an `invoke` named
    /// `adaptiveCard/action` whose value is `{action: {type, verb, data}, trigger}`.
    CardAction {
        /// The id of the bot's activity that carried the card.
        reply_to_id: String,
        /// The action's verb.
        verb: String,
        /// The action's data merged with the card's inputs.
        data: Value,
    },
    /// An `installationUpdate` with action `add` (the user installed the app). Building it
    /// also installs the app for the user, as the event means it happened.
    InstallationAdd,
    /// An `installationUpdate` with action `remove`. Building it also uninstalls.
    InstallationRemove,
    /// A `conversationUpdate` whose `membersAdded` holds the bot (sent with the install in
    /// personal scope). Building it also installs the app for the user.
    BotAdded,
}

/// What kind of team activity to build; see [`FakeTeamsBot::team_activity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeamInbound {
    /// An `installationUpdate` with action `add` in the team's General channel: someone
    /// added the app to the team. Building it installs the app in the team.
    InstallationAdd,
    /// An `installationUpdate` with action `remove`. Building it removes the app.
    InstallationRemove,
    /// The `conversationUpdate` Teams sends beside the install, `membersAdded` holding the
    /// bot. Building it installs the app in the team.
    BotAdded,
    /// A `conversationUpdate` whose `membersRemoved` holds the bot. Building it removes it.
    BotRemoved,
}

/// What the host answered to a delivered activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundResponse {
    /// The HTTP status.
    pub status: u16,
    /// The body, as text (lossily).
    pub body: String,
}

impl FakeTeamsBot {
    /// Builds an inbound activity from the user `user_id` to the bot `app_id` in their
    /// personal conversation. Each gets a new unique `id`, which the bot may then reply to.
    ///
    /// # Panics
    /// If the user was never added with [`FakeTeamsBot::add_user`].
    pub fn activity(&self, app_id: &str, user_id: &str, kind: Inbound) -> Value {
        let service_url = self.service_url();
        let mut st = lock(&self.app.state);
        let user = st.users.get(user_id).cloned().unwrap_or_else(|| {
            panic!("FakeTeamsBot::activity: unknown user {user_id}; call add_user first")
        });
        match kind {
            Inbound::InstallationAdd | Inbound::BotAdded => {
                st.installed.insert(user.id.clone());
            }
            Inbound::InstallationRemove => {
                st.installed.remove(&user.id);
            }
            _ => {}
        }
        let conversation_id = st.open_conversation(&user.id);
        let id = st.next_activity_id();
        if let Some(c) = st.conversations.get_mut(&conversation_id) {
            c.activity_ids.push(id.clone());
        }
        drop(st);
        let bot = json!({"id": format!("28:{app_id}"), "name": "Pagehook"});
        let mut a = json!({
            "id": id,
            "timestamp": iso_now(),
            "localTimestamp": iso_now(),
            "channelId": super::TEAMS_CHANNEL_ID,
            "serviceUrl": service_url,
            "from": {"id": user.id, "name": user.name, "aadObjectId": user.aad_object_id},
            "conversation": {
                "id": conversation_id,
                "conversationType": "personal",
                "tenantId": user.tenant_id,
            },
            "recipient": bot,
            "channelData": {"tenant": {"id": user.tenant_id}},
            "locale": "en-US",
        });
        match kind {
            Inbound::Message(text) => {
                a["type"] = json!("message");
                a["text"] = json!(text);
                a["textFormat"] = json!("plain");
                a["entities"] = json!([{
                    "type": "clientInfo", "locale": "en-US", "country": "US",
                    "platform": "Web", "timezone": "Europe/Berlin",
                }]);
            }
            Inbound::CardSubmit { reply_to_id, value } => {
                a["type"] = json!("message");
                a["replyToId"] = json!(reply_to_id);
                a["value"] = value;
                a["channelData"]["source"] = json!({"name": "message"});
            }
            Inbound::CardAction {
                reply_to_id,
                verb,
                data,
            } => {
                a["type"] = json!("invoke");
                a["name"] = json!("adaptiveCard/action");
                a["replyToId"] = json!(reply_to_id);
                a["value"] = json!({
                    "action": {"type": "Action.Execute", "verb": verb, "data": data},
                    "trigger": "manual",
                });
                a["channelData"]["source"] = json!({"name": "message"});
            }
            Inbound::InstallationAdd | Inbound::InstallationRemove => {
                a["type"] = json!("installationUpdate");
                a["action"] = json!(if kind == Inbound::InstallationAdd {
                    "add"
                } else {
                    "remove"
                });
                a["channelData"]["source"] = json!({"name": "message"});
            }
            Inbound::BotAdded => {
                a["type"] = json!("conversationUpdate");
                a["membersAdded"] = json!([{"id": format!("28:{app_id}")}]);
            }
        }
        a
    }

    /// Builds a team-scope activity in team `team_id`'s General channel (conversation type
    /// `channel`, `channelData.team` and `.channel`), done by `user_id`, a member. Installing
    /// or removing the app in the team happens as the activity says.
    ///
    /// # Panics
    /// If the team or the user was never added.
    pub fn team_activity(
        &self,
        app_id: &str,
        user_id: &str,
        team_id: &str,
        kind: TeamInbound,
    ) -> Value {
        let service_url = self.service_url();
        let mut st = lock(&self.app.state);
        let user = st.users.get(user_id).cloned().unwrap_or_else(|| {
            panic!("FakeTeamsBot::team_activity: unknown user {user_id}; call add_user first")
        });
        let team = st.teams.get_mut(team_id).unwrap_or_else(|| {
            panic!("FakeTeamsBot::team_activity: unknown team {team_id}; call add_team first")
        });
        team.installed = matches!(kind, TeamInbound::InstallationAdd | TeamInbound::BotAdded);
        let (team_name, tenant_id) = (team.name.clone(), team.tenant_id.clone());
        let id = st.next_activity_id();
        drop(st);
        let bot = json!({"id": format!("28:{app_id}"), "name": "Pagehook"});
        let mut a = json!({
            "id": id,
            "timestamp": iso_now(),
            "channelId": super::TEAMS_CHANNEL_ID,
            "serviceUrl": service_url,
            "from": {"id": user.id, "name": user.name, "aadObjectId": user.aad_object_id},
            "conversation": {
                "id": team_id,
                "conversationType": "channel",
                "isGroup": true,
                "tenantId": tenant_id,
            },
            "recipient": bot,
            "channelData": {
                "tenant": {"id": tenant_id},
                "team": {"id": team_id, "name": team_name, "aadGroupId": format!("aad-{team_id}")},
                "channel": {"id": team_id},
                "settings": {"selectedChannel": {"id": team_id}},
            },
        });
        match kind {
            TeamInbound::InstallationAdd | TeamInbound::InstallationRemove => {
                a["type"] = json!("installationUpdate");
                a["action"] = json!(if kind == TeamInbound::InstallationAdd {
                    "add"
                } else {
                    "remove"
                });
            }
            TeamInbound::BotAdded => {
                a["type"] = json!("conversationUpdate");
                a["membersAdded"] = json!([{"id": format!("28:{app_id}")}]);
                a["channelData"]["eventType"] = json!("teamMemberAdded");
            }
            TeamInbound::BotRemoved => {
                a["type"] = json!("conversationUpdate");
                a["membersRemoved"] = json!([{"id": format!("28:{app_id}")}]);
                a["channelData"]["eventType"] = json!("teamMemberRemoved");
            }
        }
        a
    }

    /// Delivers `activity` to the bot endpoint `url` (plain `http://`) as the Bot Connector
    /// does: `POST` with JSON and `Authorization: Bearer <a valid token for app_id>`.
    /// Blocking; inside an async test use [`FakeTeamsBot::deliver_async`].
    ///
    /// # Panics
    /// If the host cannot be reached.
    pub fn deliver(&self, url: &str, app_id: &str, activity: &Value) -> InboundResponse {
        let token = self.mint_token(&TokenSpec::for_activity(app_id, activity));
        post_activity(url, activity, Some(&token))
    }

    /// Async form of [`FakeTeamsBot::deliver`].
    pub async fn deliver_async(
        &self,
        url: &str,
        app_id: &str,
        activity: &Value,
    ) -> InboundResponse {
        let token = self.mint_token(&TokenSpec::for_activity(app_id, activity));
        post_activity_async(url, activity, Some(&token)).await
    }
}

/// POSTs `activity` to `url` with `Authorization: Bearer <token>` (none if `None`), blocking
/// the calling thread (the request runs on a thread of its own).
///
/// # Panics
/// If `url` is not `http://` or the host cannot be reached.
pub fn post_activity(url: &str, activity: &Value, token: Option<&str>) -> InboundResponse {
    let (url, activity, token) = (url.to_string(), activity.clone(), token.map(str::to_string));
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build a runtime for the inbound POST")
            .block_on(post_activity_async(&url, &activity, token.as_deref()))
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Async form of [`post_activity`].
///
/// # Panics
/// If `url` is not `http://` or the host cannot be reached within 10 seconds.
pub async fn post_activity_async(
    url: &str,
    activity: &Value,
    token: Option<&str>,
) -> InboundResponse {
    let uri: Uri = url
        .parse()
        .unwrap_or_else(|e| panic!("post_activity: bad URL {url}: {e}"));
    assert_eq!(
        uri.scheme_str(),
        Some("http"),
        "post_activity: only http:// URLs (put a TLS front's plain address here)"
    );
    let host = uri.host().expect("a host").to_string();
    let port = uri.port_u16().unwrap_or(80);
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    let path = uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    let work = async {
        let stream = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .unwrap_or_else(|e| panic!("post_activity: cannot connect to {url}: {e}"));
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP/1.1 handshake");
        let driver = tokio::spawn(conn);
        let mut req = Request::post(path)
            .header(HOST, authority)
            .header(CONTENT_TYPE, "application/json; charset=utf-8");
        if let Some(t) = token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(Body::from(
                serde_json::to_vec(activity).expect("activity JSON"),
            ))
            .expect("build the inbound request");
        let resp = sender
            .send_request(req)
            .await
            .unwrap_or_else(|e| panic!("post_activity: {url}: {e}"));
        let status = resp.status().as_u16();
        let body = axum::body::to_bytes(Body::new(resp.into_body()), MAX_BODY)
            .await
            .unwrap_or_default();
        driver.abort();
        InboundResponse {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .unwrap_or_else(|_| panic!("post_activity: {url} did not answer within 10 s"))
}
