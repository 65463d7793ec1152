//! `pagehook store backup`: a consistent copy of a SQLite store taken while
//! `pagehook serve` keeps writing to it.
//!
//! It uses SQLite's online backup API in a single step: the copy reads every
//! page inside one read transaction, so it is the database as one commit
//! left it (write-ahead log included), and in WAL mode that read blocks no
//! writer. A copy made page by page in small steps would start over each
//! time the server commits, and under steady traffic might never finish.
//!
//! What it must never do: write to the database it copies (it opens it
//! read-only and runs no migration, so a backup taken before an upgrade is
//! the old schema, as it should be); leave a half-written file where the
//! backup should be (it writes beside it and renames once the copy passed
//! SQLite's integrity check); overwrite a file that exists; or make the copy
//! readable by others (it holds what the store holds, inline secrets too).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::store::{StoreError, StoreResult};

/// What a backup holds, read back from the copy itself.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BackupReport {
    /// The copy's schema version (`PRAGMA user_version`).
    pub schema_version: u32,
    /// Its size in bytes.
    pub bytes: u64,
    /// Rows in `events`.
    pub events: u64,
    /// Rows in `deliveries`.
    pub deliveries: u64,
}

/// Copies the SQLite database at `from` into a new file `to`.
pub fn backup(from: &Path, to: &Path) -> StoreResult<BackupReport> {
    let source_error = |message: String| StoreError::Database {
        database: from.display().to_string(),
        message,
    };
    let target_error = |message: String| StoreError::Database {
        database: to.display().to_string(),
        message,
    };
    if !from.is_file() {
        return Err(source_error(
            "no such database file (is [store] database the right path?)".into(),
        ));
    }
    if to.exists() {
        return Err(StoreError::Conflict(format!(
            "{} exists; a backup never overwrites a file: name a new one",
            to.display()
        )));
    }
    let partial = partial_path(to);
    let result = copy_into(from, &partial).and_then(|report| {
        std::fs::rename(&partial, to).map_err(|e| target_error(e.to_string()))?;
        sync_directory(to);
        Ok(report)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
        let _ = std::fs::remove_file(journal_path(&partial));
    }
    result
}

/// The copy, made and checked at `partial`.
fn copy_into(from: &Path, partial: &Path) -> StoreResult<BackupReport> {
    let source_error = |e: rusqlite::Error| StoreError::Database {
        database: from.display().to_string(),
        message: e.to_string(),
    };
    let target_error = |e: rusqlite::Error| StoreError::Database {
        database: partial.display().to_string(),
        message: e.to_string(),
    };
    // Read-only, no migration: the file is copied as the server keeps it.
    let source = Connection::open_with_flags(
        from,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(source_error)?;
    source
        .busy_timeout(Duration::from_secs(10))
        .map_err(source_error)?;
    create_owner_only(partial).map_err(|e| StoreError::Database {
        database: partial.display().to_string(),
        message: format!("cannot create the backup file: {e}"),
    })?;
    let mut target = Connection::open(partial).map_err(target_error)?;
    {
        let backup = rusqlite::backup::Backup::new(&source, &mut target).map_err(target_error)?;
        // -1: every page in one step, inside one read transaction.
        match backup.step(-1).map_err(source_error)? {
            rusqlite::backup::StepResult::Done => {}
            other => {
                return Err(StoreError::Database {
                    database: from.display().to_string(),
                    message: format!(
                        "the backup did not finish in one step ({other:?}); try again"
                    ),
                });
            }
        }
    }
    drop(source);
    // One self-contained file: no write-ahead log beside the copy.
    target
        .pragma_update(None, "journal_mode", "DELETE")
        .map_err(target_error)?;
    let check: String = target
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(target_error)?;
    if check != "ok" {
        return Err(StoreError::Corrupt {
            what: "backup",
            message: format!("SQLite's integrity check of the copy says: {check}"),
        });
    }
    let schema_version: u32 = target
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(target_error)?;
    let count = |table: &str| -> StoreResult<u64> {
        let exists: bool = target
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
                [table],
                |r| r.get(0),
            )
            .map_err(target_error)?;
        if !exists {
            return Ok(0);
        }
        target
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .map_err(target_error)
    };
    let events = count("events")?;
    let deliveries = count("deliveries")?;
    target.close().map_err(|(_, e)| target_error(e))?;
    let file = std::fs::File::open(partial).map_err(|e| StoreError::Database {
        database: partial.display().to_string(),
        message: e.to_string(),
    })?;
    file.sync_all().map_err(|e| StoreError::Database {
        database: partial.display().to_string(),
        message: format!("cannot sync the backup to disk: {e}"),
    })?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(BackupReport {
        schema_version,
        bytes,
        events,
        deliveries,
    })
}

/// Where the copy is made before it takes its name: beside it, so the
/// rename stays on one file system.
fn partial_path(to: &Path) -> PathBuf {
    let mut name = to.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".partial-{}", std::process::id()));
    to.with_file_name(name)
}

/// The rollback journal SQLite may leave beside `path`.
fn journal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push("-journal");
    PathBuf::from(name)
}

/// Creates an empty file only its owner may read.
fn create_owner_only(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(drop)
}

/// Makes the rename itself durable.
fn sync_directory(path: &Path) {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && let Ok(dir) = std::fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    #[test]
    fn a_backup_is_a_checked_owner_only_copy_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("p.db");
        SqliteStore::open(&db).unwrap();
        let to = dir.path().join("copy.db");
        let report = backup(&db, &to).unwrap();
        assert!(report.schema_version > 0);
        assert_eq!((report.events, report.deliveries), (0, 0));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&to).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let before = std::fs::read(&to).unwrap();
        let err = backup(&db, &to).unwrap_err().to_string();
        assert!(err.contains("never overwrites"), "{err}");
        assert_eq!(
            std::fs::read(&to).unwrap(),
            before,
            "the first copy is untouched"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains("partial"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_missing_database_is_named_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().join("copy.db");
        let err = backup(&dir.path().join("absent.db"), &to)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("absent.db") && err.contains("no such database"),
            "{err}"
        );
        assert!(!to.exists());
    }
}
