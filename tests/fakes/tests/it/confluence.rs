use std::time::Duration;

use std::time::SystemTime;

use pagehook_fakes::{
    ConfluenceAuth, ContentBuilder, DcVersion, EmailVisibility, FakeConfluence, Fault,
    SERVICE_EMAIL, SERVICE_USER_KEY, SERVICE_USERNAME, SpacePermissionsRefusal, endpoints, fixture,
};
use reqwest::StatusCode;
use reqwest::blocking::{RequestBuilder, Response};
use serde_json::{Value, json};

use crate::client;

const PAT: &str = "NjQ5ODc2MzQ1Njc4OpersonalAccessToken";
const ENRICH: &str = "?status=any&expand=space,version,history,metadata.labels,ancestors,container";

fn confluence() -> FakeConfluence {
    let c = FakeConfluence::start(ConfluenceAuth::Bearer(PAT.into()));
    c.put_content(
        2818051,
        ContentBuilder::page(2818051, "ENG", "Q3 launch checklist").build(),
    );
    c
}

fn get(c: &FakeConfluence, path: &str) -> Response {
    authed(client().get(format!("{}{path}", c.base_url())))
}

fn post(c: &FakeConfluence, path: &str, body: Value) -> Response {
    authed(client().post(format!("{}{path}", c.base_url())).json(&body))
}

fn authed(r: RequestBuilder) -> Response {
    r.bearer_auth(PAT).send().expect("request")
}

fn page_body(title: &str, storage: &str) -> Value {
    json!({
        "type": "page",
        "title": title,
        "space": {"key": "ENG"},
        "body": {"storage": {"value": storage, "representation": "storage"}},
    })
}

#[test]
fn authentication_bearer_basic_and_401() {
    let c = confluence();
    let url = format!("{}/rest/api/user/current", c.base_url());
    assert_eq!(
        client().get(&url).send().unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let wrong = client().get(&url).bearer_auth("nope").send().unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.json::<Value>().unwrap()["statusCode"], 401);
    let me: Value = get(&c, "/rest/api/user/current").json().unwrap();
    assert_eq!(me["username"], SERVICE_USERNAME);
    assert_eq!(me["userKey"], SERVICE_USER_KEY);

    let basic = FakeConfluence::start(ConfluenceAuth::Basic {
        username: "svc".into(),
        password: "s3cret".into(),
    });
    let url = format!("{}/rest/api/user/current", basic.base_url());
    let ok = client()
        .get(&url)
        .basic_auth("svc", Some("s3cret"))
        .send()
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let bad = client()
        .get(&url)
        .basic_auth("svc", Some("guess"))
        .send()
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let log = basic.requests();
    assert_eq!(log[0].header("authorization"), Some("Basic [redacted]"));
}

#[test]
fn enrichment_read_matches_the_fixture_shape() {
    let c = confluence();
    let got: Value = get(&c, &format!("/rest/api/content/2818051{ENRICH}"))
        .json()
        .unwrap();
    let want = fixture("confluence/rest/content-page.json");
    for key in [
        "id",
        "type",
        "status",
        "title",
        "version",
        "history",
        "ancestors",
        "container",
        "metadata",
    ] {
        assert_eq!(got[key], want[key], "field {key}");
    }
    assert_eq!(got["space"]["key"], "ENG");
    assert_eq!(got["space"]["name"], "Engineering");
    assert_eq!(got["_links"]["webui"], want["_links"]["webui"]);
    assert_eq!(
        got["_links"]["base"],
        c.base_url().as_str(),
        "Confluence reports its own base URL"
    );
    assert!(got.get("restrictions").is_none(), "not expanded");
    assert!(got["_expandable"].get("restrictions").is_some());
}

#[test]
fn unexpanded_fields_are_left_out() {
    let c = confluence();
    let bare: Value = get(&c, "/rest/api/content/2818051").json().unwrap();
    assert_eq!(bare["title"], "Q3 launch checklist");
    for key in [
        "space",
        "version",
        "history",
        "ancestors",
        "metadata",
        "container",
    ] {
        assert!(bare.get(key).is_none(), "{key} present without expand");
        assert!(
            bare["_expandable"].get(key).is_some(),
            "{key} listed as expandable"
        );
    }
    assert_eq!(bare["_expandable"]["space"], "/rest/api/space/ENG");
}

#[test]
fn builder_overrides_and_restrictions() {
    let c = confluence();
    let page = ContentBuilder::page(42, "OPS", "Runbook")
        .labels(&["runbook"])
        .version(7)
        .minor_edit(true)
        .version_message("typo")
        .ancestors(&[(41, "Ops Home")])
        .read_restricted_to(&["ada"], &["ops-team"])
        .build();
    c.put_content(42, page);
    let got: Value = get(
        &c,
        "/rest/api/content/42?expand=space,version,metadata.labels,ancestors,restrictions.read.restrictions.user,restrictions.read.restrictions.group",
    )
    .json()
    .unwrap();
    assert_eq!(got["space"]["key"], "OPS");
    assert_eq!(got["version"]["number"], 7);
    assert_eq!(got["version"]["minorEdit"], true);
    assert_eq!(got["version"]["message"], "typo");
    assert_eq!(got["metadata"]["labels"]["results"][0]["name"], "runbook");
    assert_eq!(got["metadata"]["labels"]["size"], 1);
    assert_eq!(
        got["ancestors"],
        json!([{"id": "41", "type": "page", "status": "current", "title": "Ops Home"}])
    );
    assert_eq!(got["_links"]["webui"], "/spaces/OPS/pages/42/Runbook");
    let read = &got["restrictions"]["read"]["restrictions"];
    assert_eq!(read["user"]["results"][0]["username"], "ada");
    assert_eq!(read["group"]["results"][0]["name"], "ops-team");

    c.put_content(43, ContentBuilder::blogpost(43, "ENG", "News").build());
    c.put_content(
        44,
        ContentBuilder::comment(44, 2818051, "Q3 launch checklist", "ENG").build(),
    );
    let blog: Value = get(&c, "/rest/api/content/43?expand=space").json().unwrap();
    assert_eq!(blog["type"], "blogpost");
    let comment: Value = get(&c, "/rest/api/content/44?expand=container")
        .json()
        .unwrap();
    assert_eq!(comment["title"], "Re: Q3 launch checklist");
    assert_eq!(comment["container"]["id"], "2818051");
}

