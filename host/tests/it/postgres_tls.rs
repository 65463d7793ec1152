//! Cluster mode against a PostgreSQL that accepts only TLS (`ssl = on`,
//! `hostssl`-only rules, plain TCP rejected), with a server certificate
//! from a CA the test makes: `sslmode=verify-full` works for the pool and
//! the LISTEN connection; a plain client, a wrong CA and a wrong host name
//! are refused with messages that say why.

use crate::common;

use std::time::Duration;

use common::sidecar::{HOOK_SECRET, Sidecar};
use pagehook_fakes::postgres::TestPostgres;
use pagehook_fakes::tls::TestCa;
use pagehook_fakes::{ConfluenceAuth, FakeConfluence};

fn url(pg: &TestPostgres, db: &str, query: &str) -> String {
    format!("{}?{query}", pg.url(db))
}

fn said(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn verify_full_reaches_a_tls_only_postgres_and_every_connection_is_encrypted() {
    let ca = TestCa::new("DB Root CA");
    let pg = TestPostgres::start_tls(&ca.issue(&["127.0.0.1"]));
    let db = pg.fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("db-ca.pem");
    ca.write_pem(&ca_file);
    let query = format!("sslmode=verify-full&sslrootcert={}", ca_file.display());
    let mut side = Sidecar::on_postgres(&url(&pg, &db, &query), pg.password(), "", "");
    let confluence = FakeConfluence::start(ConfluenceAuth::Bearer(common::sidecar::PAT.into()));
    side.connect_confluence("prod", &confluence.base_url());
    side.start();
    let body =
        br#"{"timestamp":1768241299201,"event":"page_created","userKey":"k","page":{"id":77}}"#;
    let (status, answer) = side.hook("prod", body, Some(HOOK_SECRET));
    assert_eq!(status, 202, "{answer}");
    let events: serde_json::Value = serde_json::from_str(&side.cli(&["events", "--json"])).unwrap();
    assert_eq!(events.as_array().map(Vec::len), Some(1), "{events}");

    // Every connection of Pagehook's (the pool and LISTEN) is over TLS.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let counts = pg.psql(
            &db,
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl), \
             count(*) FILTER (WHERE a.query ILIKE 'LISTEN%') \
             FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.application_name = 'pagehook' AND a.datname = current_database()",
        );
        let fields: Vec<u64> = counts
            .trim()
            .split('|')
            .map(|f| f.trim().parse().unwrap())
            .collect();
        if fields[0] >= 2 && fields[2] >= 1 {
            assert_eq!(fields[1], 0, "no plain connection: {counts}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "expected TLS connections, LISTEN among them: {counts}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn plain_a_wrong_ca_and_a_wrong_host_name_are_refused_with_the_reason() {
    let ca = TestCa::new("DB Root CA");
    // Issued to a name, not to the address the URL uses.
    let pg = TestPostgres::start_tls(&ca.issue(&["db.corp.example"]));
    let db = pg.fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("db-ca.pem");
    ca.write_pem(&ca_file);
    let other_file = dir.path().join("other-ca.pem");
    TestCa::new("Some Other CA").write_pem(&other_file);

    let try_with = |query: &str| {
        let side = Sidecar::on_postgres(&url(&pg, &db, query), pg.password(), "", "");
        side.cli_output(&["connections"])
    };

    let out = try_with("sslmode=disable");
    assert!(!out.status.success(), "{}", said(&out));
    assert!(
        said(&out).contains("no encryption"),
        "pg_hba's refusal: {}",
        said(&out)
    );

    let out = try_with(&format!(
        "sslmode=verify-full&sslrootcert={}",
        other_file.display()
    ));
    assert!(!out.status.success(), "{}", said(&out));
    assert!(
        said(&out).contains("not signed by a CA in sslrootcert"),
        "{}",
        said(&out)
    );

    let out = try_with(&format!(
        "sslmode=verify-full&sslrootcert={}",
        ca_file.display()
    ));
    assert!(!out.status.success(), "{}", said(&out));
    assert!(
        said(&out).contains("not issued to the host name in the URL"),
        "{}",
        said(&out)
    );

    // verify-ca checks the chain only; require encrypts without checking.
    let out = try_with(&format!(
        "sslmode=verify-ca&sslrootcert={}",
        ca_file.display()
    ));
    assert!(out.status.success(), "{}", said(&out));
    let out = try_with("sslmode=require");
    assert!(out.status.success(), "{}", said(&out));
}
