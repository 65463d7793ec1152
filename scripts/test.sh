#!/usr/bin/env bash
# `make test`'s build and test steps, once make has installed the tools and
# built the plugins (see the Makefile's `test` target).
#
# Clippy runs in its own target directory beside the test build instead of
# before it: each of the two spends minutes with one core idle while rustc
# works through a large crate alone (wasmtime's, cranelift's, ours), and the
# two share no artefacts anyway (clippy checks, the tests build). Its output
# is kept in target/lint.log and shown when it fails; the tests themselves
# run only after it finished, so timing checks never share the cores with it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CARGO="${CARGO:-cargo}"
mkdir -p target
started=$(date +%s)
step() { echo "== $1 ($(($(date +%s) - started)) s)"; }

step "fmt"
"$CARGO" fmt --all -- --check

step "clippy (target/lint, in the background) and the test build"
LINT_LOG=target/lint.log
(CARGO_TARGET_DIR=target/lint "$CARGO" clippy --workspace --all-targets --locked -- -D warnings) \
    >"$LINT_LOG" 2>&1 &
LINT=$!
trap 'kill "$LINT" 2>/dev/null || true' EXIT
"$CARGO" test --workspace --locked --no-run
step "test build done; waiting for clippy"
if ! wait "$LINT"; then
    cat "$LINT_LOG"
    echo "clippy found problems (above; warnings are errors)" >&2
    exit 1
fi
trap - EXIT
tail -n 1 "$LINT_LOG"

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
