//! The bundled plugins in the real sandbox, through `pagehook plugin run`,
//! on the example events: output compared with golden files checked in
//! under `plugins/<name>/tests/golden/`, and checked the way Slack, Teams
//! and Confluence would check it (Block Kit limits, Microsoft's Adaptive
//! Card schema, well-formed storage-format XML).
//!
//! After an intended change of output, rewrite the golden files with
//! `PAGEHOOK_BLESS=1 cargo test -p pagehook --test bundled_plugins` and
//! review the diff.

use crate::common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// One sandbox run: plugin, example event, settings.
struct Case {
    plugin: &'static str,
    event: &'static str,
    settings: &'static [&'static str],
}

const SLACK: &[Case] = &[
    Case {
        plugin: "slack-poster",
        event: "page_created",
        settings: &["channel=#eng"],
    },
    Case {
        plugin: "slack-poster",
        event: "page_updated",
        settings: &["channel=#eng"],
    },
    Case {
        plugin: "slack-poster",
        event: "page_updated_minor",
        settings: &["channel=#eng"],
    },
    Case {
        plugin: "slack-poster",
        event: "page_created_restricted",
        settings: &["channel=#eng"],
    },
    Case {
        plugin: "slack-poster",
        event: "page_created_unicode_long",
        settings: &["channel=#eng"],
    },
    Case {
        plugin: "slack-poster",
        event: "page_created_not_enriched",
        settings: &["channel=#eng"],
    },
    Case {
        plugin: "slack-poster",
        event: "blog_created",
        settings: &["channel=#eng", "dm-emails=grace@example.com"],
    },
    Case {
        plugin: "slack-poster",
        event: "comment_created",
        settings: &["channel=#eng", "events=comment-created"],
    },
    Case {
        plugin: "slack-poster",
        event: "comment_created",
        settings: &["channel=#eng"],
    },
];

const TEAMS: &[Case] = &[
    Case {
        plugin: "teams-poster",
        event: "page_created",
        settings: &["channel=eng-news"],
    },
    Case {
        plugin: "teams-poster",
        event: "page_updated",
        settings: &["channel=eng-news"],
    },
    Case {
        plugin: "teams-poster",
        event: "page_updated_minor",
        settings: &["channel=eng-news", "skip-minor-edits=false"],
    },
    Case {
        plugin: "teams-poster",
        event: "page_created_unicode_long",
        settings: &["channel=eng-news"],
    },
    Case {
        plugin: "teams-poster",
        event: "page_created_not_enriched",
        settings: &["channel=eng-news"],
    },
    Case {
        plugin: "teams-poster",
        event: "blog_created",
        settings: &["channel=eng-news", "labels=engineering, release"],
    },
    Case {
        plugin: "teams-poster",
        event: "comment_created",
        settings: &["channel=eng-news", "events=comment-created"],
    },
];

const RETRO: &[Case] = &[
    Case {
        plugin: "retro-writer",
        event: "incident_created",
        settings: &[],
    },
    Case {
        plugin: "retro-writer",
        event: "label_added_incident",
        settings: &["space=SRE", "parent-id=9000", "labels=retro, pir"],
    },
    Case {
        plugin: "retro-writer",
        event: "page_created",
        settings: &[],
    },
];

impl Case {
    fn golden_name(&self) -> String {
        let mut name = self.event.to_owned();
        for s in self.settings {
            let (k, v) = s.split_once('=').unwrap();
            if k != "channel" {
                name.push_str(&format!("+{k}={}", v.replace([' ', '#', ','], "")));
            }
        }
        name
    }

    fn golden_path(&self) -> PathBuf {
        common::root()
            .join("plugins")
            .join(self.plugin)
            .join("tests/golden")
            .join(format!("{}.json", self.golden_name()))
    }

