//! `pagehook store`: moving an installation from its SQLite file to the
//! PostgreSQL database that several replicas share.
//!
//! The copy reads every row of the configured store and writes it, ids
//! included, into an empty database, then says what it copied; it never
//! writes into a database that already holds data, and it prints no
//! password (the target's comes from a secret reference).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Config, Database, StoreConfig};
use crate::secret::SecretSource;
use crate::store::Store;

/// `store copy`
#[derive(Debug, clap::Args)]
pub struct CopyArgs {
    /// The target: postgres://user@host[:port]/database (no password in it).
    #[arg(long, value_name = "URL")]
    to: String,
    /// Environment variable holding the target's password.
    #[arg(long, value_name = "VAR", conflicts_with = "password_file")]
    password_env: Option<String>,
    /// File holding the target's password.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

/// Copies the configured store into an empty database and reports it.
pub async fn copy(config: &Config, args: CopyArgs) -> anyhow::Result<ExitCode> {
    let from = config.store.location().map_err(|e| anyhow::anyhow!(e))?;
    let target = StoreConfig {
        database: PathBuf::from(&args.to),
        password: match (args.password_env, args.password_file) {
            (Some(var), _) => Some(SecretSource::Env(var)),
            (None, Some(file)) => Some(SecretSource::File(file)),
            (None, None) => None,
        },
        ..config.store.clone()
    };
    let to = match target
        .location()
        .map_err(|e| anyhow::anyhow!("--to: {e}"))?
    {
        Database::Sqlite(_) => anyhow::bail!(
            "--to must be a postgres:// URL: `store copy` moves a SQLite installation to PostgreSQL"
        ),
        pg @ Database::Postgres(_) => pg,
    };
    if from == to {
        anyhow::bail!("the configured store already is {}", args.to);
    }
    let source = Store::open(&from).await?;
    let target = Store::open(&to).await?;
    let report = source.copy_into(&target).await?;
    outln!("copied {} into {}:", source.describe(), target.describe())?;
    for (table, rows) in &report.tables {
        outln!("  {table:<14} {rows:>8} rows")?;
    }
    outln!(
        "nothing was changed in {}; stop pagehook, set [store] database = \"{}\" (and password) in the config, and start the replicas",
        source.describe(),
        target.describe()
    )?;
    Ok(ExitCode::SUCCESS)
}
