//! Every outbound request through the egress proxy: a real forward proxy
//! on loopback (`pagehook_fakes::proxy`) that records what it carries,
//! HTTPS through `CONNECT` to a fake behind real TLS, plain HTTP in
//! absolute form; `no-proxy` hosts go direct; the environment's
//! `HTTP_PROXY` applies when the config names no proxy.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::sidecar::{HOOK_SECRET, PAT, Sidecar};
use pagehook_fakes::proxy::ForwardProxy;
use pagehook_fakes::tls::{TestCa, TlsFront};
use pagehook_fakes::{ConfluenceAuth, ContentBuilder, FakeConfluence, FakeSlack};

const BOT: &str = "xoxb-proxy-tests";

fn page(confluence: &FakeConfluence, id: u64, title: &str) {
    confluence.put_content(
        id,
        ContentBuilder::page(id, "ENG", title)
            .ancestors(&[])
            .build(),
    );
}

fn page_created(id: u64, ts: u64) -> Vec<u8> {
    format!(r#"{{"timestamp":{ts},"event":"page_created","userKey":"8a7f80839e460b0f019e460ba6440001","page":{{"id":{id}}}}}"#)
        .into_bytes()
}

#[test]
fn confluence_over_https_and_slack_go_only_through_the_proxy_with_its_credentials() {
    let ca = TestCa::new("Corp Root CA");
    let confluence = FakeConfluence::start(ConfluenceAuth::Bearer(PAT.into()));
    page(&confluence, 4243, "Egress runbook");
    let wiki = TlsFront::start(&ca.issue(&["127.0.0.1"]), confluence.addr());
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", "C0ENG00001", true);
    let proxy = ForwardProxy::with_credentials("svc-pagehook", "proxy-pass-9");

    let mut side = Sidecar::new();
    ca.write_pem(&side.dir.path().join("corp-root-ca.pem"));
    std::fs::write(
        side.dir.path().join("proxy-auth"),
        "svc-pagehook:proxy-pass-9",
    )
    .unwrap();
    side.add_to_config(&format!(
        "[tls]\nextra-ca-files = [\"corp-root-ca.pem\"]\n\
             [network]\nproxy = \"{}\"\nproxy-credentials = {{ file = \"proxy-auth\" }}\n",
        proxy.url()
    ));
    side.connect_confluence("prod", &wiki.url());
    side.connect_slack("acme", &slack.base_url(), BOT);
    side.bind_slack_poster("eng", &["--scope", "space:ENG"]);
    let tested = side.cli(&["connection", "test", "prod"]);
    assert!(tested.contains("accepts the credentials"), "{tested}");
    side.start();

    let (status, answer) = side.hook(
        "prod",
        &page_created(4243, 1768241299101),
        Some(HOOK_SECRET),
    );
    assert_eq!(status, 202, "{answer}");
    let posts = slack.wait_for_posts(1, Duration::from_secs(30));
    assert!(
        posts[0]
            .text
            .as_deref()
            .is_some_and(|t| t.contains("Egress runbook")),
        "{:?}",
        posts[0].text
    );

    let carried = proxy.requests();
    assert!(
        carried.iter().all(|r| r.authorized && r.carried),
        "{carried:?}"
    );
    let wiki_target = wiki.addr().to_string();
    let slack_target = slack.addr().to_string();
    let tunnels = carried
        .iter()
        .filter(|r| r.method == "CONNECT" && r.target == wiki_target)
        .count();
    // Every TLS session Confluence's front completed came through a tunnel.
    assert!(tunnels >= 1, "{carried:?}");
    assert_eq!(
        wiki.handshakes(),
        tunnels,
        "no TLS session to Confluence went direct"
    );
    // Plain HTTP through a proxy is one request per connection here: every
    // request the fake Slack saw was carried by the proxy.
    let to_slack = carried.iter().filter(|r| r.target == slack_target).count();
    assert!(
        to_slack >= 2,
        "users/channel lookups and the post: {carried:?}"
    );
    assert_eq!(
        slack.requests().len(),
        to_slack,
        "every request Slack saw came through the proxy"
    );
    assert_eq!(
        proxy.targets().len(),
        2,
        "only Confluence and Slack: {:?}",
        proxy.targets()
    );
}

#[test]
fn no_proxy_hosts_are_reached_directly() {
    let confluence = FakeConfluence::start(ConfluenceAuth::Bearer(PAT.into()));
    page(&confluence, 4244, "Direct page");
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", "C0ENG00001", true);
    let proxy = ForwardProxy::start();

    let mut side = Sidecar::new();
    side.add_to_config(&format!(
        "[network]\nproxy = \"{}\"\nno-proxy = [\"localhost\"]\n",
        proxy.url()
    ));
    let wiki = format!("http://localhost:{}", confluence.addr().port());
    side.connect_confluence("prod", &wiki);
    side.connect_slack("acme", &slack.base_url(), BOT);
    side.bind_slack_poster("eng", &["--scope", "space:ENG"]);
    side.start();
    let (status, answer) = side.hook(
        "prod",
        &page_created(4244, 1768241299102),
        Some(HOOK_SECRET),
    );
    assert_eq!(status, 202, "{answer}");
    let posts = slack.wait_for_posts(1, Duration::from_secs(30));
    assert!(
        posts[0]
            .text
            .as_deref()
            .is_some_and(|t| t.contains("Direct page"))
    );
    let targets = proxy.targets();
    assert_eq!(
        targets,
        vec![slack.addr().to_string()],
        "Confluence went direct"
    );
    assert!(confluence.calls(pagehook_fakes::endpoints::GET_CONTENT) >= 1);
}

#[test]
fn the_environments_http_proxy_applies_when_the_config_names_none() {
    let confluence = FakeConfluence::start(ConfluenceAuth::Bearer(PAT.into()));
    let proxy = ForwardProxy::start();
    let side = Sidecar::new();
    side.connect_confluence("prod", &confluence.base_url());
    let out = Command::new(env!("CARGO_BIN_EXE_pagehook"))
        .arg("--config")
        .arg(side.config())
        .args(["connection", "test", "prod"])
        .env("PAGEHOOK_TEST_PAT", PAT)
        .env("HTTP_PROXY", proxy.url())
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(proxy.targets(), vec![confluence.addr().to_string()]);
}

fn connect_confluence_with(side: &Sidecar, name: &str, url: &str, proxy: &str) -> String {
    side.cli(&[
        "connect",
        "confluence",
        name,
        "--url",
        url,
        "--token-env",
        "PAGEHOOK_TEST_PAT",
        "--webhook-secret-env",
        "PAGEHOOK_TEST_HOOK_SECRET",
        "--proxy",
        proxy,
    ])
}

#[test]
fn a_confluence_connection_with_proxy_direct_is_reached_directly_while_slack_uses_the_global_proxy()
{
    let confluence = FakeConfluence::start(ConfluenceAuth::Bearer(PAT.into()));
    page(&confluence, 4245, "Straight to the wiki");
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", "C0ENG00001", true);
    let proxy = ForwardProxy::start();

    let mut side = Sidecar::new();
    side.add_to_config(&format!("[network]\nproxy = \"{}\"\n", proxy.url()));
    let said = connect_confluence_with(&side, "prod", &confluence.base_url(), "direct");
    assert!(said.contains("reached directly"), "{said}");
    side.connect_slack("acme", &slack.base_url(), BOT);
    side.bind_slack_poster("eng", &["--scope", "space:ENG"]);
    let listed = side.cli(&["connections"]);
    assert!(listed.contains("PROXY"), "{listed}");
    let prod_row = listed.lines().find(|l| l.starts_with("prod")).unwrap();
    assert!(prod_row.contains("direct"), "{listed}");
    let acme_row = listed.lines().find(|l| l.starts_with("acme")).unwrap();
    assert!(acme_row.contains("global"), "{listed}");
    let json = side.cli(&["connections", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let prod = json
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "prod")
        .unwrap();
    assert_eq!(prod["proxy"], "direct");

    let tested = side.cli(&["connection", "test", "prod"]);
    assert!(tested.contains("accepts the credentials"), "{tested}");
    assert!(proxy.targets().is_empty(), "connection test went direct");
    side.start();
    let (status, answer) = side.hook(
        "prod",
        &page_created(4245, 1768241299103),
        Some(HOOK_SECRET),
    );
    assert_eq!(status, 202, "{answer}");
    let posts = slack.wait_for_posts(1, Duration::from_secs(30));
    assert!(
        posts[0]
            .text
            .as_deref()
            .is_some_and(|t| t.contains("Straight to the wiki")),
        "{:?}",
        posts[0].text
    );
    assert!(confluence.calls(pagehook_fakes::endpoints::GET_CONTENT) >= 1);
    assert_eq!(
        proxy.targets(),
        vec![slack.addr().to_string()],
        "Slack through the global proxy, Confluence never"
    );
}

#[test]
fn a_slack_connection_with_its_own_proxy_goes_through_it_and_not_the_global_one() {
    let confluence = FakeConfluence::start(ConfluenceAuth::Bearer(PAT.into()));
    page(&confluence, 4246, "Through the EU proxy");
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", "C0ENG00001", true);
    let global = ForwardProxy::with_credentials("svc-pagehook", "proxy-pass-9");
    let eu = ForwardProxy::start();

    let mut side = Sidecar::new();
    std::fs::write(
        side.dir.path().join("proxy-auth"),
        "svc-pagehook:proxy-pass-9",
    )
    .unwrap();
    side.add_to_config(&format!(
        "[network]\nproxy = \"{}\"\nproxy-credentials = {{ file = \"proxy-auth\" }}\n",
        global.url()
    ));
    side.connect_confluence("prod", &confluence.base_url());
    let said = side.cli(&[
        "connect",
        "slack",
        "acme",
        "--url",
        &slack.base_url(),
        "--token",
        BOT,
        "--proxy",
        &eu.url(),
    ]);
    assert!(said.contains("without credentials"), "{said}");
    side.bind_slack_poster("eng", &["--scope", "space:ENG"]);
    let tested = side.cli(&["connection", "test", "acme"]);
    assert!(tested.contains("Slack accepts the token"), "{tested}");
    assert_eq!(eu.targets(), vec![slack.addr().to_string()]);
    side.start();
    let (status, answer) = side.hook(
        "prod",
        &page_created(4246, 1768241299104),
        Some(HOOK_SECRET),
    );
    assert_eq!(status, 202, "{answer}");
    let posts = slack.wait_for_posts(1, Duration::from_secs(30));
    assert!(
        posts[0]
            .text
            .as_deref()
            .is_some_and(|t| t.contains("Through the EU proxy")),
        "{:?}",
        posts[0].text
    );
    let slack_target = slack.addr().to_string();
    assert_eq!(
        global.targets(),
        vec![confluence.addr().to_string()],
        "the global proxy carried Confluence only"
    );
    let via_eu = eu.requests();
    assert_eq!(eu.targets(), vec![slack_target.clone()]);
    assert_eq!(
        slack.requests().len(),
        via_eu.len(),
        "every request Slack saw came through the connection's proxy"
    );
    assert!(
        via_eu.iter().all(|r| r.carried && !r.authorized),
        "the global proxy's credentials never go to another proxy: {via_eu:?}"
    );
}

#[test]
fn a_bad_proxy_value_is_refused_and_nothing_is_stored() {
    let side = Sidecar::new();
    for (bad, says) in [
        ("socks5://proxy.corp:1080", "not an HTTP proxy"),
        ("proxy.corp:3128", "not an HTTP proxy"),
        ("sometimes", "expected `direct`"),
        ("http://svc:hunter2@proxy.corp:3128", "credentials inside"),
    ] {
        let out = side.cli_output(&[
            "connect",
            "slack",
            "acme",
            "--url",
            "http://127.0.0.1:9/api/",
            "--token",
            BOT,
            "--proxy",
            bad,
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{bad}: {stdout}");
        assert!(
            stderr.contains("--proxy") && stderr.contains(says),
            "{bad}: {stderr}"
        );
        assert!(!stderr.contains("hunter2") && !stdout.contains("hunter2"));
    }
    let listed = side.cli(&["connections", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed, serde_json::json!([]), "nothing was stored");
}

#[test]
fn the_api_sets_checks_and_clears_a_connections_proxy_and_a_bad_one_changes_nothing() {
    let mut side = Sidecar::new();
    side.start();
    let http = reqwest::blocking::Client::new();
    let send = |method: reqwest::Method, path: &str, body: serde_json::Value| {
        let answer = http
            .request(method, format!("{}{path}", side.base))
            .bearer_auth(common::sidecar::ADMIN_TOKEN)
            .json(&body)
            .send()
            .unwrap();
        (
            answer.status().as_u16(),
            answer.json::<serde_json::Value>().unwrap_or_default(),
        )
    };
    let slack = |proxy: &str| {
        serde_json::json!({
            "name": "acme", "kind": "slack", "url": "http://127.0.0.1:9/api/",
            "token": { "value": BOT }, "proxy": proxy,
        })
    };
    let (status, answer) = send(
        reqwest::Method::POST,
        "/api/connections",
        slack("socks5://p:1080"),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("not an HTTP proxy"), "{answer}");
    assert_eq!(side.api("/api/connections").1, serde_json::json!([]));

    let (status, answer) = send(reqwest::Method::POST, "/api/connections", slack("direct"));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["proxy"], "direct");
    let (status, answer) = send(
        reqwest::Method::PATCH,
        "/api/connections/acme",
        serde_json::json!({ "proxy": "http://svc:hunter2@proxy.corp:3128", "dry_run": true }),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(!answer.to_string().contains("hunter2"), "{answer}");
    let (_, listed) = side.api("/api/connections");
    assert_eq!(listed[0]["proxy"], "direct", "nothing changed: {listed}");
    assert_eq!(listed[0]["dry_run"], false, "nothing changed: {listed}");

    let (status, answer) = send(
        reqwest::Method::PATCH,
        "/api/connections/acme",
        serde_json::json!({ "proxy": "http://proxy.eu.corp:3128" }),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["proxy"], "http://proxy.eu.corp:3128/");
    let (status, answer) = send(
        reqwest::Method::PATCH,
        "/api/connections/acme",
        serde_json::json!({ "proxy": "" }),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.get("proxy").is_none(),
        "back on the global: {answer}"
    );
}

#[test]
fn connecting_again_keeps_a_connections_own_proxy_until_it_is_set_back_to_global() {
    let side = Sidecar::new();
    let proxy_of = |side: &Sidecar| {
        let json: serde_json::Value =
            serde_json::from_str(&side.cli(&["connections", "--json"])).unwrap();
        json[0]["proxy"].clone()
    };
    connect_confluence_with(&side, "prod", "http://127.0.0.1:9", "direct");
    assert_eq!(proxy_of(&side), "direct");
    // A new token: the way out stays.
    side.connect_confluence("prod", "http://127.0.0.1:9");
    assert_eq!(proxy_of(&side), "direct");
    connect_confluence_with(&side, "prod", "http://127.0.0.1:9", "global");
    assert_eq!(proxy_of(&side), serde_json::Value::Null);
}
