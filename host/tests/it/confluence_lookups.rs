//! What the host reads from Confluence for contract 0.2.0, against the fake
//! Confluence (which answers as Data Center documents): who may view a page
//! (`source::viewers`), whom a page event concerns (`event.people`), and
//! what a chat event needs (`Enricher::resolve_chat`: the linked user, the
//! pages behind shared links, search results), always only what the person
//! may view.

use std::time::Duration;

use pagehook::confluence::client::{ClientOptions, ConfluenceAuth, ConfluenceClient};
use pagehook::confluence::viewers::{Access, Viewers};
use pagehook::enrich::chat::ChatIdentity;
use pagehook::enrich::{EnrichError, Enricher};
use pagehook::model::{ChatEvent, ChatUser, Concern, Event, PageSummary, Person, SharedLink};
use pagehook::secret::Secret;
use pagehook::source::webhook::{self, Payload, Webhook};
use pagehook_fakes::{
    ConfluenceAuth as FakeAuth, ContentBuilder, FakeConfluence, Fault, SERVICE_USERNAME, endpoints,
};

const PAT: &str = "lookups-pat";
const ADA: &str = "8a7f80839e460b0f019e460ba6440001"; // the fixtures' creator
const BOB: &str = "key-bob-0002";
const CAROL: &str = "key-carol-0003";
const DAVE: &str = "key-dave-0004";
const ERIN: &str = "key-erin-0005";
const NOMAIL: &str = "key-nomail-0006";
const ROOT: u64 = 500;
const PARENT: u64 = 600;
const PAGE: u64 = 700;
const COMMENT: u64 = 701;
const SECRET_PAGE: u64 = 800;

