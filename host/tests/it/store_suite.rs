//! One store test suite, run unchanged against both backends: the embedded
//! SQLite file and a real PostgreSQL server (started by the test harness in
//! a temporary directory; no mock). Each test gets a fresh database.
//!
//! What a backend must do is what these tests say: the same rows, the same
//! refusals, and the same claim rules (a claim's token, its lease, one
//! head per lane, the dispatch watermark, Slack's rates kept in the store).

use std::collections::BTreeMap;
use std::sync::Arc;

use pagehook::config::{Database, PostgresConfig};
use pagehook::model::{Action, Event, EventKind};
use pagehook::secret::SecretSource;
use pagehook::store::ingest::Ingest;
use pagehook::store::{
    AttemptResult, BreakerPolicy, Claim, ConnectionKind, ConnectionRecord, DeliveryStatus,
    Dispatched, EventStatus, NewBinding, NewDelivery, NewEvent, Outcome, PluginCall, PluginRecord,
    RateKeys, RatePolicy, Scope, SendSlot, Store, StoreError,
};
use pagehook::store::{ChangeQuery, DeliveryQuery, EventQuery, NewChange, NewSession};
use pagehook::store::{LinkMethod, NewLinkToken, VerifiedPerson};
use pagehook_fakes::postgres::TestPostgres;
use tokio::sync::Notify;

/// A fresh store of one backend; the temp dir lives as long as the store is used.
pub(crate) struct Fresh {
    pub(crate) store: Store,
    _dir: Option<tempfile::TempDir>,
}

pub(crate) async fn sqlite() -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&Database::Sqlite(dir.path().join("p.db")))
        .await
        .unwrap();
    Fresh {
        store,
        _dir: Some(dir),
    }
}

fn postgres_config() -> PostgresConfig {
    let pg = TestPostgres::shared();
    PostgresConfig {
        url: pg.url(&pg.fresh_database()),
        password: Some(SecretSource::Value(pg.password().to_owned())),
        max_connections: 4,
    }
}

pub(crate) async fn postgres() -> Fresh {
    let store = Store::open(&Database::Postgres(postgres_config()))
        .await
        .unwrap();
    Fresh { store, _dir: None }
}

/// Defines each test once per backend: `sqlite::name` and `postgres::name`.
macro_rules! suite {
    ($( async fn $name:ident($store:ident: &Store) $body:block )*) => {
        $( async fn $name($store: &Store) $body )*
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let fresh = super::sqlite().await;
                    super::$name(&fresh.store).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let fresh = super::postgres().await;
                    super::$name(&fresh.store).await;
                }
            )*
        }
    };
}

/// slack-poster's manifest installed as `name`, granted `post-slack`.
fn plugin(name: &str) -> PluginRecord {
    PluginRecord {
        name: name.into(),
        ..pagehook::testing::plugin(
            pagehook::testing::bundled_manifest("slack-poster"),
            &["post-slack"],
        )
    }
}

fn new_event(key: &str) -> NewEvent {
    NewEvent {
        key: key.into(),
        source: "prod".into(),
        name: "page_created".into(),
        payload: r#"{"event":"page_created"}"#.into(),
        dispatchable: true,
    }
}

fn enriched(id: i64) -> Event {
    Event {
        id: format!("e{id}"),
        kind: EventKind::PageCreated,
        name: "page_created".into(),
        occurred_at_ms: 0,
        source: "prod".into(),
        actor: None,
        by_pagehook: false,
        content: None,
        update_trigger: None,
        label: None,
        enriched: true,
        people: vec![],
        chat: None,
    }
}

fn post(channel: &str, text: &str) -> NewDelivery {
    NewDelivery {
        binding_id: 1,
        plugin: "poster".into(),
        destination: format!("slack:acme/{channel}"),
        action: Action::PostSlack {
            channel: channel.into(),
            text: text.into(),
            blocks: None,
            thread_key: None,
        },
        dry_run: false,
        lane: format!("slack:acme/{}", channel.trim_start_matches('#')),
        source: "prod".into(),
        connection: Some("acme".into()),
    }
}

fn dispatched(event_id: i64, deliveries: Vec<NewDelivery>) -> Dispatched {
    Dispatched {
        event_id,
        event: enriched(event_id),
        deliveries,
        audit: vec![],
        failures: vec![],
        calls: vec![PluginCall {
            plugin: "poster".into(),
            succeeded: true,
            error: None,
        }],
    }
}

const BREAKER: BreakerPolicy = BreakerPolicy {
    threshold: 3,
    cooldown_ms: 60_000,
};

/// No rate limit worth the name: these tests are about claims.
fn fast() -> RatePolicy {
    RatePolicy::per_second(1_000_000.0, 1_000_000.0)
}

async fn ingest(store: &Store, keys: &[&str]) -> Vec<i64> {
    let ingest = Ingest::start(store, Arc::new(Notify::new())).unwrap();
    let mut ids = Vec::new();
    for k in keys {
        ids.push(ingest.insert(new_event(k)).await.unwrap().id);
    }
    ids
}

