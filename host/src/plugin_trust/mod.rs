//! The evidence a security team signs a plugin off on, beside what the
//! sandbox enforces: whether the files are the ones their publisher
//! released ([`signature`], over the canonical [`statement`] of a plugin
//! version, with the keys the admin trusts in [`keys`]), how the component
//! says it was built ([`provenance`]: the producers section and an embedded
//! dependency list), what an upgrade changes ([`diff`]), and which limit
//! requests an admin granted ([`grants`]).
//!
//! Everything here works offline: a signature is checked against public
//! keys in the configuration, never against a server, so air-gapped Data
//! Center sites verify as well as connected ones.
//!
//! What it must never do: run a plugin's code, reach the network, grant a
//! capability (it only reports and refuses), or print a secret key.

pub mod diff;
pub mod grants;
pub mod keys;
pub mod provenance;
pub mod report;
pub mod signature;
pub mod statement;

/// The file in a plugin directory that says what was signed.
pub const STATEMENT_FILE: &str = "plugin.statement";
/// The minisign signature of [`STATEMENT_FILE`].
pub const SIGNATURE_FILE: &str = "plugin.statement.minisig";

pub use keys::{Keyring, TrustConfig};
pub use provenance::Provenance;
pub use signature::{SignatureCheck, SignatureStatus};
pub use statement::Statement;
