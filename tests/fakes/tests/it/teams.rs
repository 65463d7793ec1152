use pagehook_fakes::{FakeTeams, Fault, TEAMS_MAX_PAYLOAD};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::client;

fn card(text: &str) -> Value {
    json!({
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "body": [{"type": "TextBlock", "text": text, "wrap": true}],
    })
}

fn envelope(content: Value) -> Value {
    json!({
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": content}],
    })
}

fn post(url: &str, body: &Value) -> reqwest::blocking::Response {
    client().post(url).json(body).send().expect("request")
}

#[test]
fn accepts_a_card_with_202_and_records_it() {
    let t = FakeTeams::start();
    let url = t.add_workflow("eng-alerts");
    assert_eq!(url, t.url("eng-alerts"));
    assert!(url.contains("/workflows/eng-alerts/triggers/manual/paths/invoke?"));
    assert!(url.contains("sig="));
    let resp = post(&url, &envelope(card("Page created")));
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(resp.text().unwrap(), "");
    let posts = t.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].workflow, "eng-alerts");
    assert_eq!(posts[0].card, card("Page created"));
    assert_eq!(posts[0].payload, envelope(card("Page created")));
    assert_eq!(t.calls("eng-alerts"), 1);
}

#[test]
fn refuses_what_workflows_would_refuse() {
    let t = FakeTeams::start();
    let url = t.add_workflow("w");
    let bad_envelopes = [
        json!({"text": "legacy connector payload"}),
        json!({"type": "message", "attachments": []}),
        json!({"type": "message", "attachments": [{"contentType": "application/json", "content": card("x")}]}),
        json!({"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive"}]}),
        envelope(json!({"type": "MessageCard"})),
    ];
    for body in bad_envelopes {
        let resp = post(&url, &body);
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "for {body}");
        let err: Value = resp.json().unwrap();
        assert!(
            err["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let not_json = client()
        .post(&url)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    let text = client().post(&url).body("hello").send().unwrap();
    assert_eq!(text.status(), StatusCode::BAD_REQUEST);

    let big = envelope(card(&"x".repeat(TEAMS_MAX_PAYLOAD)));
    assert_eq!(post(&url, &big).status(), StatusCode::PAYLOAD_TOO_LARGE);

    let wrong_sig = url.replace("sig=", "sig=0");
    assert_eq!(
        post(&wrong_sig, &envelope(card("x"))).status(),
        StatusCode::UNAUTHORIZED
    );
    let no_sig = url.split('?').next().unwrap().to_string();
    assert_eq!(
        post(&no_sig, &envelope(card("x"))).status(),
        StatusCode::UNAUTHORIZED
    );

    t.remove_workflow("w");
    assert_eq!(
        post(&url, &envelope(card("x"))).status(),
        StatusCode::NOT_FOUND
    );
    assert!(t.posts().is_empty());
}

#[test]
fn faults_per_workflow() {
    let t = FakeTeams::start();
    let a = t.add_workflow("a");
    let b = t.add_workflow("b");
    t.inject(
        "a",
        Fault::RateLimited {
            retry_after_secs: 30,
        },
    );
    t.inject("a", Fault::Status(502));
    t.inject("a", Fault::Reset);

    let limited = post(&a, &envelope(card("1")));
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "30");
    assert_eq!(
        post(&b, &envelope(card("other"))).status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        post(&a, &envelope(card("2"))).status(),
        StatusCode::BAD_GATEWAY
    );
    let err = client()
        .post(&a)
        .json(&envelope(card("3")))
        .send()
        .expect_err("reset");
    assert!(err.status().is_none());
    assert_eq!(
        post(&a, &envelope(card("4"))).status(),
        StatusCode::ACCEPTED
    );

    let workflows: Vec<_> = t.posts().into_iter().map(|p| p.workflow).collect();
    assert_eq!(workflows, ["b", "a"]);
    assert_eq!(t.calls("a"), 4);
    assert_eq!(t.faults_left("a"), 0);
}

#[test]
#[should_panic(expected = "Slack-only")]
fn slack_errors_make_no_sense_here() {
    FakeTeams::start().inject("a", Fault::SlackError("x".into()));
}
