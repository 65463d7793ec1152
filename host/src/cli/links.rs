//! `pagehook links` and `pagehook unlink`: which Slack users linked
//! themselves to which Confluence users (`/confluence link`), and removing
//! a link, with a change-log entry. The same operation as the console's
//! People page and `DELETE /api/links/...` ([`crate::self_link::remove`]).

use std::process::ExitCode;

use super::admin::{Output, open, print_json, table, time};
use crate::config::Config;
use crate::ops::changes::cli_actor;

/// `unlink`
#[derive(Debug, clap::Args)]
pub struct UnlinkArgs {
    /// The Slack connection (workspace) the user belongs to.
    slack_connection: String,
    /// Slack's id of the user (U…; see `pagehook links`).
    slack_user: String,
}

pub async fn list(config: &Config, out: Output) -> anyhow::Result<ExitCode> {
    let store = open(config).await?;
    let links = store.user_links().await?;
    if out.json {
        return print_json(&links);
    }
    if links.is_empty() {
        outln!("no links yet: a Slack user links themselves with /confluence link")?;
        return Ok(ExitCode::SUCCESS);
    }
    table(
        &[
            "SLACK",
            "TEAM",
            "SLACK USER",
            "CONFLUENCE",
            "CONFLUENCE USER",
            "HOW",
            "SINCE",
        ],
        links
            .into_iter()
            .map(|l| {
                vec![
                    l.slack_connection.clone(),
                    l.slack_team.clone(),
                    l.slack_user.clone(),
                    l.confluence_connection.clone(),
                    l.confluence_label(),
                    l.method.as_str().to_owned(),
                    time(l.linked_at),
                ]
            })
            .collect(),
    )?;
    Ok(ExitCode::SUCCESS)
}

pub async fn unlink(config: &Config, args: UnlinkArgs) -> anyhow::Result<ExitCode> {
    let store = open(config).await?;
    let link = crate::self_link::remove(
        &store,
        &args.slack_connection,
        &args.slack_user,
        &cli_actor(),
    )
    .await?;
    outln!(
        "unlinked Slack user {} of `{}` from Confluence user {} of `{}`",
        link.slack_user,
        link.slack_connection,
        link.confluence_label(),
        link.confluence_connection
    )?;
    Ok(ExitCode::SUCCESS)
}
