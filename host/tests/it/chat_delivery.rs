//! Chat answers end to end: a chat event is stored, its plugin's `unfurl`
//! and `respond` actions are judged by dispatch's own rule
//! ([`pagehook::dispatch::judge`]) and written to the outbox with the
//! verdicts, and the real [`Deliverer`] carries them out against the
//! spec-driven fake Slack on loopback: `chat.unfurl` as Slack documents it
//! (a form, `links:write`), answers posted to the command's response URL
//! (no token, 5 answers in 30 minutes), expired and used-up URLs as dead
//! letters, and answers to another event's message or command rejected,
//! audited and never sent.
//!
//! Most tests leave the plugin call out (the bundled plugins and the
//! contract tests cover it): the actions are what a plugin returns. One
//! runs it all under `pagehook serve`: a signed `/confluence` command in,
//! slack-poster's answer out at the command's response URL.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pagehook::config::{Database, DeliveryConfig};
use pagehook::deliver::Deliverer;
use pagehook::dispatch::judge;
use pagehook::model::{Action, ChatEvent, ChatUser, Event, EventKind, SharedLink};
use pagehook::secret::SecretSource;
use pagehook::store::ingest::Ingest;
use pagehook::store::{
    Binding, BreakerPolicy, Claim, ConnectionKind, ConnectionRecord, DeliveryRecord,
    DeliveryStatus, Dispatched, NewEvent, PluginRecord, Scope, Store,
};
use pagehook_fakes::{FakeSlack, Fault, RESPONSE_URL_ENDPOINT, RESPONSE_URL_TTL};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

const BOT: &str = "xoxb-chat-delivery-tests";
const WORKSPACE: &str = "acme";
const LINK: &str = "https://wiki.example.com/pages/viewpage.action?pageId=42";
const WAIT: Duration = Duration::from_secs(20);

/// A store with Slack connection `acme` on the fake, and a delivery worker
/// running over it until dropped.
struct Chat {
    store: Arc<Store>,
    slack: FakeSlack,
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    ingest: Ingest,
    next_key: std::sync::atomic::AtomicU32,
    _dir: tempfile::TempDir,
}

impl Chat {
    async fn start() -> Chat {
        Chat::start_with(false).await
    }