#[test]
fn trashed_needs_status_any_and_purged_is_404() {
    let c = confluence();
    c.put_content(
        7,
        ContentBuilder::page(7, "ENG", "Old")
            .status("trashed")
            .build(),
    );
    assert_eq!(
        get(&c, "/rest/api/content/7").status(),
        StatusCode::NOT_FOUND
    );
    let any: Value = get(&c, "/rest/api/content/7?status=any").json().unwrap();
    assert_eq!(any["status"], "trashed");
    c.remove_content(7);
    let resp = get(&c, "/rest/api/content/7?status=any");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        resp.json::<Value>().unwrap(),
        json!({
            "statusCode": 404,
            "data": {"authorized": false, "valid": true, "errors": [], "successful": false},
            "message": "No content found with id: ContentId{id=7}",
            "reason": "Not Found",
        })
    );
}

#[test]
fn users_by_key_and_username() {
    let c = confluence();
    c.put_user(
        "8a7f80839e460b0f019e460ba6440001",
        "ada",
        "Ada Lovelace",
        "ada@example.com",
    );
    let ada: Value = get(&c, "/rest/api/user?key=8a7f80839e460b0f019e460ba6440001")
        .json()
        .unwrap();
    let want = fixture("confluence/rest/user.json");
    for key in ["type", "username", "userKey", "displayName"] {
        assert_eq!(ada[key], want[key], "field {key}");
    }
    let by_name: Value = get(&c, "/rest/api/user?username=ada").json().unwrap();
    assert_eq!(by_name["userKey"], want["userKey"]);
    assert_eq!(
        get(&c, "/rest/api/user?key=nope").status(),
        StatusCode::NOT_FOUND
    );
}

#[test]
fn create_page_then_find_it_and_refuse_a_duplicate() {
    let c = confluence();
    let storage = "<p>Hello&nbsp;world</p><ac:structured-macro ac:name=\"info\"><ac:rich-text-body><p>x</p></ac:rich-text-body></ac:structured-macro><p><ac:link><ri:page ri:content-title=\"Q3 launch checklist\" /></ac:link></p>";
    let mut body = page_body("Retro: outage", storage);
    body["ancestors"] = json!([{"id": "2818051"}]);
    body["metadata"] = json!({"labels": [{"prefix": "global", "name": "Retro"}]});
    body["version"] = json!({"minorEdit": true});
    let resp = post(&c, "/rest/api/content", body);
    assert_eq!(resp.status(), StatusCode::OK);
    let created: Value = resp.json().unwrap();
    let shape = fixture("confluence/rest/content-created.json");
    let mut keys: Vec<_> = created.as_object().unwrap().keys().collect();
    let mut want_keys: Vec<_> = shape.as_object().unwrap().keys().collect();
    keys.sort();
    want_keys.sort();
    assert_eq!(keys, want_keys, "content-created.json shape");
    assert_eq!(created["version"]["number"], 1);
    assert_eq!(created["version"]["minorEdit"], true);
    let ancestors = created["ancestors"].as_array().unwrap();
    assert_eq!(ancestors.last().unwrap()["id"], "2818051");
    assert_eq!(ancestors.len(), 3, "parent's ancestors then the parent");
    let id: u64 = created["id"].as_str().unwrap().parse().unwrap();

    let record = &c.created()[0];
    assert_eq!(record.id, id);
    assert_eq!(record.content_type, "page");
    assert_eq!(record.space_key, "ENG");
    assert_eq!(record.parent_id, Some(2818051));
    assert_eq!(record.storage, storage);
    assert_ne!(record.stored, storage, "Confluence rewrites what it saves");
    assert_eq!(record.labels, ["retro"]);
    assert!(record.minor_edit);

    let read: Value = get(
        &c,
        &format!("/rest/api/content/{id}?expand=version,body.storage,metadata.labels"),
    )
    .json()
    .unwrap();
    assert_eq!(
        read["version"]["by"]["username"], SERVICE_USERNAME,
        "authored by the service account"
    );
    assert_eq!(read["body"]["storage"]["value"], record.stored.as_str());
    assert_eq!(read["metadata"]["labels"]["results"][0]["name"], "retro");

    let found: Value = get(
        &c,
        "/rest/api/content?spaceKey=ENG&title=Retro%3A+outage&type=page",
    )
    .json()
    .unwrap();
    assert_eq!(found["size"], 1);
    assert_eq!(found["results"][0]["id"], id.to_string());
    let none: Value = get(&c, "/rest/api/content?spaceKey=ENG&title=Nothing&type=page")
        .json()
        .unwrap();
    assert_eq!(none["size"], 0);

    let dup = post(
        &c,
        "/rest/api/content",
        page_body("retro: OUTAGE", "<p>again</p>"),
    );
    assert_eq!(dup.status(), StatusCode::BAD_REQUEST);
    let err: Value = dup.json().unwrap();
    assert_eq!(err["statusCode"], 400);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .starts_with("A page with this title already exists")
    );
    assert_eq!(c.created().len(), 1);
    assert_eq!(c.calls(endpoints::CREATE_CONTENT), 2);
}

#[test]
fn create_refuses_malformed_storage_and_unknown_places() {
    let c = confluence();
    for bad in [
        "<p>unclosed",
        "<p>a & b</p>",
        "<x:y>unknown prefix</x:y>",
        "<p>&bogus;</p>",
    ] {
        let resp = post(&c, "/rest/api/content", page_body("Bad", bad));
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "for {bad}");
        let err: Value = resp.json().unwrap();
        assert_eq!(err["reason"], "Bad Request");
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .starts_with("Error parsing xhtml")
        );
    }
    let mut elsewhere = page_body("X", "<p/>");
    elsewhere["space"]["key"] = json!("NOPE");
    assert_eq!(
        post(&c, "/rest/api/content", elsewhere).status(),
        StatusCode::NOT_FOUND
    );
    c.add_space("NOPE", "Now it exists");
    let mut there = page_body("X", "<p/>");
    there["space"]["key"] = json!("NOPE");
    assert_eq!(
        post(&c, "/rest/api/content", there).status(),
        StatusCode::OK
    );

    let mut orphan = page_body("Orphan", "<p/>");
    orphan["ancestors"] = json!([{"id": "999"}]);
    assert_eq!(
        post(&c, "/rest/api/content", orphan).status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(c.created().len(), 1);
}

