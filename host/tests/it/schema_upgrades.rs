//! Upgrades: every schema Pagehook has shipped opens with today's binary,
//! migrates, reads back, and ends up as a fresh database's schema; a
//! database from a newer Pagehook is refused, naming the version it needs,
//! and left as it was.
//!
//! The databases are `host/tests/fixtures/schemas/{sqlite,postgres}/`, one
//! per schema as a commit of main shipped it (two migrations were edited in
//! place, so versions 3 and 8 of SQLite and 3 of PostgreSQL have two), made
//! by `scripts/schema-fixtures.py` from the migration files of that commit.
//! A schema version without a fixture fails here: commit the migration,
//! then run the script.
//!
//! Everything goes through the `pagehook` binary, as an admin upgrading
//! would: the first command migrates, the listing commands read every kind
//! of record back.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pagehook_fakes::postgres::TestPostgres;
use rusqlite::Connection;

use crate::common;

fn fixtures(backend: &str) -> Vec<PathBuf> {
    let dir = common::root()
        .join("host/tests/fixtures/schemas")
        .join(backend);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    files
}

/// The schema version a fixture's name carries (`v08-6343649.sql` → 8).
fn fixture_version(path: &Path) -> usize {
    let name = path.file_name().unwrap().to_str().unwrap();
    name[1..3].parse().unwrap()
}

fn pagehook(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pagehook"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("PAGEHOOK_LOG")
        .output()
        .unwrap()
}

fn json(config: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = pagehook(config, &all);
    assert!(
        out.status.success(),
        "pagehook {args:?} on {}:\n{}",
        config.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Reads every kind of record a fixture holds back through the CLI. The
/// change log and people's links exist from schema `since.0` and `since.1`.
fn reads_back(config: &Path, version: usize, since: (usize, usize), what: &str) {
    let names = |v: &serde_json::Value, key: &str| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r[key].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let connections = json(config, &["connections"]);
    assert_eq!(names(&connections, "name"), ["acme", "wiki"], "{what}");
    let plugins = json(config, &["plugin", "list"]);
    assert_eq!(names(&plugins, "name"), ["slack-poster"], "{what}");
    let bindings = json(config, &["bindings"]);
    assert_eq!(bindings[0]["scope"], "space:ENG", "{what}");
    assert_eq!(bindings[0]["destinations"][0], "slack:#eng", "{what}");
    let events = json(config, &["events"]);
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 2, "{what}: {events:?}");
    let dispatched = events.iter().find(|e| e["id"] == 1).unwrap();
    assert_eq!(dispatched["status"], "dispatched", "{what}");
    assert_eq!(
        dispatched["event"]["content"]["space_key"], "ENG",
        "{what}: the stored event decodes"
    );
    let pending = events.iter().find(|e| e["id"] == 2).unwrap();
    assert_eq!(pending["status"], "pending", "{what}: still to dispatch");
    let deliveries = json(config, &["deliveries"]);
    let statuses: BTreeSet<String> = deliveries
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        statuses,
        BTreeSet::from(["pending".to_owned(), "sent".to_owned()]),
        "{what}: the sent one and the one still to send"
    );
    assert_eq!(
        json(config, &["failures"]).as_array().unwrap().len(),
        1,
        "{what}"
    );
    let changes = json(config, &["changes"]).as_array().unwrap().len();
    assert_eq!(changes, usize::from(version >= since.0), "{what}: changes");
    let links = json(config, &["links"]).as_array().unwrap().len();
    assert_eq!(links, usize::from(version >= since.1), "{what}: links");
}