fn fake() -> FakeConfluence {
    let fake = FakeConfluence::start(FakeAuth::Bearer(PAT.into()));
    let users = [
        ("ada", ADA, "ada@example.com", &["confluence-users"][..]),
        (
            "bob",
            BOB,
            "bob@example.com",
            &["confluence-users", "leads"][..],
        ),
        (
            "carol",
            CAROL,
            "carol@example.com",
            &["confluence-users"][..],
        ),
        ("dave", DAVE, "dave@example.com", &["confluence-users"][..]),
        ("erin", ERIN, "erin@example.com", &["contractors"][..]),
        ("nomail", NOMAIL, "", &["confluence-users"][..]),
    ];
    for (name, key, email, groups) in users {
        fake.add_user(name, key, name, email, "pw", groups);
    }
    fake.grant_space("ENG", "group:confluence-users", &["read"]);
    // The service account administers ENG: it may read the space's
    // permissions and its pages' watchers.
    fake.grant_space("ENG", SERVICE_USERNAME, &["administer"]);
    fake.put_content(
        ROOT,
        ContentBuilder::page(ROOT, "ENG", "Engineering Home")
            .ancestors(&[])
            .build(),
    );
    fake.put_content(
        PARENT,
        ContentBuilder::page(PARENT, "ENG", "Releases")
            .ancestors(&[(ROOT, "Engineering Home")])
            .build(),
    );
    fake.put_content(
        PAGE,
        ContentBuilder::page(PAGE, "ENG", "Q3 launch checklist")
            .ancestors(&[(ROOT, "Engineering Home"), (PARENT, "Releases")])
            .body_storage(&format!(
                r#"<p>Over to <ac:link><ri:user ri:userkey="{BOB}" /></ac:link> and <ac:link><ri:user ri:username="carol"/></ac:link>;
                <ac:link><ri:user ri:userkey="{NOMAIL}"/></ac:link> <ac:link><ri:user ri:username="erin"/></ac:link></p>
                <ac:structured-macro ac:name="code"><ac:plain-text-body><![CDATA[<ri:user ri:userkey="{DAVE}"/>]]></ac:plain-text-body></ac:structured-macro>"#
            ))
            .build(),
    );
    fake.put_content(
        COMMENT,
        ContentBuilder::comment(COMMENT, PAGE, "Q3 launch checklist", "ENG")
            .author("dave", DAVE, "dave")
            .body_storage(&format!(r#"<p><ri:user ri:userkey="{CAROL}"/> agreed</p>"#))
            .build(),
    );
    fake.put_content(
        SECRET_PAGE,
        ContentBuilder::page(SECRET_PAGE, "ENG", "Launch salaries")
            .ancestors(&[(ROOT, "Engineering Home")])
            .body_storage("<p>launch budget</p>")
            .build(),
    );
    fake.set_read_restrictions(SECRET_PAGE, &[], &["hr"]);
    fake.watch(PAGE, "dave");
    fake.watch(PAGE, "bob");
    fake.watch(PAGE, "erin");
    fake
}

fn client(fake: &FakeConfluence) -> ConfluenceClient {
    ConfluenceClient::new(
        &fake.base_url(),
        ConfluenceAuth::Bearer(Secret::new(PAT)),
        ClientOptions {
            attempts: 1,
            ..ClientOptions::default()
        },
    )
}

fn enricher(fake: &FakeConfluence) -> Enricher {
    Enricher::new("prod", client(fake), Duration::from_secs(60))
}

fn hook(body: &str) -> Webhook {
    match webhook::parse(body.as_bytes()).unwrap() {
        Payload::Event(hook) => *hook,
        Payload::Test => unreachable!(),
    }
}

fn page_updated(actor: &str) -> Webhook {
    hook(&format!(
        r#"{{"timestamp":1,"event":"page_updated","userKey":"{actor}","page":{{"id":{PAGE}}}}}"#
    ))
}

fn people(event: &Event) -> Vec<(String, Vec<Concern>)> {
    event
        .people
        .iter()
        .map(|p| {
            assert!(p.person.email.is_some(), "{p:?}");
            (p.person.key.clone(), p.concerns.clone())
        })
        .collect()
}

fn someone(key: &str, username: &str) -> Person {
    Person {
        key: key.into(),
        username: Some(username.into()),
        display_name: None,
        email: None,
    }
}

#[tokio::test]
async fn people_are_creator_mentioned_and_watchers_who_may_view_never_the_actor() {
    let fake = fake();
    let e = enricher(&fake);
    let event = e.enrich("e1", &page_updated(CAROL)).await.unwrap();
    assert!(event.enriched);
    assert_eq!(
        people(&event),
        vec![
            (ADA.to_owned(), vec![Concern::Creator]),
            (BOB.to_owned(), vec![Concern::Mentioned, Concern::Watcher]),
            (DAVE.to_owned(), vec![Concern::Watcher]),
        ],
        "carol is the actor, erin may not view ENG, nomail has no email, \
         dave's mention is inside a code block"
    );
    // Someone else edits: carol is mentioned again.
    let event = e.enrich("e2", &page_updated(ADA)).await.unwrap();
    let keys: Vec<String> = people(&event).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![BOB, CAROL, DAVE]);

    // A restriction on the parent (inherited, not on the page itself)
    // leaves only the people it lets in.
    fake.set_read_restrictions(PARENT, &["dave"], &["leads"]);
    let fresh = enricher(&fake);
    let event = fresh.enrich("e3", &page_updated(ADA)).await.unwrap();
    assert!(event.content.as_ref().unwrap().restricted);
    assert_eq!(
        people(&event),
        vec![
            (BOB.to_owned(), vec![Concern::Mentioned, Concern::Watcher]),
            (DAVE.to_owned(), vec![Concern::Watcher]),
        ]
    );
}

#[tokio::test]
async fn a_comment_concerns_its_creator_mentions_and_the_pages_watchers() {
    let fake = fake();
    let e = enricher(&fake);
    let comment = hook(&format!(
        r#"{{"timestamp":1,"event":"comment_created","userKey":"{BOB}","comment":{{"id":{COMMENT}}}}}"#
    ));
    let event = e.enrich("e1", &comment).await.unwrap();
    assert_eq!(
        people(&event),
        vec![
            (DAVE.to_owned(), vec![Concern::Creator, Concern::Watcher]),
            (CAROL.to_owned(), vec![Concern::Mentioned]),
        ]
    );
    // Label events are not page events: nobody is listed.
    let label = hook(&format!(
        r#"{{"timestamp":1,"event":"label_added","userKey":"{BOB}","label":{{"name":"x"}},"labeled":{{"id":{PAGE}}}}}"#
    ));
    let event = e.enrich("e2", &label).await.unwrap();
    assert!(event.people.is_empty(), "{:?}", event.people);
}

#[tokio::test]
async fn watchers_refused_are_unknown_but_failures_worth_retrying_defer() {
    let fake = fake();
    let e = enricher(&fake);
    fake.inject(endpoints::WATCHERS, Fault::Status(403));
    let event = e.enrich("e1", &page_updated(CAROL)).await.unwrap();
    let keys: Vec<String> = people(&event).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![ADA, BOB], "no watchers, the event goes on");

    // Not a space admin: Confluence refuses watchers and space permissions
    // alike, so nobody can be shown to be allowed.
    fake.revoke_space("ENG", SERVICE_USERNAME);
    let event = enricher(&fake)
        .enrich("e2", &page_updated(CAROL))
        .await
        .unwrap();
    assert!(event.enriched);
    assert!(event.people.is_empty(), "{:?}", event.people);

    let fake = self::fake();
    let e = enricher(&fake);
    fake.inject(endpoints::WATCHERS, Fault::Status(503));
    let err = e.enrich("e3", &page_updated(CAROL)).await.unwrap_err();
    assert!(matches!(err, EnrichError::Transient { .. }), "{err:?}");
    fake.inject(endpoints::MEMBER_OF, Fault::Status(502));
    let err = e.enrich("e4", &page_updated(CAROL)).await.unwrap_err();
    assert!(matches!(err, EnrichError::Transient { .. }), "{err:?}");
    // Users and groups are cached: a second event reads neither again.
    let event = e.enrich("e5", &page_updated(CAROL)).await.unwrap();
    assert_eq!(event.people.len(), 3);
    let (users, groups) = (
        fake.calls(endpoints::GET_USER),
        fake.calls(endpoints::MEMBER_OF),
    );
    e.enrich("e6", &page_updated(CAROL)).await.unwrap();
    assert_eq!(fake.calls(endpoints::GET_USER), users);
    assert_eq!(fake.calls(endpoints::MEMBER_OF), groups);
}

