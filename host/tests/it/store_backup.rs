//! Backups: `pagehook store backup FILE` while `pagehook serve` takes a
//! burst of webhooks gives a file that is one consistent moment of the store
//! (SQLite's integrity and foreign-key checks pass, every delivery's event is
//! in it, the counts it prints are the file's), and restoring it (stop,
//! put the file in place, start) gives a server with those events. On
//! PostgreSQL the command changes nothing and says how (pg_dump); the
//! documented pg_dump/pg_restore round trip is tested too.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use pagehook_fakes::FakeSlack;
use pagehook_fakes::postgres::TestPostgres;
use rusqlite::Connection;

use crate::common::sidecar::{HOOK_SECRET, Sidecar};

/// A page_created webhook for page `n` (a webhook-only source: no Confluence round trip).
fn page_created(n: u64) -> Vec<u8> {
    format!(
        r#"{{"timestamp":{},"event":"page_created","userKey":"8a7f80839e460b0f019e460ba6440001","page":{{"id":{},"title":"Page {n}","spaceKey":"ENG","self":"https://wiki.example.com/pages/{n}","version":1}}}}"#,
        1_768_000_000_000u64 + n,
        5_000_000 + n
    )
    .into_bytes()
}

fn count(db: &Path, sql: &str) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_backup_taken_while_serving_is_consistent_and_restores() {
    let mut side = Sidecar::with_delivery("");
    side.cli(&[
        "connect",
        "confluence",
        "wiki",
        "--url",
        "http://127.0.0.1:9",
        "--webhook-secret-env",
        "PAGEHOOK_TEST_HOOK_SECRET",
    ]);
    let slack = FakeSlack::start("xoxb-backup");
    slack.add_channel("eng", "C0ENG00001", true);
    side.connect_slack("acme", &slack.base_url(), "xoxb-backup");
    side.install("slack-poster", &["post-slack"]);
    side.cli(&[
        "bind",
        "slack-poster",
        "--quiet",
        "--to",
        "slack:#eng",
        "--set",
        "channel=#eng",
        "--scope",
        "space:ENG",
    ]);
    side.start();

    // A burst of webhooks from two threads while backups are taken.
    let base = side.base.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..2u64)
        .map(|t| {
            let (base, stop, sent) = (base.clone(), stop.clone(), sent.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut n = t * 100_000;
                while !stop.load(Ordering::Relaxed) && n < t * 100_000 + 400 {
                    let body = page_created(n);
                    let answer = client
                        .post(format!("{base}/hooks/confluence/wiki"))
                        .header("content-type", "application/json")
                        .header(
                            "X-Hub-Signature",
                            crate::common::sidecar::sign(HOOK_SECRET, &body),
                        )
                        .body(body)
                        .send()
                        .unwrap();
                    assert_eq!(answer.status().as_u16(), 202);
                    sent.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            })
        })
        .collect();
    while sent.load(Ordering::Relaxed) < 20 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut backups = Vec::new();
    for i in 0..3 {
        let file = side.path().join(format!("backup-{i}.db"));
        let before = sent.load(Ordering::Relaxed);
        let out = side.cli(&["store", "backup", file.to_str().unwrap(), "--json"]);
        let after = sent.load(Ordering::Relaxed);
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        backups.push((file, report, before, after));
    }
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.join().unwrap();
    }

    for (file, report, before, after) in &backups {
        let what = file.display();
        let conn = Connection::open(file).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "{what}");
        let fk: i64 = conn
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(fk, 0, "{what}: foreign keys");
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            mode, "delete",
            "{what}: one file, no write-ahead log beside it"
        );
        drop(conn);
        let events = count(file, "SELECT count(*) FROM events") as usize;
        assert_eq!(report["events"], events, "{what}: the report is the file's");
        assert_eq!(
            report["deliveries"],
            count(file, "SELECT count(*) FROM deliveries"),
            "{what}"
        );
        assert!(
            events >= *before && events <= *after,
            "{what}: {events} events, answered before the backup {before}, after {after}"
        );
        // A delivery is written in its event's dispatch transaction: never without it.
        assert_eq!(
            count(
                file,
                "SELECT count(*) FROM deliveries d LEFT JOIN events e ON e.id = d.event_id WHERE e.id IS NULL"
            ),
            0,
            "{what}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{what}: owner only");
        }
    }
    let refused = side.cli_output(&["store", "backup", backups[0].0.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("never overwrites"));

    // Restore: stop, put the last backup in place, start: its events are there.
    assert!(side.terminate().success());
    let (last, report, ..) = backups.last().unwrap();
    let db = side.database();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    std::fs::copy(last, &db).unwrap();
    side.start();
    let events = side.wait_json(&["events", "--limit", "100000"], "restored events", |v| {
        v.as_array()
            .is_some_and(|a| a.len() == report["events"].as_u64().unwrap() as usize)
    });
    assert!(!events.as_array().unwrap().is_empty());
}

#[test]
fn on_postgres_the_backup_command_points_to_pg_dump_and_the_documented_round_trip_works() {
    let pg = TestPostgres::shared();
    let db = pg.fresh_database();
    let mut side = Sidecar::on_postgres(&pg.url(&db), pg.password(), "", "");
    side.cli(&[
        "connect",
        "confluence",
        "wiki",
        "--url",
        "http://127.0.0.1:9",
        "--webhook-secret-env",
        "PAGEHOOK_TEST_HOOK_SECRET",
    ]);
    side.start();
    for n in 0..5 {
        let (status, _) = side.hook("wiki", &page_created(n), Some(HOOK_SECRET));
        assert_eq!(status, 202);
    }
    let file = side.path().join("backup.dump");
    let out = side.cli_output(&["store", "backup", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pg_dump --format=custom") && err.contains("nothing was written"),
        "{err}"
    );
    assert!(!err.contains(pg.password()), "no password: {err}");
    assert!(!file.exists());

    // The documented way: pg_dump -Fc, then pg_restore into an empty database.
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .find(|p| p.join("pg_dump").exists())
        .expect("Debian's postgresql (make postgres)");
    let conn = |db: &str| {
        format!(
            "postgresql://pagehook:{}@127.0.0.1:{}/{db}",
            pg.password(),
            pg.port()
        )
    };
    let dump = Command::new(bin.join("pg_dump"))
        .args(["--format=custom", "--no-owner", "--file"])
        .arg(&file)
        .arg(format!("--dbname={}", conn(&db)))
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    assert!(side.terminate().success());
    let restored = pg.fresh_database();
    let restore = Command::new(bin.join("pg_restore"))
        .args(["--no-owner", "--exit-on-error"])
        .arg(format!("--dbname={}", conn(&restored)))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    let mut again = Sidecar::on_postgres(&pg.url(&restored), pg.password(), "", "");
    again.start();
    again.wait_json(&["events"], "the five events, restored", |v| {
        v.as_array().is_some_and(|a| a.len() == 5)
    });
    // New ids go on after the restored ones.
    let (status, _) = again.hook("wiki", &page_created(99), Some(HOOK_SECRET));
    assert_eq!(status, 202);
    again.wait_json(&["events"], "a sixth event", |v| {
        v.as_array().is_some_and(|a| a.len() == 6)
    });
}
