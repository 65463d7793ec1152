//! The Slack app manifest an admin pastes at api.slack.com/apps ("From an
//! app manifest"): exactly the bot scopes Pagehook's Slack client uses, each
//! with the methods (or the event, or the command) that need it; the
//! `link_shared` event subscription and the unfurl domain for link
//! previews; and the `/confluence` slash command. Events and commands are
//! sent to `<pagehook>/hooks/slack/<connection>`, the connection's own
//! signed endpoint. The console shows it beside "Connect Slack"; docs/admin.md
//! quotes it.
//!
//! Field names follow Slack's app manifest reference: `features.unfurl_domains`,
//! `features.slash_commands[].{command, url, description, usage_hint,
//! should_escape}`, `settings.event_subscriptions.{request_url, bot_events}`,
//! `settings.socket_mode_enabled` ([`slack_app_manifest_socket_mode`]: the
//! same app receiving over Socket Mode, with no request URLs).

/// Stands for Pagehook's public base URL in [`SLACK_APP_MANIFEST`].
pub const BASE_PLACEHOLDER: &str = "https://pagehook.example.com";
/// Stands for the Slack connection's name in [`SLACK_APP_MANIFEST`].
pub const CONNECTION_PLACEHOLDER: &str = "CONNECTION";
/// Stands for the Confluence host whose links are previewed.
pub const CONFLUENCE_PLACEHOLDER: &str = "confluence.example.com";

/// The manifest, YAML, with placeholders for Pagehook's base URL, the
/// connection's name and the Confluence host; [`slack_app_manifest`] fills
/// them in.
pub const SLACK_APP_MANIFEST: &str = "\
display_information:
  name: Pagehook
  description: Confluence page events in Slack
features:
  bot_user:
    display_name: Pagehook
    always_online: true
  unfurl_domains:
    - confluence.example.com
  slash_commands:
    - command: /confluence
      url: https://pagehook.example.com/hooks/slack/CONNECTION
      description: Search Confluence pages you may see; link your Confluence account
      usage_hint: \"search <words> | link | unlink\"
      should_escape: false
oauth_config:
  scopes:
    bot:
      - chat:write          # chat.postMessage, chat.update: channel posts and DMs
      - channels:read       # conversations.list: public channel names to ids
      - groups:read         # conversations.list: private channels the bot was invited to
      - channels:history    # conversations.history/replies: find a message whose answer was lost
      - groups:history      #   ... in private channels
      - im:history          #   ... in DMs
      - im:write            # conversations.open: the DM channel to post in
      - users:read          # users.info: who typed a command or shared a link, and with users:read.email:
      - users:read.email    # users.lookupByEmail: DMs by email; users.info: the user's email
      - links:read          # the link_shared event: Confluence links posted in Slack
      - links:write         # chat.unfurl: previews of those links
      - commands            # the /confluence slash command
settings:
  event_subscriptions:
    request_url: https://pagehook.example.com/hooks/slack/CONNECTION
    bot_events:
      - link_shared
  org_deploy_enabled: false
  socket_mode_enabled: false
  token_rotation_enabled: false
";

/// The manifest for Slack connection `connection` of the Pagehook at
/// `base_url` (its public URL, as Slack reaches it), previewing links to
/// `confluence_host` (a host name, e.g. `wiki.example.com`).
pub fn slack_app_manifest(base_url: &str, connection: &str, confluence_host: &str) -> String {
    SLACK_APP_MANIFEST
        .replace(
            &format!("{BASE_PLACEHOLDER}/hooks/slack/{CONNECTION_PLACEHOLDER}"),
            &format!(
                "{}/hooks/slack/{connection}",
                base_url.trim_end_matches('/')
            ),
        )
        .replace(CONFLUENCE_PLACEHOLDER, confluence_host)
}