#[tokio::test]
async fn viewing_needs_the_space_and_every_restricted_level() {
    let fake = fake();
    let c = client(&fake);
    let viewers = Viewers::new("prod", c.clone(), Duration::from_millis(1));
    let check = |key: &'static str, name: &'static str| {
        let c = c.clone();
        let viewers = &viewers;
        async move {
            let json = c.content(PAGE).await.unwrap().unwrap();
            let r = viewers.restrictions(&json).await.unwrap();
            tokio::time::sleep(Duration::from_millis(3)).await; // past the cache
            viewers
                .access(&someone(key, name), "ENG", r.as_ref())
                .await
                .unwrap()
        }
    };
    assert_eq!(check(BOB, "bob").await, Access::Allowed);
    assert_eq!(check(ERIN, "erin").await, Access::Denied, "no space read");
    fake.grant_space("ENG", "erin", &["read"]);
    assert_eq!(check(ERIN, "erin").await, Access::Allowed, "a direct grant");

    fake.set_read_restrictions(ROOT, &["erin"], &["leads"]);
    assert_eq!(check(ERIN, "erin").await, Access::Allowed, "listed by name");
    assert_eq!(check(BOB, "bob").await, Access::Allowed, "through leads");
    assert_eq!(check(CAROL, "carol").await, Access::Denied);
    fake.set_read_restrictions(PAGE, &["carol"], &[]);
    assert_eq!(
        check(CAROL, "carol").await,
        Access::Denied,
        "listed on the page but not on the root"
    );
    assert_eq!(check(BOB, "bob").await, Access::Denied, "not on the page");

    // Ancestors that come back unexpanded are read one by one.
    fake.set_read_restrictions(PAGE, &[], &[]);
    fake.set_nested_ancestor_expansion(false);
    assert_eq!(check(BOB, "bob").await, Access::Allowed);
    assert_eq!(check(CAROL, "carol").await, Access::Denied);
    fake.remove_content(PARENT);
    assert_eq!(check(BOB, "bob").await, Access::NotKnown, "cannot tell");

    // Without the space's permissions nothing is allowed.
    let fake = self::fake();
    let viewers = Viewers::new("prod", client(&fake), Duration::from_secs(60));
    fake.revoke_space("ENG", SERVICE_USERNAME);
    let json = client(&fake).content(PAGE).await.unwrap().unwrap();
    let r = viewers.restrictions(&json).await.unwrap();
    assert_eq!(
        viewers
            .access(&someone(BOB, "bob"), "ENG", r.as_ref())
            .await
            .unwrap(),
        Access::NotKnown
    );
    assert_eq!(
        viewers
            .access(&someone(BOB, "bob"), "ENG", None)
            .await
            .unwrap(),
        Access::NotKnown
    );
}

