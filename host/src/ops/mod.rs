//! The admin's operations: every change an admin makes (plugins,
//! connections, bindings, deliveries) and the change-log line it leaves,
//! shared by the CLI ([`crate::cli`]) and the HTTP admin API and console
//! ([`crate::server`]), which are thin adapters over it: same powers, same
//! checks, same messages, one change-log vocabulary ([`changes::ChangeAction`]).
//!
//! Every operation validates fully before it writes: a refused install,
//! connection or binding changes nothing and says what to fix. Nothing here
//! checks who may do it (the adapters do, each for its own callers), and
//! nothing here ever writes a secret into the change log.

pub mod binding_settings;
pub mod bindings;
pub mod changes;
pub mod connection_edit;
pub mod connections;
pub mod deliveries;
pub mod digests;
pub mod plugins;
pub mod tokens;

use crate::model::Action;
use crate::store::{NewDelivery, StoreError};

/// Why an admin operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request is wrong; the message says how.
    #[error("{0}")]
    Invalid(String),
    /// It names something that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// It clashes with what exists.
    #[error("{0}")]
    Conflict(String),
    /// Pagehook itself failed (database, disk).
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => AdminError::NotFound(m),
            StoreError::Conflict(m) => AdminError::Conflict(m),
            other => AdminError::Internal(other.to_string()),
        }
    }
}

/// Result of an admin operation.
pub type AdminResult<T> = Result<T, AdminError>;

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// A delivery Pagehook itself asks for, through connection `workspace` (a
/// Slack workspace or a Teams bot).
pub(crate) fn notice(
    workspace: &str,
    action: Action,
    binding_id: i64,
    destination: &str,
) -> NewDelivery {
    NewDelivery {
        binding_id,
        plugin: "pagehook".into(),
        lane: crate::destination::lane(&action, "", Some(workspace)),
        destination: destination.to_owned(),
        source: String::new(),
        connection: Some(workspace.to_owned()),
        action,
        dry_run: false,
    }
}

/// Escapes text for Slack's mrkdwn (`&`, `<`, `>`), so names never become
/// mentions or links.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
