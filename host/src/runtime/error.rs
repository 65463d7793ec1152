//! The ways loading or calling a plugin can fail, in words an admin or a
//! plugin author can act on.
//!
//! Every failure names the plugin and the reason ("ran out of fuel after
//! 10000000 units"); none of them is a crash of the host.

use serde::Serialize;

/// Why a call to a loaded plugin produced no actions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PluginError {
    #[error("plugin `{plugin}` ran out of fuel after {fuel} units")]
    OutOfFuel { plugin: String, fuel: u64 },
    #[error("plugin `{plugin}` exceeded its deadline {ms} ms")]
    Deadline { plugin: String, ms: u64 },
    #[error("plugin `{plugin}` exceeded its memory limit {mib} MiB")]
    Memory { plugin: String, mib: u64 },
    #[error("plugin `{plugin}` overflowed its stack limit {kib} KiB (runaway recursion?)")]
    StackOverflow { plugin: String, kib: u64 },
    #[error("plugin `{plugin}` panicked: {message}")]
    Panic { plugin: String, message: String },
    #[error("plugin `{plugin}` trapped: {message}")]
    Trap { plugin: String, message: String },
    #[error("plugin `{plugin}` returned an error: {message}")]
    Returned { plugin: String, message: String },
    #[error("plugin `{plugin}` returned {count} actions, above its limit of {limit}")]
    TooManyActions {
        plugin: String,
        count: usize,
        limit: usize,
    },
    #[error("plugin `{plugin}` returned a {bytes}-byte action, above its limit of {limit} bytes")]
    ActionTooLarge {
        plugin: String,
        bytes: usize,
        limit: usize,
    },
    #[error(
        "plugin `{plugin}` returned {bytes} bytes of actions, above its limit of {limit} bytes"
    )]
    OutputTooLarge {
        plugin: String,
        bytes: usize,
        limit: usize,
    },
    #[error("plugin `{plugin}` wrote more than its log limit of {limit} bytes")]
    LogLimit { plugin: String, limit: usize },
    #[error("plugin `{plugin}` returned an invalid `{action}` action: {message}")]
    InvalidAction {
        plugin: String,
        action: String,
        message: String,
    },
}

impl PluginError {
    /// A short stable label for metrics, storage and breakers.
    pub fn code(&self) -> &'static str {
        match self {
            PluginError::OutOfFuel { .. } => "out-of-fuel",
            PluginError::Deadline { .. } => "deadline",
            PluginError::Memory { .. } => "memory",
            PluginError::StackOverflow { .. } => "stack-overflow",
            PluginError::Panic { .. } => "panic",
            PluginError::Trap { .. } => "trap",
            PluginError::Returned { .. } => "returned-error",
            PluginError::TooManyActions { .. } => "too-many-actions",
            PluginError::ActionTooLarge { .. } => "action-too-large",
            PluginError::OutputTooLarge { .. } => "output-too-large",
            PluginError::LogLimit { .. } => "log-limit",
            PluginError::InvalidAction { .. } => "invalid-action",
        }
    }
}

/// Why a plugin directory could not be turned into something callable.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error("cannot read component {path}: {source}")]
    ReadComponent {
        path: String,
        source: std::io::Error,
    },
    #[error("plugin `{plugin}`: {path} is not a WebAssembly component: {message}")]
    NotAComponent {
        plugin: String,
        path: String,
        message: String,
    },
    #[error(
        "plugin `{plugin}` imports `{import}`, which is outside the pagehook:plugin worlds (0.1.0, 0.2.0) and WASI 0.2; the sandbox grants nothing else"
    )]
    ForbiddenImport { plugin: String, import: String },
    #[error(
        "plugin `{plugin}` does not fit the {contract} world (import `log`, export `handle`): {message}"
    )]
    WrongExports {
        plugin: String,
        contract: crate::runtime::Contract,
        message: String,
    },
    #[error("plugin `{plugin}`: {message}")]
    Contract { plugin: String, message: String },
    #[error("plugin `{plugin}` {message}")]
    Limits { plugin: String, message: String },
    #[error("plugin `{plugin}` is sha256 {actual}, not the pinned {expected}")]
    HashMismatch {
        plugin: String,
        expected: String,
        actual: String,
    },
    #[error("compiled-component cache at {path}: {message}")]
    Cache { path: String, message: String },
}
