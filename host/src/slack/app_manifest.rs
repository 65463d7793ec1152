//! The Slack app manifest an admin pastes at api.slack.com/apps ("From an
//! app manifest"): exactly the bot scopes Pagehook's Slack client uses, each
//! with the methods that need it. The console shows it beside "Connect
//! Slack"; docs/admin.md quotes it.

/// The manifest, YAML.
pub const SLACK_APP_MANIFEST: &str = "\
display_information:
  name: Pagehook
  description: Confluence page events in Slack
features:
  bot_user:
    display_name: Pagehook
    always_online: true
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
      - users:read          # users.info, and with users:read.email:
      - users:read.email    # users.lookupByEmail: DMs by email
settings:
  org_deploy_enabled: false
  socket_mode_enabled: false
  token_rotation_enabled: false
";

#[cfg(test)]
mod tests {
    use super::SLACK_APP_MANIFEST;

    /// Every Web API method the client calls needs a scope listed here.
    #[test]
    fn the_manifest_lists_a_scope_for_every_method_the_client_calls() {
        for (method, scope) in [
            ("chat.postMessage", "chat:write"),
            ("conversations.list", "channels:read"),
            ("conversations.list", "groups:read"),
            ("conversations.history", "channels:history"),
            ("conversations.open", "im:write"),
            ("users.lookupByEmail", "users:read.email"),
            ("users.info", "users:read"),
        ] {
            assert!(
                SLACK_APP_MANIFEST.contains(&format!("- {scope} ")),
                "{method} needs {scope}"
            );
        }
    }
}
