use std::time::{Duration, Instant};

use pagehook_fakes::{FakeSlack, Fault};
use reqwest::StatusCode;
use reqwest::blocking::Response;
use serde_json::{Value, json};

use crate::client;

const TOKEN: &str = "xoxb-test-token";

fn slack() -> FakeSlack {
    let s = FakeSlack::start(TOKEN);
    s.add_channel("eng", "C0123", true);
    s.add_channel("random", "C0456", false);
    s
}

fn call(s: &FakeSlack, method: &str, body: Value) -> Value {
    call_raw(s, method, body).json().expect("JSON answer")
}

fn call_raw(s: &FakeSlack, method: &str, body: Value) -> Response {
    client()
        .post(format!("{}{method}", s.base_url()))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_string())
        .send()
        .expect("request")
}

#[test]
fn auth_is_checked_like_slack() {
    let s = slack();
    let url = format!("{}auth.test", s.base_url());
    let none: Value = client().post(&url).send().unwrap().json().unwrap();
    assert_eq!(none, json!({"ok": false, "error": "not_authed"}));
    let wrong: Value = client()
        .post(&url)
        .bearer_auth("xoxb-nope")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(wrong["error"], "invalid_auth");
    let right = call(&s, "auth.test", json!({}));
    assert_eq!(right["ok"], true);
    assert_eq!(right["team"], "Acme");
    assert_eq!(right["team_id"], "T1");
    assert_eq!(right["user_id"], "U0BOT");
    assert_eq!(right["bot_id"], "B1");
    assert_eq!(right["url"], "https://acme.slack.com/");

    s.rotate_token("xoxb-new");
    assert_eq!(call(&s, "auth.test", json!({}))["error"], "token_revoked");
    let form: Value = client()
        .post(&url)
        .form(&[("token", "xoxb-new")])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(form["ok"], true, "a form token is accepted too");
    assert_eq!(s.calls("auth.test"), 5);
}

#[test]
fn post_message_records_and_answers_with_increasing_ts() {
    let s = slack();
    let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]);
    let metadata =
        json!({"event_type": "pagehook_delivery", "event_payload": {"delivery_id": "d-1"}});
    let first = call(
        &s,
        "chat.postMessage",
        json!({"channel": "#eng", "text": "hi", "blocks": blocks, "metadata": metadata}),
    );
    assert_eq!(first["ok"], true, "{first}");
    assert_eq!(first["channel"], "C0123");
    assert_eq!(first["ts"], "1700000000.000100");
    assert_eq!(first["message"]["text"], "hi");
    assert_eq!(first["message"]["bot_id"], "B1");
    assert_eq!(first["message"]["metadata"], metadata);

    let reply = call(
        &s,
        "chat.postMessage",
        json!({"channel": "C0123", "text": "follow-up", "thread_ts": first["ts"]}),
    );
    assert_eq!(reply["ts"], "1700000000.000200");
    assert_eq!(reply["message"]["thread_ts"], first["ts"]);

    let posts = s.posts();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].channel, "C0123");
    assert_eq!(posts[0].text.as_deref(), Some("hi"));
    assert_eq!(posts[0].blocks.as_ref(), Some(&blocks));
    assert_eq!(posts[0].metadata.as_ref(), Some(&metadata));
    assert_eq!(posts[1].thread_ts.as_deref(), Some("1700000000.000100"));
    assert!(posts[0].ts < posts[1].ts);
    assert!(posts[0].received_at <= posts[1].received_at);
}