/// The manifest for an app that receives over Socket Mode: the same
/// features and scopes, `settings.socket_mode_enabled: true`, and no
/// request URLs (Slack's manifest reference: with Socket Mode on, events and
/// commands go to the app's WebSocket, so neither `request_url` nor a
/// command's `url` is needed). The app also needs an app-level token with
/// `connections:write`, which a manifest cannot create.
pub fn slack_app_manifest_socket_mode(confluence_host: &str) -> String {
    SLACK_APP_MANIFEST
        .lines()
        .filter(|l| !l.contains(&format!("{BASE_PLACEHOLDER}/hooks/slack/")))
        .map(|l| {
            if l.trim() == "socket_mode_enabled: false" {
                l.replace("false", "true")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        .replace(CONFLUENCE_PLACEHOLDER, confluence_host)
        + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slack::methods;
    use serde_json::Value;

    /// The scopes the manifest grants the bot.
    fn scopes() -> Vec<&'static str> {
        SLACK_APP_MANIFEST
            .lines()
            .skip_while(|l| !l.contains("bot:"))
            .skip(1)
            .take_while(|l| l.trim_start().starts_with("- "))
            .map(|l| {
                l.trim_start()
                    .trim_start_matches("- ")
                    .split_whitespace()
                    .next()
                    .unwrap()
            })
            .collect()
    }

    fn spec() -> Value {
        let dir = std::env::var_os("PAGEHOOK_SPECS_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/specs")
            });
        let path = dir.join("slack/slack_web_openapi_v2.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read Slack's spec at {}: {e}", path.display()));
        serde_json::from_str(&text).expect("the spec is JSON")
    }

    /// The scopes any one of which lets a bot call `method`, from Slack's
    /// spec (its legacy `chat:write:bot` is today's `chat:write`).
    fn method_scopes(spec: &Value, method: &str) -> Vec<String> {
        let ops = spec["paths"][format!("/{method}")]
            .as_object()
            .unwrap_or_else(|| panic!("{method} is not in Slack's spec"));
        let op = ops.values().next().unwrap();
        op.pointer("/security/0/slackAuth")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|s| *s != "none" && !s.ends_with(":user"))
            .map(|s| s.trim_end_matches(":bot").to_owned())
            .collect()
    }

    /// Scopes that no Web API call needs but an event or a command does.
    const NOT_FOR_METHODS: &[(&str, &str)] = &[
        ("links:read", "the link_shared event"),
        ("commands", "the /confluence slash command"),
    ];

    /// Every Web API method the client calls needs a scope listed here (by
    /// Slack's spec), and every scope listed is needed by a method, an event
    /// or the command: exactly the scopes used.
    #[test]
    fn the_manifest_lists_exactly_the_scopes_the_client_uses() {
        let spec = spec();
        let granted = scopes();
        let mut needed: Vec<String> = NOT_FOR_METHODS.iter().map(|(s, _)| (*s).into()).collect();
        for m in methods::ALL {
            let alternatives = method_scopes(&spec, m.name);
            if alternatives.is_empty() {
                continue;
            }
            assert!(
                alternatives.iter().any(|s| granted.contains(&s.as_str())),
                "{} needs one of {alternatives:?}; the manifest grants {granted:?}",
                m.name
            );
            needed.extend(alternatives);
        }
        for scope in &granted {
            assert!(
                needed.iter().any(|n| n == scope),
                "the manifest grants `{scope}`, which nothing Pagehook calls or receives needs"
            );
        }
        for (method, scope) in [
            ("chat.postMessage", "chat:write"),
            ("chat.unfurl", "links:write"),
            ("conversations.list", "channels:read"),
            ("conversations.list", "groups:read"),
            ("conversations.history", "channels:history"),
            ("conversations.open", "im:write"),
            ("users.lookupByEmail", "users:read.email"),
            ("users.info", "users:read"),
        ] {
            assert!(granted.contains(&scope), "{method} needs {scope}");
        }
    }

    #[test]
    fn events_commands_and_unfurl_domains_point_at_the_connection() {
        let m = slack_app_manifest("https://sidecar.corp.example/", "acme", "wiki.corp.example");
        assert_eq!(
            m.matches("url: https://sidecar.corp.example/hooks/slack/acme\n")
                .count(),
            2,
            "the event subscription's request_url and the command's url:\n{m}"
        );
        assert!(
            m.contains("  unfurl_domains:\n    - wiki.corp.example\n"),
            "{m}"
        );
        assert!(m.contains("    bot_events:\n      - link_shared\n"), "{m}");
        assert!(m.contains("    - command: /confluence\n"), "{m}");
        assert!(!m.contains("example.com"), "no placeholder left:\n{m}");
        assert!(!m.contains(CONNECTION_PLACEHOLDER));
        // The YAML's shape, as Slack's manifest reference names it.
        for key in [
            "features:\n",
            "  slash_commands:\n",
            "settings:\n  event_subscriptions:\n    request_url: ",
            "      usage_hint: ",
            "      should_escape: false\n",
        ] {
            assert!(m.contains(key), "{key:?} in\n{m}");
        }
    }

    #[test]
    fn the_socket_mode_manifest_has_no_request_urls_and_turns_socket_mode_on() {
        let m = slack_app_manifest_socket_mode("wiki.corp.example");
        assert!(m.contains("  socket_mode_enabled: true\n"), "{m}");
        assert!(!m.contains("socket_mode_enabled: false"), "{m}");
        assert!(!m.contains(" url: "), "no request URL:\n{m}");
        assert!(!m.contains("request_url"), "{m}");
        assert!(m.contains("    bot_events:\n      - link_shared\n"), "{m}");
        assert!(
            m.contains("    - command: /confluence\n      description: "),
            "{m}"
        );
        assert!(
            m.contains("  unfurl_domains:\n    - wiki.corp.example\n"),
            "{m}"
        );
        assert!(
            m.contains("settings:\n  event_subscriptions:\n    bot_events:"),
            "{m}"
        );
        assert!(!m.contains("example.com"), "no placeholder left:\n{m}");
    }
}
