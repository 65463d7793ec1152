//! Outbound HTTPS to services served with a company's own CA: real TLS on
//! loopback (a CA made by the test, `pagehook_fakes::tls`), trusted only
//! through the machine's store (`SSL_CERT_FILE`, which the platform store
//! reader honours) or `[tls] extra-ca-files`; without it, `connection
//! test` names who signed the certificate and how to trust it.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::sidecar::{HOOK_SECRET, PAT, Sidecar};
use pagehook_fakes::tls::{TestCa, TlsFront};
use pagehook_fakes::{ConfluenceAuth, ContentBuilder, FakeConfluence, FakeSlack, FakeTeams};

const BOT: &str = "xoxb-tls-tests";

/// `pagehook connection test NAME` with `env` set (and `SSL_CERT_FILE` /
/// `SSL_CERT_DIR` removed unless `env` names them).
fn connection_test(side: &Sidecar, name: &str, env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pagehook"));
    cmd.arg("--config")
        .arg(side.config())
        .args(["connection", "test", name])
        .env("PAGEHOOK_TEST_PAT", PAT)
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_company_ca_is_trusted_from_the_machines_store_or_extra_ca_files_and_named_when_missing() {
    let ca = TestCa::new("Corp Root CA");
    let confluence = FakeConfluence::start(ConfluenceAuth::Bearer(PAT.into()));
    let front = TlsFront::start(&ca.issue(&["127.0.0.1"]), confluence.addr());
    let side = Sidecar::new();
    side.connect_confluence("prod", &front.url());

    // Not trusted: the machine's store (here: an empty bundle of our own,
    // so the test does not depend on what this machine trusts) lacks it.
    let other = TestCa::new("Some Other CA");
    let machine_store = side.dir.path().join("machine-store.pem");
    other.write_pem(&machine_store);
    let out = connection_test(&side, "prod", &[("SSL_CERT_FILE", &machine_store)]);
    let text = said(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("presented a certificate for '127.0.0.1' signed by 'Corp Root CA', which this server does not trust"),
        "{text}"
    );
    assert!(text.contains("[tls] extra-ca-files"), "{text}");
    assert!(text.contains("update-ca-certificates"), "{text}");
    assert_eq!(
        confluence.calls(pagehook_fakes::endpoints::CURRENT_USER),
        0,
        "nothing reached Confluence"
    );
    // The doctor says the same for the connection.
    let mut doctor = Command::new(env!("CARGO_BIN_EXE_pagehook"));
    doctor
        .arg("--config")
        .arg(side.config())
        .args(["doctor", "--json"])
        .env("PAGEHOOK_TEST_PAT", PAT)
        .env("SSL_CERT_FILE", &machine_store)
        .env_remove("SSL_CERT_DIR");
    let out = doctor.output().unwrap();
    let text = said(&out);
    assert!(
        text.contains("signed by 'Corp Root CA', which this server does not trust"),
        "{text}"
    );

    // In the machine's store: trusted.
    let corp = side.dir.path().join("corp-root-ca.pem");
    ca.write_pem(&corp);
    let out = connection_test(&side, "prod", &[("SSL_CERT_FILE", &corp)]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(
        said(&out).contains("accepts the credentials"),
        "{}",
        said(&out)
    );

    // Only in extra-ca-files (relative to the config file): trusted too.
    side.add_to_config("[tls]\nextra-ca-files = [\"corp-root-ca.pem\"]\n");
    let out = connection_test(&side, "prod", &[("SSL_CERT_FILE", &machine_store)]);
    assert!(out.status.success(), "{}", said(&out));
}

#[test]
fn a_certificate_for_another_name_is_explained_with_the_names_it_is_valid_for() {
    let ca = TestCa::new("Corp Root CA");
    let confluence = FakeConfluence::start(ConfluenceAuth::Bearer(PAT.into()));
    let front = TlsFront::start(&ca.issue(&["wiki.corp.example"]), confluence.addr());
    let side = Sidecar::new();
    let corp = side.dir.path().join("corp-root-ca.pem");
    ca.write_pem(&corp);
    side.add_to_config("[tls]\nextra-ca-files = [\"corp-root-ca.pem\"]\n");
    side.connect_confluence("prod", &front.url());
    let out = connection_test(&side, "prod", &[]);
    let text = said(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("not valid for the name '127.0.0.1' (it is valid for: wiki.corp.example)"),
        "{text}"
    );
}

#[test]
fn a_ca_file_that_cannot_be_read_stops_the_command_with_its_name() {
    let side = Sidecar::new();
    side.add_to_config("[tls]\nextra-ca-files = [\"missing-ca.pem\"]\n");
    let out = side.cli_output(&["connections"]);
    let text = said(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("extra-ca-files"), "{text}");
    assert!(text.contains("missing-ca.pem"), "{text}");
}

/// Confluence, Slack and Teams all behind TLS with the company's CA (Slack
/// and Teams as a TLS-inspecting proxy would present them): an event is
/// enriched, posted to Slack and carded to Teams.
#[test]
fn events_are_enriched_and_posted_over_https_with_the_company_ca() {
    let ca = TestCa::new("Corp Root CA");
    let confluence = FakeConfluence::start(ConfluenceAuth::Bearer(PAT.into()));
    confluence.put_content(
        4242,
        ContentBuilder::page(4242, "ENG", "Runbook behind the firewall")
            .ancestors(&[])
            .build(),
    );
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", "C0ENG00001", true);
    let cert = ca.issue(&["127.0.0.1"]);
    let wiki = TlsFront::start(&cert, confluence.addr());
    let slack_front = TlsFront::start(&cert, slack.addr());
    let teams = FakeTeams::start();
    let workflow = teams.add_workflow("eng-news");
    let teams_front = TlsFront::start(&cert, teams.addr());
    let workflow = workflow.replace(&format!("http://{}", teams.addr()), &teams_front.url());
    assert!(workflow.starts_with("https://"), "{workflow}");

    let mut side = Sidecar::new();
    ca.write_pem(&side.dir.path().join("corp-root-ca.pem"));
    side.add_to_config("[tls]\nextra-ca-files = [\"corp-root-ca.pem\"]\n");
    side.connect_confluence("prod", &wiki.url());
    side.connect_slack("acme", &format!("{}/api/", slack_front.url()), BOT);
    side.bind_slack_poster("eng", &["--scope", "space:ENG"]);
    side.cli(&["connect", "teams", "eng-news", "--url", &workflow]);
    side.install("teams-poster", &["post-teams"]);
    side.cli(&[
        "bind",
        "teams-poster",
        "--to",
        "teams:eng-news",
        "--set",
        "channel=eng-news",
    ]);
    side.start();

    let body = br#"{"timestamp":1768241299001,"event":"page_created","userKey":"8a7f80839e460b0f019e460ba6440001","page":{"id":4242}}"#;
    let (status, answer) = side.hook("prod", body, Some(HOOK_SECRET));
    assert_eq!(status, 202, "{answer}");
    let posts = slack.wait_for_posts(1, Duration::from_secs(30));
    assert!(
        posts[0]
            .text
            .as_deref()
            .is_some_and(|t| t.contains("Runbook behind the firewall")),
        "the post carries what was read from Confluence over HTTPS: {:?}",
        posts[0].text
    );
    let cards = teams.wait_for_posts(1, Duration::from_secs(30));
    assert_eq!(cards[0].workflow, "eng-news");
    assert!(
        cards[0]
            .card
            .to_string()
            .contains("Runbook behind the firewall"),
        "{}",
        cards[0].card
    );
    assert!(wiki.handshakes() > 0 && slack_front.handshakes() > 0 && teams_front.handshakes() > 0);
}

/// A machine that trusts no CA at all (no ca-certificates): commands that
/// need no HTTPS still work, and reaching an HTTPS server says why not.
#[test]
fn a_machine_without_any_trusted_ca_still_runs_and_says_why_https_fails() {
    let ca = TestCa::new("Corp Root CA");
    let confluence = FakeConfluence::start(ConfluenceAuth::Bearer(PAT.into()));
    let front = TlsFront::start(&ca.issue(&["127.0.0.1"]), confluence.addr());
    let side = Sidecar::new();
    let empty = side.dir.path().join("empty-store.pem");
    std::fs::write(&empty, "").unwrap();
    side.connect_confluence("prod", &front.url());
    let out = connection_test(&side, "prod", &[("SSL_CERT_FILE", &empty)]);
    let text = said(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("trusts no certificate authority at all") && text.contains("ca-certificates"),
        "{text}"
    );
    let mut list = Command::new(env!("CARGO_BIN_EXE_pagehook"));
    list.arg("--config")
        .arg(side.config())
        .arg("connections")
        .env("SSL_CERT_FILE", &empty)
        .env_remove("SSL_CERT_DIR");
    let out = list.output().unwrap();
    assert!(out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("prod"), "{}", said(&out));
}
