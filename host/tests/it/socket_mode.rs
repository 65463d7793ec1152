//! Two-way Slack over Socket Mode only: the Slack connection has an
//! app-level token and no signing secret, so nothing reaches Pagehook from
//! outside; `pagehook serve` opens the WebSocket (to the fake Slack's Socket
//! Mode, `pagehook_fakes::FakeSocketMode`) and takes envelopes from it. Link
//! previews go out through `chat.unfurl`, `/confluence` answers to the
//! response URL or in the acknowledgement. Sockets dropped mid-stream,
//! `disconnect` warnings, a SIGKILL of `serve` and two replicas on
//! PostgreSQL each holding a socket: every envelope is stored and
//! dispatched once, and none is acknowledged before it is committed. The
//! WebSocket goes through the egress proxy, over TLS with the company CA.

use crate::common;
use crate::common::people::{ADA as ADA_KEY, ADA_SLACK};

use std::time::{Duration, Instant};

use common::sidecar::{PAT, Sidecar};
use pagehook_fakes::postgres::TestPostgres;
use pagehook_fakes::proxy::ForwardProxy;
use pagehook_fakes::tls::{TestCa, TlsFront};
use pagehook_fakes::{ConfluenceAuth, ContentBuilder, FakeConfluence, FakeSlack, SERVICE_USERNAME};
use serde_json::{Value, json};

const BOT: &str = "xoxb-socket-mode-tests";
const WAIT: Duration = Duration::from_secs(30);
const CHANNEL: &str = "C0ENG00001";
/// A page everyone in ENG may view.
const PLAN: u64 = 4100;

struct World {
    conf: FakeConfluence,
    slack: FakeSlack,
    side: Sidecar,
}

fn fakes() -> (FakeConfluence, FakeSlack) {
    let conf = FakeConfluence::start(ConfluenceAuth::Bearer(PAT.into()));
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", CHANNEL, true);
    conf.add_user(
        "ada",
        ADA_KEY,
        "ada",
        "ada@example.com",
        "pw",
        &["confluence-users"],
    );
    slack.add_user("ada@example.com", ADA_SLACK);
    conf.grant_space("ENG", "group:confluence-users", &["read"]);
    conf.grant_space("ENG", SERVICE_USERNAME, &["administer"]);
    conf.set_service_confluence_admin(true);
    conf.put_content(
        PLAN,
        ContentBuilder::page(PLAN, "ENG", "Q3 launch plan")
            .ancestors(&[])
            .author("ada", ADA_KEY, "ada")
            .version(2)
            .build(),
    );
    (conf, slack)
}

/// Connects `side` to the fakes: Slack by bot token and app-level token
/// (from a file), no signing secret; slack-poster answering in `acme`.
fn prepare(side: &Sidecar, conf: &FakeConfluence, slack: &FakeSlack) {
    side.connect_confluence("prod", &conf.base_url());
    let app_token = side.path().join("slack-app-token");
    std::fs::write(&app_token, slack.socket_mode().app_token()).unwrap();
    let said = side.cli(&[
        "connect",
        "slack",
        "acme",
        "--url",
        &slack.base_url(),
        "--token",
        BOT,
        "--app-token-file",
        app_token.to_str().unwrap(),
    ]);
    assert!(said.contains("Socket Mode"), "{said}");
    side.install_slack_poster();
    side.bind_slack_answers("acme");
}

fn world() -> World {
    let (conf, slack) = fakes();
    let mut side = Sidecar::new();
    prepare(&side, &conf, &slack);
    side.start();
    World { conf, slack, side }
}

