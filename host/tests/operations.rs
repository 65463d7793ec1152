//! What an operator meets around the sidecar: a closed pipe, JSON logs,
//! half-sent requests, a full disk.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

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
    let store = Arc::new(Store::open(path).unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ingest = Ingest::start(store, Arc::new(tokio::sync::Notify::new())).unwrap();
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