#[test]
fn comments_create_list_and_paginate() {
    let c = confluence();
    for i in 0..27 {
        let resp = post(
            &c,
            "/rest/api/content",
            json!({
                "type": "comment",
                "container": {"id": "2818051", "type": "page"},
                "body": {"storage": {"value": format!("<p>comment {i}</p>"), "representation": "storage"}},
            }),
        );
        assert_eq!(resp.status(), StatusCode::OK);
        if i == 0 {
            let created: Value = resp.json().unwrap();
            assert_eq!(created["type"], "comment");
            assert_eq!(created["title"], "Re: Q3 launch checklist");
            assert_eq!(created["container"]["id"], "2818051");
        }
    }
    let first: Value = get(
        &c,
        "/rest/api/content/2818051/child/comment?expand=body.storage",
    )
    .json()
    .unwrap();
    assert_eq!(first["size"], 25, "Confluence's default page size");
    assert_eq!(
        first["results"][0]["body"]["storage"]["value"],
        "<p>comment 0</p>"
    );
    let next = first["_links"]["next"].as_str().expect("a next link");
    let second: Value = get(&c, next).json().unwrap();
    assert_eq!(second["size"], 2);
    assert!(second["_links"].get("next").is_none());
    assert_eq!(
        second["results"][1]["body"]["storage"]["value"],
        "<p>comment 26</p>"
    );

    let record = &c.created()[0];
    assert_eq!(record.container_id, Some(2818051));

    let reply = post(
        &c,
        "/rest/api/content",
        json!({
            "type": "comment",
            "container": {"id": "2818051", "type": "page"},
            "ancestors": [{"id": record.id.to_string()}],
            "body": {"storage": {"value": "<p>a reply</p>", "representation": "storage"}},
        }),
    );
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(c.created().last().unwrap().parent_id, Some(record.id));
    let top: Value = get(&c, "/rest/api/content/2818051/child/comment?limit=100")
        .json()
        .unwrap();
    assert_eq!(top["size"], 27, "replies are left out without depth=all");
    let all: Value = get(
        &c,
        "/rest/api/content/2818051/child/comment?limit=100&depth=all",
    )
    .json()
    .unwrap();
    assert_eq!(all["size"], 28);
    let unknown = post(
        &c,
        "/rest/api/content",
        json!({"type": "comment", "container": {"id": "5"}, "body": {"storage": {"value": "<p/>", "representation": "storage"}}}),
    );
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        get(&c, "/rest/api/content/5/child/comment").status(),
        StatusCode::NOT_FOUND
    );
}

#[test]
fn add_labels() {
    let c = confluence();
    let resp = post(
        &c,
        "/rest/api/content/2818051/label",
        json!([{"prefix": "global", "name": "Shipped"}]),
    );
    assert_eq!(resp.status(), StatusCode::OK);
    let labels: Value = resp.json().unwrap();
    let names: Vec<_> = labels["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].clone())
        .collect();
    assert_eq!(names, ["release", "q3", "shipped"]);
    assert_eq!(c.labels_added()[0].labels, ["shipped"]);
    assert_eq!(c.content(2818051).unwrap()["metadata"]["labels"]["size"], 3);
    let bad = post(
        &c,
        "/rest/api/content/2818051/label",
        json!([{"name": "two words"}]),
    );
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        post(&c, "/rest/api/content/1/label", json!([{"name": "x"}])).status(),
        StatusCode::NOT_FOUND
    );
}

#[test]
fn absurd_retry_after_and_error_statuses() {
    let c = confluence();
    c.inject(
        endpoints::GET_CONTENT,
        Fault::RateLimited {
            retry_after_secs: 9223372036854775807,
        },
    );
    c.inject(endpoints::GET_CONTENT, Fault::Status(500));
    c.inject(endpoints::CREATE_CONTENT, Fault::Status(503));
    let limited = get(&c, "/rest/api/content/2818051");
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "9223372036854775807");
    assert_eq!(limited.headers()["x-ratelimit-remaining"], "0");
    let failed = get(&c, "/rest/api/content/2818051");
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(failed.json::<Value>().unwrap()["statusCode"], 500);
    assert_eq!(
        get(&c, "/rest/api/content/2818051").status(),
        StatusCode::OK
    );
    assert_eq!(
        post(&c, "/rest/api/content", page_body("T", "<p/>")).status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(c.created().is_empty());
    assert_eq!(c.calls(endpoints::GET_CONTENT), 3);
}

#[test]
fn reset_and_delay_on_create() {
    let c = confluence();
    c.inject(endpoints::CREATE_CONTENT, Fault::Reset);
    c.inject(
        endpoints::CREATE_CONTENT,
        Fault::Delay(Duration::from_millis(200)),
    );
    let err = client()
        .post(format!("{}/rest/api/content", c.base_url()))
        .bearer_auth(PAT)
        .json(&page_body("Once", "<p/>"))
        .send()
        .expect_err("reset");
    assert!(err.status().is_none());
    assert!(c.created().is_empty(), "a reset request is not carried out");
    let started = std::time::Instant::now();
    assert_eq!(
        post(&c, "/rest/api/content", page_body("Once", "<p/>")).status(),
        StatusCode::OK
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(c.wait_for_created(1, Duration::from_secs(1)).len(), 1);
}

#[test]
#[should_panic(expected = "unknown endpoint")]
fn inject_refuses_unknown_endpoints() {
    confluence().inject("GET /rest/api/content/123", Fault::Reset);
}

#[tokio::test]
async fn usable_from_async_tests() {
    let c = confluence();
    c.inject(endpoints::SEARCH_CONTENT, Fault::Status(502));
    let http = crate::async_client();
    let url = format!(
        "{}/rest/api/content?spaceKey=ENG&title=Q3+launch+checklist",
        c.base_url()
    );
    let first = http.get(&url).bearer_auth(PAT).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::BAD_GATEWAY);
    let found: Value = http
        .get(&url)
        .bearer_auth(PAT)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["results"][0]["id"], "2818051");
    let create = http
        .post(format!("{}/rest/api/content", c.base_url()))
        .bearer_auth(PAT)
        .json(&page_body("Async", "<p/>"))
        .send();
    let (resp, created) = tokio::join!(create, c.wait_for_created_async(1, Duration::from_secs(5)));
    assert_eq!(resp.unwrap().status(), StatusCode::OK);
    assert_eq!(created[0].title, "Async");
}

