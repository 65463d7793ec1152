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

/// A GET with the arguments in the query string, as read methods are usually called.
fn query(s: &FakeSlack, method: &str, args: &[(&str, &str)]) -> Value {
    query_raw(s, method, args).json().expect("JSON answer")
}

fn query_raw(s: &FakeSlack, method: &str, args: &[(&str, &str)]) -> Response {
    client()
        .get(format!("{}{method}", s.base_url()))
        .bearer_auth(TOKEN)
        .query(args)
        .send()
        .expect("request")
}

/// A POST with a form-encoded body.
fn form(s: &FakeSlack, method: &str, args: &[(&str, &str)]) -> Value {
    client()
        .post(format!("{}{method}", s.base_url()))
        .bearer_auth(TOKEN)
        .form(args)
        .send()
        .expect("request")
        .json()
        .expect("JSON answer")
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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let ts: f64 = first["ts"].as_str().unwrap().parse().unwrap();
    assert!(
        (ts - now).abs() < 60.0,
        "ts is the time of posting, as on Slack: {ts}"
    );
    assert_eq!(first["message"]["text"], "hi");
    assert_eq!(first["message"]["bot_id"], "B1");
    assert_eq!(first["message"]["metadata"], metadata);

    let reply = call(
        &s,
        "chat.postMessage",
        json!({"channel": "C0123", "text": "follow-up", "thread_ts": first["ts"]}),
    );
    assert!(reply["ts"].as_str().unwrap() > first["ts"].as_str().unwrap());
    assert_eq!(reply["message"]["thread_ts"], first["ts"]);

    let posts = s.posts();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].channel, "C0123");
    assert_eq!(posts[0].text.as_deref(), Some("hi"));
    assert_eq!(posts[0].blocks.as_ref(), Some(&blocks));
    assert_eq!(posts[0].metadata.as_ref(), Some(&metadata));
    assert_eq!(posts[1].thread_ts.as_deref(), first["ts"].as_str());
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
        let answer = query(
            &s,
            "conversations.list",
            &[
                ("types", "public_channel,private_channel"),
                ("limit", "2"),
                ("cursor", &cursor),
            ],
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

    let public_only = query(&s, "conversations.list", &[]);
    assert_eq!(public_only["channels"].as_array().unwrap().len(), 5);
    assert_eq!(public_only["channels"][1]["is_member"], false);
    let bad = query(&s, "conversations.list", &[("cursor", "garbage")]);
    assert_eq!(bad["error"], "invalid_cursor");
}

