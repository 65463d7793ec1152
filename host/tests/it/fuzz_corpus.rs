//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*` and
//! `fuzz/regressions/<target>/*`) through the fuzz target bodies on stable
//! Rust, without libFuzzer: a crash fixed once can never come back, and
//! `make test` needs no nightly. `make fuzz` grows the corpus.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use pagehook::fuzz_targets;

/// Fewer inputs than this means the corpus went missing, not that it passed.
const MIN_INPUTS: usize = 10;

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    let files = inputs(target);
    assert!(
        files.len() >= MIN_INPUTS,
        "fuzz target `{target}`: only {} inputs under fuzz/corpus/{target} and fuzz/regressions/{target}",
        files.len()
    );
    let mut failed = Vec::new();
    for path in &files {
        let data = std::fs::read(path).unwrap();
        if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "fuzz target `{target}` panicked on {} of {} inputs: {failed:#?}",
        failed.len(),
        files.len()
    );
}

#[test]
fn webhook_corpus_replays() {
    replay("webhook", fuzz_targets::webhook);
}

#[test]
fn manifest_corpus_replays() {
    replay("manifest", fuzz_targets::manifest);
}

#[test]
fn config_corpus_replays() {
    replay("config", fuzz_targets::config);
}

#[test]
fn actions_corpus_replays() {
    replay("actions", fuzz_targets::actions);
}

#[test]
fn headers_corpus_replays() {
    replay("headers", fuzz_targets::headers);
}
