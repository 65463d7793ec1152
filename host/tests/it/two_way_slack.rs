//! Contract 0.2.0 end to end, as an admin would run it: `pagehook serve`,
//! the bundled slack-poster built against 0.2.0, the spec-driven fake
//! Slack and the fake Confluence. Signed Slack requests come in at
//! `/hooks/slack/acme`; what leaves is checked at the fakes: link previews
//! through `chat.unfurl`, search answers at the command's response URL,
//! personal DMs through `chat.postMessage`. Restricted pages never reach
//! people the restrictions do not name, and the person who made a change is
//! never told about it.

use crate::common;
use crate::common::people::{
    ADA, ADA_SLACK, BOB, BOB_SLACK, CAROL, CAROL_SLACK, DAVE, DAVE_SLACK, EVE, EVE_SLACK,
};

use std::time::Duration;

use common::sidecar::{HOOK_SECRET, PAT, Sidecar};
use common::slack_hook;
use pagehook_fakes::{ConfluenceAuth, ContentBuilder, FakeConfluence, FakeSlack, SERVICE_USERNAME};
use serde_json::{Value, json};

const BOT: &str = "xoxb-two-way-slack-tests";
const SIGNING_SECRET: &str = "two-way-slack-signing-secret";
const WAIT: Duration = Duration::from_secs(20);
const CHANNEL: &str = "C0ENG00001";

/// Page everyone in ENG may view.
const PLAN: u64 = 4100;
/// Page only the `hr` group may view (bob is in it).
const SALARIES: u64 = 4200;

/// (username, key, email, Slack user id, groups)
const PEOPLE: [(&str, &str, &str, &str, &[&str]); 5] = [
    (
        "ada",
        ADA,
        "ada@example.com",
        ADA_SLACK,
        &["confluence-users"],
    ),
    (
        "bob",
        BOB,
        "bob@example.com",
        BOB_SLACK,
        &["confluence-users", "hr"],
    ),
    (
        "carol",
        CAROL,
        "carol@example.com",
        CAROL_SLACK,
        &["confluence-users"],
    ),
    (
        "dave",
        DAVE,
        "dave@example.com",
        DAVE_SLACK,
        &["confluence-users"],
    ),
    (
        "eve",
        EVE,
        "eve@example.com",
        EVE_SLACK,
        &["confluence-users"],
    ),
];

/// Someone in Slack with no Confluence account of the same email.
const STRANGER: &str = "U0ZED00009";

struct World {
    conf: FakeConfluence,
    slack: FakeSlack,
    side: Sidecar,
}

fn world(bind: &[&str]) -> World {
    let conf = FakeConfluence::start(ConfluenceAuth::Bearer(PAT.into()));
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", CHANNEL, true);
    for (name, key, email, slack_id, groups) in PEOPLE {
        conf.add_user(name, key, name, email, "pw", groups);
        slack.add_user(email, slack_id);
    }
    slack.add_user("zed@example.com", STRANGER);
    conf.grant_space("ENG", "group:confluence-users", &["read"]);
    // What the admin guide asks of the service account: space admin of the
    // spaces whose pages reach people, Confluence admin to link by email.
    conf.grant_space("ENG", SERVICE_USERNAME, &["administer"]);
    conf.set_service_confluence_admin(true);
    conf.put_content(
        PLAN,
        ContentBuilder::page(PLAN, "ENG", "Q3 launch plan")
            .ancestors(&[])
            .author("carol", CAROL, "carol")
            .version(2)
            .body_storage(&format!(
                r#"<p>Reviewed by <ac:link><ri:user ri:userkey="{BOB}"/></ac:link>, <ac:link><ri:user ri:username="ada"/></ac:link> and <ac:link><ri:user ri:userkey="{EVE}"/></ac:link>; <ac:link><ri:user ri:userkey="{BOB}"/></ac:link> signs off.</p>"#
            ))
            .build(),
    );
    conf.put_content(
        SALARIES,
        ContentBuilder::page(SALARIES, "ENG", "Launch salaries")
            .ancestors(&[])
            .author("carol", CAROL, "carol")
            .version(2)
            .body_storage(&format!(
                r#"<p>For <ac:link><ri:user ri:userkey="{ADA}"/></ac:link> and <ac:link><ri:user ri:userkey="{BOB}"/></ac:link>.</p>"#
            ))
            .build(),
    );
    conf.set_read_restrictions(SALARIES, &[], &["hr"]);
    conf.watch(PLAN, "dave");
    conf.watch(PLAN, "eve");
    conf.watch(SALARIES, "dave");

    let mut side = Sidecar::new();
    side.connect_confluence("prod", &conf.base_url());
    side.connect_slack_signed("acme", &slack.base_url(), BOT, SIGNING_SECRET, &[]);
    side.install_slack_poster();
    let mut args = vec!["bind", "slack-poster", "--quiet"];
    args.extend_from_slice(bind);
    side.cli(&args);
    side.start();
    World { conf, slack, side }
}

/// slack-poster answering Slack in workspace `acme`.
fn chat_world() -> World {
    world(&[
        "--source",
        "acme",
        "--to",
        "slack-unfurl:acme",
        "--to",
        "slack-respond:acme",
    ])
}

