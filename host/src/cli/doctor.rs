//! `pagehook doctor [--json]`: which features work with each Confluence and
//! Slack connection, measured against them now (see [`crate::doctor`]).
//!
//! Prints, per connection, what was measured and a verdict per feature;
//! exits 1 when a feature a binding uses cannot work (the last lines say
//! which), 0 otherwise: degraded features and unused ones are reported
//! without failing. Never prints a secret: the report holds none.

use std::fmt::Write as _;
use std::process::ExitCode;

use crate::config::Config;
use crate::doctor::{self, ConfluenceReport, FeatureCheck, Report, SlackReport, State};
use crate::store::Store;

/// Arguments of `pagehook doctor`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the report as JSON (the same document as `GET /api/doctor`).
    #[arg(long)]
    json: bool,
}

/// Measures, prints, and answers the exit status.
pub async fn run(config: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let database = config.store.location().map_err(|e| anyhow::anyhow!(e))?;
    let store = Store::open(&database).await?;
    let timeout = config
        .enrichment_timeout()
        .min(std::time::Duration::from_secs(10));
    let report = doctor::run(&store, timeout, None).await?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        outln!("{}", render(&report))?;
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The report as text.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    if report.confluence.is_empty() && report.slack.is_empty() {
        out.push_str("No Confluence or Slack connection to check (pagehook connect ...).\n");
    }
    for c in &report.confluence {
        confluence(&mut out, c);
    }
    for s in &report.slack {
        slack(&mut out, s);
    }
    for n in &report.notes {
        let _ = writeln!(out, "note: {n}");
    }
    if report.ok {
        out.push_str("Everything the bindings use works (or works in part, as said above).");
    } else {
        let _ = writeln!(
            out,
            "{} used feature{} cannot work:",
            report.blocking.len(),
            if report.blocking.len() == 1 { "" } else { "s" }
        );
        for b in &report.blocking {
            let _ = writeln!(out, "  - {b}");
        }
        out.pop();
    }
    out
}

fn confluence(out: &mut String, c: &ConfluenceReport) {
    let version = match &c.version {
        Some(v) => format!(
            "Confluence {}{} ({}, from {})",
            v.version,
            v.build.map(|b| format!(" build {b}")).unwrap_or_default(),
            v.line,
            v.from
        ),
        None => "version not reported".to_owned(),
    };
    let _ = writeln!(out, "Confluence `{}` at {}: {version}", c.connection, c.url);
    if let Some(e) = &c.error {
        let _ = writeln!(out, "  cannot check: {e}");
    }
    if let Some(a) = &c.account {
        let _ = writeln!(
            out,
            "  account: {}{} ({}){}",
            a.username,
            a.display_name
                .as_ref()
                .map(|d| format!(" \"{d}\""))
                .unwrap_or_default(),
            a.credentials,
            match (&c.token.name, c.token.state) {
                (Some(name), "never-expires") => format!(", token `{name}` never expires"),
                (Some(name), _) => format!(
                    ", token `{name}` {}{}",
                    c.token.state,
                    c.token
                        .expires_at
                        .map(|at| format!(" (expires {})", crate::clock::utc_minutes(at)))
                        .unwrap_or_default()
                ),
                _ => String::new(),
            }
        );
        if let Some(m) = &c.token.message {
            let _ = writeln!(out, "    {m}");
        }
        let _ = writeln!(
            out,
            "  Confluence administrator: {} ({})",
            c.confluence_admin.state, c.confluence_admin.how
        );
        let _ = writeln!(
            out,
            "  spaces it may view: {}{}",
            c.spaces.len(),
            if c.spaces.is_empty() {
                String::new()
            } else {
                format!(" ({})", shorten(&c.spaces))
            }
        );
        let _ = writeln!(
            out,
            "  spaces it administers: {}",
            if c.administered_spaces.is_empty() {
                "none known".to_owned()
            } else {
                shorten(&c.administered_spaces)
            }
        );
        let _ = writeln!(
            out,
            "  user emails: {} ({})",
            c.emails.visibility, c.emails.detail
        );
        for cap in &c.capabilities {
            let _ = writeln!(out, "  {:<18} {:<8} {}", cap.name, cap.state, cap.detail);
        }
    }
    features(out, &c.features);
}

