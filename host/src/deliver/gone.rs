//! Destinations that are gone: a Teams workflow deleted or turned off, its
//! URL's signature refused, a Slack channel archived or deleted. Such an
//! answer makes a dead letter *and* marks the connection's health with
//! what happened and the fix, so the Overview says which connection needs
//! the admin and what to do (it reads the mark with [`split_fix`]).
//!
//! A Teams connection is one workflow, so any success through it clears
//! its mark. A Slack workspace has many channels: a mark about one channel
//! (it starts with [`CHANNEL_MARK`] and names the destination) is cleared
//! only by a success to that destination ([`clears`]), not by posts that
//! keep working elsewhere. Editing or testing the connection clears it too
//! (`ops`).
//!
//! What it must never do: put a secret in a mark (a workflow URL carries
//! its signature: marks name the connection, never the URL).

/// How a mark about one Slack channel starts.
pub const CHANNEL_MARK: &str = "Slack channel ";

/// The words before a mark's fix.
const FIX: &str = " Fix: ";

/// Teams' answer to a post, when it says the workflow is gone: the mark
/// for connection `name`. `code` is the `error.code` of Teams' JSON body.
pub fn teams(name: &str, status: u16, code: Option<&str>) -> Option<String> {
    let again = format!(
        "in Teams, add the workflow “Post to a channel when a webhook request is received” to the channel, copy its URL into this connection (Connections › {name} › Edit, or `pagehook connect teams {name} --url ...`), then retry its dead letters."
    );
    let (what, fix) = match (status, code) {
        (404, _) => (
            format!(
                "Teams says the workflow of `{name}` no longer exists (HTTP 404{}): it was deleted, or its trigger was replaced, so its URL is dead.",
                code.map(|c| format!(" {c}")).unwrap_or_default()
            ),
            again,
        ),
        (_, Some("WorkflowTriggerIsNotEnabled")) | (_, Some("WorkflowDisabled")) => (
            format!(
                "Teams says the workflow of `{name}` is turned off ({}).",
                code.unwrap_or_default()
            ),
            "turn the workflow on again in Teams (Workflows › the workflow › Turn on), then retry its dead letters.".to_owned(),
        ),
        (401 | 403, _) => (
            format!(
                "Teams refused the signature in the workflow URL of `{name}` (HTTP {status}{}): the URL was changed or copied incompletely.",
                code.map(|c| format!(" {c}")).unwrap_or_default()
            ),
            format!(
                "copy the workflow's URL again from Teams into this connection (Connections › {name} › Edit), then retry its dead letters."
            ),
        ),
        _ => return None,
    };
    Some(format!("{what}{FIX}{fix}"))
}

/// Slack's answer for channel `channel` of destination `destination`
/// (`is_archived`, `channel_not_found`, or a complete channel list that
/// lacks it): the mark for its workspace.
pub fn slack_channel(destination: &str, channel: &str, code: &str) -> String {
    let channel = format!("#{}", channel.trim_start_matches('#'));
    let (what, fix) = match code {
        "is_archived" => (
            "is archived: Slack refuses posts to it.",
            "unarchive it in Slack, or bind to another channel (Bindings); then retry its dead letters.",
        ),
        _ => (
            "no longer exists, or is private without the bot.",
            "create it again, or for a private channel invite the bot (/invite @pagehook), or bind to another channel (Bindings); then retry its dead letters.",
        ),
    };
    format!("{CHANNEL_MARK}{channel} ({destination}) {what}{FIX}{fix}")
}

/// Whether a success to `destination` clears the connection's `mark`.
pub fn clears(mark: Option<&str>, destination: &str) -> bool {
    match mark {
        None => true,
        Some(m) if m.starts_with(CHANNEL_MARK) => m.contains(&format!("({destination})")),
        Some(_) => true,
    }
}

/// A mark as (what happened, the fix) for the Overview.
pub fn split_fix(mark: &str) -> (&str, Option<&str>) {
    match mark.split_once(FIX) {
        Some((what, fix)) => (what, Some(fix)),
        None => (mark, None),
    }
}

/// The `error.code` of a Teams error body (`{"error":{"code":...}}`).
pub fn teams_code(body: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()?
        .pointer("/error/code")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_workflow_is_named_with_the_fix_and_no_url() {
        let mark = teams("eng-news", 404, Some("WorkflowNotFound")).unwrap();
        let (what, fix) = split_fix(&mark);
        assert!(
            what.contains("`eng-news` no longer exists (HTTP 404 WorkflowNotFound)"),
            "{what}"
        );
        assert!(
            fix.unwrap().contains("Connections › eng-news › Edit"),
            "{fix:?}"
        );
        assert!(!mark.contains("sig="));
        assert!(teams("x", 200, None).is_none());
        assert!(teams("x", 500, Some("InternalServerError")).is_none());
        assert!(
            teams("x", 400, Some("InvalidRequestContent")).is_none(),
            "a bad card is the plugin's"
        );
        assert!(
            teams("x", 409, Some("WorkflowTriggerIsNotEnabled"))
                .unwrap()
                .contains("turned off")
        );
        assert!(
            teams("x", 401, Some("DirectApiInvalidAuthorizationSignature"))
                .unwrap()
                .contains("signature")
        );
        assert_eq!(
            teams_code(r#"{"error":{"code":"WorkflowNotFound","message":"The workflow 'x' could not be found."}}"#).as_deref(),
            Some("WorkflowNotFound")
        );
        assert_eq!(teams_code("<html>"), None);
    }

    #[test]
    fn a_channel_mark_is_cleared_only_by_its_own_destination() {
        let mark = slack_channel("slack:acme/#eng", "eng", "is_archived");
        assert!(
            mark.starts_with("Slack channel #eng (slack:acme/#eng) is archived"),
            "{mark}"
        );
        assert!(clears(Some(&mark), "slack:acme/#eng"));
        assert!(!clears(Some(&mark), "slack:acme/#ops"));
        assert!(clears(
            Some("Slack refused the token of `acme` (token_revoked)"),
            "slack:acme/#ops"
        ));
        assert!(clears(None, "teams:x"));
    }
}