#[test]
fn storage_is_rewritten_on_save_as_confluence_does() {
    let c = confluence();
    let sent = "<p class=\"lead\" title=\"&quot;Q3&quot; &amp; more\">Caf&#233; &quot;ok&quot;&nbsp;<br/>x</p>\n  <!-- a note -->\n  <ac:structured-macro ac:name=\"anchor\" ac:schema-version=\"1\"><ac:parameter ac:name=\"\">pagehook-0123abcd</ac:parameter></ac:structured-macro>\n<ul>\n  <li>one</li>\n</ul><p/><p><ac:link><ri:page ri:space-key=\"ENG\" ri:content-title=\"Q3 &amp; more\"/></ac:link></p><ac:structured-macro ac:macro-id=\"keep-me\" ac:name=\"code\"><ac:plain-text-body><![CDATA[a < b && c]]></ac:plain-text-body></ac:structured-macro>";
    let resp = post(&c, "/rest/api/content", page_body("Rewritten", sent));
    assert_eq!(resp.status(), StatusCode::OK);
    let id = resp.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let record = &c.created()[0];
    assert_eq!(record.storage, sent, "what was sent");
    let saved = record.stored.as_str();
    assert_ne!(saved, sent);
    // Entities re-encoded: named and numeric ones become characters, `&quot;` a plain quote
    // in text; attributes come in another order; self-closing and empty tags re-written.
    assert!(
        saved.starts_with(
            "<p title=\"&quot;Q3&quot; &amp; more\" class=\"lead\">Café \"ok\"\u{a0}<br />x</p>"
        ),
        "{saved}"
    );
    assert!(
        !saved.contains("<!--") && !saved.contains("a note"),
        "comments go: {saved}"
    );
    assert!(
        saved.contains("<ul><li>one</li></ul><p></p>"),
        "whitespace between blocks goes: {saved}"
    );
    assert!(
        saved.contains("<ri:page ri:space-key=\"ENG\" ri:content-title=\"Q3 &amp; more\" />"),
        "{saved}"
    );
    assert!(saved.contains("<![CDATA[a < b && c]]>"), "{saved}");
    // Every macro keeps its name and parameters and gains an id; an id already there stays.
    let anchor = saved.split("<ac:structured-macro ").nth(1).unwrap();
    assert!(
        anchor.starts_with("ac:schema-version=\"1\" ac:name=\"anchor\" ac:macro-id=\""),
        "{anchor}"
    );
    assert!(anchor.contains("<ac:parameter ac:name=\"\">pagehook-0123abcd</ac:parameter>"));
    assert_eq!(saved.matches("ac:macro-id=").count(), 2);
    assert!(saved.contains("ac:macro-id=\"keep-me\""));
    // The saved body is what every answer shows afterwards.
    let read: Value = get(&c, &format!("/rest/api/content/{id}?expand=body.storage"))
        .json()
        .unwrap();
    assert_eq!(read["body"]["storage"]["value"], saved);
    let found: Value = get(
        &c,
        "/rest/api/content?spaceKey=ENG&title=Rewritten&type=page&expand=body.storage",
    )
    .json()
    .unwrap();
    assert_eq!(found["results"][0]["body"]["storage"]["value"], saved);
    assert_eq!(
        c.content(id.parse().unwrap()).unwrap()["body"]["storage"]["value"],
        saved
    );
    // Saving the saved body again changes nothing more.
    assert_eq!(FakeConfluence::saved_storage(saved, 99).unwrap(), saved);

    let comment = post(
        &c,
        "/rest/api/content",
        json!({
            "type": "comment",
            "container": {"id": "2818051", "type": "page"},
            "body": {"storage": {"value": "<p>See <ac:link><ri:page ri:content-title=\"Rewritten\"/></ac:link></p>", "representation": "storage"}},
        }),
    );
    assert_eq!(comment.status(), StatusCode::OK);
    let listed: Value = get(
        &c,
        "/rest/api/content/2818051/child/comment?expand=body.storage",
    )
    .json()
    .unwrap();
    assert_eq!(
        listed["results"][0]["body"]["storage"]["value"],
        "<p>See <ac:link><ri:page ri:content-title=\"Rewritten\" /></ac:link></p>"
    );
}

#[test]
fn labels_on_create_and_properties_ignored_as_data_center_does() {
    let c = confluence();
    let mut body = page_body("Labelled", "<p>x</p>");
    body["metadata"] = json!({
        "labels": [{"prefix": "global", "name": "Retrospective"}, {"prefix": "global", "name": "ops"}],
        "properties": {"pagehook-delivery": {"key": "pagehook-delivery", "value": {"delivery": 1}}},
    });
    let resp = post(&c, "/rest/api/content", body);
    assert_eq!(resp.status(), StatusCode::OK);
    let id: u64 = resp.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let read: Value = get(
        &c,
        &format!("/rest/api/content/{id}?expand=metadata.labels"),
    )
    .json()
    .unwrap();
    let names: Vec<_> = read["metadata"]["labels"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["prefix"].clone(), l["name"].clone()))
        .collect();
    assert_eq!(
        names,
        [
            (json!("global"), json!("retrospective")),
            (json!("global"), json!("ops"))
        ]
    );
    assert!(
        c.content(id).unwrap()["metadata"]
            .get("properties")
            .is_none(),
        "metadata.properties is not applied on create"
    );
    // Adding a label that is already there changes nothing.
    let again = post(
        &c,
        &format!("/rest/api/content/{id}/label"),
        json!([{"prefix": "global", "name": "retrospective"}]),
    );
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<Value>().unwrap()["size"], 2);
}

