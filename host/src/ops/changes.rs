//! The change log's vocabulary and writer: who did what to which thing.
//! Every admin change names its [`ChangeAction`], so the CLI, the API, the
//! console and Slack's own commands write the same words; `detail` never
//! holds a secret.

use crate::store::Store;

/// What a change-log row says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeAction {
    PluginInstall,
    PluginUpgrade,
    PluginGrant,
    PluginEnable,
    PluginDisable,
    PluginReset,
    PluginRemove,
    ConnectionAdd,
    ConnectionEdit,
    ConnectionRemove,
    ConnectionTest,
    ConnectionConfluence,
    ConnectionProxy,
    ConnectionDryRun,
    BindingAdd,
    BindingRemove,
    BindingDigest,
    DeliveryRetry,
    DeliveryRetryDead,
    LinkAdd,
    LinkRemove,
    SessionSignIn,
    SessionSignOut,
}

impl ChangeAction {
    /// The word stored and shown (`plugin.install`); stable: the console and
    /// `pagehook changes --action` filter on it.
    pub fn as_str(self) -> &'static str {
        use ChangeAction::*;
        match self {
            PluginInstall => "plugin.install",
            PluginUpgrade => "plugin.upgrade",
            PluginGrant => "plugin.grant",
            PluginEnable => "plugin.enable",
            PluginDisable => "plugin.disable",
            PluginReset => "plugin.reset",
            PluginRemove => "plugin.remove",
            ConnectionAdd => "connection.add",
            ConnectionEdit => "connection.edit",
            ConnectionRemove => "connection.remove",
            ConnectionTest => "connection.test",
            ConnectionConfluence => "connection.confluence",
            ConnectionProxy => "connection.proxy",
            ConnectionDryRun => "connection.dry-run",
            BindingAdd => "binding.add",
            BindingRemove => "binding.remove",
            BindingDigest => "binding.digest",
            DeliveryRetry => "delivery.retry",
            DeliveryRetryDead => "delivery.retry-dead",
            LinkAdd => "link.add",
            LinkRemove => "link.remove",
            SessionSignIn => "session.sign-in",
            SessionSignOut => "session.sign-out",
        }
    }
}

impl std::fmt::Display for ChangeAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Writes one row of the change log: `actor` did `action` to `target`.
/// The change itself has happened, so a failure to record it is logged,
/// not returned. `detail` must never hold a secret.
pub async fn log_change(
    store: &Store,
    actor: &str,
    action: ChangeAction,
    target: &str,
    detail: serde_json::Value,
) {
    let change = crate::store::NewChange {
        actor: actor.to_owned(),
        action: action.as_str().to_owned(),
        target: target.to_owned(),
        detail,
    };
    if let Err(e) = store.record_change(&change).await {
        let action = action.as_str();
        tracing::error!(error = %e, action, target, "cannot record a change in the change log");
    }
}

/// Who runs the CLI, for the change log: `root (CLI)`.
pub fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "someone".into());
    format!("{user} (CLI)")
}