/// POSTs a request to `/hooks/slack/acme`, signed as Slack signs; fails
/// the test unless it answers 200.
fn from_slack(w: &World, content_type: &str, body: &str) {
    let url = format!("{}/hooks/slack/acme", w.side.base);
    slack_hook::post_signed(&url, SIGNING_SECRET, content_type, body);
}

fn link(w: &World, page: u64) -> String {
    format!("{}/pages/viewpage.action?pageId={page}", w.conf.base_url())
}

/// `user` shares a message linking PLAN and SALARIES; returns its ts.
fn share_both(w: &World, user: &str, event_id: &str) -> String {
    let (plan, salaries) = (link(w, PLAN), link(w, SALARIES));
    let ts = w
        .slack
        .add_user_message(CHANNEL, user, &format!("see <{plan}> and <{salaries}>"));
    let body = slack_hook::link_shared_body(
        "T0ACME0001",
        CHANNEL,
        user,
        &ts,
        event_id,
        &[plan, salaries],
    );
    from_slack(w, "application/json", &body);
    ts
}

/// `user` runs `/confluence <text>`; returns the response URL Slack minted.
fn command(w: &World, user: &str, text: &str, trigger: &str) -> String {
    let url = w.slack.mint_response_url(CHANNEL);
    let body = slack_hook::slash_command_body("T0ACME0001", CHANNEL, user, text, trigger, &url);
    from_slack(w, "application/x-www-form-urlencoded", &body);
    url
}

fn wait_until<T>(w: &World, what: &str, found: impl Fn() -> Option<T>) -> T {
    w.side.wait_until(what, WAIT, found)
}

/// The stored, enriched event of a Slack event or command, by its key's tail.
fn stored_event(w: &World, key_tail: &str) -> Value {
    wait_until(w, &format!("event {key_tail} dispatched"), || {
        let events: Value = serde_json::from_str(&w.side.cli(&["events", "--json"])).unwrap();
        events
            .as_array()
            .unwrap()
            .iter()
            .find(|e| {
                e["key"].as_str().is_some_and(|k| k.ends_with(key_tail))
                    && e["status"] == "dispatched"
            })
            .map(|e| e["event"].clone())
    })
}

fn answer_at(w: &World, url: &str) -> pagehook_fakes::SlackResponse {
    wait_until(w, "an answer at the response URL", || {
        w.slack.responses().into_iter().find(|r| r.url == url)
    })
}

fn shown(r: &pagehook_fakes::SlackResponse) -> String {
    format!(
        "{} {}",
        r.text.clone().unwrap_or_default(),
        r.blocks.clone().unwrap_or(Value::Null)
    )
}

#[test]
fn link_previews_show_only_what_the_sharing_person_may_view() {
    let w = chat_world();

    // Ada may not view SALARIES: the host gives the plugin no page for it.
    let ts = share_both(&w, "U0ADA00001", "Ev0ADASHARE1");
    let unfurl = wait_until(&w, "ada's links unfurled", || {
        w.slack.unfurls().into_iter().find(|u| u.ts == ts)
    });
    assert_eq!(unfurl.channel, CHANNEL);
    let previews = unfurl.unfurls.as_object().unwrap();
    assert_eq!(
        previews.keys().collect::<Vec<_>>(),
        [&link(&w, PLAN)],
        "{previews:?}"
    );
    let preview = previews[&link(&w, PLAN)].to_string();
    assert!(
        preview.contains("Q3 launch plan") && preview.contains("Open in Confluence"),
        "{preview}"
    );
    assert!(
        !unfurl.unfurls.to_string().contains("salaries"),
        "{unfurl:?}"
    );
    let event = stored_event(&w, "Ev0ADASHARE1");
    let chat = &event["chat"];
    assert_eq!(chat["user"]["confluence"]["key"], ADA, "linked by email");
    assert_eq!(chat["links"][0]["page"]["title"], "Q3 launch plan");
    assert!(chat["links"][1]["page"].is_null(), "{chat}");
    assert!(!event.to_string().contains("Launch salaries"), "{event}");

    // Bob is in `hr`: the host reads SALARIES for him, marked restricted;
    // slack-poster still previews only PLAN in a channel everyone reads.
    let ts = share_both(&w, "U0BOB00002", "Ev0BOBSHARE1");
    let unfurl = wait_until(&w, "bob's links unfurled", || {
        w.slack.unfurls().into_iter().find(|u| u.ts == ts)
    });
    let event = stored_event(&w, "Ev0BOBSHARE1");
    assert_eq!(
        event["chat"]["links"][1]["page"]["title"],
        "Launch salaries"
    );
    assert_eq!(event["chat"]["links"][1]["page"]["restricted"], true);
    assert_eq!(
        unfurl
            .unfurls
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        [&link(&w, PLAN)]
    );

    // Only those two messages were unfurled, each once.
    assert_eq!(w.slack.unfurls().len(), 2);
}

