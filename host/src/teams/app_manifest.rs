//! The Teams app manifest (`manifest.json`) an admin zips with two icons
//! and uploads to the org's app catalog (Teams admin center → Manage apps →
//! Upload new app), the way the Slack app manifest is pasted at
//! api.slack.com: the bot (its Microsoft App ID as `botId`) in the
//! `personal` and `team` scopes, the commands it answers, and Pagehook's
//! host as a valid domain.
//!
//! Field names follow Microsoft's app manifest schema (version 1.17):
//! `manifestVersion`, `id`, `developer`, `name`, `description`, `icons`,
//! `accentColor`, `bots[].{botId, scopes, isNotificationOnly,
//! supportsFiles, commandLists[].{scopes, commands[].{title,
//! description}}}`, `validDomains`. What it must never carry: a secret (it
//! names only ids and the public address).

use serde_json::{Value, json};

/// Microsoft's schema for the manifest version written.
pub const SCHEMA: &str =
    "https://developer.microsoft.com/en-us/json-schemas/teams/v1.17/MicrosoftTeams.schema.json";

/// The commands the bot lists in Teams' command menu: what teams-poster
/// answers (`search`) and what the host answers itself (`link`, `unlink`).
pub const COMMANDS: [(&str, &str); 3] = [
    (
        "search",
        "Search Confluence pages you may view: search <words>",
    ),
    ("link", "Link your Teams account to your Confluence account"),
    ("unlink", "Remove that link"),
];

/// The manifest for Teams bot `app_id` reached at `public_url` (Pagehook's
/// address as Teams sees it), version `version` of the app package.
pub fn teams_app_manifest(app_id: &str, public_url: &str, version: &str) -> Value {
    let host = reqwest::Url::parse(public_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| public_url.to_owned());
    json!({
        "$schema": SCHEMA,
        "manifestVersion": "1.17",
        "version": version,
        "id": app_id,
        "developer": {
            "name": "Pagehook",
            "websiteUrl": public_url,
            "privacyUrl": public_url,
            "termsOfUseUrl": public_url,
        },
        "name": {"short": "Pagehook", "full": "Pagehook for Confluence"},
        "description": {
            "short": "Confluence notifications, search and sharing",
            "full": "Tells you about Confluence pages you created, are mentioned in or watch; searches the pages you may view; shares a page to a channel.",
        },
        "icons": {"outline": "outline.png", "color": "color.png"},
        "accentColor": "#0052CC",
        "bots": [{
            "botId": app_id,
            "scopes": ["personal", "team"],
            "isNotificationOnly": false,
            "supportsFiles": false,
            "commandLists": [{
                "scopes": ["personal"],
                "commands": COMMANDS
                    .iter()
                    .map(|(title, description)| json!({"title": title, "description": description}))
                    .collect::<Vec<_>>(),
            }],
        }],
        "permissions": ["identity", "messageTeamMembers"],
        "validDomains": [host],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_names_the_bot_its_scopes_commands_and_domain() {
        let m = teams_app_manifest(
            "7b3c1a52-4d6e-4f10-9a8b-1c2d3e4f5a6b",
            "https://pagehook.example.com/sub",
            "1.0.0",
        );
        assert_eq!(m["id"], m["bots"][0]["botId"]);
        assert_eq!(m["bots"][0]["scopes"], json!(["personal", "team"]));
        let titles: Vec<&str> = m["bots"][0]["commandLists"][0]["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["title"].as_str().unwrap())
            .collect();
        assert_eq!(titles, ["search", "link", "unlink"]);
        assert_eq!(m["validDomains"], json!(["pagehook.example.com"]));
        // Teams limits: short name 30, short description 80, command title 32.
        assert!(m["name"]["short"].as_str().unwrap().len() <= 30);
        assert!(m["description"]["short"].as_str().unwrap().len() <= 80);
        assert!(titles.iter().all(|t| t.len() <= 32));
    }
}