#[test]
fn comments_on_a_blog_post_name_it_as_a_blogpost() {
    let c = confluence();
    c.put_content(
        2818200,
        ContentBuilder::blogpost(2818200, "ENG", "Launch week").build(),
    );
    let comment = |kind: &str| {
        post(
            &c,
            "/rest/api/content",
            json!({
                "type": "comment",
                "container": {"id": "2818200", "type": kind},
                "body": {"storage": {"value": "<p>Congrats</p>", "representation": "storage"}},
            }),
        )
    };
    let wrong = comment("page");
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    let err: Value = wrong.json().unwrap();
    assert_eq!(err["statusCode"], 400);
    assert!(
        err["message"].as_str().unwrap().contains("blogpost"),
        "{err}"
    );
    assert!(c.created().is_empty());

    let ok = comment("blogpost");
    assert_eq!(ok.status(), StatusCode::OK);
    let created: Value = ok.json().unwrap();
    assert_eq!(created["container"]["id"], "2818200");
    assert_eq!(created["container"]["type"], "blogpost");
    assert_eq!(created["title"], "Re: Launch week");
    assert_eq!(c.created()[0].container_id, Some(2818200));
    let listed: Value = get(&c, "/rest/api/content/2818200/child/comment")
        .json()
        .unwrap();
    assert_eq!(listed["size"], 1);

    // A page named as a blog post is refused the same way.
    let on_page = post(
        &c,
        "/rest/api/content",
        json!({
            "type": "comment",
            "container": {"id": "2818051", "type": "blogpost"},
            "body": {"storage": {"value": "<p/>", "representation": "storage"}},
        }),
    );
    assert_eq!(on_page.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn personal_access_tokens_are_listed_and_an_expired_one_is_refused() {
    let c = confluence();
    let listed: Value = get(&c, "/rest/pat/latest/tokens").json().unwrap();
    let tokens = listed.as_array().expect("a bare array");
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0]["name"], "pagehook");
    for field in ["id", "createdAt", "expiringAt", "lastAccessedAt"] {
        assert!(tokens[0].get(field).is_some(), "{field} in {listed}");
    }
    let expiring = tokens[0]["expiringAt"].as_str().unwrap();
    assert_eq!(
        expiring.len(),
        "2026-01-12T18:07:13.603+0000".len(),
        "{expiring}"
    );
    assert!(expiring.ends_with("+0000"));

    let day = Duration::from_secs(86_400);
    c.set_tokens(&[
        ("sidecar", Some(SystemTime::now() + 10 * day)),
        ("laptop", None),
    ]);
    let listed: Value = get(&c, "/rest/pat/latest/tokens").json().unwrap();
    assert_eq!(listed[0]["name"], "sidecar");
    assert_eq!(listed[1]["name"], "laptop");
    assert!(listed[1].get("expiringAt").is_none(), "never expires");
    assert_eq!(c.calls(endpoints::PAT_TOKENS), 2);

    c.set_tokens(&[("sidecar", Some(SystemTime::now() - day))]);
    for path in ["/rest/pat/latest/tokens", "/rest/api/user/current"] {
        let refused = get(&c, path);
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    assert_eq!(
        client()
            .post(format!("{}/rest/pat/latest/tokens", c.base_url()))
            .bearer_auth(PAT)
            .send()
            .unwrap()
            .status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
}

const RESTRICTIONS: &str =
    "restrictions.read.restrictions.user,restrictions.read.restrictions.group";
const ANCESTOR_RESTRICTIONS: &str =
    "ancestors.restrictions.read.restrictions.user,ancestors.restrictions.read.restrictions.group";

fn read_subjects(v: &Value) -> usize {
    ["user", "group"]
        .iter()
        .map(|k| {
            v["restrictions"]["read"]["restrictions"][k]["results"]
                .as_array()
                .map_or(0, Vec::len)
        })
        .sum()
}

#[test]
fn inherited_restrictions_show_only_through_the_ancestors() {
    let c = confluence();
    // 40 (never registered) > 41 (restricted to ops-team) > 42.
    c.put_content(
        41,
        ContentBuilder::page(41, "OPS", "Ops Home")
            .ancestors(&[(40, "Root")])
            .read_restricted_to(&[], &["ops-team"])
            .build(),
    );
    c.put_content(
        42,
        ContentBuilder::page(42, "OPS", "Runbook")
            .ancestors(&[(40, "Root"), (41, "Ops Home")])
            .build(),
    );
    // The child's own restrictions are empty, as Confluence answers (CONFSERVER-45609).
    let own: Value = get(
        &c,
        &format!("/rest/api/content/42?expand=ancestors,{RESTRICTIONS}"),
    )
    .json()
    .unwrap();
    assert_eq!(read_subjects(&own), 0);
    assert_eq!(
        own["ancestors"][1],
        json!({"id": "41", "type": "page", "status": "current", "title": "Ops Home"}),
        "ancestors alone are not expanded further"
    );
    // Through the ancestors, each one's own restrictions come back.
    let path = format!("/rest/api/content/42?expand={RESTRICTIONS},{ANCESTOR_RESTRICTIONS}");
    let got: Value = get(&c, &path).json().unwrap();
    let ancestors = got["ancestors"].as_array().unwrap();
    assert_eq!(ancestors.len(), 2);
    assert_eq!(ancestors[0]["id"], "40");
    assert_eq!(
        read_subjects(&ancestors[0]),
        0,
        "an unregistered ancestor is open"
    );
    assert_eq!(ancestors[1]["id"], "41");
    assert_eq!(
        ancestors[1]["restrictions"]["read"]["restrictions"]["group"]["results"][0]["name"],
        "ops-team"
    );
    assert!(ancestors[1].get("space").is_none(), "only what was asked");
    assert_eq!(read_subjects(&got), 0);
    // An unregistered ancestor can be read by id too.
    let root: Value = get(
        &c,
        &format!("/rest/api/content/40?status=any&expand={RESTRICTIONS}"),
    )
    .json()
    .unwrap();
    assert_eq!(
        (root["title"].as_str(), read_subjects(&root)),
        (Some("Root"), 0)
    );

    // Lifting the parent's restriction shows at once.
    c.set_read_restrictions(41, &[], &[]);
    let got: Value = get(&c, &path).json().unwrap();
    assert_eq!(read_subjects(&got["ancestors"][1]), 0);

    // A server that does not expand nested fields answers ancestors bare.
    c.set_nested_ancestor_expansion(false);
    let bare: Value = get(&c, &path).json().unwrap();
    assert!(bare["ancestors"][1].get("restrictions").is_none());
    c.set_nested_ancestor_expansion(true);

    // A purged ancestor answers 404 and stays unexpanded where it is still named.
    c.remove_content(41);
    assert_eq!(
        get(&c, "/rest/api/content/41?status=any").status(),
        StatusCode::NOT_FOUND
    );
    let got: Value = get(&c, &path).json().unwrap();
    assert_eq!(got["ancestors"][1]["id"], "41");
    assert!(got["ancestors"][1].get("restrictions").is_none());
}

// ---- Data Center's documented contract (issue 22): see tests/fakes/src/confluence/REFERENCE.md

const ADA_KEY: &str = "8a7f80839e460b0f019e460ba6440001";
const ADA_PAT: &str = "ada-personal-token";
const ROOT_PAT: &str = "root-personal-token";

/// The fake with Ada (a plain user, views ENG), Root (in `confluence-administrators`) and
/// Sam (administers ENG), each signing in with a personal access token.
fn people() -> FakeConfluence {
    let c = confluence();
    c.add_user(
        "ada",
        ADA_KEY,
        "Ada Lovelace",
        "ada@example.com",
        "",
        &["confluence-users"],
    );
    c.add_pat("ada", ADA_PAT);
    c.add_user(
        "root",
        "key-root",
        "Root Admin",
        "root@example.com",
        "",
        &["confluence-administrators"],
    );
    c.add_pat("root", ROOT_PAT);
    c.add_user("sam", "key-sam", "Sam Spade", "sam@example.com", "", &[]);
    c.add_pat("sam", "sam-token");
    c.grant_space("ENG", "group:confluence-users", &["read"]);
    c.grant_space("ENG", "user:sam", &["administer"]);
    c
}

fn get_as(c: &FakeConfluence, path: &str, token: &str) -> (StatusCode, Value) {
    let r = client()
        .get(format!("{}{path}", c.base_url()))
        .bearer_auth(token)
        .send()
        .expect("request");
    let status = r.status();
    (status, r.json().unwrap_or(Value::Null))
}

/// Every user object anywhere in `v` (anything with a `userKey` or `username`), asserting
/// none carries `email`.
fn assert_no_email_anywhere(v: &Value, at: &str) {
    match v {
        Value::Object(map) => {
            assert!(
                !map.contains_key("email"),
                "{at}: a user object carries email: {v}"
            );
            for (k, inner) in map {
                assert_no_email_anywhere(inner, &format!("{at}/{k}"));
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                assert_no_email_anywhere(inner, &format!("{at}/{i}"));
            }
        }
        _ => {}
    }
}

#[test]
fn user_objects_carry_only_documented_fields_and_never_email() {
    let c = people();
    c.set_service_confluence_admin(true);
    c.watch(2818051, "ada");
    c.put_content(
        7,
        ContentBuilder::page(7, "ENG", "Restricted")
            .author("ada", ADA_KEY, "Ada Lovelace")
            .read_restricted_to(&["ada"], &["eng"])
            .build(),
    );
    // details.personal is Cloud's: Data Center ignores it without a word.
    for path in [
        format!("/rest/api/user?key={ADA_KEY}&expand=details.personal"),
        "/rest/api/user?username=ada&expand=details.personal,status".to_string(),
    ] {
        let user: Value = get(&c, &path).json().unwrap();
        let mut keys: Vec<&str> = user.as_object().unwrap().keys().map(|k| &**k).collect();
        keys.sort_unstable();
        let mut documented = vec![
            "_links",
            "displayName",
            "profilePicture",
            "type",
            "userKey",
            "username",
        ];
        documented.push(if path.contains("status") {
            "status"
        } else {
            "_expandable"
        });
        documented.sort_unstable();
        assert_eq!(keys, documented, "{path}: {user}");
        assert_eq!(user["type"], "known");
        assert_eq!(user["profilePicture"]["isDefault"], true);
    }
    let with_status: Value = get(&c, "/rest/api/user?username=ada&expand=status")
        .json()
        .unwrap();
    assert_eq!(with_status["status"], "current");
    for (path, token) in [
        ("/rest/api/user/current".to_string(), PAT),
        ("/rest/api/user/current".to_string(), ADA_PAT),
        ("/rest/api/content/2818051/watchers".to_string(), PAT),
        (
            "/rest/api/content/7?expand=version,history,restrictions.read.restrictions.user"
                .to_string(),
            PAT,
        ),
        (
            "/rest/api/content/search?cql=type%3Dpage&expand=version,history".to_string(),
            PAT,
        ),
    ] {
        let (status, body) = get_as(&c, &path, token);
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_no_email_anywhere(&body, &path);
    }
    let (_, watchers) = get_as(&c, "/rest/api/content/2818051/watchers", PAT);
    assert_eq!(watchers["results"][0]["username"], "ada");
    assert_eq!(watchers["results"][0]["userKey"], ADA_KEY);
}

#[test]
fn mobile_profile_shows_email_as_the_visibility_setting_allows() {
    let c = people();
    let profile = |token: &str| get_as(&c, "/rest/mobile/1.0/profile/ada", token);

    // Public: everyone who may see the profile sees the address.
    let (status, p) = profile(ADA_PAT);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(p["userName"], "ada");
    assert_eq!(p["fullName"], "Ada Lovelace");
    assert_eq!(p["email"], "ada@example.com");
    assert_eq!(p["url"], "/display/~ada");
    assert_eq!(
        (p["anonymous"].clone(), p["unknownUser"].clone()),
        (json!(false), json!(false))
    );
    assert!(p["avatarUrl"].as_str().unwrap().starts_with('/'));
    assert_eq!(profile(PAT).1["email"], "ada@example.com");

    // Masked: shown, but not an address.
    c.set_email_visibility(EmailVisibility::Masked);
    assert_eq!(profile(PAT).1["email"], "ada at example dot com");

    // Only visible to site administrators: the profile comes without it to everyone else,
    // the person themselves included.
    c.set_email_visibility(EmailVisibility::AdminsOnly);
    for token in [PAT, ADA_PAT, "sam-token"] {
        let (status, p) = profile(token);
        assert_eq!(status, StatusCode::OK, "{token}");
        assert!(p.get("email").is_none(), "{token} sees {p}");
        assert_eq!(p["fullName"], "Ada Lovelace");
    }
    assert_eq!(profile(ROOT_PAT).1["email"], "ada@example.com");
    c.set_service_confluence_admin(true);
    assert_eq!(profile(PAT).1["email"], "ada@example.com");
    let (_, own) = get_as(&c, "/rest/mobile/1.0/profile/pagehook", PAT);
    assert_eq!(own["email"], SERVICE_EMAIL);

    // Hidden: nobody, administrators included.
    c.set_email_visibility(EmailVisibility::Hidden);
    for token in [PAT, ROOT_PAT, ADA_PAT] {
        assert!(profile(token).1.get("email").is_none(), "{token}");
    }
    assert_eq!(c.calls(endpoints::MOBILE_PROFILE), 12);
}

#[test]
fn mobile_profile_of_an_unknown_user_without_sign_in_or_plugin() {
    let c = people();
    // A username Confluence does not know: flagged, never an address.
    let (status, p) = get_as(&c, "/rest/mobile/1.0/profile/nobody", ADA_PAT);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(p["unknownUser"], true);
    assert_eq!(p["userName"], "nobody");
    assert!(p.get("email").is_none());
    // Escaped usernames are decoded.
    c.put_user("key-jd", "j.doe@corp", "J Doe", "jd@example.com");
    let (_, jd) = get_as(&c, "/rest/mobile/1.0/profile/j.doe%40corp", PAT);
    assert_eq!(jd["email"], "jd@example.com");
    // Not signed in: 401 as everywhere else.
    let anonymous = client()
        .get(format!("{}/rest/mobile/1.0/profile/ada", c.base_url()))
        .send()
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    // An instance without the mobile plugin: an unknown path.
    c.set_mobile_profile_available(false);
    let (status, body) = get_as(&c, "/rest/mobile/1.0/profile/ada", PAT);
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("null for uri")
    );
}

#[test]
fn admin_user_list_only_for_confluence_admins_with_the_fields_each_release_documents() {
    let c = people();
    let list = |token: &str| get_as(&c, "/rest/api/admin/users/list/active", token);

    // 10.2 (default): known users with username, userKey and email.
    let (status, body) = list(PAT);
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the service account is no admin"
    );
    assert_eq!(body["statusCode"], 403);
    assert_eq!(list(ADA_PAT).0, StatusCode::FORBIDDEN);
    assert_eq!(
        list("sam-token").0,
        StatusCode::FORBIDDEN,
        "a space admin is no Confluence admin"
    );
    let (status, page) = list(ROOT_PAT);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["totalCount"], 4);
    let ada = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "ada")
        .expect("ada listed")
        .clone();
    assert_eq!(ada["userKey"], ADA_KEY);
    assert_eq!(ada["email"], "ada@example.com");
    assert_eq!(ada["type"], "known");
    assert_eq!(ada["displayName"], "Ada Lovelace");
    c.set_service_confluence_admin(true);
    let (status, paged) = get_as(&c, "/rest/api/admin/users/list/active?limit=1", PAT);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(paged["size"], 1);
    assert!(
        paged["_links"]["next"]
            .as_str()
            .unwrap()
            .contains("start=1")
    );
    c.set_email_visibility(EmailVisibility::Hidden);
    let (_, hidden) = list(PAT);
    assert!(
        hidden["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u.get("email").is_none())
    );
    c.set_email_visibility(EmailVisibility::Public);

    // 9.4: only type, displayName and profilePicture are documented.
    c.emulate(DcVersion::V9_4);
    let (status, page) = list(PAT);
    assert_eq!(status, StatusCode::OK);
    for u in page["results"].as_array().unwrap() {
        let mut keys: Vec<&str> = u.as_object().unwrap().keys().map(|k| &**k).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["displayName", "profilePicture", "type"], "{u}");
    }

    // Before 9.4 there is no such resource.
    for version in [DcVersion::V9_2, DcVersion::V8_5] {
        c.emulate(version);
        assert_eq!(list(PAT).0, StatusCode::NOT_FOUND, "{version:?}");
    }
}