#[test]
fn post_message_form_encoded_with_json_string_blocks() {
    let s = slack();
    let blocks = json!([{"type": "header", "text": {"type": "plain_text", "text": "Title"}}]);
    let answer: Value = client()
        .post(format!("{}chat.postMessage", s.base_url()))
        .bearer_auth(TOKEN)
        .form(&[
            ("channel", "C0123"),
            ("text", "fallback"),
            ("blocks", &blocks.to_string()),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(s.posts()[0].blocks.as_ref(), Some(&blocks));
}

#[test]
fn post_message_logical_errors() {
    let s = slack();
    s.add_channel("old", "C0OLD", true);
    s.archive_channel("old");
    let cases = [
        (
            json!({"channel": "C9999", "text": "x"}),
            "channel_not_found",
        ),
        (json!({"channel": "#random", "text": "x"}), "not_in_channel"),
        (json!({"channel": "C0OLD", "text": "x"}), "is_archived"),
        (json!({"channel": "C0123"}), "no_text"),
        (
            json!({"channel": "C0123", "text": "", "blocks": []}),
            "no_text",
        ),
        (
            json!({"channel": "C0123", "text": "x".repeat(40_001)}),
            "msg_too_long",
        ),
        (
            json!({"channel": "C0123", "text": "x", "blocks": "{not json"}),
            "invalid_blocks_format",
        ),
        (
            json!({"channel": "C0123", "text": "x", "blocks": vec![json!({"type": "divider"}); 51]}),
            "invalid_blocks",
        ),
        (
            json!({"channel": "C0123", "text": "x",
                   "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h".repeat(151)}}]}),
            "invalid_blocks",
        ),
        (
            json!({"channel": "C0123", "text": "x",
                   "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "s".repeat(3001)}}]}),
            "invalid_blocks",
        ),
        (
            json!({"channel": "C0123", "text": "x", "metadata": {"event_type": "t"}}),
            "invalid_metadata_format",
        ),
    ];
    for (body, error) in cases {
        let resp = call_raw(&s, "chat.postMessage", body.clone());
        assert_eq!(resp.status(), StatusCode::OK, "logical errors are HTTP 200");
        let answer: Value = resp.json().unwrap();
        assert_eq!(answer, json!({"ok": false, "error": error}), "for {body}");
    }
    assert!(s.posts().is_empty());
    assert_eq!(s.calls("chat.postMessage"), 11);
}

#[test]
fn json_without_charset_is_accepted_with_a_warning() {
    let s = slack();
    let answer: Value = client()
        .post(format!("{}chat.postMessage", s.base_url()))
        .bearer_auth(TOKEN)
        .json(&json!({"channel": "C0123", "text": "hi"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(answer["ok"], true);
    assert_eq!(
        answer["response_metadata"]["warnings"],
        json!(["missing_charset"])
    );
}

#[test]
fn conversations_list_paginates_and_hides_private_channels_we_are_not_in() {
    let s = FakeSlack::start(TOKEN);
    for i in 0..5 {
        s.add_channel(&format!("pub{i}"), &format!("C{i}"), i % 2 == 0);
    }
    s.add_private_channel("secret", "G1", true);
    s.add_private_channel("hidden", "G2", false);

    let mut names = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let answer = call(
            &s,
            "conversations.list",
            json!({"types": "public_channel,private_channel", "limit": 2, "cursor": cursor}),
        );
        assert_eq!(answer["ok"], true, "{answer}");
        let channels = answer["channels"].as_array().unwrap();
        assert!(channels.len() <= 2, "page size honoured");
        names.extend(
            channels
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_string()),
        );
        pages += 1;
        cursor = answer["response_metadata"]["next_cursor"]
            .as_str()
            .unwrap()
            .to_string();
        if cursor.is_empty() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["pub0", "pub1", "pub2", "pub3", "pub4", "secret"]);

    let public_only = call(&s, "conversations.list", json!({}));
    assert_eq!(public_only["channels"].as_array().unwrap().len(), 5);
    assert_eq!(public_only["channels"][1]["is_member"], false);
    let bad = call(&s, "conversations.list", json!({"cursor": "garbage"}));
    assert_eq!(bad["error"], "invalid_cursor");
}

#[test]
fn direct_messages_via_lookup_and_open() {
    let s = slack();
    s.add_user("ada@example.com", "U0ADA");
    let unknown = call(
        &s,
        "users.lookupByEmail",
        json!({"email": "nobody@example.com"}),
    );
    assert_eq!(unknown["error"], "users_not_found");
    // Read methods are commonly called form-encoded.
    let user: Value = client()
        .post(format!("{}users.lookupByEmail", s.base_url()))
        .bearer_auth(TOKEN)
        .form(&[("email", "ada@example.com")])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(user["user"]["id"], "U0ADA");

    let opened = call(&s, "conversations.open", json!({"users": "U0ADA"}));
    let dm = opened["channel"]["id"].as_str().unwrap().to_string();
    assert!(dm.starts_with('D'), "{dm}");
    let again = call(&s, "conversations.open", json!({"users": "U0ADA"}));
    assert_eq!(again["channel"]["id"], dm.as_str());
    assert_eq!(again["already_open"], true);
    assert_eq!(s.dm_channel("U0ADA").as_deref(), Some(dm.as_str()));

    let posted = call(
        &s,
        "chat.postMessage",
        json!({"channel": dm, "text": "hello"}),
    );
    assert_eq!(posted["ok"], true);
    let by_user = call(
        &s,
        "chat.postMessage",
        json!({"channel": "U0ADA", "text": "hi again"}),
    );
    assert_eq!(
        by_user["channel"],
        dm.as_str(),
        "posting to a user id lands in the DM"
    );
    assert_eq!(s.posts().len(), 2);
    assert_eq!(
        call(&s, "conversations.open", json!({"users": "U0NOPE"}))["error"],
        "user_not_found"
    );
}

#[test]
fn history_finds_a_message_by_delivery_id_after_a_crash() {
    let s = slack();
    for i in 1..=3 {
        let md = json!({"event_type": "pagehook_delivery", "event_payload": {"delivery_id": format!("d-{i}")}});
        call(
            &s,
            "chat.postMessage",
            json!({"channel": "C0123", "text": format!("m{i}"), "metadata": md}),
        );
    }
    let parent = s.posts()[0].ts.clone();
    call(
        &s,
        "chat.postMessage",
        json!({"channel": "C0123", "text": "in thread", "thread_ts": parent}),
    );

    let plain = call(&s, "conversations.history", json!({"channel": "C0123"}));
    let messages = plain["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "thread replies are not in history");
    assert_eq!(messages[0]["text"], "m3", "newest first");
    assert!(
        messages[0].get("metadata").is_none(),
        "metadata only on request"
    );
    assert_eq!(messages[2]["reply_count"], 1);

    let history: Value = client()
        .post(format!("{}conversations.history", s.base_url()))
        .bearer_auth(TOKEN)
        .form(&[
            ("channel", "C0123"),
            ("include_all_metadata", "true"),
            ("limit", "2"),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(history["has_more"], true);
    let found = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metadata"]["event_payload"]["delivery_id"] == "d-2")
        .expect("delivery d-2 is findable");
    assert_eq!(found["text"], "m2");

    let oldest = call(
        &s,
        "conversations.history",
        json!({"channel": "C0123", "oldest": parent}),
    );
    assert_eq!(
        oldest["messages"].as_array().unwrap().len(),
        2,
        "oldest is exclusive"
    );

    let replies = call(
        &s,
        "conversations.replies",
        json!({"channel": "C0123", "ts": parent, "include_all_metadata": true}),
    );
    let replies = replies["messages"].as_array().unwrap();
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[1]["text"], "in thread");

    assert_eq!(
        call(&s, "conversations.history", json!({"channel": "C0456"}))["error"],
        "not_in_channel"
    );
    assert_eq!(
        call(&s, "conversations.history", json!({"channel": "C0999"}))["error"],
        "channel_not_found"
    );
}

#[test]
fn unknown_methods_and_paths() {
    let s = slack();
    assert_eq!(
        call(&s, "chat.scheduleMessage", json!({}))["error"],
        "unknown_method"
    );
    let resp = client()
        .get(format!("http://{}/elsewhere", s.addr()))
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[test]
fn rate_limited_then_recovers() {
    let s = slack();
    s.inject(
        "chat.postMessage",
        Fault::RateLimited {
            retry_after_secs: 7,
        },
    );
    let resp = call_raw(
        &s,
        "chat.postMessage",
        json!({"channel": "C0123", "text": "x"}),
    );
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_eq!(resp.json::<Value>().unwrap()["error"], "ratelimited");
    assert!(s.posts().is_empty());
    assert_eq!(s.faults_left("chat.postMessage"), 0);
    assert_eq!(
        call(
            &s,
            "chat.postMessage",
            json!({"channel": "C0123", "text": "x"})
        )["ok"],
        true
    );
}

#[test]
fn faults_are_consumed_in_order_one_per_request() {
    let s = slack();
    s.inject("chat.postMessage", Fault::Status(503));
    s.inject(
        "chat.postMessage",
        Fault::SlackError("not_in_channel".into()),
    );
    s.inject("auth.test", Fault::Status(500));
    let body = json!({"channel": "C0123", "text": "x"});

    let first = call_raw(&s, "chat.postMessage", body.clone());
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!first.text().unwrap().is_empty(), "5xx carries a body");
    let second = call_raw(&s, "chat.postMessage", body.clone());
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(
        second.json::<Value>().unwrap(),
        json!({"ok": false, "error": "not_in_channel"})
    );
    assert_eq!(call(&s, "chat.postMessage", body)["ok"], true);
    assert_eq!(s.faults_left("auth.test"), 1, "faults are per endpoint");

    let faults: Vec<_> = s.requests().into_iter().map(|r| r.fault).collect();
    assert_eq!(
        faults,
        [
            Some(Fault::Status(503)),
            Some(Fault::SlackError("not_in_channel".into())),
            None
        ]
    );
}

#[test]
fn delay_lets_the_client_time_out_but_the_post_still_lands() {
    let s = slack();
    s.inject("chat.postMessage", Fault::Delay(Duration::from_millis(600)));
    let impatient = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(150))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = impatient
        .post(format!("{}chat.postMessage", s.base_url()))
        .bearer_auth(TOKEN)
        .json(&json!({"channel": "C0123", "text": "late"}))
        .send()
        .expect_err("times out");
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() < Duration::from_millis(550));
    let posts = s.wait_for_posts(1, Duration::from_secs(5));
    assert_eq!(
        posts[0].text.as_deref(),
        Some("late"),
        "a timed-out post can still land: duplicates are real"
    );
}

#[test]
fn reset_drops_the_connection_without_carrying_out_the_request() {
    let s = slack();
    s.inject("chat.postMessage", Fault::Reset);
    let err = client()
        .post(format!("{}chat.postMessage", s.base_url()))
        .bearer_auth(TOKEN)
        .json(&json!({"channel": "C0123", "text": "lost"}))
        .send()
        .expect_err("connection error");
    assert!(!err.is_timeout(), "{err}");
    assert!(err.status().is_none(), "no HTTP answer at all: {err}");
    assert!(s.posts().is_empty());
    assert_eq!(s.calls("chat.postMessage"), 1);
    assert_eq!(
        call(
            &s,
            "chat.postMessage",
            json!({"channel": "C0123", "text": "ok"})
        )["ok"],
        true
    );
}

#[test]
fn request_log_redacts_the_token() {
    let s = slack();
    call(
        &s,
        "chat.postMessage",
        json!({"channel": "C0123", "text": "x"}),
    );
    let log = s.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].method, "POST");
    assert_eq!(log[0].path, "/api/chat.postMessage");
    assert_eq!(log[0].endpoint.as_deref(), Some("chat.postMessage"));
    assert_eq!(log[0].header("Authorization"), Some("Bearer [redacted]"));
    assert!(log[0].body.contains("\"channel\":\"C0123\""));
    assert!(!format!("{log:?}").contains(TOKEN));
}

#[test]
#[should_panic(expected = "unknown method")]
fn inject_refuses_unknown_methods() {
    slack().inject("chat.postMesage", Fault::Reset);
}