fn link_event(links: &[String]) -> ChatEvent {
    ChatEvent::LinkShared {
        channel: "C1".into(),
        message_ts: "1.2".into(),
        user: ChatUser {
            id: "U1".into(),
            team_id: "T1".into(),
            confluence: None,
        },
        links: links
            .iter()
            .map(|u| SharedLink {
                url: u.clone(),
                page: None,
            })
            .collect(),
    }
}

fn pages(chat: &ChatEvent) -> (Option<String>, Vec<Option<u64>>) {
    match chat {
        ChatEvent::LinkShared { user, links, .. } => (
            user.confluence.as_ref().map(|p| p.key.clone()),
            links
                .iter()
                .map(|l| l.page.as_ref().map(|p| p.id))
                .collect(),
        ),
        _ => unreachable!("a link-shared event"),
    }
}

#[tokio::test]
async fn shared_links_show_only_pages_the_linked_user_may_view() {
    let fake = fake();
    fake.set_service_confluence_admin(true);
    let base = fake.base_url();
    let links = vec![
        format!("{base}/spaces/ENG/pages/{PAGE}/Q3+launch+checklist"),
        format!("{base}/pages/viewpage.action?pageId={SECRET_PAGE}"),
        format!("{base}/display/ENG/Q3+launch+checklist"),
        format!("{base}/x/vAI"), // 700
        "https://elsewhere.example.com/pages/viewpage.action?pageId=700".to_owned(),
        format!("{base}/pages/viewpage.action?pageId={COMMENT}"),
        format!("{base}/pages/viewpage.action?pageId=999999"),
    ];
    let e = enricher(&fake);
    let mut chat = link_event(&links);
    e.resolve_chat(ChatIdentity::Email(Some("Bob@Example.com")), &mut chat)
        .await
        .unwrap();
    assert_eq!(
        pages(&chat),
        (
            Some(BOB.to_owned()),
            vec![Some(PAGE), None, Some(PAGE), Some(PAGE), None, None, None]
        )
    );
    let ChatEvent::LinkShared { links: got, .. } = &chat else {
        unreachable!()
    };
    let summary: &PageSummary = got[0].page.as_ref().unwrap();
    assert_eq!(summary.title, "Q3 launch checklist");
    assert_eq!(summary.space_key, "ENG");
    assert_eq!(summary.content_type, "page");
    assert!(
        summary
            .url
            .ends_with(&format!("/spaces/ENG/pages/{PAGE}/Q3+launch+checklist"))
    );
    assert_eq!(
        summary.last_editor.as_ref().map(|p| p.key.as_str()),
        Some(ADA)
    );
    assert_eq!(summary.last_edited_at_ms, Some(1_768_246_501_100));
    assert!(!summary.restricted);

    // Someone in hr sees the restricted page, marked restricted.
    fake.add_to_group("dave", "hr");
    let mut chat = link_event(&links[1..2]);
    enricher(&fake)
        .resolve_chat(ChatIdentity::Email(Some("dave@example.com")), &mut chat)
        .await
        .unwrap();
    let ChatEvent::LinkShared { links: got, .. } = &chat else {
        unreachable!()
    };
    assert!(got[0].page.as_ref().unwrap().restricted);

    // Nobody with that email, or no email: not linked, no pages.
    for email in [Some("stranger@example.com"), None, Some("  ")] {
        let mut chat = link_event(&links);
        e.resolve_chat(ChatIdentity::Email(email), &mut chat)
            .await
            .unwrap();
        let (user, found) = pages(&chat);
        assert_eq!(user, None, "{email:?}");
        assert!(found.iter().all(Option::is_none));
    }

    // Confluence will not list its users: nobody is linked.
    let fake = self::fake();
    let mut chat = link_event(&[format!("{}/x/vAI", fake.base_url())]);
    enricher(&fake)
        .resolve_chat(ChatIdentity::Email(Some("bob@example.com")), &mut chat)
        .await
        .unwrap();
    assert_eq!(pages(&chat), (None, vec![None]));
    assert_eq!(fake.calls(endpoints::ACTIVE_USERS), 1);
    assert_eq!(
        fake.calls(endpoints::GET_CONTENT),
        0,
        "nothing read for nobody"
    );
}