    /// Runs the case; returns the actions and the fuel the call used.
    fn run(&self) -> (Value, u64) {
        let cache = common::root().join("target/pagehook-cache");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pagehook"));
        cmd.args(["plugin", "run"])
            .arg(common::plugin_dir(self.plugin))
            .arg("--event")
            .arg(common::event_path(&format!("{}.json", self.event)))
            .arg("--cache-dir")
            .arg(cache);
        for s in self.settings {
            cmd.args(["--set", s]);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{} on {}: {stderr}",
            self.plugin,
            self.event
        );
        let fuel = stderr
            .split("fuel ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no fuel figure in {stderr}"));
        (serde_json::from_slice(&out.stdout).unwrap(), fuel)
    }

    /// Compares with the golden file (or rewrites it under PAGEHOOK_BLESS).
    fn check_golden(&self, actions: &Value) {
        let path = self.golden_path();
        let pretty = format!("{}\n", serde_json::to_string_pretty(actions).unwrap());
        if std::env::var_os("PAGEHOOK_BLESS").is_some() {
            std::fs::write(&path, &pretty).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            panic!(
                "{} is missing: run with PAGEHOOK_BLESS=1 and review it",
                path.display()
            )
        });
        let expected: Value = serde_json::from_str(&expected).unwrap();
        assert_eq!(
            actions,
            &expected,
            "{} on {} differs from {}",
            self.plugin,
            self.event,
            path.display()
        );
    }
}

fn card_schema() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let path = common::root().join("../shared/schemas/adaptive-card-1.6.schema.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (../shared must sit beside the repository)",
                path.display()
            )
        });
        jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
    })
}

fn assert_storage_xml(body: &str) {
    let doc = format!(
        r#"<root xmlns:ac="http://atlassian.com/content" xmlns:ri="http://atlassian.com/resource/identifier">{body}</root>"#
    );
    if let Err(e) = roxmltree::Document::parse(&doc) {
        panic!("storage body is not well-formed XML: {e}\n{body}");
    }
}

fn assert_block_kit(blocks: &Value) {
    let blocks = blocks.as_array().expect("blocks are an array");
    assert!(blocks.len() <= 50);
    for b in blocks {
        let text = b["text"]["text"].as_str().unwrap_or("");
        match b["type"].as_str().unwrap() {
            "header" => assert!(text.chars().count() <= 150, "{b}"),
            "section" => assert!(text.chars().count() <= 3000, "{b}"),
            "context" | "actions" => assert!(!b["elements"].as_array().unwrap().is_empty(), "{b}"),
            other => panic!("unexpected block {other}"),
        }
    }
}

#[test]
fn slack_poster_matches_golden_output_within_block_kit_limits() {
    for case in SLACK {
        let (actions, _) = case.run();
        case.check_golden(&actions);
        for action in actions.as_array().unwrap() {
            assert!(
                !action["text"].as_str().unwrap().is_empty(),
                "text fallback always set"
            );
            assert_block_kit(&action["blocks"]);
        }
    }
}

