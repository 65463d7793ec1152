#!/usr/bin/env bash
# `make schemathesis`: property-based tests of the admin API against a real
# `pagehook serve`, generated from its own OpenAPI document
# (GET /api/openapi.json). Fails on any 5xx, any status the document does not
# list, and any answer that does not match the document's schema (all of
# schemathesis's checks, all on by default; the one exception is named below).
#
# - schemathesis comes from PyPI, pinned, in a project-local venv
#   (.venv-schemathesis/, made once).
# - The server runs on a fresh SQLite store in a temp dir, seeded through the
#   CLI with a dry-run Slack connection, a webhook-only Confluence source, the
#   bundled slack-poster (when `make plugins` has built it), a binding and one
#   signed webhook, so the operations on ids and names meet real rows too.
# - Server and schemathesis run in a network namespace of their own with only
#   loopback: connections the fuzzer creates point anywhere, and neither a
#   connection test nor a delivery may reach beyond this machine.
#
# Budget: SCHEMATHESIS_EXAMPLES (default 200: about 70 s of fuzzing on two
# cores) cases per operation and phase, SCHEMATHESIS_WORKERS (default 2),
# SCHEMATHESIS_SEED (default 16, so a failure in CI replays here).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="4.32.5"
VENV="$ROOT/.venv-schemathesis"
EXAMPLES="${SCHEMATHESIS_EXAMPLES:-200}"
SEED="${SCHEMATHESIS_SEED:-16}"
WORKERS="${SCHEMATHESIS_WORKERS:-2}"
CARGO="${CARGO:-cargo}"

# In the namespace: start the server, run schemathesis against it, stop it.
if [ "${1:-}" = "--inside" ]; then
    WORK="$2"
    cd "$WORK" # schemathesis keeps its cache (.schemathesis/) in the current directory
    ip link set lo up
    "$ROOT/target/debug/pagehook" --config "$WORK/pagehook.toml" serve \
        --listen 127.0.0.1:0 >"$WORK/serve.out" 2>"$WORK/serve.log" &
    SERVER=$!
    trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT
    ADDR=""
    for _ in $(seq 300); do
        ADDR="$(sed -n 's|^pagehook listening on http://||p' "$WORK/serve.out")"
        [ -n "$ADDR" ] && break
        kill -0 "$SERVER" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$ADDR" ]; then
        echo "schemathesis: pagehook serve did not start; its log:" >&2
        cat "$WORK/serve.log" >&2
        exit 1
    fi
    "$VENV/bin/python" - "$ADDR" "$ROOT/../shared/fixtures/confluence/webhook-rich/page_created.json" <<'PY'
import hashlib, hmac, sys, urllib.request, pathlib
addr, fixture = sys.argv[1], pathlib.Path(sys.argv[2])
body = fixture.read_bytes() if fixture.exists() else (
    b'{"timestamp":1768241233603,"event":"page_created","userKey":"u1",'
    b'"page":{"id":2818051,"title":"Q3 launch checklist","contentType":"page",'
    b'"version":1,"spaceKey":"ENG","self":"https://wiki.example.com/pages/2818051"}}')
sig = "sha256=" + hmac.new(b"schemathesis-webhook-secret", body, hashlib.sha256).hexdigest()
req = urllib.request.Request(f"http://{addr}/hooks/confluence/wiki", data=body,
    headers={"Content-Type": "application/json", "X-Hub-Signature": sig})
print("seeded webhook:", urllib.request.urlopen(req, timeout=10).read().decode())
PY
    set +e
    "$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" \
        run "http://$ADDR/api/openapi.json" \
        --header "Authorization: Bearer $(cat "$WORK/admin-token")" \
        --max-examples "$EXAMPLES" \
        --workers "$WORKERS" \
        --seed "$SEED" \
        --request-timeout 30 \
        --suppress-health-check all \
        --report junit --report-dir "$WORK/report"
    STATUS=$?
    set -e
    if [ "$STATUS" != 0 ]; then
        echo "schemathesis: failures above; the server's log ends with:" >&2
        tail -n 40 "$WORK/serve.log" >&2
    fi
    exit "$STATUS"
fi

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "version $VERSION\$"; then
    echo "schemathesis: installing schemathesis $VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi

# The server binary as `make test`'s `cargo test --workspace` builds it: a
# `cargo build -p pagehook` unifies features over pagehook alone, so nearly
# every dependency would be compiled twice (about 10 minutes on two cores).
"$CARGO" test --workspace --locked --no-run

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/admin-token"
cat >"$WORK/pagehook.toml" <<TOML
[server]
admin-token = { file = "admin-token" }
[sandbox]
cache-dir = "$ROOT/target/pagehook-cache"
[delivery]
retry-schedule-ms = [100, 200]
give-up-after-ms = 1000
timeout-ms = 1000
TOML
# A request the document allows may still be refused for what the document
# cannot say (a grant the manifest does not declare, a secret that cannot be
# read, a name already taken): 400 or 409 with the reason, never 422 or 5xx.
#
# Listing a Slack connection's channels asks Slack, which the namespace
# cannot reach: there (and only there) the documented 502 is the right
# answer, so that operation may give it.
cat >"$WORK/schemathesis.toml" <<TOML
[checks.positive_data_acceptance]
expected-statuses = ["2xx", 400, 401, 403, 404, 409]

[[operations]]
include-name = "GET /api/connections/{name}/channels"
checks.not_a_server_error.enabled = false
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 404, 409, 502]
TOML
ph() { "$ROOT/target/debug/pagehook" --config "$WORK/pagehook.toml" "$@" >/dev/null; }
ph connect slack acme --token xoxb-schemathesis-not-a-token --dry-run
ph connect confluence wiki --url https://wiki.example.com --webhook-secret schemathesis-webhook-secret
if [ -f "$ROOT/target/plugins/slack-poster/plugin.toml" ]; then
    ph plugin install "$ROOT/target/plugins/slack-poster" --grant post-slack --grant dm-slack
    ph bind slack-poster --scope space:ENG --to 'slack:#eng' --set channel='#eng' --dry-run
else
    echo "schemathesis: target/plugins/slack-poster is not built (make plugins); running without a plugin"
fi

# A namespace with only loopback: root may make one, others a user namespace.
if unshare --net true 2>/dev/null; then
    NS=(unshare --net)
elif unshare --net --map-root-user true 2>/dev/null; then
    NS=(unshare --net --map-root-user)
else
    echo "schemathesis: cannot make a network namespace (unshare --net); refusing to fuzz an API whose connections reach out" >&2
    exit 1
fi
START=$(date +%s)
"${NS[@]}" "$0" --inside "$WORK"
echo "schemathesis: passed in $(($(date +%s) - START)) s"