fn wait<T>(what: &str, within: Duration, found: impl Fn() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = found() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn link(conf: &FakeConfluence) -> String {
    format!("{}/pages/viewpage.action?pageId={PLAN}", conf.base_url())
}

/// Ada posts a link to PLAN; Slack sends `link_shared` as an `events_api`
/// envelope. Returns (message ts, envelope id).
fn share(conf: &FakeConfluence, slack: &FakeSlack, event_id: &str) -> (String, String) {
    let url = link(conf);
    let ts = slack.add_user_message(CHANNEL, ADA_SLACK, &format!("see <{url}>"));
    let envelope = slack.socket_mode().send_event(json!({
        "token": "legacy",
        "team_id": "T0ACME0001",
        "api_app_id": "A0PAGEHOOK",
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1764633600,
        "event": {
            "type": "link_shared",
            "channel": CHANNEL,
            "user": ADA_SLACK,
            "message_ts": ts,
            "event_ts": ts,
            "source": "conversations_history",
            "links": [{"domain": "127.0.0.1", "url": url}]
        }
    }));
    (ts, envelope)
}

/// Ada types `/confluence <text>`; returns (response URL, envelope id).
fn command(slack: &FakeSlack, text: &str, trigger: &str) -> (String, String) {
    let url = slack.mint_response_url(CHANNEL);
    let envelope = slack.socket_mode().send_slash_command(json!({
        "token": "legacy",
        "team_id": "T0ACME0001",
        "team_domain": "acme",
        "channel_id": CHANNEL,
        "channel_name": "eng",
        "user_id": ADA_SLACK,
        "user_name": "ada",
        "command": "/confluence",
        "text": text,
        "api_app_id": "A0PAGEHOOK",
        "response_url": url,
        "trigger_id": trigger
    }));
    (url, envelope)
}

/// The stored Slack events (`--limit` high enough for every test here).
fn slack_events(side: &Sidecar) -> Vec<Value> {
    let all: Value =
        serde_json::from_str(&side.cli(&["events", "--json", "--limit", "1000"])).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["key"]
                .as_str()
                .is_some_and(|k| k.contains(":slack-event:") || k.contains(":slash-command:"))
        })
        .cloned()
        .collect()
}

/// Every event id is stored exactly once and dispatched; every message
/// was unfurled.
fn assert_each_once(side: &Sidecar, slack: &FakeSlack, shared: &[(String, String, String)]) {
    let events = wait("every shared link dispatched", WAIT, || {
        let events = slack_events(side);
        let dispatched = events
            .iter()
            .filter(|e| e["status"] == "dispatched")
            .count();
        (dispatched >= shared.len()).then_some(events)
    });
    for (event_id, _, _) in shared {
        let copies = events
            .iter()
            .filter(|e| e["key"] == format!("acme:slack-event:{event_id}"))
            .count();
        assert_eq!(copies, 1, "{event_id} stored {copies} times");
    }
    assert_eq!(events.len(), shared.len(), "no other events: {events:#?}");
    let unfurled = wait("every message unfurled", WAIT, || {
        let unfurls = slack.unfurls();
        shared
            .iter()
            .all(|(_, ts, _)| unfurls.iter().any(|u| &u.ts == ts))
            .then_some(unfurls)
    });
    assert!(unfurled.iter().all(|u| u.channel == CHANNEL));
}

/// Every acknowledgement came after its event was committed: each
/// acknowledged envelope's event is in the store (checked by the caller
/// while commits were held back), and Slack got one for every envelope.
fn assert_all_acknowledged(slack: &FakeSlack, shared: &[(String, String, String)]) {
    let sm = slack.socket_mode();
    wait("every envelope acknowledged", WAIT * 2, || {
        sm.unacknowledged().is_empty().then_some(())
    });
    let acks = sm.acks();
    for (_, _, envelope) in shared {
        assert!(
            acks.iter().any(|a| &a.envelope_id == envelope),
            "{envelope} acknowledged"
        );
    }
    assert!(
        sm.expired().is_empty(),
        "Slack gave up on {:?}",
        sm.expired()
    );
}