#[test]
fn direct_messages_via_lookup_and_open() {
    let s = slack();
    s.add_user("ada@example.com", "U0ADA");
    let unknown = query(
        &s,
        "users.lookupByEmail",
        &[("email", "nobody@example.com")],
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

    let plain = query(&s, "conversations.history", &[("channel", "C0123")]);
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

    let oldest = query(
        &s,
        "conversations.history",
        &[("channel", "C0123"), ("oldest", &parent)],
    );
    assert_eq!(
        oldest["messages"].as_array().unwrap().len(),
        2,
        "oldest is exclusive"
    );

    let replies = query(
        &s,
        "conversations.replies",
        &[
            ("channel", "C0123"),
            ("ts", &parent),
            ("include_all_metadata", "true"),
        ],
    );
    let replies = replies["messages"].as_array().unwrap();
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[1]["text"], "in thread");

    assert_eq!(
        query(&s, "conversations.history", &[("channel", "C0456")])["error"],
        "not_in_channel"
    );
    assert_eq!(
        query(&s, "conversations.history", &[("channel", "C0999")])["error"],
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

// ---------------------------------------------------------------------------------------------
// Following Slack's published Web API description (shared/specs/slack/).
// ---------------------------------------------------------------------------------------------

fn channel_names(answer: &Value) -> Vec<String> {
    answer["channels"]
        .as_array()
        .unwrap_or_else(|| panic!("no channels in {answer}"))
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn json_arguments_to_conversations_list_are_ignored_like_slack_does() {
    let s = FakeSlack::start(TOKEN);
    let ids = s.add_numbered_channels("pub", 250);
    assert_eq!(ids.len(), 250);
    s.add_private_channel("secret-1", "G1", true);
    s.add_private_channel("secret-2", "G2", true);
    s.archive_channel("pub-3");

    // Sent as JSON, none of these arguments reach Slack: defaults apply.
    let json_args = call(
        &s,
        "conversations.list",
        json!({"types": "public_channel,private_channel", "limit": 1000, "exclude_archived": true}),
    );
    assert_eq!(json_args["ok"], true, "{json_args}");
    let names = channel_names(&json_args);
    assert_eq!(names.len(), 100, "the default page is 100 channels");
    assert_eq!(names[0], "pub-1");
    assert_eq!(names[99], "pub-100");
    assert!(
        names.contains(&"pub-3".to_string()),
        "archived ones stay by default"
    );
    assert!(
        json_args["channels"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["is_private"] == false),
        "public channels only by default"
    );
    assert!(
        !json_args["response_metadata"]["next_cursor"]
            .as_str()
            .unwrap()
            .is_empty(),
        "150 more public channels remain"
    );

    // The same arguments in the query string are honoured.
    let args = [
        ("types", "public_channel,private_channel"),
        ("limit", "1000"),
        ("exclude_archived", "true"),
    ];
    let by_query = query(&s, "conversations.list", &args);
    let names = channel_names(&by_query);
    assert_eq!(names.len(), 251, "249 public (one archived) + 2 private");
    assert!(!names.contains(&"pub-3".to_string()));
    assert!(names.contains(&"secret-2".to_string()));
    assert_eq!(by_query["response_metadata"]["next_cursor"], "");

    // And in a form body.
    let by_form = form(&s, "conversations.list", &args);
    assert_eq!(channel_names(&by_form), names);
}

#[test]
fn read_methods_called_with_json_behave_as_if_given_no_arguments() {
    let s = slack();
    s.add_user("ada@example.com", "U0ADA");
    let lookup = call(
        &s,
        "users.lookupByEmail",
        json!({"email": "ada@example.com"}),
    );
    assert_eq!(
        lookup,
        json!({"ok": false, "error": "invalid_arguments"}),
        "email is required and a JSON body does not carry it"
    );
    let by_query = query(&s, "users.lookupByEmail", &[("email", "ada@example.com")]);
    assert_eq!(by_query["user"]["id"], "U0ADA");
    let by_form = form(&s, "users.lookupByEmail", &[("email", "ADA@example.com")]);
    assert_eq!(
        by_form["user"]["id"], "U0ADA",
        "emails match case-insensitively"
    );

    assert_eq!(
        call(&s, "users.info", json!({"user": "U0ADA"}))["error"],
        "user_not_found"
    );
    assert_eq!(
        call(&s, "conversations.history", json!({"channel": "C0123"}))["error"],
        "channel_not_found"
    );
    call(
        &s,
        "chat.postMessage",
        json!({"channel": "C0123", "text": "parent"}),
    );
    let ts = s.posts()[0].ts.clone();
    assert_eq!(
        call(
            &s,
            "conversations.replies",
            json!({"channel": "C0123", "ts": ts})
        )["error"],
        "channel_not_found"
    );
    // Malformed JSON to a method that does not read JSON is not even parsed.
    let ignored: Value = client()
        .post(format!("{}conversations.list", s.base_url()))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ignored["ok"], true, "{ignored}");
    // ...whereas a method that reads JSON refuses it.
    let refused: Value = client()
        .post(format!("{}chat.postMessage", s.base_url()))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(refused["error"], "invalid_json");
}

#[test]
fn a_token_in_a_json_body_is_not_a_token() {
    let s = slack();
    let in_json: Value = client()
        .post(format!("{}chat.postMessage", s.base_url()))
        .header("content-type", "application/json; charset=utf-8")
        .body(json!({"token": TOKEN, "channel": "C0123", "text": "x"}).to_string())
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(in_json["error"], "not_authed");
    let in_form: Value = client()
        .post(format!("{}chat.postMessage", s.base_url()))
        .form(&[("token", TOKEN), ("channel", "C0123"), ("text", "x")])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(in_form["ok"], true, "{in_form}");
    assert_eq!(s.posts().len(), 1);
}

#[test]
fn missing_required_arguments_and_badly_typed_values_are_invalid_arguments() {
    let s = slack();
    let invalid = json!({"ok": false, "error": "invalid_arguments"});
    assert_eq!(call(&s, "chat.postMessage", json!({"text": "x"})), invalid);
    assert_eq!(
        call(&s, "chat.postMessage", json!({"channel": "", "text": "x"})),
        invalid
    );
    assert_eq!(
        call(&s, "chat.update", json!({"channel": "C0123", "text": "x"})),
        invalid
    );
    assert_eq!(
        call(&s, "chat.unfurl", json!({"ts": "1.2", "unfurls": {}})),
        invalid
    );
    assert_eq!(
        query(&s, "conversations.list", &[("limit", "abc")]),
        invalid
    );
    assert_eq!(query(&s, "conversations.list", &[("limit", "-1")]), invalid);
    assert_eq!(
        query(&s, "conversations.list", &[("exclude_archived", "maybe")]),
        invalid
    );
    assert_eq!(
        query(
            &s,
            "conversations.history",
            &[("channel", "C0123"), ("include_all_metadata", "maybe")]
        ),
        invalid
    );
    assert!(s.posts().is_empty());

    // Semantic errors the methods document still come first where nothing is required.
    assert_eq!(
        query(&s, "conversations.history", &[])["error"],
        "channel_not_found"
    );
    assert_eq!(
        query(
            &s,
            "conversations.history",
            &[("channel", "C0123"), ("oldest", "soon")]
        )["error"],
        "invalid_ts_oldest"
    );
    assert_eq!(query(&s, "users.info", &[])["error"], "user_not_found");
    // Unknown argument names are ignored, as on Slack; oversized limits are capped.
    let lenient = query(
        &s,
        "conversations.list",
        &[
            ("frobnicate", "1"),
            ("limit", "5000"),
            ("exclude_archived", "1"),
        ],
    );
    assert_eq!(lenient["ok"], true, "{lenient}");
    assert_eq!(lenient["channels"].as_array().unwrap().len(), 2);
}

#[test]
fn paging_five_thousand_channels_finds_the_last_and_posting_stays_fast() {
    let s = FakeSlack::start(TOKEN);
    let started = Instant::now();
    let ids = s.add_numbered_channels("big", 5_000);
    s.add_channels(&[
        ("extra-a", "C0EXTRA1", true),
        ("extra-b", "C0EXTRA2", false),
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bulk channel creation took {:?}",
        started.elapsed()
    );

    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let answer = query(
            &s,
            "conversations.list",
            &[("limit", "1000"), ("cursor", &cursor)],
        );
        assert_eq!(answer["ok"], true, "{answer}");
        seen.extend(
            answer["channels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_string()),
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
    assert_eq!(pages, 6, "5,002 channels at 1,000 a page");
    assert_eq!(seen.len(), 5_002);
    assert!(
        seen.contains(&ids[4_999]),
        "the last numbered channel is listed"
    );
    assert_eq!(seen.last().map(String::as_str), Some("C0EXTRA2"));

    let posting = Instant::now();
    for i in 0..1_000 {
        let target = format!("#big-{}", 5_000 - (i % 50));
        let answer = form(
            &s,
            "chat.postMessage",
            &[("channel", &target), ("text", &format!("m{i}"))],
        );
        assert_eq!(answer["ok"], true, "{answer}");
    }
    assert_eq!(s.posts().len(), 1_000);
    assert_eq!(s.posts()[0].channel, ids[4_999], "names resolve to ids");
    let history = query(&s, "conversations.history", &[("channel", &ids[4_999])]);
    assert_eq!(history["messages"].as_array().unwrap().len(), 20);
    assert_eq!(history["messages"][0]["text"], "m950", "newest first");
    assert!(
        posting.elapsed() < Duration::from_secs(30),
        "1,000 posts into 5,000 channels took {:?}",
        posting.elapsed()
    );
}

#[test]
fn tier_limits_answer_429_with_retry_after_then_recover() {
    let s = slack();
    assert_eq!(
        s.tier_limit("conversations.list"),
        Some((20, Duration::from_secs(60))),
        "Tier 2 by default"
    );
    assert_eq!(
        s.tier_limit("conversations.history"),
        Some((50, Duration::from_secs(60)))
    );
    assert_eq!(
        s.tier_limit("users.info"),
        Some((100, Duration::from_secs(60)))
    );
    assert_eq!(s.tier_limit("chat.postMessage"), None, "special tier");

    // Slack's own numbers: the 21st conversations.list call within a minute is refused.
    for _ in 0..20 {
        assert_eq!(query(&s, "conversations.list", &[])["ok"], true);
    }
    let refused = query_raw(&s, "conversations.list", &[]);
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert_eq!(
        refused.json::<Value>().unwrap(),
        json!({"ok": false, "error": "ratelimited"})
    );
    assert_eq!(s.rate_limited("conversations.list"), 1);

    // A short window for the test: 2 calls a second.
    s.set_tier_limit("conversations.list", 2, Duration::from_secs(1));
    s.inject(
        "conversations.list",
        Fault::SlackError("fatal_error".into()),
    );
    assert_eq!(
        query(&s, "conversations.list", &[])["error"],
        "fatal_error",
        "the injected fault is served first"
    );
    assert_eq!(query(&s, "conversations.list", &[])["ok"], true);
    s.inject("conversations.list", Fault::Status(500));
    let third = query_raw(&s, "conversations.list", &[]);
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.headers()["retry-after"], "1");
    assert_eq!(
        s.faults_left("conversations.list"),
        1,
        "a throttled call never reaches the method, so it takes no fault"
    );
    assert_eq!(s.rate_limited("conversations.list"), 2);
    let last = s.requests().pop().unwrap();
    assert!(last.rate_limited);
    assert_eq!(last.fault, None);
    assert_eq!(
        s.calls("conversations.list"),
        24,
        "throttled calls are calls too"
    );

    std::thread::sleep(Duration::from_millis(1_050));
    assert_eq!(
        query_raw(&s, "conversations.list", &[]).status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "after the window the call goes through (to the queued fault)"
    );
    assert_eq!(query(&s, "conversations.list", &[])["ok"], true);

    // Posting is not tier-limited; other methods have their own windows.
    for i in 0..30 {
        let answer = call(
            &s,
            "chat.postMessage",
            json!({"channel": "C0123", "text": format!("{i}")}),
        );
        assert_eq!(answer["ok"], true);
    }
    s.disable_tier_limits();
    assert_eq!(s.tier_limit("conversations.list"), None);
    for _ in 0..5 {
        assert_eq!(query(&s, "conversations.list", &[])["ok"], true);
    }
    assert_eq!(s.rate_limited("conversations.list"), 2);
    assert_eq!(s.rate_limited("chat.postMessage"), 0);
}

#[test]
fn metadata_comes_back_only_when_asked_for() {
    let s = slack();
    let md = json!({"event_type": "pagehook_delivery", "event_payload": {"delivery_id": "d-9"}});
    let posted = call(
        &s,
        "chat.postMessage",
        json!({"channel": "C0123", "text": "parent", "metadata": md}),
    );
    let ts = posted["ts"].as_str().unwrap().to_string();
    call(
        &s,
        "chat.postMessage",
        json!({"channel": "C0123", "text": "reply", "thread_ts": ts, "metadata": md}),
    );

    let plain = query(&s, "conversations.history", &[("channel", "C0123")]);
    assert_eq!(plain["messages"][0]["text"], "parent");
    assert!(plain["messages"][0].get("metadata").is_none());
    let asked = query(
        &s,
        "conversations.history",
        &[("channel", "C0123"), ("include_all_metadata", "true")],
    );
    assert_eq!(asked["messages"][0]["metadata"], md);

    let thread_plain = form(
        &s,
        "conversations.replies",
        &[("channel", "C0123"), ("ts", &ts)],
    );
    let thread = thread_plain["messages"].as_array().unwrap();
    assert_eq!(thread.len(), 2);
    assert!(thread.iter().all(|m| m.get("metadata").is_none()));
    let thread_asked = form(
        &s,
        "conversations.replies",
        &[
            ("channel", "C0123"),
            ("ts", &ts),
            ("include_all_metadata", "1"),
        ],
    );
    assert_eq!(thread_asked["messages"][1]["metadata"], md);
    assert_eq!(thread_asked["messages"][1]["text"], "reply");
}

#[test]
fn chat_update_edits_the_bots_own_messages() {
    let s = slack();
    let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": "old"}}]);
    let posted = call(
        &s,
        "chat.postMessage",
        json!({"channel": "C0123", "text": "old", "blocks": blocks}),
    );
    let ts = posted["ts"].as_str().unwrap().to_string();

    let updated = call(
        &s,
        "chat.update",
        json!({"channel": "C0123", "ts": ts, "text": "new"}),
    );
    assert_eq!(updated["ok"], true, "{updated}");
    assert_eq!(updated["ts"], ts.as_str());
    assert_eq!(updated["text"], "new");
    let now = s.message("C0123", &ts).expect("message exists");
    assert_eq!(now.text.as_deref(), Some("new"));
    assert_eq!(
        now.blocks.as_ref(),
        Some(&blocks),
        "omitted blocks are kept"
    );
    assert_eq!(
        s.posts()[0].text.as_deref(),
        Some("old"),
        "posts() keeps what was posted"
    );
    assert_eq!(s.updates().len(), 1);
    assert_eq!(s.updates()[0].ts, ts);

    let by_form = form(
        &s,
        "chat.update",
        &[("channel", "C0123"), ("ts", &ts), ("blocks", "[]")],
    );
    assert_eq!(by_form["ok"], true, "{by_form}");
    assert_eq!(
        s.message("C0123", &ts).unwrap().blocks,
        None,
        "[] removes blocks"
    );
    let history = query(&s, "conversations.history", &[("channel", "C0123")]);
    assert_eq!(history["messages"][0]["text"], "new");
    assert!(history["messages"][0]["edited"]["ts"].is_string());

    let theirs = s.add_user_message("C0123", "U0ADA", "mine");
    for (args, error) in [
        (
            json!({"channel": "C0123", "ts": "1.000001", "text": "x"}),
            "message_not_found",
        ),
        (
            json!({"channel": "C0999", "ts": ts, "text": "x"}),
            "channel_not_found",
        ),
        (
            json!({"channel": "C0123", "ts": theirs, "text": "x"}),
            "cant_update_message",
        ),
        (json!({"channel": "C0123", "ts": ts}), "no_text"),
    ] {
        assert_eq!(
            call(&s, "chat.update", args.clone())["error"],
            error,
            "{args}"
        );
    }
    assert_eq!(s.updates().len(), 2);
}

#[test]
fn chat_unfurl_records_unfurls_for_links_in_the_message() {
    let s = slack();
    let url = "https://confluence.example.com/pages/42";
    let ts = s.add_user_message("C0123", "U0ADA", &format!("see <{url}>"));
    let unfurls = json!({url: {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Page 42*"}}]}});
    let answer = call(
        &s,
        "chat.unfurl",
        json!({"channel": "C0123", "ts": ts, "unfurls": unfurls}),
    );
    assert_eq!(answer, json!({"ok": true}));
    let by_form = form(
        &s,
        "chat.unfurl",
        &[
            ("channel", "C0123"),
            ("ts", &ts),
            ("unfurls", &unfurls.to_string()),
        ],
    );
    assert_eq!(by_form["ok"], true, "{by_form}");
    let recorded = s.unfurls();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].channel, "C0123");
    assert_eq!(recorded[0].ts, ts);
    assert_eq!(recorded[0].unfurls, unfurls);
    assert_eq!(recorded[1].unfurls, unfurls, "a JSON string is decoded");

    let other = json!({"https://elsewhere.example.com/": {"text": "x"}});
    for (args, error) in [
        (
            json!({"channel": "C0123", "ts": ts, "unfurls": other}),
            "cannot_unfurl_url",
        ),
        (json!({"channel": "C0123", "ts": ts}), "missing_unfurls"),
        (
            json!({"channel": "C0123", "ts": "1.000001", "unfurls": unfurls}),
            "cannot_find_message",
        ),
        (
            json!({"channel": "C0999", "ts": ts, "unfurls": unfurls}),
            "cannot_find_channel",
        ),
        (
            json!({"channel": "C0123", "ts": ts, "unfurls": "{oops"}),
            "invalid_unfurls",
        ),
        (
            json!({"channel": "C0123", "ts": ts, "unfurls": {url: "not an object"}}),
            "invalid_unfurls",
        ),
        (
            json!({"channel": "C0123", "ts": ts, "unfurls": {url: {"blocks": [{"type": "section"}]}}}),
            "invalid_blocks",
        ),
    ] {
        assert_eq!(
            call(&s, "chat.unfurl", args.clone())["error"],
            error,
            "{args}"
        );
    }
    assert_eq!(s.unfurls().len(), 2);
}

#[test]
fn users_info_answers_with_the_user_object() {
    let s = FakeSlack::start_team(TOKEN, "T0BETA", "Beta Corp");
    s.add_user("grace@example.com", "U0GRACE");
    let info = query(&s, "users.info", &[("user", "U0GRACE")]);
    assert_eq!(info["ok"], true, "{info}");
    assert_eq!(info["user"]["id"], "U0GRACE");
    assert_eq!(info["user"]["team_id"], "T0BETA");
    assert_eq!(info["user"]["profile"]["email"], "grace@example.com");
    assert!(info["user"].get("locale").is_none());
    let with_locale = query(
        &s,
        "users.info",
        &[("user", "U0GRACE"), ("include_locale", "true")],
    );
    assert_eq!(with_locale["user"]["locale"], "en-US");
    assert_eq!(
        query(&s, "users.info", &[("user", "U0NOPE")])["error"],
        "user_not_found"
    );
}

#[test]
fn status_after_effect_lands_the_post_and_then_answers_500() {
    let s = slack();
    s.inject("chat.postMessage", Fault::StatusAfterEffect(500));
    let resp = call_raw(
        &s,
        "chat.postMessage",
        json!({"channel": "C0123", "text": "landed anyway"}),
    );
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!resp.text().unwrap().contains("\"ok\":true"));
    let posts = s.posts();
    assert_eq!(posts.len(), 1, "the message landed before the error");
    assert_eq!(posts[0].text.as_deref(), Some("landed anyway"));
    assert_eq!(s.requests()[0].fault, Some(Fault::StatusAfterEffect(500)));
    assert_eq!(s.faults_left("chat.postMessage"), 0);
    let retry = call(
        &s,
        "chat.postMessage",
        json!({"channel": "C0123", "text": "landed anyway"}),
    );
    assert_eq!(retry["ok"], true);
    assert_eq!(
        s.posts().len(),
        2,
        "a blind retry duplicates, as in production"
    );
}

#[test]
fn two_fakes_are_two_workspaces() {
    let a = FakeSlack::start_team("xoxb-a", "T0ALPHA", "Alpha Corp");
    let b = FakeSlack::start_team("xoxb-b", "T0BETA", "Beta");
    let auth = |s: &FakeSlack, token: &str| -> Value {
        client()
            .post(format!("{}auth.test", s.base_url()))
            .bearer_auth(token)
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let who_a = auth(&a, "xoxb-a");
    assert_eq!(who_a["team_id"], "T0ALPHA");
    assert_eq!(who_a["team"], "Alpha Corp");
    assert_eq!(who_a["url"], "https://alphacorp.slack.com/");
    assert_eq!(auth(&b, "xoxb-b")["team_id"], "T0BETA");
    assert_eq!(auth(&b, "xoxb-a")["error"], "invalid_auth");

    let mut ts = Vec::new();
    for (s, token) in [(&a, "xoxb-a"), (&b, "xoxb-b")] {
        s.add_channel("eng", "C0ENG", true);
        let posted: Value = client()
            .post(format!("{}chat.postMessage", s.base_url()))
            .bearer_auth(token)
            .form(&[("channel", "#eng"), ("text", "hi")])
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(
            posted["message"]["team"],
            if ts.is_empty() { "T0ALPHA" } else { "T0BETA" }
        );
        ts.push(posted["ts"].as_str().unwrap().to_string());
    }
    assert_ne!(ts[0], ts[1], "ts values of two workspaces do not collide");
}

/// The fake's encoding table must be Slack's published one: for every implemented method,
/// JSON arguments are honoured exactly when the spec's `consumes` lists `application/json`,
/// and a call without arguments is refused as `invalid_arguments` exactly when the spec marks
/// an argument (other than `token`) required. Changing either side breaks this test.
#[test]
fn encoding_table_and_required_arguments_follow_the_published_spec() {
    let path = pagehook_fakes::specs_dir().join("slack/slack_web_openapi_v2.json");
    let spec: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let operation = |method: &str| -> Value {
        let ops = spec["paths"][format!("/{method}")]
            .as_object()
            .unwrap_or_else(|| panic!("{method} missing from the spec"));
        ops.values().next().unwrap().clone()
    };

    let s = slack();
    s.add_channel("ops", "C0OPS", true);
    s.add_user("ada@example.com", "U0ADA");
    s.disable_tier_limits();
    let url = "https://example.com/x";
    let theirs = s.add_user_message("C0123", "U0ADA", url);
    let posted = form(
        &s,
        "chat.postMessage",
        &[("channel", "C0123"), ("text", "p")],
    );
    let ts = posted["ts"].as_str().unwrap().to_string();

    // Per method: JSON arguments, and whether the answer shows they were honoured.
    type Honoured = fn(&Value) -> bool;
    let is_ok: Honoured = |v| v["ok"] == true;
    let probes: Vec<(&str, Value, Honoured)> = vec![
        (
            "chat.postMessage",
            json!({"channel": "C0123", "text": "probe"}),
            is_ok,
        ),
        (
            "chat.update",
            json!({"channel": "C0123", "ts": ts, "text": "probe"}),
            is_ok,
        ),
        (
            "chat.unfurl",
            json!({"channel": "C0123", "ts": theirs, "unfurls": {url: {"text": "x"}}}),
            is_ok,
        ),
        ("conversations.open", json!({"users": "U0ADA"}), is_ok),
        ("conversations.list", json!({"limit": 1}), |v| {
            v["channels"].as_array().is_some_and(|c| c.len() == 1)
        }),
        ("conversations.history", json!({"channel": "C0123"}), is_ok),
        (
            "conversations.replies",
            json!({"channel": "C0123", "ts": ts}),
            is_ok,
        ),
        (
            "users.lookupByEmail",
            json!({"email": "ada@example.com"}),
            is_ok,
        ),
        ("users.info", json!({"user": "U0ADA"}), is_ok),
    ];

    let methods = FakeSlack::methods();
    assert!(methods.len() >= 10, "{methods:?}");
    for method in &methods {
        let op = operation(method);
        let consumes: Vec<String> = op["consumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            FakeSlack::accepted_encodings(method).as_ref(),
            Some(&consumes),
            "{method}: the fake's table differs from the spec"
        );
        let takes_json = consumes.iter().any(|c| c == "application/json");
        assert!(
            consumes
                .iter()
                .any(|c| c == "application/x-www-form-urlencoded"),
            "{method}: every method takes a form"
        );

        // Behaviour, not just the table.
        if let Some((_, args, honoured)) = probes.iter().find(|(m, _, _)| m == method) {
            let answer = call(&s, method, args.clone());
            assert_eq!(
                honoured(&answer),
                takes_json,
                "{method}: JSON arguments honoured must match consumes {consumes:?}: {answer}"
            );
        } else {
            assert_eq!(*method, "auth.test", "{method} needs a probe in this test");
        }

        let required = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["required"] == true && p["name"] != "token");
        let bare = form(&s, method, &[]);
        assert_eq!(
            bare["error"] == "invalid_arguments",
            required,
            "{method}: no arguments gives invalid_arguments iff the spec requires one: {bare}"
        );
    }
    for must_ignore in [
        "conversations.list",
        "conversations.history",
        "conversations.replies",
        "users.lookupByEmail",
        "users.info",
    ] {
        assert_eq!(
            FakeSlack::accepted_encodings(must_ignore),
            Some(vec!["application/x-www-form-urlencoded".to_string()]),
            "design.md: {must_ignore} takes query/form only"
        );
    }
}

#[test]
fn scopes_come_from_the_spec_and_a_narrowed_token_gets_missing_scope() {
    let s = slack();
    let ts = s.add_user_message("C0123", "U0ADA", "see <https://wiki.example.com/x>");
    let unfurls = json!({"https://wiki.example.com/x": {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]}});
    s.set_scopes(&["chat:write", "channels:read"]);
    let refused = call(
        &s,
        "chat.unfurl",
        json!({"channel": "C0123", "ts": ts, "unfurls": unfurls}),
    );
    assert_eq!(refused["error"], "missing_scope", "{refused}");
    assert_eq!(refused["needed"], "links:write");
    assert_eq!(refused["provided"], "chat:write,channels:read");
    assert!(s.unfurls().is_empty());
    // chat:write meets the spec's legacy chat:write:bot.
    let posted = call(
        &s,
        "chat.postMessage",
        json!({"channel": "C0123", "text": "hi"}),
    );
    assert_eq!(posted["ok"], true, "{posted}");
    s.set_scopes(&["links:write"]);
    let unfurled = form(
        &s,
        "chat.unfurl",
        &[
            ("channel", "C0123"),
            ("ts", &ts),
            ("unfurls", &unfurls.to_string()),
        ],
    );
    assert_eq!(unfurled["ok"], true, "{unfurled}");
}

#[test]
fn a_narrowed_token_hears_its_scopes_in_x_oauth_scopes() {
    let s = slack();
    let header = |r: &Response| {
        r.headers()
            .get("x-oauth-scopes")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let everything = call_raw(&s, "auth.test", json!({}));
    assert_eq!(header(&everything), None, "every scope: no list to give");
    s.set_scopes(&["chat:write", "links:read"]);
    let narrowed = call_raw(&s, "auth.test", json!({}));
    assert_eq!(header(&narrowed).as_deref(), Some("chat:write,links:read"));
    let refused = call_raw(&s, "chat.unfurl", json!({"channel": "C0123", "ts": "1.2"}));
    assert_eq!(
        header(&refused).as_deref(),
        Some("chat:write,links:read"),
        "a missing_scope answer carries it too"
    );
    let stranger = client()
        .post(format!("{}auth.test", s.base_url()))
        .bearer_auth("xoxb-someone-else")
        .send()
        .unwrap();
    assert_eq!(
        header(&stranger),
        None,
        "not for a token that did not check out"
    );
}

fn answer(url: &str, body: Value) -> (StatusCode, Value) {
    let r = client().post(url).json(&body).send().unwrap();
    (r.status(), r.json().unwrap())
}

#[test]
fn response_urls_take_five_json_answers_within_thirty_minutes() {
    let s = slack();
    let url = s.mint_response_url("C0123");
    assert!(
        url.starts_with(&format!("http://{}/commands/T1/", s.addr())),
        "{url}"
    );
    let (status, body) = answer(
        &url,
        json!({"text": "only you", "response_type": "ephemeral"}),
    );
    assert_eq!((status, body), (StatusCode::OK, json!({"ok": true})));
    let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*all*"}}]);
    let (status, _) = answer(
        &url,
        json!({"text": "all", "blocks": blocks, "response_type": "in_channel"}),
    );
    assert_eq!(status, StatusCode::OK);
    for (body, code) in [
        (json!({"response_type": "ephemeral"}), "no_text"),
        (
            json!({"text": "x", "response_type": "everyone"}),
            "invalid_payload",
        ),
        (
            json!({"text": "x", "blocks": [{"type": "section"}]}),
            "invalid_blocks",
        ),
    ] {
        let (status, answer) = answer(&url, body.clone());
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["error"], code, "{body}");
    }
    let form = client().post(&url).form(&[("text", "x")]).send().unwrap();
    assert_eq!(
        form.status(),
        StatusCode::BAD_REQUEST,
        "a form is not a JSON answer"
    );
    let recorded = s.responses();
    assert_eq!(recorded.len(), 2, "refused answers are not recorded");
    assert_eq!(recorded[0].response_type.as_deref(), Some("ephemeral"));
    assert_eq!(recorded[0].text.as_deref(), Some("only you"));
    assert_eq!(recorded[1].response_type.as_deref(), Some("in_channel"));
    assert_eq!(recorded[1].blocks, Some(blocks));
    assert_eq!(recorded[1].channel, "C0123");
    assert!(!recorded[0].authorization);
    for _ in 0..3 {
        assert_eq!(answer(&url, json!({"text": "again"})).0, StatusCode::OK);
    }
    let (status, body) = answer(&url, json!({"text": "sixth"}));
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::NOT_FOUND, json!("used_url"))
    );

    let late = s.mint_response_url("C0123");
    s.age_response_urls(Duration::from_secs(30 * 60));
    let (status, body) = answer(&late, json!({"text": "too late"}));
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::NOT_FOUND, json!("expired_url"))
    );
    let unknown = format!("http://{}/commands/T1/999/nope", s.addr());
    assert_eq!(
        answer(&unknown, json!({"text": "x"})).0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(s.calls("response_url"), 12);
}