/// Tables with their columns, and indexes with their definitions, of a SQLite file.
fn sqlite_schema(path: &Path) -> BTreeSet<String> {
    let conn = Connection::open(path).unwrap();
    let mut out = BTreeSet::new();
    let mut objects = conn
        .prepare("SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
        .unwrap();
    let rows: Vec<(String, String, String)> = objects
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (kind, name, table) in rows {
        if kind == "table" {
            let mut columns = conn
                .prepare(&format!("PRAGMA table_xinfo({name})"))
                .unwrap();
            let described: Vec<String> = columns
                .query_map([], |r| {
                    Ok(format!(
                        "{}:{}:{}:{:?}:{}",
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, i64>(5)?
                    ))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            out.insert(format!("table {name}({})", described.join(", ")));
        } else {
            let mut columns = conn
                .prepare(&format!("PRAGMA index_xinfo({name})"))
                .unwrap();
            let described: Vec<String> = columns
                .query_map([], |r| Ok(format!("{:?}", r.get::<_, Option<String>>(2)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            out.insert(format!(
                "{kind} {name} on {table}({})",
                described.join(", ")
            ));
        }
    }
    out
}

fn user_version(path: &Path) -> usize {
    Connection::open(path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

/// The Pagehook that last migrated a SQLite file, as it recorded itself.
fn writer(path: &Path) -> String {
    Connection::open(path)
        .unwrap()
        .query_row("SELECT pagehook FROM pagehook_schema_writer", [], |r| {
            r.get(0)
        })
        .unwrap()
}

fn sqlite_config(dir: &Path, db: &Path) -> PathBuf {
    let config = dir.join(format!(
        "{}.toml",
        db.file_stem().unwrap().to_str().unwrap()
    ));
    std::fs::write(
        &config,
        format!("[store]\ndatabase = \"{}\"\n", db.display()),
    )
    .unwrap();
    config
}

#[test]
fn every_shipped_sqlite_schema_migrates_to_todays_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh.db");
    json(&sqlite_config(dir.path(), &fresh), &["events"]);
    let today = user_version(&fresh);
    let expected = sqlite_schema(&fresh);

    let fixtures = fixtures("sqlite");
    let versions: BTreeSet<usize> = fixtures.iter().map(|f| fixture_version(f)).collect();
    let missing: Vec<usize> = (1..=today).filter(|v| !versions.contains(v)).collect();
    assert!(
        missing.is_empty(),
        "SQLite schema version(s) {missing:?} have no fixture: commit the migration, then run scripts/schema-fixtures.py"
    );
    for fixture in fixtures {
        let what = format!("sqlite {}", fixture.file_name().unwrap().to_str().unwrap());
        let db = dir
            .path()
            .join(fixture.file_stem().unwrap())
            .with_extension("db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(&std::fs::read_to_string(&fixture).unwrap())
            .unwrap();
        drop(conn);
        let version = fixture_version(&fixture);
        assert_eq!(user_version(&db), version, "{what}: as shipped");

        reads_back(&sqlite_config(dir.path(), &db), version, (8, 9), &what);

        assert_eq!(user_version(&db), today, "{what}: migrated");
        let got = sqlite_schema(&db);
        let extra: Vec<_> = got.difference(&expected).collect();
        let lacking: Vec<_> = expected.difference(&got).collect();
        assert!(
            extra.is_empty() && lacking.is_empty(),
            "{what}: migrated, it is not a fresh database's schema\nonly here: {extra:#?}\nonly in a fresh one: {lacking:#?}"
        );
    }
}

#[test]
fn a_sqlite_store_from_a_newer_pagehook_is_refused_with_the_version_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    let config = sqlite_config(dir.path(), &db);
    json(&config, &["events"]);
    let today = user_version(&db);
    {
        // What a newer Pagehook leaves: a higher version, and itself as the writer.
        let conn = Connection::open(&db).unwrap();
        conn.pragma_update(None, "user_version", today + 1).unwrap();
        conn.execute("UPDATE pagehook_schema_writer SET pagehook = '9.4.0'", [])
            .unwrap();
    }
    let before = (sqlite_schema(&db), user_version(&db), writer(&db));
    let out = pagehook(&config, &["events"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "version {} is newer than this binary's {today}",
            today + 1
        )) && err.contains("written by pagehook 9.4.0: run pagehook 9.4.0 or newer")
            && err.contains("nothing was changed"),
        "{err}"
    );
    assert!(
        (sqlite_schema(&db), user_version(&db), writer(&db)) == before,
        "the schema, its version and its writer are as they were"
    );
}

/// Runs a plain pg_dump file with psql, as an admin restores one.
fn psql_file(pg: &TestPostgres, db: &str, file: &Path) {
    let psql = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin/psql"))
                .find(|p| p.exists())
        })
        .unwrap_or_else(|| PathBuf::from("psql"));
    let out = Command::new(psql)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(file)
        .arg(format!(
            "postgresql://pagehook:{}@127.0.0.1:{}/{db}",
            pg.password(),
            pg.port()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql -f {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn postgres_config(dir: &Path, pg: &TestPostgres, db: &str) -> PathBuf {
    let password = dir.join("pg-password");
    std::fs::write(&password, pg.password()).unwrap();
    let config = dir.join(format!("{db}.toml"));
    std::fs::write(
        &config,
        format!(
            "[store]\ndatabase = \"{}\"\npassword = {{ file = \"{}\" }}\n",
            pg.url(db),
            password.display()
        ),
    )
    .unwrap();
    config
}

/// Columns and indexes of a PostgreSQL database, as comparable lines.
fn postgres_schema(pg: &TestPostgres, db: &str) -> BTreeSet<String> {
    let columns = pg.psql(
        db,
        "SELECT table_name || '.' || column_name || ':' || data_type || ':' || is_nullable || ':' \
         || coalesce(column_default, '') || ':' || is_identity \
         FROM information_schema.columns WHERE table_schema = 'public'",
    );
    let indexes = pg.psql(
        db,
        "SELECT indexname || ': ' || indexdef FROM pg_indexes WHERE schemaname = 'public'",
    );
    columns
        .lines()
        .chain(indexes.lines())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_shipped_postgres_schema_migrates_to_todays_and_reads_back() {
    let pg = TestPostgres::shared();
    let dir = tempfile::tempdir().unwrap();
    let fresh = pg.fresh_database();
    json(&postgres_config(dir.path(), pg, &fresh), &["events"]);
    let today: usize = pg
        .psql(&fresh, "SELECT max(version) FROM pagehook_schema")
        .parse()
        .unwrap();
    let expected = postgres_schema(pg, &fresh);

    let fixtures = fixtures("postgres");
    let versions: BTreeSet<usize> = fixtures.iter().map(|f| fixture_version(f)).collect();
    let missing: Vec<usize> = (1..=today).filter(|v| !versions.contains(v)).collect();
    assert!(
        missing.is_empty(),
        "PostgreSQL schema version(s) {missing:?} have no fixture: commit the migration, then run scripts/schema-fixtures.py"
    );
    for fixture in fixtures {
        let what = format!(
            "postgres {}",
            fixture.file_name().unwrap().to_str().unwrap()
        );
        let db = pg.fresh_database();
        psql_file(pg, &db, &fixture);
        let version = fixture_version(&fixture);
        assert_eq!(
            pg.psql(&db, "SELECT max(version) FROM pagehook_schema"),
            version.to_string(),
            "{what}: as shipped"
        );

        reads_back(
            &postgres_config(dir.path(), pg, &db),
            version,
            (3, 4),
            &what,
        );

        assert_eq!(
            pg.psql(&db, "SELECT max(version) FROM pagehook_schema"),
            today.to_string(),
            "{what}: migrated"
        );
        let got = postgres_schema(pg, &db);
        let extra: Vec<_> = got.difference(&expected).collect();
        let lacking: Vec<_> = expected.difference(&got).collect();
        assert!(
            extra.is_empty() && lacking.is_empty(),
            "{what}: migrated, it is not a fresh database's schema\nonly here: {extra:#?}\nonly in a fresh one: {lacking:#?}"
        );
        // Ids go on after the restored ones (pg_dump kept the identities).
        let next: i64 = pg
            .psql(
                &db,
                "SELECT nextval(pg_get_serial_sequence('events', 'id'))",
            )
            .parse()
            .unwrap();
        assert!(next > 2, "{what}: next event id {next}");
    }
}

#[test]
fn a_postgres_store_from_a_newer_pagehook_is_refused_with_the_version_it_needs() {
    let pg = TestPostgres::shared();
    let dir = tempfile::tempdir().unwrap();
    let db = pg.fresh_database();
    let config = postgres_config(dir.path(), pg, &db);
    json(&config, &["events"]);
    let today: usize = pg
        .psql(&db, "SELECT max(version) FROM pagehook_schema")
        .parse()
        .unwrap();
    pg.psql(
        &db,
        &format!(
            "UPDATE pagehook_schema SET version = {}, pagehook = '9.4.0'",
            today + 1
        ),
    );
    let before = postgres_schema(pg, &db);
    let out = pagehook(&config, &["events"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "version {} is newer than this binary's {today}",
            today + 1
        )) && err.contains("written by pagehook 9.4.0: run pagehook 9.4.0 or newer"),
        "{err}"
    );
    assert_eq!(postgres_schema(pg, &db), before, "nothing was changed");
    assert_eq!(
        pg.psql(
            &db,
            "SELECT version || ' ' || pagehook FROM pagehook_schema"
        ),
        format!("{} 9.4.0", today + 1)
    );
}