#[test]
fn teams_poster_matches_golden_output_and_microsofts_schema() {
    for case in TEAMS {
        let (actions, _) = case.run();
        case.check_golden(&actions);
        for action in actions.as_array().unwrap() {
            let card = &action["card"];
            let errors: Vec<String> = card_schema()
                .iter_errors(card)
                .map(|e| e.to_string())
                .collect();
            assert!(
                errors.is_empty(),
                "{} on {}: {errors:?}",
                case.plugin,
                case.event
            );
            assert_eq!(card["version"], "1.5");
            assert!(!card.to_string().contains("Action.Submit"));
            let envelope = serde_json::json!({"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}]});
            assert!(envelope.to_string().len() <= 28 * 1024);
        }
    }
}

#[test]
fn retro_writer_matches_golden_output_with_well_formed_storage_format() {
    for case in RETRO {
        let (actions, _) = case.run();
        case.check_golden(&actions);
        for action in actions.as_array().unwrap() {
            assert_storage_xml(action["body"].as_str().unwrap());
        }
    }
}

#[test]
fn skipped_events_produce_no_actions() {
    let skipped = [
        &SLACK[2], // minor edit
        &SLACK[3], // restricted
        &SLACK[8], // comment, not in the default events
        &RETRO[2], // no incident label
    ];
    for case in skipped {
        assert_eq!(
            case.run().0,
            serde_json::json!([]),
            "{} on {}",
            case.plugin,
            case.event
        );
    }
}

#[test]
fn a_broken_template_is_a_clear_error_not_a_broken_page() {
    let out = Command::new(env!("CARGO_BIN_EXE_pagehook"))
        .args(["plugin", "run"])
        .arg(common::plugin_dir("retro-writer"))
        .arg("--event")
        .arg(common::event_path("incident_created.json"))
        .arg("--cache-dir")
        .arg(common::root().join("target/pagehook-cache"))
        .args(["--set", "template=<h2>Summary</h2>\n{% for x in %}"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("returned an error: setting `template` is not a valid Liquid template"),
        "{stderr}"
    );
}

/// Slack's control sequences (and a Teams mention), in every piece of
/// Confluence text an event carries.
const HOSTILE: &str =
    "<!channel> <!here> <@U0ADMIN> <https://evil|click> <at>Everyone</at> [win](https://evil) &";

/// An example event with `HOSTILE` in its title, author, space name,
/// excerpt, version message, labels and ancestors' titles.
fn hostile_event(name: &str) -> Value {
    let text = std::fs::read_to_string(common::event_path(&format!("{name}.json"))).unwrap();
    let mut event: Value = serde_json::from_str(&text).unwrap();
    event["actor"]["display_name"] = format!("Ada {HOSTILE}").into();
    let c = &mut event["content"];
    c["title"] = format!("Title {HOSTILE}").into();
    c["space_name"] = format!("Space {HOSTILE}").into();
    c["excerpt"] = format!("Excerpt {HOSTILE}\nsecond line {HOSTILE}").into();
    c["version_message"] = format!("Note {HOSTILE}").into();
    c["labels"] = serde_json::json!([format!("label {HOSTILE}"), "<@U0ADMIN>"]);
    c["ancestors"] = serde_json::json!([
        {"id": 2818001, "title": format!("Home {HOSTILE}")},
        {"id": 2818051, "title": format!("Ancestor {HOSTILE}")},
    ]);
    event
}

/// Runs `plugin` on `event` (given on stdin) with `settings`; returns the actions.
fn run_on(plugin: &str, event: &Value, settings: &[&str]) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pagehook"));
    cmd.args(["plugin", "run"])
        .arg(common::plugin_dir(plugin))
        .args(["--event", "-"])
        .arg("--cache-dir")
        .arg(common::root().join("target/pagehook-cache"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for s in settings {
        cmd.args(["--set", s]);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(event.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{plugin}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every `mrkdwn` text object's text in Slack blocks, at any depth.
fn mrkdwn_texts(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("mrkdwn") {
                out.push(map["text"].as_str().unwrap().to_owned());
            }
            map.values().for_each(|v| mrkdwn_texts(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| mrkdwn_texts(v, out)),
        _ => {}
    }
}

/// No `<` in `mrkdwn` except the links to the page the plugin made itself
/// (`<https://wiki.example.com/...|label>`), and none of the sequences.
fn assert_no_slack_control_sequences(mrkdwn: &str) {
    let mut rest = mrkdwn;
    while let Some(i) = rest.find('<') {
        assert!(
            rest[i..].starts_with("<https://wiki.example.com/"),
            "unescaped `<` in {mrkdwn:?}"
        );
        rest = &rest[i + 1..];
    }
    for seq in [
        "<!channel>",
        "<!here>",
        "<@U0ADMIN>",
        "<https://evil|click>",
    ] {
        assert!(!mrkdwn.contains(seq), "{seq} in {mrkdwn:?}");
    }
}

#[test]
fn slack_poster_escapes_every_piece_of_confluence_text_in_mrkdwn() {
    for (event, settings) in [
        (
            hostile_event("page_updated"),
            &["channel=#eng", "dm-emails=grace@example.com"][..],
        ),
        (
            hostile_event("comment_created"),
            &[
                "channel=#eng",
                "events=comment-created",
                "dm-emails=ada@example.com",
            ][..],
        ),
    ] {
        let actions = run_on("slack-poster", &event, settings);
        let actions = actions.as_array().unwrap();
        assert_eq!(actions.len(), 2, "a post and a DM: {actions:?}");
        for action in actions {
            let text = action["text"].as_str().unwrap();
            assert_no_slack_control_sequences(text);
            assert!(text.contains("&lt;!channel&gt;"), "{text}");
            let mut texts = Vec::new();
            mrkdwn_texts(&action["blocks"], &mut texts);
            assert!(texts.len() >= 5, "{texts:?}");
            texts
                .iter()
                .for_each(|t| assert_no_slack_control_sequences(t));
            let all = texts.join("\n");
            for piece in [
                "Ada",
                "Space",
                "Excerpt",
                "second line",
                "label",
                "&lt;@U0ADMIN&gt;",
            ] {
                assert!(all.contains(piece), "{piece} missing from {all}");
            }
            assert_block_kit(&action["blocks"]);
            // The header is plain_text, which Slack shows literally: as written.
            let header = &action["blocks"][0]["text"];
            assert_eq!(header["type"], "plain_text");
            assert!(
                header["text"].as_str().unwrap().ends_with(HOSTILE),
                "{header}"
            );
        }
    }
}

/// Every string Teams reads as markdown in a card: TextBlock text, fact
/// titles and values.
fn card_markdown(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let kind = map.get("type").and_then(Value::as_str);
            for (key, child) in map {
                match (child, key.as_str(), kind) {
                    (Value::String(s), "text", Some("TextBlock")) => out.push(s.clone()),
                    (Value::String(s), "title" | "value", None) => out.push(s.clone()),
                    _ => card_markdown(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| card_markdown(v, out)),
        _ => {}
    }
}

fn assert_card_valid(card: &Value) {
    let errors: Vec<String> = card_schema()
        .iter_errors(card)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{card:#}");
    assert_eq!(card["version"], "1.5");
}

fn envelope_bytes(card: &Value) -> usize {
    serde_json::json!({"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}]})
        .to_string()
        .len()
}

#[test]
fn teams_poster_cards_cannot_mention_or_link_from_confluence_text() {
    for (event, settings) in [
        (hostile_event("page_updated"), &["channel=eng-news"][..]),
        (
            hostile_event("comment_created"),
            &["channel=eng-news", "events=comment-created"][..],
        ),
    ] {
        let actions = run_on("teams-poster", &event, settings);
        let card = &actions[0]["card"];
        assert_card_valid(card);
        assert!(card.get("msteams").is_none(), "no mention entities");
        let mut texts = Vec::new();
        card_markdown(card, &mut texts);
        assert!(texts.len() >= 8, "{texts:?}");
        for t in &texts {
            assert!(!t.contains("<at>") && !t.contains('<'), "{t}");
            assert!(!t.contains("](https://evil"), "a link from content: {t}");
        }
        let all = texts.join("\n");
        for piece in [
            "Ada",
            "Space",
            "Note",
            "Excerpt",
            "label",
            "&lt;at&gt;Everyone&lt;/at&gt;",
        ] {
            assert!(all.contains(piece), "{piece} missing from {all}");
        }
    }
}

#[test]
fn teams_poster_shortens_absurd_content_to_the_envelope_limit() {
    let mut event = hostile_event("page_updated");
    let c = &mut event["content"];
    c["title"] = "<at>Title</at> & ".repeat(250).into();
    assert!(c["title"].as_str().unwrap().chars().count() >= 4_000);
    c["labels"] = (0..300)
        .map(|i| format!("label-{i}-{HOSTILE}"))
        .collect::<Vec<_>>()
        .into();
    c["excerpt"] = format!("{HOSTILE} ").repeat(1_200).into();
    assert!(c["excerpt"].as_str().unwrap().len() > 100_000);
    let actions = run_on("teams-poster", &event, &["channel=eng-news"]);
    let card = &actions[0]["card"];
    assert_card_valid(card);
    let bytes = envelope_bytes(card);
    assert!(bytes <= 28 * 1024, "envelope of {bytes} bytes");
    let mut texts = Vec::new();
    card_markdown(card, &mut texts);
    assert!(texts.iter().all(|t| !t.contains('<')), "{texts:?}");
    assert!(
        texts.iter().any(|t| t.ends_with('…')),
        "something was shortened: {texts:?}"
    );
    assert_eq!(card["actions"].as_array().unwrap().len(), 2, "buttons kept");
}

#[test]
fn retro_writer_keeps_markup_in_confluence_text_as_text() {
    let mut event = hostile_event("incident_created");
    let c = &mut event["content"];
    c["title"] = "DB ]]> <primary> & \"replica\" <![CDATA[".into();
    c["labels"] = serde_json::json!(["incident", "]]><x>&"]);
    let actions = run_on("retro-writer", &event, &[]);
    let actions = actions.as_array().unwrap();
    assert_eq!(actions.len(), 2);
    for action in actions {
        let body = action["body"].as_str().unwrap();
        assert_storage_xml(body);
        assert!(
            !body.contains("]]>") && !body.contains("<primary>"),
            "{body}"
        );
    }
    assert!(
        actions[0]["body"]
            .as_str()
            .unwrap()
            .contains("DB ]]&gt; &lt;primary&gt; &amp; &quot;replica&quot;")
    );
}
