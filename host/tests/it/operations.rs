//! What an operator meets around the sidecar: a closed pipe, JSON logs,
//! half-sent requests, a full disk.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pagehook::store::ingest::Ingest;
use pagehook::store::{NewEvent, Store};

fn new_event(key: &str) -> NewEvent {
    NewEvent {
        key: key.into(),
        source: "prod".into(),
        name: "page_created".into(),
        payload: r#"{"event":"page_created"}"#.into(),
        dispatchable: false,
    }
}

/// Stores `n` events in the database at `path`.
fn fill(path: &Path, n: usize) {
    let store = Store::open_sqlite(path).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ingest = Ingest::start(&store, Arc::new(tokio::sync::Notify::new())).unwrap();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..n {
            let ingest = ingest.clone();
            tasks.push(tokio::spawn(async move {
                ingest.insert(new_event(&format!("k{i}"))).await.unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
fn a_reader_that_stops_early_ends_every_listing_quietly() {
    let dir = tempfile::tempdir().unwrap();
    fill(&dir.path().join("pagehook.db"), 3000);
    let config = dir.path().join("pagehook.toml");
    std::fs::write(&config, "").unwrap();
    for args in [
        &["events", "--limit", "3000"][..],
        &["events", "--limit", "3000", "--json"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pagehook"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("PAGEHOOK_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // `| head -1`: read one line, then close the pipe.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert!(!line.is_empty());
        drop(stdout);
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
        assert!(status.success(), "{args:?}: {status:?}");
    }
}

/// `pagehook serve` with its own config and its stderr kept in a file.
struct Server {
    dir: tempfile::TempDir,
    child: std::process::Child,
    base: String,
    addr: String,
}

impl Server {
    /// Starts a sidecar whose config is `extra` plus an admin token, with
    /// the database at `database` (default: in the temp dir).
    fn start(extra: &str, database: Option<&Path>, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin-token"), common::sidecar::ADMIN_TOKEN).unwrap();
        let cache = common::root().join("target/pagehook-cache");
        let database = database
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.path().join("pagehook.db"));
        std::fs::write(
            dir.path().join("pagehook.toml"),
            format!(
                "[store]\ndatabase = \"{}\"\n[sandbox]\ncache-dir = \"{}\"\n{extra}",
                database.display(),
                cache.display()
            ),
        )
        .unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_pagehook"))
            .arg("--config")
            .arg(dir.path().join("pagehook.toml"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("PAGEHOOK_TEST_PAT", common::sidecar::PAT)
            .env("PAGEHOOK_TEST_HOOK_SECRET", common::sidecar::HOOK_SECRET)
            .env_remove("PAGEHOOK_LOG_FORMAT")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("pagehook listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        let addr = base.trim_start_matches("http://").to_owned();
        Server {
            dir,
            child,
            base,
            addr,
        }
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_pagehook"))
            .arg("--config")
            .arg(self.dir.path().join("pagehook.toml"))
            .args(args)
            .env("PAGEHOOK_TEST_PAT", common::sidecar::PAT)
            .env("PAGEHOOK_TEST_HOOK_SECRET", common::sidecar::HOOK_SECRET)
            .env_remove("PAGEHOOK_LOG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pagehook {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap()
    }

    /// POSTs a signed webhook for source `prod`.
    fn hook(&self, body: &[u8]) -> (u16, serde_json::Value) {
        let answer = reqwest::blocking::Client::new()
            .post(format!("{}/hooks/confluence/prod", self.base))
            .header("content-type", "application/json")
            .header(
                "X-Hub-Signature",
                common::sidecar::sign(common::sidecar::HOOK_SECRET, body),
            )
            .body(body.to_vec())
            .send()
            .unwrap();
        let status = answer.status().as_u16();
        (status, answer.json().unwrap_or(serde_json::Value::Null))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads until the server closes the connection; what it sent and when.
fn read_until_closed(stream: &mut std::net::TcpStream) -> (String, Duration) {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server kept the connection open: {e}"),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), start.elapsed())
}

#[test]
fn half_sent_requests_do_not_hold_connections() {
    let server = Server::start(
        "[server]\nheader-timeout-ms = 500\nbody-timeout-ms = 700\n",
        None,
        &[],
    );

    // Half a request line, then nothing.
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    stream.write_all(b"POST /hooks/confluence/pr").unwrap();
    let (_, took) = read_until_closed(&mut stream);
    assert!(took < Duration::from_secs(5), "closed after {took:?}");

    // Headers, then only part of the promised body.
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    stream
        .write_all(
            b"POST /hooks/confluence/prod HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
              content-length: 100\r\n\r\n{\"event\":",
        )
        .unwrap();
    let (answer, took) = read_until_closed(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("server.body-timeout-ms"), "{answer}");
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(5),
        "answered after {took:?}"
    );

    // A complete request is still served.
    let health = reqwest::blocking::get(format!("{}/healthz", server.base)).unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

/// A webhook-only Confluence source `prod`, and `hello` bound to a dry-run
/// Slack connection: every event makes one delivery without any network.
fn setup_dry_run(server: &Server) {
    server.cli(&[
        "connect",
        "confluence",
        "prod",
        "--url",
        "http://127.0.0.1:9",
        "--webhook-secret-env",
        "PAGEHOOK_TEST_HOOK_SECRET",
    ]);
    server.cli(&[
        "connect",
        "slack",
        "acme",
        "--url",
        "http://127.0.0.1:9/api/",
        "--token",
        "xoxb-never-used",
        "--dry-run",
    ]);
    server.cli(&[
        "plugin",
        "install",
        common::plugin_dir("hello").to_str().unwrap(),
        "--grant",
        "post-slack",
    ]);
    server.cli(&[
        "bind",
        "hello",
        "--to",
        "slack:#eng",
        "--set",
        "channel=#eng",
    ]);
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn json_logs_are_one_object_per_line_naming_the_event_or_delivery() {
    let server = Server::start(
        "",
        None,
        &[
            ("PAGEHOOK_LOG", "pagehook=debug"),
            ("PAGEHOOK_LOG_FORMAT", "json"),
        ],
    );
    setup_dry_run(&server);
    let body = pagehook_fakes::fixture_bytes("confluence/webhook-rich/page_created.json");
    let (status, answer) = server.hook(&body);
    assert_eq!(status, 202, "{answer}");
    let event = answer["id"].as_i64().unwrap();
    let ours = format!("\"event\":{event},\"name\":\"delivery\"");
    wait_for("the event's dry-run delivery to be logged", || {
        server.stderr().contains(&ours)
    });

    let stderr = server.stderr();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for line in &lines {
        assert!(line["message"].is_string(), "{line}");
        assert!(line["level"].is_string(), "{line}");
    }
    let stored = lines
        .iter()
        .find(|l| l["message"] == "webhook stored")
        .unwrap_or_else(|| panic!("no `webhook stored` line in:\n{stderr}"));
    assert_eq!(stored["event"], event, "{stored}");
    // Every line logged while carrying out a delivery names it (and its event).
    let delivery_lines: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| {
            l["target"]
                .as_str()
                .unwrap_or("")
                .starts_with("pagehook::deliver")
        })
        .collect();
    assert!(!delivery_lines.is_empty(), "{stderr}");
    for line in &delivery_lines {
        assert!(line["span"]["delivery"].is_i64(), "{line}");
        assert!(line["span"]["event"].is_i64(), "{line}");
    }
    let recorded = delivery_lines
        .iter()
        .find(|l| l["message"] == "dry run: recorded" && l["span"]["event"] == event)
        .unwrap_or_else(|| panic!("no dry run line for event {event}:\n{stderr}"));
    assert_eq!(
        recorded["delivery"], recorded["span"]["delivery"],
        "{recorded}"
    );
}

/// A small tmpfs mounted for one test; unmounted when dropped.
struct Tmpfs {
    path: std::path::PathBuf,
}

impl Tmpfs {
    /// Mounts `size` of tmpfs at `path`; `None` (with a note) when not root
    /// or mounting is not allowed here.
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        let uid = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        std::fs::create_dir_all(path).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .ok()?;
        if !mounted.status.success() {
            eprintln!(
                "skipped: cannot mount a tmpfs: {}",
                String::from_utf8_lossy(&mounted.stderr)
            );
            return None;
        }
        Some(Tmpfs {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Writes `path` until the filesystem is full.
fn fill_disk(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    loop {
        if let Err(e) = file.write_all(&chunk) {
            assert_eq!(e.raw_os_error(), Some(28), "expected ENOSPC, got {e}");
            break;
        }
    }
    let small = [0u8; 512];
    while file.write_all(&small).is_ok() {}
}

/// The rich page_created webhook with its own timestamp (a distinct event).
fn webhook(timestamp: u64) -> Vec<u8> {
    let mut hook: serde_json::Value = serde_json::from_slice(&pagehook_fakes::fixture_bytes(
        "confluence/webhook-rich/page_created.json",
    ))
    .unwrap();
    hook["timestamp"] = timestamp.into();
    serde_json::to_vec(&hook).unwrap()
}

#[test]
fn a_full_disk_refuses_webhooks_with_503_and_resumes_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&dir.path().join("disk"), "4m") else {
        return;
    };
    let server = Server::start("", Some(&disk.path.join("pagehook.db")), &[]);
    server.cli(&[
        "connect",
        "confluence",
        "prod",
        "--url",
        "http://127.0.0.1:9",
        "--webhook-secret-env",
        "PAGEHOOK_TEST_HOOK_SECRET",
    ]);
    let (status, first) = server.hook(&webhook(1));
    assert_eq!(status, 202, "{first}");

    let filler = disk.path.join("filler");
    fill_disk(&filler);
    for ts in [2, 2, 3] {
        let (status, answer) = server.hook(&webhook(ts));
        assert_eq!(status, 503, "{answer}");
        let reason = answer["error"].as_str().unwrap();
        assert!(reason.contains("disk"), "{reason}");
        assert!(reason.contains("full"), "{reason}");
        assert!(reason.contains("not stored"), "{reason}");
        assert!(
            !reason.contains(disk.path.to_str().unwrap()),
            "no file path in an answer: {reason}"
        );
    }

    std::fs::remove_file(&filler).unwrap();
    // No restart: the next webhooks are stored.
    for ts in [2, 3] {
        let (status, answer) = server.hook(&webhook(ts));
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["duplicate"], false, "{answer}");
    }
    let (status, again) = server.hook(&webhook(1));
    assert_eq!(status, 202);
    assert_eq!(
        again["duplicate"], true,
        "the first event is still stored: {again}"
    );
    assert_eq!(again["id"], first["id"]);
    let events: serde_json::Value =
        serde_json::from_str(&server.cli(&["events", "--json"])).unwrap();
    assert_eq!(events.as_array().unwrap().len(), 3, "{events:#}");
    drop(server);
}

#[test]
fn a_second_server_on_the_same_sqlite_file_refuses_to_start_and_the_cli_still_works() {
    let first = Server::start("", None, &[]);
    let second = Command::new(env!("CARGO_BIN_EXE_pagehook"))
        .arg("--config")
        .arg(first.dir.path().join("pagehook.toml"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!second.status.success(), "a second serve started");
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("another `pagehook serve`") && err.contains("SQLite serves one process"),
        "{err}"
    );
    // The admin CLI reads and writes beside the running server.
    first.cli(&["events"]);
    first.cli(&[
        "connect",
        "teams",
        "eng",
        "--url",
        "http://127.0.0.1:9/workflow",
    ]);
}

#[test]
fn cli_changes_land_in_the_change_log_with_who_and_no_secret() {
    let server = Server::start("", None, &[]);
    server.cli(&[
        "connect",
        "slack",
        "acme",
        "--token",
        "xoxb-never-in-the-log",
        "--dry-run",
    ]);
    server.cli(&["connection", "remove", "acme"]);
    let out = server.cli(&["changes", "--json"]);
    assert!(!out.contains("xoxb-never-in-the-log"), "{out}");
    let changes: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let actions: Vec<&str> = changes
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["connection.remove", "connection.add"]);
    assert!(
        changes
            .iter()
            .all(|c| c["actor"].as_str().unwrap().ends_with("(CLI)"))
    );
    assert_eq!(changes[1]["target"], "acme");
    assert_eq!(changes[1]["detail"]["dry_run"], true);
    let table = server.cli(&["changes"]);
    assert!(
        table.contains("connection.add") && table.contains("WHO"),
        "{table}"
    );
}
