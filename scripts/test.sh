#!/usr/bin/env bash
# `make test`'s build and test steps, once make has installed the tools and
# built the plugins (see the Makefile's `test` target).
#
# Clippy lints during the test build itself: clippy-driver is the compiler
# of the workspace's own crates (RUSTC_WORKSPACE_WRAPPER, what `cargo
# clippy` sets up too) while dependencies compile with plain rustc, once.
# A separate `cargo clippy` would compile every dependency a second time in
# check mode (about a third of a clean build's CPU on two cores). The build
# covers every target clippy's `--all-targets` would (benches and examples
# too), and every later cargo command here runs with the same wrapper, so
# nothing is compiled twice. `make lint` is the plain `cargo clippy`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CARGO="${CARGO:-cargo}"
mkdir -p target
started=$(date +%s)
step() { echo "== $1 ($(($(date +%s) - started)) s)"; }

step "fmt"
"$CARGO" fmt --all -- --check

. scripts/clippy-build-env.sh

step "test build, linted by clippy (warnings are errors)"
"$CARGO" test --workspace --locked --all-targets --no-run
step "test build done"

if [ "$#" -gt 0 ]; then
    step "$*"
    "$@"
fi

step "schemathesis"
scripts/schemathesis.sh

step "cargo test"
"$CARGO" test --workspace --locked

step "polyglot plugins' own tests"
for d in examples/python-filter examples/js-filter; do
    "$d/test.sh"
done
step "all passed"