    async fn start_with(connection_dry_run: bool) -> Chat {
        let slack = FakeSlack::start(BOT);
        slack.add_channel("eng", "C0ENG00001", true);
        // The token has exactly the manifest's scopes for what is tested.
        slack.set_scopes(&["chat:write", "links:read", "links:write", "commands"]);
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            Store::open(&Database::Sqlite(dir.path().join("chat.db")))
                .await
                .unwrap(),
        );
        let mut conn = ConnectionRecord::new(WORKSPACE, ConnectionKind::Slack, &slack.base_url());
        conn.secret = Some(SecretSource::Value(BOT.into()));
        conn.dry_run = connection_dry_run;
        store.add_connection(&conn).await.unwrap();
        store.install_plugin(&plugin()).await.unwrap();
        let config = DeliveryConfig {
            retry_schedule_ms: vec![50, 100],
            retry_every_ms: 100,
            jitter: 0.0,
            timeout_ms: 2_000,
            ..DeliveryConfig::default()
        };
        let deliverer = Arc::new(Deliverer::new(store.clone(), config, 30_000));
        let wake = Arc::new(Notify::new());
        let (stop, shutdown) = watch::channel(false);
        tokio::spawn(deliverer.run(wake.clone(), shutdown));
        let ingest = Ingest::start(&store, Arc::new(Notify::new())).unwrap();
        Chat {
            store,
            slack,
            wake,
            stop,
            ingest,
            next_key: Default::default(),
            _dir: dir,
        }
    }

    /// Stores `event` (as the Slack hook would), judges `actions` for it
    /// under `binding` as dispatch does, and writes the outcome; returns
    /// the event's id.
    async fn dispatch(&self, event: &Event, binding: &Binding, actions: Vec<Action>) -> i64 {
        let n = self
            .next_key
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stored = self
            .ingest
            .insert(NewEvent {
                key: format!("slack:{WORKSPACE}:{n}"),
                source: event.source.clone(),
                name: event.name.clone(),
                payload: json!({"type": event.name}).to_string(),
                dispatchable: true,
            })
            .await
            .unwrap();
        let claim = Claim::new("test-dispatcher", 60_000);
        let claimed = self.store.claim_events(&claim, 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        let mut out = Dispatched {
            event_id: stored.id,
            event: event.clone(),
            deliveries: vec![],
            audit: vec![],
            failures: vec![],
            calls: vec![],
        };
        for action in actions {
            judge(
                &mut out,
                binding,
                &plugin(),
                &pagehook::destination::ChatConnections {
                    slack: vec![WORKSPACE],
                    ..Default::default()
                },
                action,
            );
        }
        let policy = BreakerPolicy {
            threshold: 3,
            cooldown_ms: 60_000,
        };
        assert_eq!(
            self.store
                .finish_dispatch(&claim, &[out], policy)
                .await
                .unwrap(),
            1
        );
        self.wake.notify_one();
        stored.id
    }

    /// The event's deliveries once none is pending or being sent.
    async fn settled(&self, event_id: i64, n: usize) -> Vec<DeliveryRecord> {
        let deadline = Instant::now() + WAIT;
        loop {
            let all = self.store.event_deliveries(event_id).await.unwrap();
            let done = all
                .iter()
                .all(|d| !matches!(d.status, DeliveryStatus::Pending | DeliveryStatus::Sending));
            if all.len() == n && done {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "deliveries of event {event_id} did not settle: {all:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Chat {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn plugin() -> PluginRecord {
    pagehook::testing::plugin(
        pagehook::testing::manifest(
            r#"
name = "chat"
version = "0.1.0"
description = "answers chat events"
wit = "0.2.0"
component = "chat.wasm"
events = ["link-shared", "slash-command", "page-created"]
actions = ["unfurl", "respond"]
"#,
        ),
        &["unfurl", "respond"],
    )
}

fn binding(destinations: &[&str], dry_run: bool) -> Binding {
    Binding {
        id: 1,
        plugin: "chat".into(),
        source: None,
        scope: Scope::Global,
        events: vec!["*".into()],
        destinations: destinations.iter().map(|d| (*d).to_owned()).collect(),
        settings: vec![],
        dry_run,
        created_at: 1,
    }
}

fn chat_binding() -> Binding {
    binding(
        &[
            &format!("slack-unfurl:{WORKSPACE}"),
            &format!("slack-respond:{WORKSPACE}"),
        ],
        false,
    )
}

fn user() -> ChatUser {
    ChatUser {
        id: "U0ADA".into(),
        team_id: "T1".into(),
        confluence: None,
    }
}

fn event(kind: EventKind, chat: Option<ChatEvent>) -> Event {
    Event {
        id: "e".into(),
        kind,
        name: kind.name().replace('-', "_"),
        occurred_at_ms: 0,
        source: WORKSPACE.into(),
        actor: None,
        by_pagehook: false,
        content: None,
        update_trigger: None,
        label: None,
        enriched: true,
        people: vec![],
        chat,
    }
}

fn link_shared(ts: &str) -> Event {
    event(
        EventKind::LinkShared,
        Some(ChatEvent::LinkShared {
            channel: "C0ENG00001".into(),
            message_ts: ts.into(),
            user: user(),
            links: vec![SharedLink {
                url: LINK.into(),
                page: None,
            }],
        }),
    )
}

fn slash_command(response_url: &str) -> Event {
    event(
        EventKind::SlashCommand,
        Some(ChatEvent::SlashCommand {
            command: "/confluence".into(),
            text: "launch".into(),
            user: user(),
            channel: "C0ENG00001".into(),
            response_url: response_url.into(),
            results: vec![],
        }),
    )
}

fn preview() -> Value {
    json!({LINK: {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Q3 launch checklist* in ENG"}}]}})
}

fn unfurl(channel: &str, ts: &str, unfurls: Value) -> Action {
    Action::Unfurl {
        channel: channel.into(),
        message_ts: ts.into(),
        unfurls,
    }
}

fn respond(url: &str, text: &str, in_channel: bool) -> Action {
    Action::Respond {
        response_url: url.into(),
        text: text.into(),
        blocks: Some(
            json!([{"type": "section", "text": {"type": "mrkdwn", "text": format!("*{text}*")}}]),
        ),
        in_channel,
    }
}

/// The secret part of a response URL: its path.
fn path_of(url: &str) -> &str {
    &url[url.find("/commands/").unwrap()..]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfurl_reaches_chat_unfurl_with_the_events_channel_ts_and_links() {
    let chat = Chat::start().await;
    let ts = chat
        .slack
        .add_user_message("C0ENG00001", "U0ADA", &format!("the plan: <{LINK}>"));
    let id = chat
        .dispatch(
            &link_shared(&ts),
            &chat_binding(),
            vec![unfurl("C0ENG00001", &ts, preview())],
        )
        .await;
    let unfurls = chat.slack.wait_for_unfurls_async(1, WAIT).await;
    assert_eq!(unfurls[0].channel, "C0ENG00001");
    assert_eq!(unfurls[0].ts, ts);
    assert_eq!(unfurls[0].unfurls, preview());
    let done = chat.settled(id, 1).await;
    assert_eq!(
        done[0].status,
        DeliveryStatus::Sent,
        "{:?}",
        done[0].last_error
    );
    assert_eq!(done[0].destination, "slack-unfurl:acme");
    // Sent as Slack's spec documents chat.unfurl: a form, the token as a
    // Bearer header and nowhere in the body.
    let request = chat
        .slack
        .requests()
        .into_iter()
        .find(|r| r.endpoint.as_deref() == Some("chat.unfurl"))
        .unwrap();
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(request.header("authorization"), Some("Bearer [redacted]"));
    assert!(!request.body.contains(BOT), "{}", request.body);
    let audit = chat.store.audit(Some(id), 10).await.unwrap();
    assert_eq!(audit[0].verdict, "accepted");
    assert_eq!(audit[0].destination, "C0ENG00001");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfurl_without_links_write_waits_for_the_app_to_be_reinstalled() {
    let chat = Chat::start().await;
    chat.slack.set_scopes(&["chat:write"]);
    let ts = chat
        .slack
        .add_user_message("C0ENG00001", "U0ADA", &format!("<{LINK}>"));
    chat.dispatch(
        &link_shared(&ts),
        &chat_binding(),
        vec![unfurl("C0ENG00001", &ts, preview())],
    )
    .await;
    let deadline = Instant::now() + WAIT;
    let health = loop {
        let conn = chat.store.connection(WORKSPACE).await.unwrap().unwrap();
        if let Some(h) = conn.health {
            break h;
        }
        assert!(Instant::now() < deadline, "the connection was never marked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(health.contains("links:write"), "{health}");
    chat.slack
        .set_scopes(&["chat:write", "links:read", "links:write"]);
    let unfurls = chat.slack.wait_for_unfurls_async(1, WAIT).await;
    assert_eq!(unfurls[0].ts, ts, "it went out once the scope was granted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_respond_reaches_the_response_url_ephemeral_or_in_channel() {
    let chat = Chat::start().await;
    let url = chat.slack.mint_response_url("C0ENG00001");
    let id = chat
        .dispatch(
            &slash_command(&url),
            &chat_binding(),
            vec![
                respond(&url, "only you see this", false),
                respond(&url, "everyone sees this", true),
            ],
        )
        .await;
    let answers = chat.slack.wait_for_responses_async(2, WAIT).await;
    assert_eq!(answers[0].response_type.as_deref(), Some("ephemeral"));
    assert_eq!(answers[0].text.as_deref(), Some("only you see this"));
    assert_eq!(
        answers[0].blocks.as_ref().unwrap()[0]["text"]["text"],
        "*only you see this*"
    );
    assert_eq!(answers[1].response_type.as_deref(), Some("in_channel"));
    assert_eq!(answers[1].text.as_deref(), Some("everyone sees this"));
    assert!(
        answers.iter().all(|a| !a.authorization),
        "a response URL is never sent a token"
    );
    let done = chat.settled(id, 2).await;
    assert!(
        done.iter().all(|d| d.status == DeliveryStatus::Sent),
        "{done:#?}"
    );
    // The URL is a capability: never in audit destinations or lanes.
    let secret = path_of(&url);
    for line in chat.store.audit(Some(id), 10).await.unwrap() {
        assert_eq!(line.destination, "response-url");
        assert_eq!(line.verdict, "accepted");
    }
    for d in &done {
        assert!(!d.destination.contains(secret));
        assert!(d.result.as_deref().is_none_or(|r| !r.contains(secret)));
    }
    // Two answers in one command's lane, in order.
    assert!(answers[0].received_at <= answers[1].received_at);
    let requests = chat.slack.requests();
    let posted: Vec<_> = requests
        .iter()
        .filter(|r| r.endpoint.as_deref() == Some("response_url"))
        .collect();
    assert_eq!(posted.len(), 2);
    assert!(posted.iter().all(|r| r.header("authorization").is_none()));
    assert!(requests.iter().all(|r| !r.body.contains(BOT)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_response_url_is_a_dead_letter_that_says_so() {
    let chat = Chat::start().await;
    let url = chat.slack.mint_response_url("C0ENG00001");
    chat.slack.age_response_urls(RESPONSE_URL_TTL);
    let id = chat
        .dispatch(
            &slash_command(&url),
            &chat_binding(),
            vec![respond(&url, "too late", false)],
        )
        .await;
    let done = chat.settled(id, 1).await;
    assert_eq!(done[0].status, DeliveryStatus::Dead);
    let error = done[0].last_error.clone().unwrap();
    assert!(
        error.contains("expired") && error.contains("30 minutes"),
        "{error}"
    );
    assert!(!error.contains(path_of(&url)), "{error}");
    assert_eq!(done[0].attempts, 1, "an expired URL is not retried");
    assert!(chat.slack.responses().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_up_response_url_is_a_dead_letter_after_five_answers() {
    let chat = Chat::start().await;
    let url = chat.slack.mint_response_url("C0ENG00001");
    let actions = (1..=6)
        .map(|i| respond(&url, &format!("answer {i}"), false))
        .collect();
    let id = chat
        .dispatch(&slash_command(&url), &chat_binding(), actions)
        .await;
    let done = chat.settled(id, 6).await;
    let answers = chat.slack.responses();
    assert_eq!(answers.len(), 5);
    assert_eq!(answers[4].text.as_deref(), Some("answer 5"), "in order");
    let dead: Vec<_> = done
        .iter()
        .filter(|d| d.status == DeliveryStatus::Dead)
        .collect();
    assert_eq!(dead.len(), 1, "{done:#?}");
    let error = dead[0].last_error.as_deref().unwrap();
    assert!(
        error.contains("used_url") && error.contains("at most 5"),
        "{error}"
    );
    assert!(matches!(&dead[0].action, Action::Respond { text, .. } if text == "answer 6"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_to_another_message_or_command_are_rejected_audited_and_not_sent() {
    let chat = Chat::start().await;
    let ts = chat
        .slack
        .add_user_message("C0ENG00001", "U0ADA", &format!("<{LINK}>"));
    let other_ts = chat
        .slack
        .add_user_message("C0ENG00001", "U0ADA", "https://evil.example.com/");
    let foreign = json!({"https://evil.example.com/": {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]}});
    let shared = chat
        .dispatch(
            &link_shared(&ts),
            &chat_binding(),
            vec![
                unfurl("C0OTHER001", &ts, preview()),
                unfurl("C0ENG00001", &other_ts, preview()),
                unfurl("C0ENG00001", &ts, foreign),
                respond(&chat.slack.mint_response_url("C0ENG00001"), "x", false),
            ],
        )
        .await;
    let url = chat.slack.mint_response_url("C0ENG00001");
    let someone_elses = chat.slack.mint_response_url("C0ENG00001");
    let command = chat
        .dispatch(
            &slash_command(&url),
            &chat_binding(),
            vec![
                respond(&someone_elses, "hijack", true),
                unfurl("C0ENG00001", &ts, preview()),
            ],
        )
        .await;
    let page = chat
        .dispatch(
            &event(EventKind::PageCreated, None),
            &chat_binding(),
            vec![respond(&url, "x", false)],
        )
        .await;
    let elsewhere = chat
        .dispatch(
            &slash_command(&url),
            &binding(&["slack-respond:beta", "slack-unfurl:*"], false),
            vec![respond(&url, "x", false)],
        )
        .await;
    let mut reasons = Vec::new();
    for id in [shared, command, page, elsewhere] {
        assert!(chat.store.event_deliveries(id).await.unwrap().is_empty());
        for line in chat.store.audit(Some(id), 10).await.unwrap() {
            assert_eq!(line.verdict, "rejected", "{line:?}");
            let reason = line.reason.unwrap();
            for u in [&url, &someone_elses] {
                assert!(!reason.contains(path_of(u)), "{reason}");
                assert!(!line.destination.contains(path_of(u)));
            }
            reasons.push(reason);
        }
    }
    let all = reasons.join("\n");
    for needle in [
        "only preview links in the message that shared them (C0ENG00001 at",
        &format!("not C0ENG00001 at {other_ts}"),
        "`https://evil.example.com/` is not one of them",
        "`respond` answers only a slash-command event, and this is a link-shared event",
        "its response URL is not this command's",
        "`unfurl` answers only a link-shared event, and this is a slash-command event",
        "`respond` answers only a slash-command event, and this is not a chat event",
        "does not allow `respond` to `response-url` in Slack workspace `acme`",
    ] {
        assert!(all.contains(needle), "{needle:?} in\n{all}");
    }
    assert_eq!(reasons.len(), 8);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(chat.slack.unfurls().is_empty());
    assert!(chat.slack.responses().is_empty());
    assert_eq!(chat.slack.calls("chat.unfurl"), 0);
    assert_eq!(chat.slack.calls("response_url"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_url_off_slack_is_refused_unsent() {
    let chat = Chat::start().await;
    // Loopback, but not the connection's own API origin: as good as any
    // other host. (Nothing listens there; nothing is sent.)
    let url = "http://127.0.0.1:9/commands/T1/1/s3cr3t";
    let id = chat
        .dispatch(
            &slash_command(url),
            &chat_binding(),
            vec![respond(url, "x", false)],
        )
        .await;
    let done = chat.settled(id, 1).await;
    assert_eq!(done[0].status, DeliveryStatus::Dead);
    let error = done[0].last_error.clone().unwrap();
    assert!(error.contains("not https on hooks.slack.com"), "{error}");
    assert!(!error.contains("s3cr3t"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_record_the_request_without_the_token_or_the_response_urls_path() {
    let chat = Chat::start_with(true).await;
    let ts = chat
        .slack
        .add_user_message("C0ENG00001", "U0ADA", &format!("<{LINK}>"));
    let url = chat.slack.mint_response_url("C0ENG00001");
    let shared = chat
        .dispatch(
            &link_shared(&ts),
            &chat_binding(),
            vec![unfurl("C0ENG00001", &ts, preview())],
        )
        .await;
    let command = chat
        .dispatch(
            &slash_command(&url),
            &chat_binding(),
            vec![respond(&url, "would answer", true)],
        )
        .await;
    let unfurled = chat.settled(shared, 1).await;
    let answered = chat.settled(command, 1).await;
    for d in [&unfurled[0], &answered[0]] {
        assert_eq!(d.status, DeliveryStatus::WouldSend, "{d:?}");
    }
    let request: Value = serde_json::from_str(unfurled[0].result.as_deref().unwrap()).unwrap();
    assert_eq!(request["method"], "chat.unfurl");
    assert_eq!(request["body"]["ts"], ts.as_str());
    assert_eq!(request["body"]["unfurls"], preview());
    let text = answered[0].result.clone().unwrap();
    let request: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        request["url"],
        format!("http://{}/[redacted]", chat.slack.addr())
    );
    assert_eq!(request["body"]["response_type"], "in_channel");
    assert_eq!(request["body"]["text"], "would answer");
    assert!(
        !text.contains(path_of(&url)) && !text.contains(BOT),
        "{text}"
    );
    assert!(!unfurled[0].result.as_deref().unwrap().contains(BOT));
    assert_eq!(chat.slack.calls("chat.unfurl"), 0);
    assert_eq!(chat.slack.calls("response_url"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_fail_for_now_are_retried() {
    let chat = Chat::start().await;
    let ts = chat
        .slack
        .add_user_message("C0ENG00001", "U0ADA", &format!("<{LINK}>"));
    let url = chat.slack.mint_response_url("C0ENG00001");
    chat.slack
        .inject("chat.unfurl", Fault::SlackError("internal_error".into()));
    chat.slack.inject(
        "chat.unfurl",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    chat.slack.inject(RESPONSE_URL_ENDPOINT, Fault::Status(503));
    let shared = chat
        .dispatch(
            &link_shared(&ts),
            &chat_binding(),
            vec![unfurl("C0ENG00001", &ts, preview())],
        )
        .await;
    let command = chat
        .dispatch(
            &slash_command(&url),
            &chat_binding(),
            vec![respond(&url, "second time lucky", false)],
        )
        .await;
    let unfurled = chat.settled(shared, 1).await;
    let answered = chat.settled(command, 1).await;
    assert_eq!(unfurled[0].status, DeliveryStatus::Sent, "{unfurled:?}");
    assert_eq!(unfurled[0].attempts, 3);
    assert_eq!(answered[0].status, DeliveryStatus::Sent, "{answered:?}");
    assert_eq!(answered[0].attempts, 2);
    assert_eq!(chat.slack.unfurls().len(), 1);
    assert_eq!(chat.slack.responses().len(), 1);
    let attempts = chat.store.attempts(answered[0].id).await.unwrap();
    let first = attempts[0].error.clone().unwrap();
    assert!(first.contains("HTTP 503"), "{first}");
    assert!(!first.contains(path_of(&url)), "{first}");
}

// ---------------------------------------------------------------------------
// Under `pagehook serve`, with the bundled slack-poster.

const SIGNING_SECRET: &str = "chat-delivery-signing-secret";

/// `v0=<hex HMAC-SHA256(secret, "v0:{timestamp}:{body}")>`, as Slack signs.
fn slack_signature(timestamp: &str, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SIGNING_SECRET.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

const PAGE: u64 = 2818051;

/// Fake Confluence (Bob may read ENG and its page), fake Slack (Bob is
/// U0BOB00001 there) and `pagehook serve` with slack-poster answering the
/// Slack connection's events.
fn serve_with_slack_poster() -> (
    pagehook_fakes::FakeConfluence,
    FakeSlack,
    common::sidecar::Sidecar,
) {
    use common::sidecar::{PAT, Sidecar};
    use pagehook_fakes::{ConfluenceAuth, ContentBuilder, FakeConfluence};

    let conf = FakeConfluence::start(ConfluenceAuth::Bearer(PAT.into()));
    conf.add_user(
        "bob",
        "8a7f80839e460b0f019e460ba6440002",
        "Bob",
        "bob@example.com",
        "pw",
        &["confluence-users"],
    );
    conf.grant_space("ENG", "group:confluence-users", &["read"]);
    // The service account may read the space's permissions.
    conf.grant_space("ENG", pagehook_fakes::SERVICE_USERNAME, &["administer"]);
    conf.set_service_confluence_admin(true);
    conf.put_content(
        PAGE,
        ContentBuilder::page(PAGE, "ENG", "Q3 launch checklist")
            .ancestors(&[])
            .build(),
    );
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", "C0ENG00001", true);
    slack.add_user("bob@example.com", "U0BOB00001");
    let mut side = Sidecar::new();
    side.connect_confluence("prod", &conf.base_url());
    side.connect_slack_signed(WORKSPACE, &slack.base_url(), BOT, SIGNING_SECRET, &[]);
    side.install("slack-poster", &["unfurl", "respond"]);
    side.cli(&[
        "bind",
        "slack-poster",
        "--source",
        WORKSPACE,
        "--to",
        "slack-unfurl:acme",
        "--to",
        "slack-respond:acme",
        "--quiet",
    ]);
    side.start();
    (conf, slack, side)
}

/// POSTs a Slack request to the sidecar's `/hooks/slack/acme`, signed now.
fn post_to_hook(side: &common::sidecar::Sidecar, content_type: &str, body: &str) {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let answer = reqwest::blocking::Client::new()
        .post(format!("{}/hooks/slack/{WORKSPACE}", side.base))
        .header("content-type", content_type)
        .header("x-slack-request-timestamp", &ts)
        .header("x-slack-signature", slack_signature(&ts, body))
        .body(body.to_owned())
        .send()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
}

fn wait_until(side: &common::sidecar::Sidecar, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}; events: {}\ndeliveries: {}",
            side.cli(&["events", "--json"]),
            side.cli(&["deliveries", "--json"])
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pagehook_serve_unfurls_a_shared_page_link_with_slack_poster() {
    let (conf, slack, side) = serve_with_slack_poster();
    let link = format!("{}/pages/viewpage.action?pageId={PAGE}", conf.base_url());
    let ts = slack.add_user_message("C0ENG00001", "U0BOB00001", &format!("the plan: <{link}>"));
    let body = json!({
        "token": "legacy",
        "team_id": "T1",
        "api_app_id": "A0PAGEHOOK",
        "type": "event_callback",
        "event_id": "Ev0CHATDELIVERY1",
        "event_time": 1764633600,
        "event": {
            "type": "link_shared",
            "channel": "C0ENG00001",
            "user": "U0BOB00001",
            "message_ts": ts,
            "event_ts": ts,
            "source": "conversations_history",
            "links": [{"domain": "127.0.0.1", "url": link}]
        }
    })
    .to_string();
    post_to_hook(&side, "application/json", &body);
    wait_until(&side, "no chat.unfurl", || !slack.unfurls().is_empty());
    let unfurls = slack.unfurls();
    assert_eq!(unfurls.len(), 1);
    assert_eq!(
        (unfurls[0].channel.as_str(), unfurls[0].ts.as_str()),
        ("C0ENG00001", ts.as_str())
    );
    let preview = unfurls[0].unfurls[&link].to_string();
    assert!(preview.contains("Q3 launch checklist"), "{preview}");
}

#[test]
fn pagehook_serve_answers_a_slash_command_at_its_response_url() {
    let (_conf, slack, side) = serve_with_slack_poster();
    let url = slack.mint_response_url("C0ENG00001");
    let body = format!(
        "token=legacy&team_id=T1&team_domain=acme&channel_id=C0ENG00001&channel_name=eng\
         &user_id=U0BOB00001&user_name=bob&command=%2Fconfluence&text=help\
         &api_app_id=A0PAGEHOOK&response_url={}&trigger_id=1334.7384.chat-delivery",
        url.replace(':', "%3A").replace('/', "%2F")
    );
    post_to_hook(&side, "application/x-www-form-urlencoded", &body);
    wait_until(&side, "no answer at the response URL", || {
        !slack.responses().is_empty()
    });
    let answers = slack.responses();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].response_type.as_deref(), Some("ephemeral"));
    assert!(
        answers[0]
            .text
            .as_deref()
            .unwrap_or("")
            .contains("/confluence"),
        "{:?}",
        answers[0]
    );
    assert!(!answers[0].authorization, "no token at the response URL");
    let (status, audit) = side.api("/api/audit");
    assert_eq!(status, 200, "{audit}");
    let audit = audit.to_string();
    assert!(audit.contains("response-url"), "{audit}");
    assert!(!audit.contains(path_of(&url)), "{audit}");

    // The binding's preview on that event shows the answer's exact request,
    // the response URL masked in it and in the action.
    let bindings: Value = serde_json::from_str(&side.cli(&["bindings", "--json"])).unwrap();
    let events: Value = serde_json::from_str(&side.cli(&["events", "--json"])).unwrap();
    let preview: Value = reqwest::blocking::Client::new()
        .post(format!(
            "{}/api/bindings/{}/preview",
            side.base, bindings[0]["id"]
        ))
        .bearer_auth(common::sidecar::ADMIN_TOKEN)
        .json(&json!({"event_id": events[0]["id"]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let shown = &preview["actions"][0];
    assert_eq!(shown["verdict"], "accepted", "{preview:#}");
    assert_eq!(shown["destination"], "response-url");
    let masked = format!("http://{}/[redacted]", slack.addr());
    assert_eq!(shown["request"]["url"], masked.as_str(), "{preview:#}");
    assert_eq!(shown["request"]["body"]["response_type"], "ephemeral");
    assert_eq!(shown["action"]["response_url"], masked.as_str());
    assert!(!preview.to_string().contains(path_of(&url)), "{preview:#}");
    assert_eq!(slack.responses().len(), 1, "a preview sends nothing");
}
