//! `pagehook plugin sign` and `pagehook plugin keygen`: the publisher's
//! side of plugin signatures (see `plugin_trust::signature`).
//!
//! What it must never do: print, log or write a secret key anywhere but the
//! key file `keygen` creates (mode 0600), or sign a directory whose
//! manifest or component cannot be read.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::plugin_trust::signature::{self, KeyProtection, SigningKey};

/// The environment variable that holds an encrypted key's password (else
/// it is asked at the terminal).
pub const PASSWORD_ENV: &str = "PAGEHOOK_SIGNING_KEY_PASSWORD";

/// Arguments of `plugin sign`.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// Plugin directory (plugin.toml and its component); the signature is written into it.
    dir: PathBuf,
    /// The minisign secret key (`pagehook plugin keygen`, or `minisign -G`); an encrypted
    /// key's password comes from $PAGEHOOK_SIGNING_KEY_PASSWORD or the terminal.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
}

/// Arguments of `plugin keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Writes PREFIX.key (secret, mode 0600) and PREFIX.pub; never overwrites.
    #[arg(long, value_name = "PREFIX")]
    out: PathBuf,
    /// Leave the secret key unencrypted (development and CI keys only); otherwise the
    /// password comes from $PAGEHOOK_SIGNING_KEY_PASSWORD or the terminal.
    #[arg(long)]
    unencrypted: bool,
}

fn password() -> Option<String> {
    std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty())
}

/// Signs a plugin directory.
pub fn sign(args: SignArgs) -> anyhow::Result<ExitCode> {
    let key = SigningKey::from_file(&args.key, password()).map_err(anyhow::Error::msg)?;
    let signed = signature::sign(&args.dir, &key).map_err(anyhow::Error::msg)?;
    let s = &signed.statement;
    outln!(
        "signed {} {} (contract {}) with key ID {}",
        s.name,
        s.version,
        s.contract,
        signed.key_id
    )?;
    outln!("  component {} sha256 {}", s.component, s.component_sha256)?;
    outln!("  plugin.toml sha256 {}", s.manifest_sha256)?;
    for file in &signed.files {
        outln!("  wrote {file}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Makes a signing key pair.
pub fn keygen(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let protection = if args.unencrypted {
        KeyProtection::Unencrypted
    } else {
        KeyProtection::Password(password())
    };
    let new = signature::keygen(&args.out, protection).map_err(anyhow::Error::msg)?;
    outln!(
        "secret key  {} (keep it offline; never commit a release key)",
        new.secret_file
    )?;
    outln!("public key  {}", new.public_file)?;
    outln!("key ID      {}", new.key_id)?;
    outln!("Sites that trust this publisher add to pagehook.toml:")?;
    outln!("  [plugins.trusted-keys]")?;
    outln!("  your-name = \"{}\"", new.public_key)?;
    Ok(ExitCode::SUCCESS)
}