fn slack(out: &mut String, s: &SlackReport) {
    match &s.workspace {
        Some(w) => {
            let _ = writeln!(
                out,
                "Slack `{}`: workspace {} ({}), bot {}",
                s.connection, w.team, w.team_id, w.bot_user
            );
        }
        None => {
            let _ = writeln!(out, "Slack `{}` at {}", s.connection, s.url);
        }
    }
    if let Some(e) = &s.error {
        let _ = writeln!(out, "  cannot check: {e}");
    }
    if s.workspace.is_some() {
        let _ = writeln!(
            out,
            "  scopes: {}",
            s.scopes
                .as_ref()
                .map_or("not reported by Slack".to_owned(), |s| s.join(", "))
        );
    }
    let _ = writeln!(
        out,
        "  inbound: {}; {}",
        match (s.socket_mode, s.signing_secret) {
            (true, true) => "Socket Mode, and a signing secret for /hooks/slack",
            (true, false) => "Socket Mode (nothing inbound)",
            (false, true) => "signing secret set (requests to /hooks/slack)",
            (false, false) => "no Socket Mode and no signing secret",
        },
        s.last_request_at
            .map(|at| format!("last request {}", crate::clock::utc_minutes(at)))
            .unwrap_or_else(|| "no request from Slack among the newest events".to_owned())
    );
    features(out, &s.features);
}

fn features(out: &mut String, checks: &[FeatureCheck]) {
    for f in checks {
        let used = if f.bound_by.is_empty() {
            "not used".to_owned()
        } else {
            format!("used by {}", f.bound_by.join(", "))
        };
        let mark = match f.state {
            State::Works => "works",
            State::Unknown => "unknown",
            State::Degraded => "DEGRADED",
            State::Unavailable => "UNAVAILABLE",
        };
        let _ = writeln!(out, "  {mark:<12} {:<30} {used}", f.title);
        for why in &f.why {
            let _ = writeln!(out, "               why: {why}");
        }
        for fix in &f.fix {
            let _ = writeln!(out, "               fix: {fix}");
        }
    }
}

/// At most ten names, then how many more.
fn shorten(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(10).map(String::as_str).collect();
    if names.len() > shown.len() {
        format!(
            "{} and {} more",
            shown.join(", "),
            names.len() - shown.len()
        )
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::{Feature, SlackReport};

    #[test]
    fn the_text_says_what_fails_and_what_to_do() {
        let report = Report {
            checked_at: 0,
            ok: false,
            blocking: vec!["Slack `acme`: link previews (binding #2 (slack-poster)) is unavailable: the token lacks the scope(s) links:write".into()],
            notes: vec![],
            confluence: vec![],
            slack: vec![SlackReport {
                connection: "acme".into(),
                url: "http://127.0.0.1:1/api/".into(),
                workspace: None,
                error: None,
                scopes: Some(vec!["chat:write".into()]),
                signing_secret: false,
                socket_mode: false,
                last_request_at: None,
                features: vec![FeatureCheck {
                    feature: Feature::LinkPreviews,
                    title: "link previews",
                    state: State::Unavailable,
                    bound_by: vec!["binding #2 (slack-poster)".into()],
                    blocking: true,
                    why: vec!["the token lacks the scope(s) links:write".into()],
                    fix: vec!["add them".into()],
                }],
            }],
        };
        let text = render(&report);
        assert!(text.contains("  UNAVAILABLE  link previews"), "{text}");
        assert!(
            text.contains("why: the token lacks the scope(s) links:write"),
            "{text}"
        );
        assert!(text.contains("fix: add them"), "{text}");
        assert!(text.ends_with("1 used feature cannot work:\n  - Slack `acme`: link previews (binding #2 (slack-poster)) is unavailable: the token lacks the scope(s) links:write"), "{text}");
        assert_eq!(
            shorten(&(0..12).map(|i| i.to_string()).collect::<Vec<_>>()),
            "0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 2 more"
        );
    }
}
