//! `pagehook digest`: a binding's digest settings (on or off, threshold,
//! window) and the bursts it is collecting, shown or changed. The same
//! operation as `PUT /api/bindings/{id}/digest` ([`crate::ops::digests`]).

use std::process::ExitCode;

use super::admin::{open, print_json, table, time};
use crate::config::Config;
use crate::ops::changes::cli_actor;
use crate::ops::digests::{self, DigestChange};

/// `digest`
#[derive(Debug, clap::Args)]
pub struct DigestArgs {
    /// The binding (see `pagehook bindings`); without it, every binding's
    /// settings are listed.
    binding: Option<i64>,
    /// Digests on: bursts of this binding's events reach its plugin as one
    /// digest (the default).
    #[arg(long, conflicts_with = "off")]
    on: bool,
    /// Digests off: every event is its own call (and message), as before
    /// digests existed.
    #[arg(long)]
    off: bool,
    /// More than this many events of one space within the window make a
    /// burst (default 20).
    #[arg(long, value_name = "EVENTS")]
    threshold: Option<u32>,
    /// The window bursts are measured over, and the longest a digest
    /// collects, in seconds (default 300).
    #[arg(long, value_name = "SECONDS")]
    window: Option<u32>,
    /// Put every setting back to its default first.
    #[arg(long)]
    defaults: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl DigestArgs {
    fn change(&self) -> Option<DigestChange> {
        let change = DigestChange {
            enabled: match (self.on, self.off) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            threshold: self.threshold,
            window_secs: self.window,
            defaults: self.defaults,
        };
        (change != DigestChange::default()).then_some(change)
    }
}

pub async fn run(config: &Config, args: DigestArgs) -> anyhow::Result<ExitCode> {
    let store = open(config).await?;
    if let Some(change) = args.change() {
        let Some(id) = args.binding else {
            anyhow::bail!("name the binding to change: `pagehook digest <BINDING> ...`");
        };
        let s = digests::set(&store, &cli_actor(), id, &change).await?;
        if !args.json {
            outln!(
                "binding {id}: digests {}, threshold {} events, window {} s",
                if s.enabled { "on" } else { "off" },
                s.threshold,
                s.window_secs
            )?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    let all = digests::list(&store, args.binding).await?;
    if args.json {
        return print_json(&all);
    }
    table(
        &[
            "BINDING",
            "PLUGIN",
            "DIGESTS",
            "THRESHOLD",
            "WINDOW",
            "COLLECTING",
        ],
        all.iter()
            .map(|d| {
                vec![
                    d.binding_id.to_string(),
                    d.plugin.clone(),
                    match (d.plugin_takes_digests, d.settings.enabled) {
                        (false, _) => "n/a (plugin)".to_owned(),
                        (true, true) => "on".to_owned(),
                        (true, false) => "off".to_owned(),
                    },
                    d.settings.threshold.to_string(),
                    format!("{} s", d.settings.window_secs),
                    d.collecting
                        .iter()
                        .map(|c| {
                            format!(
                                "{}: {} events since {}, posts at {}",
                                c.space_key,
                                c.events,
                                time(c.since),
                                time(c.due_at)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                ]
            })
            .collect(),
    )?;
    Ok(ExitCode::SUCCESS)
}
