//! A Teams bot end to end: `pagehook serve` with a `teams-bot` connection,
//! and loopback fakes of Microsoft Entra ID (the bot's token), the Bot
//! Framework's OpenID metadata and signing keys (the tokens on inbound
//! activities) and the Bot Connector (driven by its published Swagger).
//!
//! Inbound: every activity at `/hooks/teams/bot` carries a token the fake
//! minted; the flawed ones (expired, another bot's, another issuer, signed
//! by a key Microsoft does not list, a key not endorsed for Teams, another
//! service URL, tampered, `alg` changed) get 401 and leave nothing stored,
//! and a replayed activity is stored once. Outbound: the greeting when a
//! person installs the bot and personal notifications go through the
//! outbox and the Bot Connector, with the token fetched once and cached,
//! and Teams' 429s retried.

use std::time::Duration;

use crate::common;
use crate::common::people::{ADA, BOB, CAROL, DAVE, EVE};

use common::sidecar::{HOOK_SECRET, PAT, Sidecar};
use pagehook_fakes::{
    ConfluenceAuth, ContentBuilder, FakeConfluence, FakeTeamsBot, Fault, Inbound as TeamsInbound,
    SERVICE_USERNAME, TeamInbound, TeamsUser, TokenSpec, post_activity as post_teams_activity,
};
use serde_json::{Value, json};

const APP: &str = "7b3c1a52-4d6e-4f10-9a8b-1c2d3e4f5a6b";
const TENANT: &str = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";
const SECRET: &str = "teams-bot-client-secret-for-tests";
const WAIT: Duration = Duration::from_secs(20);

/// (username, Confluence key, email, Teams id)
const PEOPLE: [(&str, &str, &str, &str); 5] = [
    ("ada", ADA, "ada@example.com", "29:1ada"),
    ("bob", BOB, "bob@example.com", "29:1bob"),
    ("carol", CAROL, "carol@example.com", "29:1carol"),
    ("dave", DAVE, "dave@example.com", "29:1dave"),
    ("eve", EVE, "eve@example.com", "29:1eve"),
];

struct World {
    teams: FakeTeamsBot,
    side: Sidecar,
}

/// A sidecar with Teams bot `bot` (and, when `confluence` is given, that
/// Confluence as `prod`); `bind` runs before it starts.
fn world(confluence: Option<&FakeConfluence>, bind: &[&[&str]]) -> World {
    let teams = FakeTeamsBot::start();
    teams.register_app(APP, TENANT, SECRET);
    for (name, _, email, id) in PEOPLE {
        teams.add_user(TeamsUser {
            id: id.into(),
            aad_object_id: format!("aad-{name}"),
            name: name.into(),
            email: email.into(),
            user_principal_name: email.into(),
            tenant_id: TENANT.into(),
        });
    }
    let mut side = Sidecar::new();
    side.add_to_config(&format!(
        "[teams-bot]\nopenid-metadata-url = \"{}\"\n",
        teams.openid_metadata_url()
    ));
    let secret = side.path().join("teams-client-secret");
    std::fs::write(&secret, SECRET).unwrap();
    if let Some(conf) = confluence {
        side.connect_confluence("prod", &conf.base_url());
    }
    side.cli(&[
        "connect",
        "teams-bot",
        "bot",
        "--app-id",
        APP,
        "--tenant-id",
        TENANT,
        "--client-secret-file",
        secret.to_str().unwrap(),
        "--login-url",
        &teams.login_base(),
    ]);
    for args in bind {
        side.cli(args);
    }
    side.start();
    World { teams, side }
}

/// Binding teams-poster for personal notifications from Confluence `prod`.
const PERSONAL: &[&str] = &[
    "--source",
    "prod",
    "--to",
    "teams-dm:bot",
    "--set",
    "personal=true",
];