#[test]
fn search_answers_each_person_with_only_what_they_may_view() {
    let w = chat_world();

    let ada = command(&w, "U0ADA00001", "search launch", "1.ada");
    let answer = answer_at(&w, &ada);
    assert_eq!(answer.response_type.as_deref(), Some("ephemeral"));
    assert!(!answer.authorization, "no token goes to a response URL");
    let text = shown(&answer);
    assert!(text.contains("Q3 launch plan"), "{text}");
    assert!(
        !text.contains("Launch salaries"),
        "restricted page leaked: {text}"
    );

    let bob = command(&w, "U0BOB00002", "search launch", "2.bob");
    let text = shown(&answer_at(&w, &bob));
    assert!(
        text.contains("Q3 launch plan") && text.contains("Launch salaries"),
        "bob may view both: {text}"
    );

    // Someone Pagehook cannot link to a Confluence user sees no page at all.
    let zed = command(&w, STRANGER, "search launch", "3.zed");
    let text = shown(&answer_at(&w, &zed));
    assert!(
        !text.contains("Q3 launch plan") && !text.contains("Launch salaries"),
        "{text}"
    );
    assert!(
        text.contains("/confluence link"),
        "says how to link: {text}"
    );

    // The search reached Confluence as CQL, the words inside a string.
    let searches = w
        .conf
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/rest/api/content/search?cql="))
        .count();
    assert!(searches >= 1, "the search went to Confluence as CQL");
    assert_eq!(w.slack.responses().len(), 3, "one answer per command");
}

/// The DM channels that received a message, by Slack user id.
fn dms(w: &World) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (_, _, _, slack_id, _) in PEOPLE {
        if let Some(dm) = w.slack.dm_channel(slack_id) {
            for post in w.slack.posts().into_iter().filter(|p| p.channel == dm) {
                out.push((slack_id.to_owned(), post.text.unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

fn page_updated(page: u64, by: &str) -> Vec<u8> {
    json!({
        "timestamp": 1768246501113u64,
        "event": "page_updated",
        "userKey": by,
        "page": {"id": page},
        "updateTrigger": "edit_page"
    })
    .to_string()
    .into_bytes()
}

#[test]
fn personal_notifications_reach_the_people_concerned_once_and_never_the_actor() {
    let w = world(&[
        "--scope",
        "space:ENG",
        "--to",
        "slack:#eng",
        "--to",
        "slack-dm:*",
        "--set",
        "channel=#eng",
        "--set",
        "notify-creator=true",
        "--set",
        "notify-mentioned=true",
        "--set",
        "notify-watchers=true",
    ]);

    // Eve edits PLAN. Carol created it, the new version mentions bob (twice),
    // ada and eve, and dave and eve watch it.
    let (status, answer) = w
        .side
        .hook("prod", &page_updated(PLAN, EVE), Some(HOOK_SECRET));
    assert_eq!(status, 202, "{answer}");
    let got = wait_until(&w, "four DMs about PLAN", || {
        let got = dms(&w);
        (got.len() >= 4).then_some(got)
    });
    // Let anything else that would go out arrive: still four.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(dms(&w), got, "one DM per person");
    let people: Vec<&str> = got.iter().map(|(who, _)| who.as_str()).collect();
    assert_eq!(
        people,
        ["U0ADA00001", "U0BOB00002", "U0CAROL003", "U0DAVE0004"],
        "creator, mentioned and watchers, one DM each, not eve: {got:#?}"
    );
    assert!(
        got.iter().all(|(_, text)| text.contains("Q3 launch plan")),
        "{got:#?}"
    );
    let stored: Value = serde_json::from_str(&w.side.cli(&["events", "--json"])).unwrap();
    let concerned = stored[0]["event"]["people"].to_string();
    assert!(
        !concerned.contains(EVE),
        "the actor is not listed: {concerned}"
    );
    // The channel got its post too.
    assert!(w.slack.posts().iter().any(|p| p.channel == CHANNEL));

    // Eve edits SALARIES (only `hr` may view it). Slack-poster skips the
    // channel post of a restricted page; of the people concerned (carol,
    // ada, bob, dave) only bob is in `hr`.
    let before = dms(&w).len();
    let (status, answer) = w
        .side
        .hook("prod", &page_updated(SALARIES, EVE), Some(HOOK_SECRET));
    assert_eq!(status, 202, "{answer}");
    let got = wait_until(&w, "bob's DM about SALARIES", || {
        let got = dms(&w);
        (got.len() > before).then_some(got)
    });
    // Let anything else that would go out arrive.
    std::thread::sleep(Duration::from_millis(1500));
    let about: Vec<(String, String)> = dms(&w)
        .into_iter()
        .filter(|(_, text)| text.contains("Launch salaries"))
        .collect();
    assert_eq!(
        about,
        [(
            "U0BOB00002".to_owned(),
            about.first().map(|a| a.1.clone()).unwrap_or_default()
        )],
        "only bob may view it: {got:#?}"
    );
    let channel_posts = w
        .slack
        .posts()
        .into_iter()
        .filter(|p| p.channel == CHANNEL && p.text.as_deref().unwrap_or("").contains("salaries"))
        .count();
    assert_eq!(channel_posts, 0);
}