#[test]
fn watchers_only_to_confluence_or_space_admins_and_only_from_9_0() {
    let c = people();
    c.watch(2818051, "ada");
    c.put_content(
        9,
        ContentBuilder::comment(9, 2818051, "Q3 launch checklist", "ENG").build(),
    );
    let path = "/rest/api/content/2818051/watchers";
    let (status, refused) = get_as(&c, path, PAT);
    assert_eq!(status, StatusCode::FORBIDDEN, "service account, no admin");
    assert_eq!(refused["statusCode"], 403);
    assert_eq!(
        get_as(&c, path, ADA_PAT).0,
        StatusCode::FORBIDDEN,
        "may only view"
    );
    assert_eq!(
        get_as(&c, path, "sam-token").0,
        StatusCode::OK,
        "space admin"
    );
    assert_eq!(
        get_as(&c, path, ROOT_PAT).0,
        StatusCode::OK,
        "Confluence admin"
    );
    c.set_service_confluence_admin(true);
    let (status, page) = get_as(&c, path, PAT);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["size"], 1);
    // Documented: 400 for content that is not a page or blog post, 404 for none.
    assert_eq!(
        get_as(&c, "/rest/api/content/9/watchers", PAT).0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get_as(&c, "/rest/api/content/404404/watchers", PAT).0,
        StatusCode::NOT_FOUND
    );
    for (version, want) in [
        (DcVersion::V8_5, StatusCode::NOT_FOUND),
        (DcVersion::V9_2, StatusCode::OK),
        (DcVersion::V9_4, StatusCode::OK),
        (DcVersion::V10_2, StatusCode::OK),
    ] {
        c.emulate(version);
        assert_eq!(get_as(&c, path, PAT).0, want, "{version:?}");
    }
    assert_eq!(
        c.calls(endpoints::WATCHERS),
        11,
        "the 8.5 answer is counted too"
    );
}