fn slash(text: &str) -> ChatEvent {
    ChatEvent::SlashCommand {
        command: "/confluence".into(),
        text: text.into(),
        user: ChatUser {
            id: "U1".into(),
            team_id: "T1".into(),
            confluence: None,
        },
        channel: "C1".into(),
        response_url: "https://hooks.slack.com/commands/T1/1/x".into(),
        results: vec![],
    }
}

fn results(chat: &ChatEvent) -> Vec<u64> {
    match chat {
        ChatEvent::SlashCommand { results, .. } => results.iter().map(|p| p.id).collect(),
        _ => unreachable!("a slash command"),
    }
}

#[tokio::test]
async fn search_finds_only_what_the_user_may_view_at_most_ten() {
    let fake = fake();
    fake.set_service_confluence_admin(true);
    for i in 0..14u64 {
        let id = 1000 + i;
        fake.put_content(
            id,
            ContentBuilder::page(id, "ENG", &format!("Rollout note {i}"))
                .ancestors(&[])
                .body_storage("<p>the rollout plan</p>")
                .build(),
        );
        if i % 4 == 0 {
            fake.set_read_restrictions(id, &[], &["hr"]);
        }
    }
    let e = enricher(&fake);
    let mut chat = slash("SEARCH launch");
    e.resolve_chat(ChatIdentity::Email(Some("bob@example.com")), &mut chat)
        .await
        .unwrap();
    assert_eq!(results(&chat), vec![PAGE], "not the hr-only page");

    let mut chat = slash("search Rollout PLAN");
    e.resolve_chat(ChatIdentity::Email(Some("bob@example.com")), &mut chat)
        .await
        .unwrap();
    let found = results(&chat);
    assert_eq!(found.len(), 10, "{found:?}");
    assert!(found.iter().all(|id| (id - 1000) % 4 != 0), "{found:?}");

    // The words are data: quotes, backslashes and CQL can't leave the string
    // (the fake refuses CQL it cannot parse with 400).
    fake.put_content(
        1100,
        ContentBuilder::page(1100, "ENG", "Odd words")
            .ancestors(&[])
            .body_storage("<p>rollout or space hr</p>")
            .build(),
    );
    let mut chat = slash(r#"search rollout" or space = "HR\"#);
    e.resolve_chat(ChatIdentity::Email(Some("bob@example.com")), &mut chat)
        .await
        .unwrap();
    assert_eq!(results(&chat), vec![1100]);
    let sent = fake
        .requests()
        .into_iter()
        .rfind(|r| r.endpoint.as_deref() == Some(endpoints::CQL_SEARCH))
        .unwrap();
    assert!(
        sent.path
            .contains("cql=text%20~%20%22rollout%20or%20space%20hr%22%20and%20type%20in%20%28page%2C%20blogpost%29"),
        "{}",
        sent.path
    );

    // Not a search, or not linked: nothing is searched.
    let before = fake.calls(endpoints::CQL_SEARCH);
    for (text, email) in [
        ("help", Some("bob@example.com")),
        ("search   ", Some("bob@example.com")),
        ("search launch", None),
    ] {
        let mut chat = slash(text);
        e.resolve_chat(ChatIdentity::Email(email), &mut chat)
            .await
            .unwrap();
        assert!(results(&chat).is_empty(), "{text}");
    }
    assert_eq!(fake.calls(endpoints::CQL_SEARCH), before);
}

#[tokio::test]
async fn the_fake_refuses_cql_it_cannot_parse() {
    let fake = fake();
    let http = reqwest::Client::new();
    for (cql, status) in [
        (r#"text ~ "launch" and type in (page, blogpost)"#, 200),
        (r#"text ~ "launch"#, 400),
        (r#"text ~ "a" or space = "HR""#, 400),
        (r#"nonsense ~ "a""#, 400),
    ] {
        let r = http
            .get(format!("{}/rest/api/content/search", fake.base_url()))
            .query(&[("cql", cql)])
            .bearer_auth(PAT)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{cql}");
    }
    let r = http
        .get(format!(
            "{}/rest/api/content/{PAGE}/watchers",
            fake.base_url()
        ))
        .basic_auth("bob", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        403,
        "only administrators list watchers"
    );
}

const RETRO: &str = r#"<h1>Retrospective</h1><p>{{ incident.title }}</p>"#;

fn retro_manifest() -> pagehook::manifest::Manifest {
    pagehook::manifest::Manifest::parse(
        r#"name = "retro"
version = "0.1.0"
description = "test"
wit = "0.2.0"
component = "retro.wasm"
events = ["page-created"]
actions = ["create-page"]

[settings.space-template]
description = "A page template of the space"
confluence-template = true

[settings.title]
description = "Title"
default = "Retro"
"#,
    )
    .unwrap()
}

fn confluence_connection(fake: &FakeConfluence, name: &str) -> pagehook::store::ConnectionRecord {
    pagehook::store::ConnectionRecord {
        name: name.into(),
        kind: pagehook::store::ConnectionKind::Confluence,
        url: fake.base_url(),
        username: None,
        secret: Some(pagehook::secret::SecretSource::Value(PAT.into())),
        hook_secret: None,
        app_token: None,
        dry_run: false,
        created_at: 0,
        health: None,
        token: None,
        confluence: None,
        app_id: None,
        tenant_id: None,
        proxy: None,
    }
}

#[tokio::test]
async fn a_template_setting_reaches_the_plugin_as_the_templates_current_body() {
    use pagehook::{confluence::templates::TemplateError, enrich::template_settings::fill};
    let fake = fake();
    fake.put_template("ENG", "Retrospective", RETRO);
    fake.put_template("ENG", "Other", "<p>other</p>");
    let manifest = retro_manifest();
    let settings = vec![
        ("space-template".to_owned(), "Retrospective".to_owned()),
        ("title".to_owned(), "Retro".to_owned()),
    ];
    let e = Enricher::new("prod", client(&fake), Duration::from_millis(50));
    let filled = fill(&manifest, Some("ENG"), settings.clone(), Some(&e))
        .await
        .unwrap();
    assert_eq!(
        filled,
        vec![
            ("space-template".to_owned(), RETRO.to_owned()),
            ("title".to_owned(), "Retro".to_owned()),
        ]
    );
    let sent = fake
        .requests()
        .into_iter()
        .find(|r| r.endpoint.as_deref() == Some(endpoints::PAGE_TEMPLATES))
        .unwrap();
    assert!(sent.path.contains("spaceKey=ENG") && sent.path.contains("expand=body"));

    // Cached for the TTL, then read again: an edit is picked up.
    fake.put_template("ENG", "Retrospective", "<p>v2</p>");
    let again = fill(&manifest, Some("ENG"), settings.clone(), Some(&e))
        .await
        .unwrap();
    assert_eq!(again[0].1, RETRO, "within the TTL");
    tokio::time::sleep(Duration::from_millis(60)).await;
    let again = fill(&manifest, Some("ENG"), settings.clone(), Some(&e))
        .await
        .unwrap();
    assert_eq!(again[0].1, "<p>v2</p>");

    // Confluence unreachable: the last known body.
    tokio::time::sleep(Duration::from_millis(60)).await;
    fake.inject(endpoints::PAGE_TEMPLATES, Fault::Status(503));
    let again = fill(&manifest, Some("ENG"), settings.clone(), Some(&e))
        .await
        .unwrap();
    assert_eq!(again[0].1, "<p>v2</p>");
    // ...and with none known, it cannot be had now.
    let fresh = enricher(&fake);
    fake.inject(endpoints::PAGE_TEMPLATES, Fault::Status(503));
    let err = fill(&manifest, Some("ENG"), settings.clone(), Some(&fresh))
        .await
        .unwrap_err();
    assert!(matches!(err, TemplateError::Unavailable { .. }), "{err:?}");
    assert!(!err.to_string().contains(PAT));

    // Deleted: a clear error, whatever was known.
    tokio::time::sleep(Duration::from_millis(60)).await;
    fake.remove_template("ENG", "Retrospective");
    let err = fill(&manifest, Some("ENG"), settings.clone(), Some(&e))
        .await
        .unwrap_err();
    assert!(matches!(err, TemplateError::NotFound(_)), "{err:?}");
    assert!(err.to_string().contains("Other"), "{err}");

    // Another space's template, named with its key; no token, no body.
    fake.put_template("OPS", "Postmortem", "<p>pm</p>");
    let other = vec![("space-template".to_owned(), "OPS:Postmortem".to_owned())];
    let filled = fill(&manifest, None, other.clone(), Some(&e))
        .await
        .unwrap();
    assert_eq!(filled[0].1, "<p>pm</p>");
    assert!(fill(&manifest, None, other, None).await.is_err());
    let unscoped = vec![("space-template".to_owned(), "Postmortem".to_owned())];
    assert!(matches!(
        fill(&manifest, None, unscoped, Some(&e)).await,
        Err(TemplateError::Invalid(_))
    ));
}

#[tokio::test]
async fn binding_to_a_template_that_does_not_exist_is_refused() {
    use pagehook::confluence::templates::check_settings;
    let fake = fake();
    fake.put_template("ENG", "Retrospective", RETRO);
    let manifest = retro_manifest();
    let conns = vec![confluence_connection(&fake, "prod")];
    let set = |v: &str| vec![("space-template".to_owned(), v.to_owned())];
    check_settings(&manifest, Some("ENG"), &set("Retrospective"), &conns, None)
        .await
        .unwrap();
    check_settings(
        &manifest,
        None,
        &set("ENG:Retrospective"),
        &conns,
        Some("prod"),
    )
    .await
    .unwrap();
    let err = check_settings(&manifest, Some("ENG"), &set("Retro"), &conns, None)
        .await
        .unwrap_err();
    assert!(
        err.contains("no page template `Retro`") && err.contains("Retrospective"),
        "{err}"
    );
    let err = check_settings(&manifest, None, &set("NOPE:Retro"), &conns, None)
        .await
        .unwrap_err();
    assert!(err.contains("`NOPE` does not exist"), "{err}");
    // Settings that name no template need no Confluence at all.
    check_settings(&manifest, None, &[("title".into(), "x".into())], &[], None)
        .await
        .unwrap();
    // Which connection: the named one, or the only one with a token.
    let err = check_settings(
        &manifest,
        Some("ENG"),
        &set("Retrospective"),
        &conns,
        Some("qa"),
    )
    .await
    .unwrap_err();
    assert!(err.contains("`qa` has none"), "{err}");
    let two = vec![
        confluence_connection(&fake, "prod"),
        confluence_connection(&fake, "qa"),
    ];
    let err = check_settings(&manifest, Some("ENG"), &set("Retrospective"), &two, None)
        .await
        .unwrap_err();
    assert!(err.contains("--source"), "{err}");
    // Confluence down: the name cannot be checked, so it is not saved.
    fake.inject(endpoints::PAGE_TEMPLATES, Fault::Status(503));
    fake.inject(endpoints::PAGE_TEMPLATES, Fault::Status(503));
    fake.inject(endpoints::PAGE_TEMPLATES, Fault::Status(503));
    let err = check_settings(&manifest, Some("ENG"), &set("Retrospective"), &conns, None)
        .await
        .unwrap_err();
    assert!(err.contains("503"), "{err}");
}