/// A world with `conf` as `prod` and teams-poster installed (granted its
/// Teams actions) and bound with `bind`.
fn with_teams_poster(conf: &FakeConfluence, bind: &[&str]) -> World {
    let mut args = vec!["bind", "teams-poster", "--quiet"];
    args.extend_from_slice(bind);
    let install = install_teams_poster();
    let install: Vec<&str> = install.iter().map(String::as_str).collect();
    world(Some(conf), &[&install, &args])
}

/// `plugin install` of teams-poster, granted its three Teams actions.
fn install_teams_poster() -> Vec<String> {
    let dir = common::plugin_dir("teams-poster");
    [
        "plugin",
        "install",
        dir.to_str().unwrap(),
        "--grant",
        "dm-teams",
        "--grant",
        "reply-teams",
        "--grant",
        "post-teams",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn hook(w: &World) -> String {
    format!("{}/hooks/teams/bot", w.side.base)
}

fn events(w: &World) -> Vec<Value> {
    serde_json::from_str::<Value>(&w.side.cli(&["events", "--json"]))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn sent_to(w: &World, user: &str) -> Vec<pagehook_fakes::TeamsBotMessage> {
    w.teams
        .sent()
        .into_iter()
        .filter(|m| m.user_id == user)
        .collect()
}

#[test]
fn activities_without_a_valid_bot_framework_token_get_401_and_leave_nothing() {
    let w = world(None, &[]);
    let url = hook(&w);
    let activity = w.teams.activity(
        APP,
        "29:1ada",
        TeamsInbound::Message("search launch".into()),
    );
    let service = activity["serviceUrl"].as_str().unwrap().to_owned();

    let none = post_teams_activity(&url, &activity, None);
    assert_eq!(none.status, 401, "{}", none.body);
    for (flaw, spec) in TokenSpec::flawed_variants(APP, &service) {
        let token = w.teams.mint_token(&spec);
        let answer = post_teams_activity(&url, &activity, Some(&token));
        assert_eq!(answer.status, 401, "{flaw}: {}", answer.body);
        assert!(!answer.body.contains(&token), "{flaw}: the token is echoed");
    }
    // Another bot's connection name is nobody's endpoint.
    let token = w.teams.mint_token(&TokenSpec::new(APP, &service));
    let elsewhere = format!("{}/hooks/teams/other", w.side.base);
    assert_eq!(
        post_teams_activity(&elsewhere, &activity, Some(&token)).status,
        404
    );
    assert!(
        events(&w).is_empty(),
        "refused activities were stored: {:?}",
        events(&w)
    );

    // A valid one is stored; Teams sending it again stores nothing more.
    let first = w.teams.deliver(&url, APP, &activity);
    assert_eq!(first.status, 200, "{}", first.body);
    let again = w.teams.deliver(&url, APP, &activity);
    assert_eq!(again.status, 200, "{}", again.body);
    let answer: Value = serde_json::from_str(&again.body).unwrap();
    assert_eq!(answer["duplicate"], true, "{answer}");
    let stored = events(&w);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["source"], "bot");
    // The keys were read once for all of that (cached), and no secret or
    // token reached the store.
    assert_eq!(w.teams.metadata_fetches(), 1);
    let db = std::fs::read(w.side.database()).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains(SECRET));
}

#[test]
fn installing_the_bot_greets_the_person_once_through_the_outbox_despite_429s() {
    let w = world(None, &[]);
    let url = hook(&w);
    // Teams is throttling the conversation: the greeting waits and goes once.
    w.teams.inject(
        "Conversations_SendToConversation",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    let install = w
        .teams
        .activity(APP, "29:1ada", TeamsInbound::InstallationAdd);
    let answer = w.teams.deliver(&url, APP, &install);
    assert_eq!(answer.status, 200, "{}", answer.body);
    // The same installation sent again greets nobody twice.
    assert_eq!(w.teams.deliver(&url, APP, &install).status, 200);

    let greeting = w.side.wait_until("the greeting in Ada's chat", WAIT, || {
        sent_to(&w, "29:1ada").into_iter().next()
    });
    let text = greeting.text.clone().unwrap_or_default();
    assert!(text.contains("Pagehook is connected"), "{text}");
    assert!(text.contains("ada@example.com"), "{text}");
    assert_eq!(
        greeting.conversation_id,
        w.teams.conversation_id_for("29:1ada")
    );
    assert_eq!(greeting.app_id, APP);
    assert_eq!(
        w.teams.faults_left("Conversations_SendToConversation"),
        0,
        "the 429 was served and the greeting retried"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(sent_to(&w, "29:1ada").len(), 1, "greeted twice");
    // One token served the member lookup, the throttled send and the retry.
    assert_eq!(w.teams.tokens_issued(), 1);

    // Removing the bot forgets the conversation: nothing is sent to it.
    let remove = w
        .teams
        .activity(APP, "29:1ada", TeamsInbound::InstallationRemove);
    assert_eq!(w.teams.deliver(&url, APP, &remove).status, 200);
    let deliveries = w.side.cli(&["deliveries", "--json"]);
    assert!(!deliveries.contains(SECRET), "{deliveries}");
}

/// PLAN in ENG: created by carol, mentioning ada; watched by bob, eve and
/// dave, who may not view ENG.
const PLAN: u64 = 5100;

/// Version `version` of PLAN: by carol, naming ada as its owner.
fn put_plan(conf: &FakeConfluence, version: u32) {
    conf.put_content(
        PLAN,
        ContentBuilder::page(PLAN, "ENG", "Q4 launch plan")
            .ancestors(&[])
            .author("carol", CAROL, "carol")
            .version(version)
            .body_storage(&format!(
                r#"<p>Owner: <ac:link><ri:user ri:userkey="{ADA}"/></ac:link>.</p>"#
            ))
            .build(),
    );
}

/// A Confluence with ENG viewable by everyone but dave, and PLAN (its
/// version 1) in it watched by bob, eve and dave; the service account
/// administers ENG and Confluence, so it may list watchers and who may view.
fn confluence_with_plan_dave_may_not_view() -> FakeConfluence {
    let conf = FakeConfluence::start(ConfluenceAuth::Bearer(PAT.into()));
    for (name, key, email, _) in PEOPLE {
        let groups: &[&str] = if name == "dave" {
            &[]
        } else {
            &["confluence-users"]
        };
        conf.add_user(name, key, name, email, "pw", groups);
    }
    conf.grant_space("ENG", "group:confluence-users", &["read"]);
    conf.grant_space("ENG", SERVICE_USERNAME, &["administer"]);
    conf.set_service_confluence_admin(true);
    put_plan(&conf, 1);
    conf.watch(PLAN, "bob");
    conf.watch(PLAN, "eve");
    conf.watch(PLAN, "dave");
    conf
}

#[test]
fn a_new_page_sends_each_person_concerned_one_personal_teams_message_through_429s_and_a_kill() {
    let conf = confluence_with_plan_dave_may_not_view();
    let mut w = with_teams_poster(&conf, PERSONAL);
    for (_, _, _, id) in PEOPLE {
        let install = w.teams.activity(APP, id, TeamsInbound::InstallationAdd);
        assert_eq!(w.teams.deliver(&hook(&w), APP, &install).status, 200);
    }
    w.side.wait_until("everyone greeted", WAIT, || {
        (w.teams.sent().len() >= PEOPLE.len()).then_some(())
    });
    let greeted = w.teams.sent().len();
    // Teams throttles the first three personal messages for a while.
    for _ in 0..3 {
        w.teams.inject(
            "Conversations_SendToConversation",
            Fault::RateLimited {
                retry_after_secs: 2,
            },
        );
    }

    let body = json!({"event": "page_created", "timestamp": 1_700_000_000_000u64,
        "userKey": CAROL, "page": {"id": PLAN}});
    let answer = w
        .side
        .hook("prod", body.to_string().as_bytes(), Some(HOOK_SECRET));
    assert_eq!(answer.0, 202, "{answer:?}");

    // Mid-burst (the messages throttled, waiting to be sent again), the
    // sidecar is killed; the one started after it finishes the burst.
    w.side.wait_until("the burst throttled", WAIT, || {
        (w.teams.faults_left("Conversations_SendToConversation") == 0).then_some(())
    });
    w.side.kill();
    w.side.start();

    // Ada (mentioned), Bob and Eve (watching) hear of it, each once; Carol
    // made it and Dave may not view ENG.
    w.side.wait_until("three personal notifications", WAIT, || {
        (w.teams.sent().len() >= greeted + 3).then_some(())
    });
    std::thread::sleep(Duration::from_millis(2500));
    let notes: Vec<_> = w.teams.sent().into_iter().skip(greeted).collect();
    let mut to: Vec<&str> = notes.iter().map(|m| m.user_id.as_str()).collect();
    to.sort();
    assert_eq!(to, ["29:1ada", "29:1bob", "29:1eve"], "{notes:#?}");
    for note in &notes {
        let shown = format!(
            "{} {}",
            note.text.clone().unwrap_or_default(),
            Value::Array(note.attachments.clone())
        );
        assert!(shown.contains("Q4 launch plan"), "{shown}");
        assert_eq!(
            note.conversation_id,
            w.teams.conversation_id_for(&note.user_id)
        );
    }
    let ada = notes.iter().find(|m| m.user_id == "29:1ada").unwrap();
    assert!(
        ada.text
            .clone()
            .unwrap_or_default()
            .contains("mentioned you"),
        "{:?}",
        ada.text
    );
}

/// What the bot answered to activity `id`, waited for.
fn reply_to(w: &World, id: &str) -> String {
    let reply = w.side.wait_until(&format!("a reply to {id}"), WAIT, || {
        w.teams
            .sent()
            .into_iter()
            .find(|m| m.reply_to_id.as_deref() == Some(id))
    });
    format!(
        "{} {}",
        reply.text.clone().unwrap_or_default(),
        Value::Array(reply.attachments.clone())
    )
}

/// `user` writes `text` to the bot; returns the activity's id.
fn write(w: &World, user: &str, text: &str) -> String {
    let activity = w
        .teams
        .activity(APP, user, TeamsInbound::Message(text.into()));
    let answer = w.teams.deliver(&hook(w), APP, &activity);
    assert_eq!(answer.status, 200, "{}", answer.body);
    activity["id"].as_str().unwrap().to_owned()
}

#[test]
fn search_in_teams_shows_each_person_only_what_they_may_view_and_strangers_how_to_link() {
    let conf = confluence_with_plan_dave_may_not_view();
    let w = with_teams_poster(&conf, &["--source", "bot", "--to", "teams-reply:bot"]);
    w.teams.add_user(TeamsUser {
        id: "29:1zed".into(),
        aad_object_id: "aad-zed".into(),
        name: "zed".into(),
        email: "zed@example.com".into(),
        user_principal_name: "zed@example.com".into(),
        tenant_id: TENANT.into(),
    });
    for id in ["29:1ada", "29:1dave", "29:1zed"] {
        w.teams.install_for(id);
    }

    // Ada may view ENG: she finds the plan.
    let asked = write(&w, "29:1ada", "search launch plan");
    let shown = reply_to(&w, &asked);
    assert!(shown.contains("Q4 launch plan"), "{shown}");
    let event = events(&w)
        .into_iter()
        .find(|e| e["key"].as_str().is_some_and(|k| k.ends_with(&asked)))
        .expect("the message is stored");
    assert_eq!(event["source"], "bot");

    // Dave may not view ENG: the same words find nothing for him.
    let asked = write(&w, "29:1dave", "search launch plan");
    let shown = reply_to(&w, &asked);
    assert!(!shown.contains("Q4 launch plan"), "{shown}");
    assert!(shown.contains("No pages found"), "{shown}");

    // Zed has no Confluence account with his email: nothing, and how to link.
    let asked = write(&w, "29:1zed", "search launch plan");
    let shown = reply_to(&w, &asked);
    assert!(!shown.contains("Q4 launch plan"), "{shown}");
    assert!(shown.contains("Write `link`"), "{shown}");

    // `link` is the host's own: a one-time console link, in his chat only,
    // and nothing stored for plugins.
    let before = events(&w).len();
    let asked = write(&w, "29:1zed", "link");
    let shown = reply_to(&w, &asked);
    assert!(shown.contains("/console/link/"), "{shown}");
    let reply = w
        .teams
        .sent()
        .into_iter()
        .find(|m| m.reply_to_id.as_deref() == Some(asked.as_str()))
        .unwrap();
    assert_eq!(
        reply.conversation_id,
        w.teams.conversation_id_for("29:1zed")
    );
    assert_eq!(events(&w).len(), before, "`link` was stored");
}

#[test]
fn a_teams_bot_is_connected_checked_tested_and_described_for_the_app_catalog() {
    let w = world(None, &[]);
    // Bad input is refused with what to give, and changes nothing.
    for (args, said) in [
        (
            vec!["--app-id", "not-a-guid", "--tenant-id", TENANT],
            "--app-id",
        ),
        (vec!["--app-id", APP, "--tenant-id", "nope"], "--tenant-id"),
    ] {
        let mut all = vec!["connect", "teams-bot", "other"];
        all.extend(args);
        all.extend(["--client-secret", "s"]);
        let out = w.side.cli_output(&all);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(said), "{err}");
    }
    let out = w.side.cli_output(&[
        "connect",
        "teams-bot",
        "other",
        "--app-id",
        APP,
        "--tenant-id",
        TENANT,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("client secret"));
    let listed = w.side.cli(&["connections", "--json"]);
    assert!(!listed.contains("\"other\""), "{listed}");
    assert!(!listed.contains(SECRET), "{listed}");
    assert!(
        listed.contains("teams-bot") && listed.contains(APP),
        "{listed}"
    );

    // The test asks Entra ID for a token, and says so.
    let tested = w.side.cli(&["connection", "test", "bot"]);
    assert!(
        tested.contains("Microsoft Entra ID issues the bot's token"),
        "{tested}"
    );
    assert_eq!(w.teams.tokens_issued(), 1);
    // A wrong secret is Entra's refusal, in words, without the secret.
    let wrong = w.side.path().join("wrong-secret");
    std::fs::write(&wrong, "not-the-secret").unwrap();
    w.side.cli(&[
        "connect",
        "teams-bot",
        "bot",
        "--app-id",
        APP,
        "--tenant-id",
        TENANT,
        "--client-secret-file",
        wrong.to_str().unwrap(),
        "--login-url",
        &w.teams.login_base(),
    ]);
    let out = w.side.cli_output(&["connection", "test", "bot"]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("invalid_client"), "{said}");
    assert!(!said.contains("not-the-secret"), "{said}");

    // The app manifest to upload names the bot, its scopes and commands.
    let manifest: Value = serde_json::from_str(&w.side.cli(&[
        "connection",
        "teams-manifest",
        "bot",
        "--public-url",
        "https://pagehook.example.com",
    ]))
    .unwrap();
    assert_eq!(manifest["bots"][0]["botId"], APP);
    assert_eq!(manifest["bots"][0]["scopes"], json!(["personal", "team"]));
    assert_eq!(manifest["validDomains"], json!(["pagehook.example.com"]));
}

#[test]
fn where_confluence_hides_emails_a_person_who_linked_in_teams_still_gets_their_messages() {
    let conf = confluence_with_plan_dave_may_not_view();
    conf.set_email_visibility(pagehook_fakes::EmailVisibility::Hidden);
    let mut w = with_teams_poster(&conf, PERSONAL);
    let install = w
        .teams
        .activity(APP, "29:1ada", TeamsInbound::InstallationAdd);
    assert_eq!(w.teams.deliver(&hook(&w), APP, &install).status, 200);
    w.side.wait_until("Ada greeted", WAIT, || {
        (!sent_to(&w, "29:1ada").is_empty()).then_some(())
    });
    let page = |version: u64| {
        json!({"event": if version == 1 { "page_created" } else { "page_updated" },
            "timestamp": 1_700_000_000_000u64 + version, "userKey": CAROL,
            "page": {"id": PLAN}, "updateTrigger": "edit_page"})
        .to_string()
    };

    // Confluence shows nobody's email: Ada cannot be matched, nothing is sent.
    let answer = w.side.hook("prod", page(1).as_bytes(), Some(HOOK_SECRET));
    assert_eq!(answer.0, 202, "{answer:?}");
    let stored = w.side.wait_until("the page event dispatched", WAIT, || {
        events(&w)
            .into_iter()
            .find(|e| e["name"] == "page_created" && e["status"] == "dispatched")
    });
    assert!(
        stored["event"]["people"]
            .as_array()
            .is_none_or(|p| p.is_empty()),
        "{stored}"
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(sent_to(&w, "29:1ada").len(), 1, "only the greeting");

    // Ada links herself from Teams; the next page event reaches her.
    let asked = write(&w, "29:1ada", "link");
    let shown = reply_to(&w, &asked);
    let at = shown.find("http").expect("a link");
    let link: String = shown[at..]
        .chars()
        .take_while(|c| !matches!(c, ')' | ' ' | '"'))
        .collect();
    let pages = common::self_link::link_over_http(&link, "ada", "pw", true);
    assert_eq!(pages.last().unwrap().0, 200, "{pages:?}");
    assert!(pages.last().unwrap().1.contains("Teams user"), "{pages:?}");
    let links = w.side.cli(&["links", "--json"]);
    assert!(links.contains("29:1ada") && links.contains(ADA), "{links}");
    // The bot confirms the link in her chat, through the outbox.
    let confirmed = w.side.wait_until("the link confirmed in Teams", WAIT, || {
        sent_to(&w, "29:1ada").into_iter().find(|m| {
            m.reply_to_id.is_none()
                && m.text
                    .as_deref()
                    .is_some_and(|t| t.starts_with("Connected: your Teams account is linked"))
        })
    });
    let text = confirmed.text.unwrap();
    assert!(text.contains("`disconnect`"), "{text}");
    assert_eq!(
        confirmed.conversation_id,
        w.teams.conversation_id_for("29:1ada")
    );
    conf.watch(PLAN, "ada");

    put_plan(&conf, 2);
    let answer = w.side.hook("prod", page(2).as_bytes(), Some(HOOK_SECRET));
    assert_eq!(answer.0, 202, "{answer:?}");
    let note = w.side.wait_until("Ada's personal message", WAIT, || {
        sent_to(&w, "29:1ada").into_iter().find(|m| {
            m.reply_to_id.is_none()
                && m.text
                    .as_deref()
                    .is_some_and(|t| t.contains("Q4 launch plan"))
        })
    });
    assert_eq!(note.conversation_id, w.teams.conversation_id_for("29:1ada"));

    // `disconnect` undoes it, and says so in her chat.
    let asked = write(&w, "29:1ada", "disconnect");
    let shown = reply_to(&w, &asked);
    assert!(shown.starts_with("Disconnected:"), "{shown}");
    let links = w.side.cli(&["links", "--json"]);
    assert!(!links.contains("29:1ada"), "{links}");
    w.side.kill();
}

const TEAM: &str = "19:engineering-general@thread.tacv2";

/// The card action a button of `card` sends (its `Action.Submit` titled `title`).
fn submit_data(card: &Value, title: &str) -> Value {
    fn find(v: &Value, title: &str) -> Option<Value> {
        match v {
            Value::Object(o) => {
                if o.get("type") == Some(&json!("Action.Submit"))
                    && o.get("title") == Some(&json!(title))
                {
                    return o.get("data").cloned();
                }
                o.values().find_map(|v| find(v, title))
            }
            Value::Array(a) => a.iter().find_map(|v| find(v, title)),
            _ => None,
        }
    }
    find(card, title).unwrap_or_else(|| panic!("no `{title}` button in {card}"))
}

#[test]
fn a_bot_added_to_a_team_greets_its_channel_writes_to_members_who_never_wrote_to_it_and_shares_there()
 {
    let conf = confluence_with_plan_dave_may_not_view();
    let install = install_teams_poster();
    let install: Vec<&str> = install.iter().map(String::as_str).collect();
    let channel = "channel=bot/Engineering";
    let pages = [
        "bind",
        "teams-poster",
        "--quiet",
        "--source",
        "prod",
        "--to",
        "teams-dm:bot",
        "--to",
        "teams:bot/Engineering",
        "--set",
        "personal=true",
        "--set",
        channel,
    ];
    let answers = [
        "bind",
        "teams-poster",
        "--quiet",
        "--source",
        "bot",
        "--to",
        "teams-reply:bot",
        "--to",
        "teams:bot/Engineering",
        "--set",
        channel,
    ];
    let w = world(Some(&conf), &[&install, &pages, &answers]);
    // Nobody installed the bot for themselves; Ada adds it to Engineering.
    w.teams.add_team(
        TEAM,
        "Engineering",
        &["29:1ada", "29:1bob", "29:1carol", "29:1eve"],
    );
    for kind in [TeamInbound::InstallationAdd, TeamInbound::BotAdded] {
        let added = w.teams.team_activity(APP, "29:1ada", TEAM, kind);
        let answer = w.teams.deliver(&hook(&w), APP, &added);
        assert_eq!(answer.status, 200, "{}", answer.body);
        // Teams sends the installation again when the answer is slow: one greeting.
        assert_eq!(w.teams.deliver(&hook(&w), APP, &added).status, 200);
    }
    let greeting = w.side.wait_until("the team's channel greeted", WAIT, || {
        w.teams.sent_to_conversation(TEAM).into_iter().next()
    });
    let card = Value::Array(greeting.attachments.clone()).to_string();
    assert!(
        card.contains("Pagehook is connected") && card.contains("Engineering"),
        "{card}"
    );

    // A page concerning Ada (mentioned), Bob and Eve (watching): none of them
    // ever wrote to the bot, so each 1:1 chat is found among the team's
    // members and created; the channel gets the page's card.
    let body = json!({"event": "page_created", "timestamp": 1_700_000_000_000u64,
        "userKey": CAROL, "page": {"id": PLAN}});
    let answer = w
        .side
        .hook("prod", body.to_string().as_bytes(), Some(HOOK_SECRET));
    assert_eq!(answer.0, 202, "{answer:?}");
    w.side.wait_until("three personal messages", WAIT, || {
        (["29:1ada", "29:1bob", "29:1eve"]
            .iter()
            .all(|u| !sent_to(&w, u).is_empty()))
        .then_some(())
    });
    let channel_card = w
        .side
        .wait_until("the page's card in the channel", WAIT, || {
            w.teams.sent_to_conversation(TEAM).into_iter().find(|m| {
                Value::Array(m.attachments.clone())
                    .to_string()
                    .contains("Q4 launch plan")
            })
        });
    assert!(channel_card.reply_to_id.is_none());
    std::thread::sleep(Duration::from_millis(1500));
    for user in ["29:1ada", "29:1bob", "29:1eve"] {
        let got = sent_to(&w, user);
        assert_eq!(got.len(), 1, "{user}: {got:#?}");
        assert_eq!(got[0].conversation_id, w.teams.conversation_id_for(user));
    }
    assert!(sent_to(&w, "29:1carol").is_empty(), "the actor is not told");
    assert!(sent_to(&w, "29:1dave").is_empty(), "dave may not view ENG");
    assert_eq!(w.teams.calls("Conversations_CreateConversation"), 3);
    let lookups = w.teams.calls("Conversations_GetConversationPagedMembers");
    assert_eq!(lookups, 3, "one team roster read per new person");

    // The conversations are kept: the next page event creates none.
    put_plan(&conf, 2);
    let body = json!({"event": "page_updated", "timestamp": 1_700_000_000_002u64,
        "userKey": CAROL, "page": {"id": PLAN}, "updateTrigger": "edit_page"});
    let answer = w
        .side
        .hook("prod", body.to_string().as_bytes(), Some(HOOK_SECRET));
    assert_eq!(answer.0, 202, "{answer:?}");
    w.side.wait_until("the update told to Ada", WAIT, || {
        (sent_to(&w, "29:1ada").len() >= 2).then_some(())
    });
    assert_eq!(w.teams.calls("Conversations_CreateConversation"), 3);
    assert_eq!(
        w.teams.calls("Conversations_GetConversationPagedMembers"),
        lookups
    );

    // Ada shares the page from her card: it is posted to the team's channel
    // through the bot, and she is told where.
    let ada_note = sent_to(&w, "29:1ada").remove(0);
    let share = submit_data(
        &Value::Array(ada_note.attachments.clone()),
        "Share to channel",
    );
    let pressed = w.teams.activity(
        APP,
        "29:1ada",
        TeamsInbound::CardSubmit {
            reply_to_id: ada_note.activity_id.clone(),
            value: share,
        },
    );
    let answer = w.teams.deliver(&hook(&w), APP, &pressed);
    assert_eq!(answer.status, 200, "{}", answer.body);
    // Her card is replaced (the Bot Connector's update of that message):
    // it says where the page went, and offers no second share.
    let replaced = w.side.wait_until("Ada's card replaced", WAIT, || {
        w.teams
            .sent()
            .into_iter()
            .find(|m| m.update && m.activity_id == ada_note.activity_id)
    });
    assert_eq!(replaced.conversation_id, ada_note.conversation_id);
    assert_eq!(
        replaced.text.as_deref(),
        Some("Shared Q4 launch plan to Engineering.")
    );
    let card = Value::Array(replaced.attachments.clone()).to_string();
    assert!(
        card.contains("You shared this page to Engineering"),
        "{card}"
    );
    assert!(!card.contains("Share to channel"), "{card}");
    let shared = w
        .side
        .wait_until("the shared card in the channel", WAIT, || {
            w.teams.sent_to_conversation(TEAM).into_iter().find(|m| {
                Value::Array(m.attachments.clone())
                    .to_string()
                    .contains("shared this page")
            })
        });
    let shown = Value::Array(shared.attachments.clone()).to_string();
    assert!(shown.contains("Q4 launch plan"), "{shown}");

    // Removed from the team, the bot forgets it: a share is a dead letter
    // that says how to fix it.
    let removed = w
        .teams
        .team_activity(APP, "29:1ada", TEAM, TeamInbound::InstallationRemove);
    assert_eq!(w.teams.deliver(&hook(&w), APP, &removed).status, 200);
    let posts_before = w.teams.sent_to_conversation(TEAM).len();
    let again = w.teams.activity(
        APP,
        "29:1ada",
        TeamsInbound::CardSubmit {
            reply_to_id: ada_note.activity_id.clone(),
            value: json!({"action": "share", "page-id": PLAN}),
        },
    );
    assert_eq!(w.teams.deliver(&hook(&w), APP, &again).status, 200);
    let dead = w.side.wait_until("the share a dead letter", WAIT, || {
        let all: Value = serde_json::from_str(&w.side.cli(&["deliveries", "--json"])).unwrap();
        all.as_array()
            .unwrap()
            .iter()
            .find(|d| d["status"] == "dead" && d["kind"] == "post-teams")
            .cloned()
    });
    let error = dead["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("not in a team named `Engineering`"),
        "{dead}"
    );
    assert_eq!(w.teams.sent_to_conversation(TEAM).len(), posts_before);
}
