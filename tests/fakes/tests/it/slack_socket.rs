//! The fake's Socket Mode speaks Slack's documented protocol: `apps.connections.open` with
//! the app-level token only, `hello`, envelopes to one socket each, acknowledgements,
//! redelivery of unacknowledged events, `disconnect`, and at most 10 sockets.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pagehook_fakes::{FakeSlack, SLACK_APP_ID};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::async_client;

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn open(slack: &FakeSlack, auth: Option<&str>) -> Value {
    let mut req = async_client()
        .post(format!("{}apps.connections.open", slack.base_url()))
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(token) = auth {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap().json().await.unwrap()
}

async fn connect(url: &str) -> Ws {
    let parsed = reqwest::Url::parse(url).unwrap();
    let tcp = tokio::net::TcpStream::connect((parsed.host_str().unwrap(), parsed.port().unwrap()))
        .await
        .unwrap();
    tokio_tungstenite::client_async(url, tcp).await.unwrap().0
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("readable");
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

#[tokio::test]
async fn connections_open_takes_the_app_level_token_in_the_header_only() {
    let slack = FakeSlack::start("xoxb-bot");
    let app = slack.socket_mode().app_token();
    assert_eq!(open(&slack, None).await["error"], "not_authed");
    assert_eq!(
        open(&slack, Some("xoxb-bot")).await["error"],
        "not_allowed_token_type"
    );
    assert_eq!(
        open(&slack, Some("xapp-wrong")).await["error"],
        "invalid_auth"
    );
    // A token as a POST parameter is refused, as Slack documents.
    let in_body: Value = async_client()
        .post(format!("{}apps.connections.open", slack.base_url()))
        .form(&[("token", app.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(in_body["ok"], false);
    slack
        .socket_mode()
        .set_app_token_scopes(&["authorizations:read"]);
    let scoped = open(&slack, Some(&app)).await;
    assert_eq!(
        (scoped["error"].as_str(), scoped["needed"].as_str()),
        (Some("missing_scope"), Some("connections:write"))
    );
    slack
        .socket_mode()
        .set_app_token_scopes(&["connections:write"]);
    let ok = open(&slack, Some(&app)).await;
    let url = ok["url"].as_str().unwrap();
    assert!(
        url.starts_with("ws://127.0.0.1:") && url.contains("ticket="),
        "{url}"
    );

    // The ticket admits one socket.
    let mut ws = connect(url).await;
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["num_connections"], 1);
    assert_eq!(hello["connection_info"]["app_id"], SLACK_APP_ID);
    assert!(hello["debug_info"]["approximate_connection_time"].is_u64());
    let again = reqwest::Url::parse(url).unwrap();
    let tcp = tokio::net::TcpStream::connect((again.host_str().unwrap(), again.port().unwrap()))
        .await
        .unwrap();
    assert!(tokio_tungstenite::client_async(url, tcp).await.is_err());
}

#[tokio::test]
async fn envelopes_go_to_one_socket_and_unacknowledged_events_come_again() {
    let slack = FakeSlack::start("xoxb-bot");
    let sm = slack.socket_mode();
    sm.set_redelivery_after(Duration::from_millis(300));
    let app = sm.app_token();
    let mut a = connect(open(&slack, Some(&app)).await["url"].as_str().unwrap()).await;
    let mut b = connect(open(&slack, Some(&app)).await["url"].as_str().unwrap()).await;
    assert_eq!(next_json(&mut a).await["type"], "hello");
    assert_eq!(next_json(&mut b).await["num_connections"], 2);

    let event = sm.send_event(json!({"type": "event_callback", "event_id": "Ev1"}));
    let command = sm.send_slash_command(json!({"command": "/confluence", "trigger_id": "t1"}));
    let first = next_json(&mut a).await;
    let second = next_json(&mut b).await;
    let (ev, cmd) = if first["envelope_id"] == event.as_str() {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!(ev["type"], "events_api");
    assert_eq!(ev["accepts_response_payload"], false);
    assert_eq!(ev["retry_attempt"], 0);
    assert_eq!(ev["payload"]["event_id"], "Ev1");
    assert_eq!(cmd["type"], "slash_commands");
    assert_eq!(cmd["accepts_response_payload"], true);
    assert_eq!(cmd["envelope_id"], command.as_str());

    // The command is answered in its acknowledgement; the event is left unacknowledged.
    let ack = json!({"envelope_id": command, "payload": {"text": "hi"}}).to_string();
    let socket_of_cmd = sm
        .deliveries()
        .iter()
        .find(|d| d.envelope_id == command)
        .unwrap()
        .socket;
    if socket_of_cmd == 1 {
        a.send(Message::Text(ack.into())).await.unwrap();
    } else {
        b.send(Message::Text(ack.into())).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(900)).await;
    let again: Vec<_> = sm
        .deliveries()
        .into_iter()
        .filter(|d| d.envelope_id == event)
        .collect();
    assert!(again.len() >= 2, "sent again: {again:?}");
    assert_eq!(again[1].retry_attempt, 1);
    let acks = sm.acks();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].payload.as_ref().unwrap()["text"], "hi");
    assert_eq!(sm.unacknowledged(), vec![event.clone()]);

    // disconnect warns, then closes.
    assert_eq!(sm.disconnect_all("warning", Duration::from_millis(100)), 2);
    let mut saw = false;
    for _ in 0..10 {
        let m = next_json(&mut a).await;
        if m["type"] == "disconnect" {
            assert_eq!(m["reason"], "warning");
            saw = true;
            break;
        }
    }
    assert!(saw);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sm.sockets() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "sockets closed after the warning"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_eleventh_socket_is_turned_away() {
    let slack = FakeSlack::start("xoxb-bot");
    let app = slack.socket_mode().app_token();
    let mut open_ones = Vec::new();
    for _ in 0..10 {
        let mut ws = connect(open(&slack, Some(&app)).await["url"].as_str().unwrap()).await;
        assert_eq!(next_json(&mut ws).await["type"], "hello");
        open_ones.push(ws);
    }
    let mut eleventh = connect(open(&slack, Some(&app)).await["url"].as_str().unwrap()).await;
    let m = next_json(&mut eleventh).await;
    assert_eq!(
        (m["type"].as_str(), m["reason"].as_str()),
        (Some("disconnect"), Some("too_many_websockets"))
    );
    assert_eq!(slack.socket_mode().sockets(), 10);
}