#[test]
fn link_previews_and_search_answers_arrive_over_socket_mode_alone() {
    let w = world();
    let sm = w.slack.socket_mode();
    wait("a socket", WAIT, || (sm.sockets() == 1).then_some(()));

    let (ts, shared) = share(&w.conf, &w.slack, "Ev0SOCKET001");
    let unfurl = wait("the link unfurled", WAIT, || {
        w.slack.unfurls().into_iter().find(|u| u.ts == ts)
    });
    assert!(
        unfurl.unfurls.to_string().contains("Q3 launch plan"),
        "{unfurl:?}"
    );

    let (url, search) = command(&w.slack, "search launch", "1.socket");
    let answer = wait("the search answered", WAIT, || {
        w.slack.responses().into_iter().find(|r| r.url == url)
    });
    assert_eq!(answer.response_type.as_deref(), Some("ephemeral"));
    assert!(
        answer.text.unwrap_or_default().contains("Q3 launch plan")
            || answer
                .blocks
                .unwrap_or_default()
                .to_string()
                .contains("Q3 launch plan")
    );

    // The host's own command is answered in the acknowledgement, to the
    // person only; without [server] public-url it says what to set.
    let (_, link_cmd) = command(&w.slack, "link", "2.socket");
    let ack = wait("/confluence link acknowledged", WAIT, || {
        sm.acks().into_iter().find(|a| a.envelope_id == link_cmd)
    });
    let payload = ack.payload.expect("an answer in the acknowledgement");
    assert_eq!(payload["response_type"], "ephemeral");
    assert!(
        payload["text"].as_str().unwrap().contains("public-url"),
        "{payload}"
    );

    // Slash commands are acknowledged within Slack's 3 s, after one sending.
    for envelope in [&search, &link_cmd] {
        let sent: Vec<_> = sm
            .deliveries()
            .into_iter()
            .filter(|d| &d.envelope_id == envelope)
            .collect();
        assert_eq!(sent.len(), 1, "{envelope} sent once");
        let acked = sm
            .acks()
            .into_iter()
            .find(|a| &a.envelope_id == envelope)
            .expect("acknowledged");
        assert!(
            acked.at.duration_since(sent[0].at) < Duration::from_secs(3),
            "{envelope} acknowledged after {:?}",
            acked.at.duration_since(sent[0].at)
        );
    }
    assert!(sm.acks().iter().any(|a| a.envelope_id == shared));
    assert_eq!(sm.acks().len(), 3, "each envelope acknowledged once");

    // Nothing inbound: the HTTP endpoint has no signing secret and refuses.
    let refused = reqwest::blocking::Client::new()
        .post(format!("{}/hooks/slack/acme", w.side.base))
        .header("content-type", "application/json")
        .body(r#"{"type":"event_callback"}"#)
        .send()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    // The link command stored nothing; the search and the share did.
    assert_eq!(slack_events(&w.side).len(), 2);
}

#[test]
fn nothing_is_acknowledged_before_it_is_committed() {
    let w = world();
    let sm = w.slack.socket_mode();
    wait("a socket", WAIT, || (sm.sockets() == 1).then_some(()));
    // Hold the database's write lock: nothing Pagehook stores can commit.
    let db = rusqlite::Connection::open(w.side.database()).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let shared: Vec<(String, String, String)> = (0..5)
        .map(|i| {
            let id = format!("Ev0HELD{i:05}");
            let (ts, envelope) = share(&w.conf, &w.slack, &id);
            (id, ts, envelope)
        })
        .collect();
    wait("the envelopes sent", WAIT, || {
        let sent = sm.deliveries();
        shared
            .iter()
            .all(|(_, _, e)| sent.iter().any(|d| &d.envelope_id == e))
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        sm.acks().is_empty(),
        "acknowledged while nothing could commit: {:?}",
        sm.acks()
    );
    db.execute_batch("COMMIT").unwrap();

    assert_all_acknowledged(&w.slack, &shared);
    for (id, _, _) in &shared {
        let n: i64 = db
            .query_row(
                "SELECT COUNT(*) FROM events WHERE key = ?1",
                [format!("acme:slack-event:{id}")],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "{id} stored once");
    }
    assert_each_once(&w.side, &w.slack, &shared);
}

#[test]
fn dropped_sockets_disconnects_and_a_sigkill_lose_nothing_and_store_nothing_twice() {
    let mut w = world();
    let sm = w.slack.socket_mode();
    sm.set_redelivery_after(Duration::from_millis(1000));
    wait("a socket", WAIT, || (sm.sockets() == 1).then_some(()));
    let mut shared = Vec::new();
    let mut batch = |w: &World, name: &str| {
        for i in 0..8 {
            let id = format!("Ev0{name}{i:03}");
            let (ts, envelope) = share(&w.conf, &w.slack, &id);
            shared.push((id, ts, envelope));
        }
    };

    // A socket dropped mid-stream (no close frame).
    batch(&w, "DROP");
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(sm.drop_sockets(), 1);
    wait("a socket again", WAIT, || {
        (sm.sockets() == 1 && sm.sockets_opened() == 2).then_some(())
    });

    // A disconnect warning: the next socket opens before the old closes.
    batch(&w, "WARN");
    assert_eq!(sm.disconnect_all("warning", Duration::from_secs(2)), 1);
    wait(
        "a second socket before the first closes",
        Duration::from_millis(1800),
        || (sm.sockets() >= 2).then_some(()),
    );
    wait("the warned socket closed", WAIT, || {
        (sm.sockets() == 1 && sm.sockets_opened() == 3).then_some(())
    });

    // A refresh.
    batch(&w, "RFSH");
    sm.disconnect_all("refresh_requested", Duration::from_millis(300));
    wait("a socket after the refresh", WAIT, || {
        (sm.sockets() == 1 && sm.sockets_opened() == 4).then_some(())
    });

    // SIGKILL mid-stream, then serve again.
    batch(&w, "KILL");
    std::thread::sleep(Duration::from_millis(40));
    w.side.kill();
    std::thread::sleep(Duration::from_millis(300));
    w.side.start();

    assert_all_acknowledged(&w.slack, &shared);
    assert_each_once(&w.side, &w.slack, &shared);
    assert!(sm.sockets_opened() >= 5, "{} sockets", sm.sockets_opened());
}

#[test]
fn two_replicas_each_hold_a_socket_and_handle_each_envelope_once() {
    let pg = TestPostgres::shared();
    let db = pg.fresh_database();
    let (conf, slack) = fakes();
    let admin = Sidecar::on_postgres(
        &pg.url(&db),
        pg.password(),
        "",
        "retry-schedule-ms = [100, 200, 400]\nretry-every-ms = 400\ngive-up-after-ms = 60000\n\
         timeout-ms = 1000\nslack-channel-rate = 50.0\nslack-workspace-rate = 100.0\njitter = 0.0\n",
    );
    prepare(&admin, &conf, &slack);
    let mut replicas = [admin.replica(), admin.replica()];
    for r in replicas.iter_mut() {
        r.start();
    }
    let sm = slack.socket_mode();
    sm.set_redelivery_after(Duration::from_millis(1000));
    wait("a socket per replica", WAIT, || {
        (sm.sockets() == 2).then_some(())
    });

    let mut shared = Vec::new();
    for i in 0..24 {
        let id = format!("Ev0PAIR{i:05}");
        let (ts, envelope) = share(&conf, &slack, &id);
        shared.push((id, ts, envelope));
        match i {
            8 => {
                sm.drop_sockets();
            }
            16 => replicas[0].kill(),
            _ => {}
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    replicas[0].start();
    assert_all_acknowledged(&slack, &shared);
    assert_each_once(&admin, &slack, &shared);
    // Slack spread the envelopes over both replicas' sockets.
    let sockets: std::collections::HashSet<u64> = sm.acks().iter().map(|a| a.socket).collect();
    assert!(sockets.len() >= 2, "acknowledged on sockets {sockets:?}");
}

#[test]
fn the_websocket_goes_through_the_egress_proxy_over_tls_with_the_company_ca() {
    let (conf, slack) = fakes();
    let ca = TestCa::new("Corp Root CA");
    let front = TlsFront::start(&ca.issue(&["localhost"]), slack.socket_mode().addr());
    slack
        .socket_mode()
        .set_public_base(&front.url_as("localhost").replace("https://", "wss://"));
    let proxy = ForwardProxy::start();
    let mut side = Sidecar::new();
    ca.write_pem(&side.path().join("corp-root-ca.pem"));
    side.add_to_config(&format!(
        "[tls]\nextra-ca-files = [\"corp-root-ca.pem\"]\n[network]\nproxy = \"{}\"\n",
        proxy.url()
    ));
    prepare(&side, &conf, &slack);
    side.start();
    let sm = slack.socket_mode();
    wait("a socket", WAIT, || (sm.sockets() == 1).then_some(()));
    let shared: Vec<_> = (0..3)
        .map(|i| {
            let id = format!("Ev0PROXY{i:04}");
            let (ts, envelope) = share(&conf, &slack, &id);
            (id, ts, envelope)
        })
        .collect();
    assert_all_acknowledged(&slack, &shared);
    assert_each_once(&side, &slack, &shared);

    let socket_target = format!("localhost:{}", front.addr().port());
    let requests = proxy.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.method == "CONNECT" && r.target == socket_target && r.carried),
        "the WebSocket's CONNECT: {requests:?}"
    );
    assert!(front.handshakes() >= 1, "TLS to the socket");
    let api = slack.addr().to_string();
    assert!(
        requests.iter().any(|r| r.target == api),
        "apps.connections.open and the Web API through the proxy too: {requests:?}"
    );
    assert!(
        !requests.iter().any(|r| r.target == sm.addr().to_string()),
        "nothing reaches the socket server but through TLS: {requests:?}"
    );
}

#[test]
fn the_app_level_token_is_checked_tested_and_never_shown() {
    let (_conf, slack) = fakes();
    let side = Sidecar::new();
    let app_token = slack.socket_mode().app_token();
    // The bot token given as the app-level token: refused, nothing stored.
    let wrong = side.cli_output(&[
        "connect",
        "slack",
        "acme",
        "--url",
        &slack.base_url(),
        "--token",
        BOT,
        "--app-token",
        BOT,
    ]);
    assert!(!wrong.status.success());
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(said.contains("xapp-"), "{said}");
    assert!(!said.contains(BOT), "{said}");
    assert_eq!(side.cli(&["connections", "--json"]).trim(), "[]");

    side.cli(&[
        "connect",
        "slack",
        "acme",
        "--url",
        &slack.base_url(),
        "--token",
        BOT,
        "--app-token",
        &app_token,
    ]);
    let listed = side.cli(&["connections", "--json"]);
    assert!(!listed.contains(&app_token), "{listed}");
    assert!(listed.contains("\"app_token\""), "{listed}");
    let tested = side.cli(&["connection", "test", "acme"]);
    assert!(
        tested.contains("Socket Mode: Slack accepts the app-level token"),
        "{tested}"
    );
    assert!(!tested.contains(&app_token), "{tested}");
    // The doctor sees Socket Mode as the way Slack comes in.
    let doctor = side.cli_output(&["doctor", "--json"]);
    let report: Value = serde_json::from_slice(&doctor.stdout).unwrap();
    assert_eq!(report["slack"][0]["socket_mode"], true, "{report:#}");
    assert_eq!(report["slack"][0]["signing_secret"], false, "{report:#}");
    assert!(!report.to_string().contains(&app_token));

    // Without connections:write Slack refuses, and the test says how to fix it.
    slack
        .socket_mode()
        .set_app_token_scopes(&["authorizations:read"]);
    let refused = side.cli_output(&["connection", "test", "acme"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(
        said.contains("missing_scope") && said.contains("connections:write"),
        "{said}"
    );
    let doctor = side.cli_output(&["doctor", "--json"]);
    let report: Value = serde_json::from_slice(&doctor.stdout).unwrap();
    assert_eq!(report["slack"][0]["socket_mode"], false, "{report:#}");
}