/// Ingests events and dispatches each into the given deliveries.
async fn outbox(store: &Store, per_event: Vec<Vec<NewDelivery>>) -> Vec<i64> {
    let keys: Vec<String> = (0..per_event.len()).map(|i| format!("k{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let ids = ingest(store, &keys).await;
    let claim = Claim::new("dispatcher", 60_000);
    let claimed = store.claim_events(&claim, 1000).await.unwrap();
    assert_eq!(claimed.len(), ids.len());
    let batch: Vec<Dispatched> = ids
        .iter()
        .zip(per_event)
        .map(|(id, d)| dispatched(*id, d))
        .collect();
    assert_eq!(
        store
            .finish_dispatch(&claim, &batch, BREAKER)
            .await
            .unwrap(),
        ids.len()
    );
    ids
}

fn sent(id: i64, ts: &str) -> AttemptResult {
    AttemptResult {
        delivery_id: id,
        started_at: 1,
        outcome: Outcome::Sent {
            result: ts.into(),
            thread: None,
        },
        latency_ms: 3,
        sent_at: Some(2),
    }
}

/// Dispatches the events `spaces` describes (space key, page id, title),
/// one delivery each to `slack:acme/#<space lowercased>`; their ids.
async fn in_spaces(store: &Store, spaces: &[(&str, u64, &str)]) -> Vec<i64> {
    let keys: Vec<String> = (0..spaces.len()).map(|i| format!("s{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let ids = ingest(store, &keys).await;
    let claim = Claim::new("dispatcher", 60_000);
    store.claim_events(&claim, 1000).await.unwrap();
    let batch: Vec<Dispatched> = ids
        .iter()
        .zip(spaces)
        .map(|(id, (space, page, title))| {
            let mut d = dispatched(
                *id,
                vec![post(&format!("#{}", space.to_lowercase()), title)],
            );
            d.event.content = Some(
                serde_json::from_value(serde_json::json!({
                    "id": page, "content_type": "page", "title": title, "space_key": space
                }))
                .unwrap(),
            );
            d
        })
        .collect();
    store
        .finish_dispatch(&claim, &batch, BREAKER)
        .await
        .unwrap();
    ids
}

suite! {
    async fn teams_conversations_are_kept_found_by_email_or_upn_and_forgotten(store: &Store) {
        use pagehook::store::teams_conversations::TeamsConversation;
        let reference = |user: &str, email: Option<&str>, upn: Option<&str>, at: i64| {
            TeamsConversation {
                connection: "bot".into(),
                user_id: user.into(),
                aad_object_id: None,
                tenant_id: "tenant-1".into(),
                service_url: "https://smba.trafficmanager.net/emea/".into(),
                conversation_id: format!("a:{user}"),
                name: Some("Ada".into()),
                email: email.map(str::to_owned),
                upn: upn.map(str::to_owned),
                updated_at: at,
            }
        };
        // Installed: no email yet. The member lookup adds it, in any case.
        store.save_teams_conversation(&reference("29:ada", None, None, 1)).await.unwrap();
        assert!(store.teams_conversation_for_email("bot", "ada@example.com").await.unwrap().is_none());
        store
            .save_teams_conversation(&reference("29:ada", Some("Ada@Example.com"), Some("ada@corp.example"), 2))
            .await
            .unwrap();
        // A later activity without an email keeps the one known.
        store.save_teams_conversation(&reference("29:ada", None, None, 3)).await.unwrap();
        let found = store.teams_conversation_for_email("bot", " ADA@example.com ").await.unwrap().unwrap();
        assert_eq!(found.user_id, "29:ada");
        assert_eq!(found.email.as_deref(), Some("ada@example.com"));
        assert_eq!(found.updated_at, 3);
        let by_upn = store.teams_conversation_for_email("bot", "ada@corp.example").await.unwrap();
        assert_eq!(by_upn.map(|c| c.conversation_id).as_deref(), Some("a:29:ada"));
        // Another bot's conversations are its own.
        assert!(store.teams_conversation_for_email("other", "ada@example.com").await.unwrap().is_none());
        assert_eq!(store.teams_conversations("bot").await.unwrap().len(), 1);
        // Removing the bot forgets the conversation, once.
        assert!(store.remove_teams_conversation("bot", "29:ada").await.unwrap());
        assert!(!store.remove_teams_conversation("bot", "29:ada").await.unwrap());
        assert!(store.teams_conversation("bot", "29:ada").await.unwrap().is_none());
    }

    async fn teams_a_bot_is_in_are_kept_found_by_id_or_name_and_forgotten(store: &Store) {
        use pagehook::store::teams_conversations::TeamsTeam;
        let team = |id: &str, name: Option<&str>, at: i64| TeamsTeam {
            connection: "bot".into(),
            team_id: id.into(),
            team_name: name.map(str::to_owned),
            conversation_id: id.into(),
            tenant_id: "tenant-1".into(),
            service_url: "https://smba.trafficmanager.net/emea/".into(),
            updated_at: at,
        };
        store.save_teams_team(&team("19:eng@thread.tacv2", Some("Engineering"), 1)).await.unwrap();
        store.save_teams_team(&team("19:ops@thread.tacv2", Some("Ops"), 1)).await.unwrap();
        // The conversationUpdate beside the install carries no name: the name stays.
        store.save_teams_team(&team("19:eng@thread.tacv2", None, 2)).await.unwrap();
        let by_name = store.teams_team("bot", " engineering ").await.unwrap().unwrap();
        assert_eq!(by_name.team_id, "19:eng@thread.tacv2");
        assert_eq!(by_name.team_name.as_deref(), Some("Engineering"));
        assert_eq!(by_name.updated_at, 2);
        let by_id = store.teams_team("bot", "19:ops@thread.tacv2").await.unwrap().unwrap();
        assert_eq!(by_id.label(), "Ops");
        assert!(store.teams_team("bot", "Sales").await.unwrap().is_none());
        assert!(store.teams_team("other", "Engineering").await.unwrap().is_none());
        let all: Vec<String> = store.teams_teams("bot").await.unwrap().into_iter().map(|t| t.team_id).collect();
        assert_eq!(all, ["19:eng@thread.tacv2", "19:ops@thread.tacv2"]);
        // Removed from a team, the bot forgets it, once.
        assert!(store.remove_teams_team("bot", "19:eng@thread.tacv2").await.unwrap());
        assert!(!store.remove_teams_team("bot", "19:eng@thread.tacv2").await.unwrap());
        assert!(store.teams_team("bot", "Engineering").await.unwrap().is_none());
    }

    async fn plugins_install_list_enable_and_remove(store: &Store) {
        store.install_plugin(&plugin("poster")).await.unwrap();
        store.install_plugin(&plugin("other")).await.unwrap();
        assert_eq!(store.plugins().await.unwrap().len(), 2);
        store.set_plugin_enabled("poster", false).await.unwrap();
        assert!(!store.require_plugin("poster").await.unwrap().enabled);
        store.set_plugin_grants("poster", &["dm-slack".to_owned()]).await.unwrap();
        assert_eq!(store.require_plugin("poster").await.unwrap().grants, ["dm-slack"]);
        let nobody = store.set_plugin_grants("nope", &[]).await.unwrap_err();
        assert!(matches!(nobody, StoreError::NotFound(_)), "{nobody}");
        let missing = store.require_plugin("nope").await.unwrap_err();
        assert!(matches!(missing, StoreError::NotFound(_)), "{missing}");
        store
            .add_binding(&NewBinding {
                plugin: "poster".into(),
                source: None,
                scope: Scope::Global,
                events: vec![],
                destinations: vec!["slack:#eng".into()],
                settings: vec![("a".into(), "b".into())],
                dry_run: false,
            })
            .await
            .unwrap();
        assert_eq!(store.remove_plugin("poster").await.unwrap(), 1, "its binding went with it");
        assert!(store.plugin("poster").await.unwrap().is_none());
    }

    async fn connections_update_in_kind_refuse_another_kind_and_keep_health(store: &Store) {
        let mut c = ConnectionRecord::new("acme", ConnectionKind::Slack, "http://127.0.0.1:1");
        store.add_connection(&c).await.unwrap();
        c.secret = Some(SecretSource::Env("SLACK".into()));
        store.add_connection(&c).await.unwrap();
        let teams = ConnectionRecord::new("acme", ConnectionKind::Teams, "http://127.0.0.1:2");
        let again = store.add_connection(&teams).await.unwrap_err();
        assert!(matches!(again, StoreError::Conflict(_)), "{again}");
        assert_eq!(store.connections().await.unwrap().len(), 1);
        store.set_connection_health("acme", Some("token revoked")).await.unwrap();
        store.set_connection_dry_run("acme", true).await.unwrap();
        let back = store.connection("acme").await.unwrap().unwrap();
        assert_eq!(back.health.as_deref(), Some("token revoked"));
        assert!(back.dry_run);
        assert_eq!(back.secret, Some(SecretSource::Env("SLACK".into())));
        assert!(store.remove_connection("acme").await.unwrap());
        assert!(!store.remove_connection("acme").await.unwrap());
    }

    async fn a_connections_own_proxy_round_trips_and_is_changed_alone(store: &Store) {
        use pagehook::http::proxy::ProxyOverride;
        let mut wiki = ConnectionRecord::new("wiki", ConnectionKind::Confluence, "http://127.0.0.1:3");
        wiki.proxy = Some(ProxyOverride::Direct);
        store.add_connection(&wiki).await.unwrap();
        let mut acme = ConnectionRecord::new("acme", ConnectionKind::Slack, "http://127.0.0.1:1");
        acme.proxy = Some(ProxyOverride::parse("http://proxy.eu.corp:3128").unwrap());
        store.add_connection(&acme).await.unwrap();
        let plain = ConnectionRecord::new("ops", ConnectionKind::Teams, "http://127.0.0.1:2");
        store.add_connection(&plain).await.unwrap();
        assert_eq!(store.connection("wiki").await.unwrap().unwrap(), wiki);
        assert_eq!(store.connection("acme").await.unwrap().unwrap(), acme);
        assert_eq!(store.connection("ops").await.unwrap().unwrap().proxy, None);
        store.set_connection_proxy("acme", Some("direct")).await.unwrap();
        assert_eq!(store.connection("acme").await.unwrap().unwrap().proxy, Some(ProxyOverride::Direct));
        store.set_connection_proxy("wiki", None).await.unwrap();
        let back = store.connection("wiki").await.unwrap().unwrap();
        assert_eq!(back.proxy, None);
        assert_eq!(back.secret, wiki.secret, "nothing else changed");
        assert!(matches!(
            store.set_connection_proxy("nope", Some("direct")).await,
            Err(StoreError::NotFound(_))
        ));
        let shown = serde_json::to_value(store.connection("acme").await.unwrap().unwrap()).unwrap();
        assert_eq!(shown["proxy"], "direct");
    }

    async fn bindings_are_qualified_with_the_first_workspace(store: &Store) {
        store.install_plugin(&plugin("poster")).await.unwrap();
        let b = store
            .add_binding(&NewBinding {
                plugin: "poster".into(),
                source: Some("prod".into()),
                scope: Scope::Space("ENG".into()),
                events: vec!["page-created".into()],
                destinations: vec!["slack:#eng".into(), "teams:ops".into()],
                settings: vec![],
                dry_run: true,
            })
            .await
            .unwrap();
        assert_eq!(store.qualify_slack_destinations("acme").await.unwrap(), 1);
        let b = store.binding(b.id).await.unwrap().unwrap();
        assert_eq!(b.destinations, vec!["slack:acme/#eng".to_owned(), "teams:ops".to_owned()]);
        assert_eq!(b.scope, Scope::Space("ENG".into()));
        store.remove_binding(b.id).await.unwrap();
        assert!(store.bindings(None).await.unwrap().is_empty());
    }

    async fn ingest_stores_each_key_once(store: &Store) {
        let ingest = Ingest::start(store, Arc::new(Notify::new())).unwrap();
        let mut tasks = Vec::new();
        for i in 0..60 {
            let ingest = ingest.clone();
            tasks.push(tokio::spawn(async move {
                ingest.insert(new_event(&format!("k{}", i % 20))).await.unwrap()
            }));
        }
        let mut fresh = std::collections::BTreeSet::new();
        let mut all = std::collections::BTreeSet::new();
        for t in tasks {
            let inserted = t.await.unwrap();
            all.insert(inserted.id);
            if !inserted.duplicate {
                fresh.insert(inserted.id);
            }
        }
        assert_eq!(fresh.len(), 20);
        assert_eq!(all, fresh, "duplicates name the first event's id");
        assert_eq!(store.events(None, 1000).await.unwrap().len(), 20);
        let counts = store.event_counts().await.unwrap();
        assert_eq!(counts.len(), 1);
        assert_eq!((counts[0].status, counts[0].count), (EventStatus::Pending, 20));
    }

    async fn two_claims_never_take_the_same_event_and_an_expired_one_is_taken_over(store: &Store) {
        ingest(store, &["a", "b", "c", "d"]).await;
        let first = Claim::new("r1", 150);
        let second = Claim::new("r2", 60_000);
        let one = store.claim_events(&first, 2).await.unwrap();
        let two = store.claim_events(&second, 10).await.unwrap();
        assert_eq!(one.len(), 2);
        assert_eq!(two.len(), 2);
        assert!(one.iter().all(|e| two.iter().all(|f| f.id != e.id)));
        assert!(one[0].id < two[0].id, "oldest first");
        // The first claim stops renewing: its events come back after its lease.
        assert!(store.claim_events(&second, 10).await.unwrap().is_empty());
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let third = Claim::new("r3", 60_000);
        let taken = store.claim_events(&third, 10).await.unwrap();
        assert_eq!(
            taken.iter().map(|e| e.id).collect::<Vec<_>>(),
            one.iter().map(|e| e.id).collect::<Vec<_>>()
        );
        // The stalled claim can no longer write anything about them.
        let stale = vec![dispatched(one[0].id, vec![post("#eng", "late")])];
        assert_eq!(store.finish_dispatch(&first, &stale, BREAKER).await.unwrap(), 0);
        assert!(!store.defer_event(&first, one[1].id, "late", 0).await.unwrap());
        assert!(!store.close_event(&first, one[1].id, EventStatus::Failed, None).await.unwrap());
        assert!(store.event_deliveries(one[0].id).await.unwrap().is_empty());
        assert_eq!(store.event(one[0].id).await.unwrap().unwrap().status, EventStatus::Pending);
        // The new holder can.
        let fresh = vec![dispatched(one[0].id, vec![post("#eng", "on time")])];
        assert_eq!(store.finish_dispatch(&third, &fresh, BREAKER).await.unwrap(), 1);
        assert_eq!(store.event_deliveries(one[0].id).await.unwrap().len(), 1);
        assert!(store.close_event(&third, one[1].id, EventStatus::Ignored, Some("test")).await.unwrap());
        assert_eq!(store.event(one[1].id).await.unwrap().unwrap().status, EventStatus::Ignored);
    }

    async fn a_renewed_claim_is_not_taken_over(store: &Store) {
        ingest(store, &["a"]).await;
        let holder = Claim::new("r1", 300);
        assert_eq!(store.claim_events(&holder, 10).await.unwrap().len(), 1);
        for _ in 0..4 {
            tokio::time::sleep(std::time::Duration::from_millis(120)).await;
            assert!(store.renew(&holder).await.unwrap() >= 1);
        }
        let other = Claim::new("r2", 300);
        assert!(store.claim_events(&other, 10).await.unwrap().is_empty(), "still held after 480 ms of a 300 ms lease");
    }

    async fn deferred_events_wait_and_closed_ones_are_not_claimed_again(store: &Store) {
        let ids = ingest(store, &["a", "b"]).await;
        let claim = Claim::new("r1", 60_000);
        assert_eq!(store.claim_events(&claim, 10).await.unwrap().len(), 2);
        assert!(store.defer_event(&claim, ids[0], "confluence down", pagehook::store::now_ms() + 60_000).await.unwrap());
        assert!(store.close_event(&claim, ids[1], EventStatus::Failed, Some("bad")).await.unwrap());
        let again = Claim::new("r2", 60_000);
        assert!(store.claim_events(&again, 10).await.unwrap().is_empty());
        let e = store.event(ids[0]).await.unwrap().unwrap();
        assert_eq!((e.attempts, e.error.as_deref()), (1, Some("confluence down")));
    }

    async fn a_round_claims_each_lanes_head_and_what_follows_it_in_lane_order(store: &Store) {
        outbox(store, vec![
            vec![post("#eng", "1"), post("#ops", "2")],
            vec![post("#eng", "3")],
        ]).await;
        let texts = |round: &pagehook::store::DeliveryRound| -> Vec<String> {
            round.claimed.iter().map(|d| match &d.action {
                Action::PostSlack { text, .. } => text.clone(),
                other => panic!("{other:?}"),
            }).collect()
        };
        // With room in the rate a lane takes what follows its head, in its
        // order (sent one after the other): #eng's 1 then 3, and #ops's 2.
        // (At Slack's rate #eng's 3 waits: the_channel_rate_is_kept_across_claims.)
        let claim = Claim::new("r1", 60_000);
        let round = store.claim_deliveries(&claim, fast(), 32).await.unwrap();
        assert_eq!(texts(&round), vec!["1", "3", "2"]);
        assert_eq!(round.lanes().len(), 2);
        assert!(round.claimed.iter().all(|d| !d.uncertain));
        // Another replica finds nothing: both lanes are leased.
        let other = Claim::new("r2", 60_000);
        assert!(store.claim_deliveries(&other, fast(), 32).await.unwrap().claimed.is_empty());
        let results: Vec<AttemptResult> = round.claimed.iter().map(|d| sent(d.id, "1.0001")).collect();
        assert_eq!(store.finish_attempts(&claim, &results, &[]).await.unwrap(), 3);
        store.enqueue_notice("later", &post("#eng", "4")).await.unwrap();
        let next = store.claim_deliveries(&other, fast(), 32).await.unwrap();
        assert_eq!(texts(&next), vec!["4"], "the lanes are free again");
        let all = store.deliveries(Some(DeliveryStatus::Sent), 10).await.unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(store.attempts(all[0].id).await.unwrap().len(), 1);
        // A page's attempts in one query, as each one's own.
        let mut ids: Vec<i64> = all.iter().map(|d| d.id).collect();
        ids.push(999_999);
        let by_delivery = store.attempts_of(&ids).await.unwrap();
        assert_eq!(by_delivery.len(), 3, "{by_delivery:?}");
        for d in &all {
            assert_eq!(by_delivery[&d.id], store.attempts(d.id).await.unwrap());
        }
        assert!(store.attempts_of(&[]).await.unwrap().is_empty());
    }

    async fn deliveries_of_a_newer_event_wait_until_older_events_are_dispatched(store: &Store) {
        let ids = ingest(store, &["old", "new"]).await;
        // Replica B dispatches the newer event first.
        let a = Claim::new("a", 60_000);
        let b = Claim::new("b", 60_000);
        let old = store.claim_events(&a, 1).await.unwrap();
        let new = store.claim_events(&b, 1).await.unwrap();
        assert_eq!((old[0].id, new[0].id), (ids[0], ids[1]));
        store.finish_dispatch(&b, &[dispatched(ids[1], vec![post("#eng", "second")])], BREAKER).await.unwrap();
        let courier = Claim::new("c", 60_000);
        assert!(
            store.claim_deliveries(&courier, fast(), 32).await.unwrap().claimed.is_empty(),
            "the older event may still post in #eng first"
        );
        store.finish_dispatch(&a, &[dispatched(ids[0], vec![post("#eng", "first")])], BREAKER).await.unwrap();
        let round = store.claim_deliveries(&courier, fast(), 32).await.unwrap();
        assert_eq!(
            round.claimed.iter().map(|d| d.event_id).collect::<Vec<_>>(),
            [ids[0], ids[1]],
            "the older event's message goes first, the newer's after it in its lane"
        );
    }

    async fn a_stale_claim_records_nothing_and_the_next_holder_knows_it_may_have_been_sent(store: &Store) {
        outbox(store, vec![vec![post("#eng", "hello")]]).await;
        let dying = Claim::new("dying", 150);
        let round = store.claim_deliveries(&dying, fast(), 32).await.unwrap();
        assert_eq!(round.claimed.len(), 1);
        assert!(!round.claimed[0].uncertain);
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let heir = Claim::new("heir", 60_000);
        let taken = store.claim_deliveries(&heir, fast(), 32).await.unwrap();
        assert_eq!(taken.claimed.len(), 1);
        assert!(taken.claimed[0].uncertain, "the dead holder may have sent it: look before sending");
        let id = taken.claimed[0].id;
        assert_eq!(store.finish_attempts(&dying, &[sent(id, "1.1")], &[]).await.unwrap(), 0);
        assert!(store.attempts(id).await.unwrap().is_empty());
        assert_eq!(store.finish_attempts(&heir, &[sent(id, "1.2")], &[]).await.unwrap(), 1);
        let d = &store.deliveries(None, 10).await.unwrap()[0];
        assert_eq!((d.status, d.result.as_deref()), (DeliveryStatus::Sent, Some("1.2")));
    }

    async fn the_channel_rate_is_kept_across_claims(store: &Store) {
        outbox(store, vec![
            vec![post("#eng", "1")],
            vec![post("#eng", "2")],
            vec![post("#ops", "3")],
        ]).await;
        let rates = RatePolicy::per_second(2.0, 1000.0);
        let r1 = Claim::new("r1", 60_000);
        let first = store.claim_deliveries(&r1, rates, 32).await.unwrap();
        assert_eq!(first.claimed.len(), 2, "one per channel");
        let results: Vec<AttemptResult> = first.claimed.iter().map(|d| sent(d.id, "1")).collect();
        store.finish_attempts(&r1, &results, &[]).await.unwrap();
        // Another replica: #eng's next message is 500 ms on, and may be
        // claimed 250 ms before its slot.
        let r2 = Claim::new("r2", 60_000);
        let held = store.claim_deliveries(&r2, rates, 32).await.unwrap();
        assert!(held.claimed.is_empty());
        let wait = held.wait_ms.expect("says how long");
        assert!((50..=250).contains(&wait), "{wait}");
        tokio::time::sleep(std::time::Duration::from_millis(wait as u64 + 20)).await;
        assert_eq!(store.claim_deliveries(&r2, rates, 32).await.unwrap().claimed.len(), 1);
    }

    async fn send_slots_space_the_requests_of_a_channel(store: &Store) {
        let keys = RateKeys {
            channel: "send:slack-channel:acme/#eng".into(),
            workspace: "send:slack-workspace:acme".into(),
        };
        let rates = RatePolicy::per_second(5.0, 1000.0);
        let SendSlot::Granted { at: first } = store.take_send_slot(&keys, rates).await.unwrap() else {
            panic!("the first goes now");
        };
        let SendSlot::Wait { ms: wait } = store.take_send_slot(&keys, rates).await.unwrap() else {
            panic!("the second waits");
        };
        assert!((100..=200).contains(&wait), "{wait}");
        let other = RateKeys { channel: "send:slack-channel:acme/#ops".into(), ..keys.clone() };
        assert!(
            matches!(store.take_send_slot(&other, rates).await.unwrap(), SendSlot::Granted { .. }),
            "another channel goes now"
        );
        tokio::time::sleep(std::time::Duration::from_millis(wait as u64 + 10)).await;
        let SendSlot::Granted { at: second } = store.take_send_slot(&keys, rates).await.unwrap() else {
            panic!("its turn has come");
        };
        assert!(second - first >= 200, "a gap apart by the store's clock: {}", second - first);
    }

    async fn retries_wait_and_dead_letters_can_be_replayed(store: &Store) {
        outbox(store, vec![vec![post("#eng", "x"), post("#ops", "y")]]).await;
        let c = Claim::new("r", 60_000);
        let round = store.claim_deliveries(&c, fast(), 32).await.unwrap();
        let (retried, dead) = (round.claimed[0].id, round.claimed[1].id);
        let later = pagehook::store::now_ms() + 60_000;
        let results = [
            AttemptResult {
                delivery_id: retried, started_at: 1, latency_ms: 1, sent_at: None,
                outcome: Outcome::Retry { error: "500".into(), at: later, uncertain: true },
            },
            AttemptResult {
                delivery_id: dead, started_at: 1, latency_ms: 1, sent_at: None,
                outcome: Outcome::Dead { error: "channel_not_found".into() },
            },
        ];
        assert_eq!(store.finish_attempts(&c, &results, &[]).await.unwrap(), 2);
        let waiting = store.claim_deliveries(&c, fast(), 32).await.unwrap();
        assert!(waiting.claimed.is_empty());
        assert!(waiting.wait_ms.unwrap() > 50_000, "{:?}", waiting.wait_ms);
        let err = store.retry_delivery(retried).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "only dead letters are replayed: {err}");
        let dead_letters = store.deliveries(Some(DeliveryStatus::Dead), 10).await.unwrap();
        assert_eq!(dead_letters.len(), 1);
        assert_eq!(dead_letters[0].last_error.as_deref(), Some("channel_not_found"));
        store.retry_delivery(dead).await.unwrap();
        let again = store.claim_deliveries(&c, fast(), 32).await.unwrap();
        assert_eq!(again.claimed.iter().map(|d| d.id).collect::<Vec<_>>(), vec![dead]);
        assert!(store.deliveries(Some(DeliveryStatus::Dead), 10).await.unwrap().is_empty());
    }

    async fn one_record_writes_each_outcome_as_its_own(store: &Store) {
        // Six lanes; one record holds an attempt of each outcome, two roots
        // of one thread, and an attempt of a delivery another claim holds.
        outbox(store, vec![["#a", "#b", "#c", "#d", "#e", "#f"].map(|c| post(c, "x")).to_vec()]).await;
        let c = Claim::new("r", 60_000);
        let round = store.claim_deliveries(&c, fast(), 32).await.unwrap();
        let id: BTreeMap<String, i64> =
            round.claimed.iter().map(|d| (d.lane.rsplit('/').next().unwrap().to_owned(), d.id)).collect();
        assert_eq!(id.len(), 6);
        let other = Claim::new("r2", 60_000);
        let f = id["f"];
        let thread = |ts: &str| Some(pagehook::store::SlackThread {
            connection: "acme".into(), channel: "C1".into(), key: "page-1".into(), ts: ts.into(),
        });
        let attempt = |delivery_id: i64, outcome: Outcome| AttemptResult {
            delivery_id, started_at: 7, latency_ms: 3, sent_at: Some(8), outcome,
        };
        let results = [
            attempt(id["a"], Outcome::Sent { result: "1.0001".into(), thread: thread("1.0001") }),
            attempt(id["b"], Outcome::Sent { result: "2.0002".into(), thread: thread("2.0002") }),
            attempt(id["c"], Outcome::Retry { error: "HTTP 500".into(), at: 0, uncertain: true }),
            attempt(id["d"], Outcome::Dead { error: "channel_not_found".into() }),
            attempt(id["e"], Outcome::WouldSend { request: "{\"channel\":\"#e\"}".into() }),
            attempt(f, Outcome::Sent { result: "9.0009".into(), thread: None }),
        ];
        assert_eq!(store.finish_attempts(&other, &results, &[]).await.unwrap(), 0, "not r2's");
        assert_eq!(store.finish_attempts(&c, &results[..5], &[]).await.unwrap(), 5);

        let all = store.deliveries(None, 10).await.unwrap();
        let row = |id: i64| all.iter().find(|d| d.id == id).unwrap();
        for (lane, status, result, error) in [
            ("a", DeliveryStatus::Sent, Some("1.0001"), None),
            ("b", DeliveryStatus::Sent, Some("2.0002"), None),
            ("c", DeliveryStatus::Pending, None, Some("HTTP 500")),
            ("d", DeliveryStatus::Dead, None, Some("channel_not_found")),
            ("e", DeliveryStatus::WouldSend, Some("{\"channel\":\"#e\"}"), None),
            ("f", DeliveryStatus::Sending, None, None),
        ] {
            let d = row(id[lane]);
            assert_eq!((d.status, d.result.as_deref(), d.last_error.as_deref()), (status, result, error), "#{lane}");
            assert_eq!(d.attempts, u32::from(lane != "f"), "#{lane}");
            let attempts = store.attempts(id[lane]).await.unwrap();
            let expected = match lane {
                "a" | "b" => vec![("sent".to_owned(), None)],
                "c" => vec![("retry".to_owned(), Some("HTTP 500".to_owned()))],
                "d" => vec![("dead".to_owned(), Some("channel_not_found".to_owned()))],
                "e" => vec![("would-send".to_owned(), None)],
                _ => vec![],
            };
            assert_eq!(attempts.iter().map(|a| (a.outcome.clone(), a.error.clone())).collect::<Vec<_>>(), expected, "#{lane}");
            assert!(attempts.iter().all(|a| (a.at, a.latency_ms, a.sent_at) == (7, 3, Some(8))), "#{lane}");
        }
        assert_eq!(
            store.thread_ts("acme", "C1", "page-1").await.unwrap().as_deref(),
            Some("1.0001"),
            "the first root of a thread wins"
        );
        // The retry is due again, and may have been sent.
        let again = store.claim_deliveries(&Claim::new("r3", 60_000), fast(), 32).await.unwrap();
        let c_again = again.claimed.iter().find(|d| d.id == id["c"]).expect("the retry is due");
        assert!(c_again.uncertain);
    }

    async fn a_round_reads_its_lanes_threads_at_once(store: &Store) {
        assert!(store.threads_of(&[]).await.unwrap().is_empty());
        outbox(store, vec![vec![post("#a", "root"), post("#b", "root")]]).await;
        let c = Claim::new("r", 60_000);
        let round = store.claim_deliveries(&c, fast(), 32).await.unwrap();
        let thread = |channel: &str, key: &str, ts: &str| pagehook::store::SlackThread {
            connection: "acme".into(), channel: channel.into(), key: key.into(), ts: ts.into(),
        };
        let started = [thread("C1", "page-1", "1.0001"), thread("C2", "page-2", "2.0002")];
        let results: Vec<AttemptResult> = round.claimed.iter().zip(&started).map(|(d, t)| AttemptResult {
            delivery_id: d.id, started_at: 1, latency_ms: 1, sent_at: None,
            outcome: Outcome::Sent { result: t.ts.clone(), thread: Some(t.clone()) },
        }).collect();
        assert_eq!(store.finish_attempts(&c, &results, &[]).await.unwrap(), 2);
        let wanted = |c: &str, ch: &str, k: &str| (c.to_owned(), ch.to_owned(), k.to_owned());
        let mut found = store.threads_of(&[
            wanted("acme", "C1", "page-1"),
            wanted("acme", "C2", "page-2"),
            wanted("acme", "C1", "page-2"),
            wanted("acme", "C1", "page-3"),
            wanted("other", "C1", "page-1"),
        ]).await.unwrap();
        found.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(found, started, "the started threads, and only those");
    }

    async fn threads_and_once_keys_remember_the_first_answer(store: &Store) {
        assert_eq!(store.thread_ts("acme", "C1", "page-1").await.unwrap(), None);
        outbox(store, vec![vec![post("#eng", "root")]]).await;
        let c = Claim::new("r", 60_000);
        let d = store.claim_deliveries(&c, fast(), 32).await.unwrap().claimed.remove(0);
        store.finish_attempts(&c, &[AttemptResult {
            delivery_id: d.id, started_at: 5, latency_ms: 1, sent_at: Some(6),
            outcome: Outcome::Sent { result: "1.0001".into(), thread: Some(pagehook::store::SlackThread {
                connection: "acme".into(), channel: "C1".into(), key: "page-1".into(), ts: "1.0001".into(),
            }) },
        }], &[]).await.unwrap();
        assert_eq!(store.thread_ts("acme", "C1", "page-1").await.unwrap().as_deref(), Some("1.0001"));
        assert_eq!(store.first_attempt_at(d.id).await.unwrap(), Some(5));
        store.set_once_key("prod", "k", 42).await.unwrap();
        store.set_once_key("prod", "k", 43).await.unwrap();
        assert_eq!(store.once_key("prod", "k").await.unwrap(), Some(42));
    }

    async fn notices_are_queued_as_deliveries_of_their_own_event(store: &Store) {
        let id = store.enqueue_notice("greeting", &post("#eng", "hi")).await.unwrap();
        let c = Claim::new("r", 60_000);
        let round = store.claim_deliveries(&c, fast(), 32).await.unwrap();
        assert_eq!(round.claimed.iter().map(|d| d.id).collect::<Vec<_>>(), vec![id]);
        let e = store.event(round.claimed[0].event_id).await.unwrap().unwrap();
        assert_eq!((e.name.as_str(), e.status), ("pagehook_notice", EventStatus::Dispatched));
    }

    async fn a_failing_plugin_opens_its_breaker(store: &Store) {
        store.install_plugin(&plugin("poster")).await.unwrap();
        let ids = ingest(store, &["a", "b", "c"]).await;
        let c = Claim::new("r", 60_000);
        store.claim_events(&c, 10).await.unwrap();
        let batch: Vec<Dispatched> = ids.iter().map(|id| {
            let mut d = dispatched(*id, vec![]);
            d.calls = vec![PluginCall { plugin: "poster".into(), succeeded: false, error: Some("trap".into()) }];
            d
        }).collect();
        assert_eq!(store.finish_dispatch(&c, &batch, BREAKER).await.unwrap(), 3);
        let p = store.require_plugin("poster").await.unwrap();
        assert_eq!(p.failures, 3);
        assert!(p.breaker_until.is_some());
        assert_eq!(p.breaker_error.as_deref(), Some("trap"));
        store.reset_breaker("poster").await.unwrap();
        assert_eq!(store.require_plugin("poster").await.unwrap().breaker_until, None);
    }

    async fn events_are_searched_by_space_page_kind_and_status_a_page_at_a_time(store: &Store) {
        let ids = in_spaces(store, &[("ENG", 10, "One"), ("OPS", 11, "Two"), ("ENG", 12, "Three"), ("ENG", 10, "One again")]).await;
        let waiting = ingest(store, &["undispatched"]).await[0];
        let q = |f: fn(&mut EventQuery)| {
            let mut q = EventQuery { limit: 100, ..EventQuery::default() };
            f(&mut q);
            q
        };
        let found = |v: Vec<pagehook::store::EventSummary>| v.iter().map(|e| e.id).collect::<Vec<_>>();
        let all = store.search_events(&q(|_| {})).await.unwrap();
        assert_eq!(found(all.clone()), vec![waiting, ids[3], ids[2], ids[1], ids[0]]);
        assert_eq!(all[0].space_key, None, "an event not yet dispatched has no space");
        assert_eq!(all[1].space_key.as_deref(), Some("ENG"));
        assert_eq!(all[1].content_id.as_deref(), Some("10"));
        assert_eq!(all[1].title.as_deref(), Some("One again"));
        let eng = store.search_events(&q(|q| q.space = Some("ENG".into()))).await.unwrap();
        assert_eq!(found(eng), vec![ids[3], ids[2], ids[0]]);
        let page = store.search_events(&q(|q| q.content_id = Some("10".into()))).await.unwrap();
        assert_eq!(found(page), vec![ids[3], ids[0]]);
        let pending = store.search_events(&q(|q| q.status = Some(EventStatus::Pending))).await.unwrap();
        assert_eq!(found(pending), vec![waiting]);
        let named = store.search_events(&q(|q| q.name = Some("page_removed".into()))).await.unwrap();
        assert!(named.is_empty());
        // Keyset paging: two at a time, no row twice, none missed.
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = store.search_events(&EventQuery { limit: 2, before, ..EventQuery::default() }).await.unwrap();
            if page.is_empty() { break; }
            before = page.last().map(|e| e.id);
            seen.extend(found(page));
        }
        assert_eq!(seen, vec![waiting, ids[3], ids[2], ids[1], ids[0]]);
        // A space admin's restriction holds on top of every other filter.
        let mine = store.search_events(&q(|q| q.spaces = Some(vec!["OPS".into()]))).await.unwrap();
        assert_eq!(found(mine), vec![ids[1]]);
        let mine = store.search_events(&q(|q| { q.spaces = Some(vec!["OPS".into()]); q.space = Some("ENG".into()); })).await.unwrap();
        assert!(mine.is_empty());
        let none = store.search_events(&q(|q| q.spaces = Some(vec![]))).await.unwrap();
        assert!(none.is_empty(), "no spaces means nothing, not everything");
    }

    async fn deliveries_are_searched_and_dead_letters_retried_by_destination(store: &Store) {
        let ids = in_spaces(store, &[("ENG", 10, "a"), ("OPS", 11, "b"), ("ENG", 12, "c")]).await;
        let claim = Claim::new("r", 60_000);
        // At Slack's rate, one message a second per channel.
        let slack = RatePolicy::per_second(1.0, 1000.0);
        let round = store.claim_deliveries(&claim, slack, 32).await.unwrap();
        assert_eq!(round.claimed.len(), 2, "one head per lane");
        let dead: Vec<AttemptResult> = round.claimed.iter().map(|d| AttemptResult {
            outcome: Outcome::Dead { error: "channel_not_found".into() },
            ..sent(d.id, "")
        }).collect();
        store.finish_attempts(&claim, &dead, &[]).await.unwrap();
        let all = store.search_deliveries(&DeliveryQuery { limit: 10, ..DeliveryQuery::default() }).await.unwrap();
        assert_eq!(all.len(), 3);
        let eng = store.search_deliveries(&DeliveryQuery { destination: Some("slack:acme/#eng".into()), limit: 10, ..DeliveryQuery::default() }).await.unwrap();
        assert_eq!(eng.iter().map(|d| d.event_id).collect::<Vec<_>>(), vec![ids[2], ids[0]]);
        let dead_only = store.search_deliveries(&DeliveryQuery { status: Some(DeliveryStatus::Dead), limit: 10, ..DeliveryQuery::default() }).await.unwrap();
        assert_eq!(dead_only.len(), 2);
        let ops_admin = store.search_deliveries(&DeliveryQuery { spaces: Some(vec!["OPS".into()]), limit: 10, ..DeliveryQuery::default() }).await.unwrap();
        assert_eq!(ops_admin.iter().map(|d| d.event_id).collect::<Vec<_>>(), vec![ids[1]]);
        let counts = store.delivery_counts().await.unwrap();
        assert!(counts.iter().any(|c| c.status == DeliveryStatus::Dead && c.count == 2), "{counts:?}");
        // An OPS admin cannot retry ENG's dead letters; the admin can.
        let eng_spaces = ["OPS".to_owned()];
        assert_eq!(store.retry_dead_letters("slack:acme/#eng", Some(&eng_spaces)).await.unwrap(), 0);
        assert_eq!(store.retry_dead_letters("slack:acme/#eng", None).await.unwrap(), 1);
        assert_eq!(store.retry_dead_letters("slack:acme/#eng", None).await.unwrap(), 0, "already queued");
        let before = store.latest_ids().await.unwrap();
        assert!(before.pending_deliveries >= 2);
        assert_eq!(before.event, ids[2]);
    }

    async fn changes_are_logged_and_sessions_expire(store: &Store) {
        for i in 0..3 {
            store.record_change(&NewChange {
                actor: "admin (console)".into(),
                action: "binding.add".into(),
                target: format!("{i}"),
                detail: serde_json::json!({"space": "ENG"}),
            }).await.unwrap();
        }
        let page = store.changes(&ChangeQuery { before: None, limit: 2 }).await.unwrap();
        assert_eq!(page.iter().map(|c| c.target.as_str()).collect::<Vec<_>>(), vec!["2", "1"]);
        assert_eq!(page[0].detail["space"], "ENG");
        let rest = store.changes(&ChangeQuery { before: Some(page[1].id), limit: 2 }).await.unwrap();
        assert_eq!(rest.len(), 1);
        let now = pagehook::store::now_ms();
        let live = NewSession { id_hash: "h1".into(), principal: "{}".into(), csrf: "c".into(), created_at: now, expires_at: now + 60_000 };
        let gone = NewSession { id_hash: "h2".into(), expires_at: now - 1, ..live.clone() };
        store.create_session(&live).await.unwrap();
        store.create_session(&gone).await.unwrap();
        assert_eq!(store.session("h1").await.unwrap().unwrap().csrf, "c");
        assert!(store.session("h2").await.unwrap().is_none(), "an expired session is never returned");
        assert_eq!(store.purge_sessions().await.unwrap(), 1);
        assert!(store.delete_session("h1").await.unwrap());
        assert!(store.session("h1").await.unwrap().is_none());
    }

    async fn a_slack_connection_names_the_confluence_its_chat_uses(store: &Store) {
        let mut slack = ConnectionRecord::new("acme", ConnectionKind::Slack, "http://127.0.0.1:1");
        slack.confluence = Some("wiki".into());
        store.add_connection(&slack).await.unwrap();
        assert_eq!(store.connection("acme").await.unwrap().unwrap().confluence.as_deref(), Some("wiki"));
        store.set_slack_confluence("acme", Some("docs")).await.unwrap();
        assert_eq!(store.connection("acme").await.unwrap().unwrap().confluence.as_deref(), Some("docs"));
        store.set_slack_confluence("acme", None).await.unwrap();
        assert_eq!(store.connection("acme").await.unwrap().unwrap().confluence, None);
        let wiki = ConnectionRecord::new("wiki", ConnectionKind::Confluence, "http://127.0.0.1:2");
        store.add_connection(&wiki).await.unwrap();
        let only_slack = store.set_slack_confluence("wiki", Some("docs")).await.unwrap_err();
        assert!(matches!(only_slack, StoreError::NotFound(_)), "{only_slack}");
        assert!(matches!(store.set_slack_confluence("nope", None).await, Err(StoreError::NotFound(_))));
    }

    async fn a_link_token_makes_one_link_only_when_live_and_confirmed(store: &Store) {
        let now = pagehook::store::now_ms();
        let token = |hash: &str, trigger: &str, user: &str, expires_at: i64| NewLinkToken {
            token_hash: hash.into(),
            request_key: format!("acme:{trigger}"),
            slack_connection: "acme".into(),
            slack_team: "T0ACME".into(),
            slack_user: user.into(),
            confluence_connection: "wiki".into(),
            created_at: now,
            expires_at,
        };
        assert!(store.create_link_token(&token("t1", "trig1", "U0ADA", now + 600_000)).await.unwrap());
        assert!(
            !store.create_link_token(&token("t1b", "trig1", "U0ADA", now + 600_000)).await.unwrap(),
            "the same command gets one token"
        );
        assert!(store.link_token("t1b").await.unwrap().is_none());
        let stored = store.link_token("t1").await.unwrap().unwrap();
        assert!(stored.is_live(now) && stored.verified.is_none() && stored.used_at.is_none());
        assert_eq!((stored.slack_user.as_str(), stored.confluence_connection.as_str()), ("U0ADA", "wiki"));

        // Not signed in yet: nothing to confirm.
        assert!(store.complete_link("t1", "c1").await.unwrap().is_none());
        let ada = VerifiedPerson { user_key: "key-ada".into(), username: Some("ada".into()), display_name: Some("Ada".into()) };
        let eve = VerifiedPerson { user_key: "key-eve".into(), username: Some("eve".into()), display_name: None };
        assert!(store.verify_link_token("t1", &ada, "c1").await.unwrap());
        // A second sign-in with the same link replaces the first one's confirmation.
        assert!(store.verify_link_token("t1", &eve, "c2").await.unwrap());
        assert!(store.complete_link("t1", "c1").await.unwrap().is_none(), "the first browser's confirmation no longer counts");
        assert!(store.user_links().await.unwrap().is_empty());
        assert!(store.verify_link_token("t1", &ada, "c3").await.unwrap());
        let link = store.complete_link("t1", "c3").await.unwrap().unwrap();
        assert_eq!(link.slack_user, "U0ADA");
        assert_eq!(link.slack_team, "T0ACME");
        assert_eq!(link.confluence_user_key, "key-ada");
        assert_eq!(link.method, LinkMethod::SelfLink);
        assert_eq!(link.confluence_label(), "Ada (ada)");
        // Used: it makes no other link, and cannot be signed in with again.
        assert!(store.complete_link("t1", "c3").await.unwrap().is_none());
        assert!(!store.verify_link_token("t1", &eve, "c4").await.unwrap());
        let used = store.link_token("t1").await.unwrap().unwrap();
        assert!(used.used_at.is_some() && !used.is_live(now));
        assert_eq!(used.verified.unwrap().user_key, "key-ada");

        // Expired: neither signed in with nor confirmed.
        assert!(store.create_link_token(&token("t2", "trig2", "U0BOB", now - 1)).await.unwrap());
        assert!(!store.verify_link_token("t2", &eve, "c5").await.unwrap());
        assert!(store.complete_link("t2", "c5").await.unwrap().is_none());
        assert!(!store.link_token("t2").await.unwrap().unwrap().is_live(now));
        assert_eq!(store.purge_link_tokens(now).await.unwrap(), 1, "only the expired one");
        assert!(store.link_token("t2").await.unwrap().is_none());
        assert!(store.link_token("t1").await.unwrap().is_some());
        assert_eq!(store.user_links().await.unwrap(), vec![link]);
    }

    async fn links_are_found_both_ways_replaced_and_removed(store: &Store) {
        let now = pagehook::store::now_ms();
        let link = |n: &'static str, slack: &'static str, user: &'static str, key: &'static str| async move {
            let hash = format!("t-{n}");
            assert!(store.create_link_token(&NewLinkToken {
                token_hash: hash.clone(),
                request_key: format!("{slack}:{n}"),
                slack_connection: slack.into(),
                slack_team: "T0".into(),
                slack_user: user.into(),
                confluence_connection: "wiki".into(),
                created_at: now,
                expires_at: now + 600_000,
            }).await.unwrap());
            let person = VerifiedPerson { user_key: key.into(), username: None, display_name: None };
            assert!(store.verify_link_token(&hash, &person, "c").await.unwrap());
            store.complete_link(&hash, "c").await.unwrap().unwrap()
        };
        link("1", "acme", "U0ADA", "key-ada").await;
        link("2", "beta", "U9ADA", "key-ada").await;
        link("3", "acme", "U0BOB", "key-bob").await;
        assert_eq!(store.user_link("acme", "U0ADA").await.unwrap().unwrap().confluence_user_key, "key-ada");
        assert!(store.user_link("acme", "U0NOBODY").await.unwrap().is_none());
        let ada: Vec<String> = store.slack_links_of("wiki", "key-ada").await.unwrap().into_iter().map(|l| format!("{}/{}", l.slack_connection, l.slack_user)).collect();
        assert_eq!(ada.len(), 2);
        assert!(ada.contains(&"acme/U0ADA".to_owned()) && ada.contains(&"beta/U9ADA".to_owned()), "{ada:?}");
        assert!(store.slack_links_of("other", "key-ada").await.unwrap().is_empty());
        // The same Slack user links again, to someone else: replaced.
        link("4", "acme", "U0ADA", "key-carol").await;
        assert_eq!(store.user_link("acme", "U0ADA").await.unwrap().unwrap().confluence_user_key, "key-carol");
        assert_eq!(store.slack_links_of("wiki", "key-ada").await.unwrap().len(), 1, "only beta's");
        // Another Slack user of acme links as bob: bob's earlier link in acme goes.
        link("5", "acme", "U0BOB2", "key-bob").await;
        let bob = store.slack_links_of("wiki", "key-bob").await.unwrap();
        assert_eq!(bob.iter().map(|l| l.slack_user.as_str()).collect::<Vec<_>>(), vec!["U0BOB2"]);
        assert!(store.user_link("acme", "U0BOB").await.unwrap().is_none());
        assert_eq!(store.user_links().await.unwrap().len(), 3);
        let removed = store.remove_user_link("acme", "U0ADA").await.unwrap().unwrap();
        assert_eq!(removed.confluence_user_key, "key-carol");
        assert!(store.remove_user_link("acme", "U0ADA").await.unwrap().is_none());
        assert!(store.user_link("acme", "U0ADA").await.unwrap().is_none());
        assert_eq!(store.user_links().await.unwrap().len(), 2);
    }

}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_store_copies_into_postgres_with_nothing_lost() {
    let from = sqlite().await;
    store_some(&from.store).await;
    let config = postgres_config();
    let to = Store::open(&Database::Postgres(config.clone()))
        .await
        .unwrap();
    let report = from.store.copy_into(&to).await.unwrap();
    let count = |t: &str| report.tables.iter().find(|(n, _)| n == t).unwrap().1;
    assert_eq!(
        (
            count("events"),
            count("deliveries"),
            count("plugins"),
            count("connections")
        ),
        (3, 3, 1, 1)
    );
    assert_eq!(
        to.events(None, 100).await.unwrap(),
        from.store.events(None, 100).await.unwrap()
    );
    assert_eq!(
        to.deliveries(None, 100).await.unwrap(),
        from.store.deliveries(None, 100).await.unwrap()
    );
    assert_eq!(
        to.plugins().await.unwrap(),
        from.store.plugins().await.unwrap()
    );
    assert_eq!(
        to.connections().await.unwrap(),
        from.store.connections().await.unwrap()
    );
    assert_eq!(
        to.attempts(1).await.unwrap(),
        from.store.attempts(1).await.unwrap()
    );
    assert_eq!(count("user_links"), 1);
    assert_eq!(
        to.user_links().await.unwrap(),
        from.store.user_links().await.unwrap()
    );
    // Ids go on after the copied ones.
    let next = ingest(&to, &["after-copy"]).await;
    assert!(next[0] > 3, "{next:?}");
    // A second copy into the same database is refused and changes nothing.
    let again = from.store.copy_into(&to).await.unwrap_err();
    assert!(again.to_string().contains("already holds data"), "{again}");
    assert_eq!(to.events(None, 100).await.unwrap().len(), 4);
}

async fn store_some(store: &Store) {
    store.install_plugin(&plugin("poster")).await.unwrap();
    let mut c = ConnectionRecord::new("acme", ConnectionKind::Slack, "http://127.0.0.1:1");
    c.secret = Some(SecretSource::Env("SLACK".into()));
    c.confluence = Some("wiki".into());
    store.add_connection(&c).await.unwrap();
    // A self-link (its token is not copied: it belongs to the old store).
    let now = pagehook::store::now_ms();
    store
        .create_link_token(&NewLinkToken {
            token_hash: "t".into(),
            request_key: "acme:trigger".into(),
            slack_connection: "acme".into(),
            slack_team: "T0".into(),
            slack_user: "U0ADA".into(),
            confluence_connection: "wiki".into(),
            created_at: now,
            expires_at: now + 600_000,
        })
        .await
        .unwrap();
    let ada = VerifiedPerson {
        user_key: "key-ada".into(),
        username: Some("ada".into()),
        display_name: None,
    };
    assert!(store.verify_link_token("t", &ada, "c").await.unwrap());
    store.complete_link("t", "c").await.unwrap().unwrap();
    outbox(
        store,
        vec![
            vec![post("#eng", "1"), post("#ops", "2")],
            vec![post("#eng", "3")],
            vec![],
        ],
    )
    .await;
    let claim = Claim::new("r", 60_000);
    let round = store.claim_deliveries(&claim, fast(), 32).await.unwrap();
    let results: Vec<AttemptResult> = round.claimed.iter().map(|d| sent(d.id, "9.1")).collect();
    store.finish_attempts(&claim, &results, &[]).await.unwrap();
}