#[test]
fn space_permissions_refuse_non_admins_with_403_or_500() {
    let c = people();
    let path = "/rest/api/space/ENG/permissions";
    assert_eq!(get_as(&c, path, "sam-token").0, StatusCode::OK);
    let (status, body) = get_as(&c, path, ADA_PAT);
    assert_eq!(status, StatusCode::FORBIDDEN, "documented");
    assert_eq!(body["statusCode"], 403);
    assert_eq!(get_as(&c, path, PAT).0, StatusCode::FORBIDDEN);

    c.set_space_permissions_refusal(SpacePermissionsRefusal::InternalError);
    let (status, body) = get_as(&c, path, ADA_PAT);
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "CONFSERVER-99908"
    );
    assert_eq!(body["statusCode"], 500);
    assert_eq!(get_as(&c, path, PAT).0, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        get_as(&c, path, "sam-token").0,
        StatusCode::OK,
        "admins unaffected"
    );
    assert_eq!(
        get_as(&c, "/rest/api/space/NOPE/permissions", ADA_PAT).0,
        StatusCode::NOT_FOUND
    );
    c.set_space_permissions_refusal(SpacePermissionsRefusal::Forbidden);
    assert_eq!(get_as(&c, path, ADA_PAT).0, StatusCode::FORBIDDEN);

    c.emulate(DcVersion::V9_2);
    assert_eq!(get_as(&c, path, "sam-token").0, StatusCode::OK);
    c.emulate(DcVersion::V8_5);
    assert_eq!(get_as(&c, path, "sam-token").0, StatusCode::NOT_FOUND);
}

fn manifest(c: &FakeConfluence, accept: Option<&str>) -> (StatusCode, String) {
    let mut r = client().get(format!("{}/rest/applinks/1.0/manifest", c.base_url()));
    if let Some(accept) = accept {
        r = r.header("accept", accept);
    }
    let r = r.send().unwrap();
    (r.status(), r.text().unwrap())
}

#[test]
fn version_and_build_as_each_release_reports_them() {
    let c = confluence();
    assert_eq!(c.version(), DcVersion::V10_2, "the default");
    for version in DcVersion::ALL {
        c.emulate(version);
        // The AppLinks manifest: every release, no sign-in, XML unless JSON is asked for.
        let (status, xml) = manifest(&c, None);
        assert_eq!(status, StatusCode::OK);
        assert!(xml.contains("<typeId>confluence</typeId>"), "{xml}");
        assert!(
            xml.contains(&format!("<version>{}</version>", version.version())),
            "{xml}"
        );
        assert!(
            xml.contains(&format!(
                "<buildNumber>{}</buildNumber>",
                version.build_number()
            )),
            "{xml}"
        );
        let (_, text) = manifest(&c, Some("application/json"));
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["version"], version.version());
        assert_eq!(json["buildNumber"], version.build_number());
        assert_eq!(json["url"], c.base_url().as_str());
        // Server information: 9.1 on, signed in.
        let info = get(&c, "/rest/api/server-information");
        if version >= DcVersion::V9_2 {
            assert_eq!(info.status(), StatusCode::OK, "{version:?}");
            let info: Value = info.json().unwrap();
            assert_eq!(info["version"], version.version());
            assert_eq!(info["buildNumber"], version.build_number());
            assert_eq!(info["baseUrl"], c.base_url().as_str());
            assert!(info["buildDate"].is_string() && info["marketplaceBuildNumber"].is_u64());
        } else {
            assert_eq!(info.status(), StatusCode::NOT_FOUND, "{version:?}");
        }
        // Personal access tokens are listed on every release.
        assert_eq!(
            get(&c, "/rest/pat/latest/tokens").status(),
            StatusCode::OK,
            "{version:?}"
        );
    }
    let anonymous = client()
        .get(format!("{}/rest/api/server-information", c.base_url()))
        .send()
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(c.calls(endpoints::APPLINKS_MANIFEST), 8);
}

