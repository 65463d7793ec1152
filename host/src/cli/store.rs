//! `pagehook store`: moving an installation from its SQLite file to the
//! PostgreSQL database that several replicas share, and backing a SQLite
//! store up while it serves.
//!
//! The copy reads every row of the configured store and writes it, ids
//! included, into an empty database, then says what it copied; it never
//! writes into a database that already holds data, and it prints no
//! password (the target's comes from a secret reference).
//!
//! The backup copies the SQLite file with SQLite's online backup
//! ([`crate::store::sqlite::backup`]); it never opens the store as a server
//! would, so it migrates nothing. A PostgreSQL store is PostgreSQL's to back
//! up: the command says how (pg_dump) and changes nothing.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Config, Database, StoreConfig};
use crate::secret::SecretSource;
use crate::store::Store;
use crate::store::sqlite::backup::BackupReport;

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

/// `store backup`
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The new file to write the copy to; an existing file is never overwritten.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Print what was copied as JSON.
    #[arg(long)]
    json: bool,
}

/// Copies the configured SQLite store into a new file and says what it holds.
pub fn backup(config: &Config, args: BackupArgs) -> anyhow::Result<ExitCode> {
    let database = match config.store.location().map_err(|e| anyhow::anyhow!(e))? {
        Database::Sqlite(path) => path,
        Database::Postgres(pg) => anyhow::bail!(
            "the store is PostgreSQL: back it up with PostgreSQL's own tools, e.g. \
             pg_dump --format=custom --file={} --dbname='{}' (restore with pg_restore into an empty database; see docs/admin.md, Backups); nothing was written",
            args.file.display(),
            crate::store::redacted_url(&pg.url)
        ),
    };
    let report: BackupReport = crate::store::sqlite::backup::backup(&database, &args.file)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        outln!(
            "backed up {} to {}: schema {}, {} events, {} deliveries, {} bytes, integrity ok",
            database.display(),
            args.file.display(),
            report.schema_version,
            report.events,
            report.deliveries,
            report.bytes
        )?;
        outln!(
            "to restore: stop pagehook, put the file in place of {} (and remove {}-wal, {}-shm), start pagehook",
            database.display(),
            database.display(),
            database.display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