#[test]
fn search_expanding_ancestors_fails_on_a_trashed_ancestor_when_switched_on() {
    let c = confluence();
    c.put_content(
        41,
        ContentBuilder::page(41, "ENG", "Old parent")
            .status("trashed")
            .build(),
    );
    c.put_content(
        42,
        ContentBuilder::page(42, "ENG", "Orphan runbook")
            .ancestors(&[(41, "Old parent")])
            .build(),
    );
    let nested = format!(
        "/rest/api/content/search?cql=title~%22runbook%22&expand=ancestors,{ANCESTOR_RESTRICTIONS}"
    );
    let plain = "/rest/api/content/search?cql=title~%22runbook%22&expand=ancestors";
    // Off (default): the trashed ancestor is expanded like any other.
    let found: Value = get(&c, &nested).json().unwrap();
    assert_eq!(found["size"], 1);
    assert_eq!(found["results"][0]["ancestors"][0]["status"], "trashed");

    c.set_search_404_on_trashed_ancestor(true);
    let failed = get(&c, &nested);
    assert_eq!(failed.status(), StatusCode::NOT_FOUND);
    let body: Value = failed.json().unwrap();
    assert_eq!(body["statusCode"], 404);
    assert!(body["message"].as_str().unwrap().contains("41"), "{body}");
    // Without the nested expansion the same search answers.
    let ok: Value = get(&c, plain).json().unwrap();
    assert_eq!(ok["size"], 1);
    assert_eq!(ok["results"][0]["id"], "42");
    // A server that does not expand nested fields never gets that far.
    c.set_nested_ancestor_expansion(false);
    assert_eq!(get(&c, &nested).status(), StatusCode::OK);
    c.set_nested_ancestor_expansion(true);
    // Restored from the trash: the batch answers again.
    c.put_content(41, ContentBuilder::page(41, "ENG", "Old parent").build());
    assert_eq!(get(&c, &nested).status(), StatusCode::OK);
}

#[test]
fn writes_without_the_space_permission_answer_403_in_data_centers_shape() {
    let c = confluence();
    c.put_content(
        2818052,
        ContentBuilder::page(2818052, "OPS", "Ops page").build(),
    );
    c.set_service_space_permissions("ENG", &["read"]);
    let page = post(&c, "/rest/api/content", page_body("Refused", "<p>x</p>"));
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    let body: Value = page.json().unwrap();
    assert_eq!(body["statusCode"], 403);
    assert_eq!(body["data"]["authorized"], false);
    assert_eq!(body["reason"], "Forbidden");
    assert_eq!(
        body["message"],
        "com.atlassian.confluence.api.service.exceptions.PermissionException: Could not create content with type page"
    );
    let comment = json!({
        "type": "comment",
        "container": {"id": "2818051", "type": "page"},
        "body": {"storage": {"value": "<p>hi</p>", "representation": "storage"}},
    });
    let refused = post(&c, "/rest/api/content", comment.clone());
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(
        refused.json::<Value>().unwrap()["message"]
            .as_str()
            .unwrap()
            .ends_with("Could not create content with type comment")
    );
    let label = post(
        &c,
        "/rest/api/content/2818051/label",
        json!([{"prefix": "global", "name": "release"}]),
    );
    assert_eq!(label.status(), StatusCode::FORBIDDEN);
    assert_eq!(label.json::<Value>().unwrap()["statusCode"], 403);
    assert!(c.created().is_empty() && c.labels_added().is_empty());
    // Another space is untouched.
    let ok = post(
        &c,
        "/rest/api/content/2818052/label",
        json!([{"prefix": "global", "name": "ops"}]),
    );
    assert_eq!(ok.status(), StatusCode::OK);

    // Comments allowed, pages still not.
    c.set_service_space_permissions("ENG", &["create:comment"]);
    assert_eq!(
        post(&c, "/rest/api/content", comment).status(),
        StatusCode::OK
    );
    assert_eq!(
        post(
            &c,
            "/rest/api/content",
            page_body("Still refused", "<p>x</p>")
        )
        .status(),
        StatusCode::FORBIDDEN
    );
    // Not even view: the space is as good as absent.
    c.set_service_space_permissions("ENG", &[]);
    let hidden = post(&c, "/rest/api/content", page_body("Hidden", "<p>x</p>"));
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
    // Granting the permission back lets it through.
    c.grant_space("ENG", "user:pagehook", &["create:page"]);
    assert_eq!(
        post(&c, "/rest/api/content", page_body("Allowed", "<p>x</p>")).status(),
        StatusCode::OK
    );
}

#[test]
fn added_users_write_only_where_granted() {
    let c = people();
    let as_ada = |body: Value| {
        client()
            .post(format!("{}/rest/api/content", c.base_url()))
            .bearer_auth(ADA_PAT)
            .json(&body)
            .send()
            .unwrap()
    };
    assert_eq!(
        as_ada(page_body("Ada's", "<p>x</p>")).status(),
        StatusCode::FORBIDDEN,
        "may view ENG, not add to it"
    );
    c.grant_space("ENG", "user:ada", &["create:page"]);
    assert_eq!(
        as_ada(page_body("Ada's", "<p>x</p>")).status(),
        StatusCode::OK
    );
}

#[test]
fn page_templates_can_be_absent() {
    let c = confluence();
    c.put_template("ENG", "Retro", "<p>retro</p>");
    let path = "/rest/experimental/template/page?spaceKey=ENG&expand=body";
    let page: Value = get(&c, path).json().unwrap();
    assert_eq!(page["results"][0]["name"], "Retro");
    c.set_page_templates_available(false);
    let gone = get(&c, path);
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert!(
        gone.json::<Value>().unwrap()["message"]
            .as_str()
            .unwrap()
            .starts_with("null for uri")
    );
    c.set_page_templates_available(true);
    assert_eq!(get(&c, path).status(), StatusCode::OK);
}
