#!/usr/bin/env bash
# `make run`: the sidecar with the bundled plugins on the embedded SQLite
# default, fed two sample Confluence webhooks, so a newcomer sees real output
# with no Confluence, Slack or Teams at hand.
#
# Everything lives in target/demo/ (delete it to start over). The Confluence
# connection `demo` is webhook-only (no REST token), so events are dispatched
# from what the webhook carries. The Slack and Teams connections are dry runs:
# deliveries are recorded as "would-send" with the exact request. List them with
#   target/release/pagehook --config target/demo/pagehook.toml deliveries
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PAGEHOOK="${PAGEHOOK:-$ROOT/target/release/pagehook}"
DEMO="$ROOT/target/demo"
LISTEN="${PAGEHOOK_DEMO_LISTEN:-127.0.0.1:8180}"
SECRET="demo-webhook-secret"
FIXTURES="$ROOT/../shared/fixtures/confluence"
mkdir -p "$DEMO"
cd "$DEMO"
[ -f admin-token ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > admin-token
cat > pagehook.toml <<TOML
[server]
listen = "$LISTEN"
admin-token = { file = "admin-token" }
[sandbox]
cache-dir = "$ROOT/target/pagehook-cache"
# make build signs the bundled plugins with the development key: the demo
# trusts it (a production site trusts its publishers' release keys only).
[plugins]
require-signature = true
[plugins.trusted-keys]
pagehook-dev = { file = "$ROOT/keys/pagehook-dev.pub" }
TOML
ph() { "$PAGEHOOK" --config "$DEMO/pagehook.toml" "$@"; }

export PAGEHOOK_DEMO_SECRET="$SECRET"
ph connect confluence demo --url https://wiki.example.com --webhook-secret-env PAGEHOOK_DEMO_SECRET >/dev/null
# Dry-run connections: deliveries are recorded with the exact request, never sent.
ph connect slack demo-slack --token xoxb-demo-not-a-real-token --dry-run >/dev/null
ph connect teams eng-news --url https://example.invalid/workflows/demo --dry-run >/dev/null
ph plugin install "$ROOT/target/plugins/slack-poster" --grant post-slack --grant dm-slack
ph plugin install "$ROOT/target/plugins/teams-poster" --grant post-teams
ph plugin install "$ROOT/target/plugins/retro-writer" --grant create-page --grant add-comment
if [ -z "$(ph bindings --json | tr -d '[:space:][]')" ]; then
    ph bind slack-poster --scope space:ENG --to 'slack:#eng' --set channel='#eng' --dry-run
    ph bind teams-poster --scope space:ENG --events blog-created --to teams:eng-news \
        --set channel=eng-news --set events=blog-created --dry-run
    ph bind retro-writer --to 'confluence:*' --to 'comment:*' --dry-run
fi
ph bindings

"$PAGEHOOK" --config "$DEMO/pagehook.toml" serve &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    curl -fsS "http://$LISTEN/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done

send() {
    local body="$1"
    local sig
    sig="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)"
    echo "POST /hooks/confluence/demo: $(curl -sS -X POST "http://$LISTEN/hooks/confluence/demo" \
        -H 'Content-Type: application/json' -H "X-Hub-Signature: $sig" --data-binary "$body")"
}
send "$(cat "$FIXTURES/webhook-rich/page_created.json")"
send "$(cat "$FIXTURES/webhook-rich/blog_created.json")"
sleep 1
echo
ph events
echo
ph deliveries
cat <<MSG

Pagehook is serving on http://$LISTEN (Ctrl-C stops it). Try:
  the console: http://$LISTEN/console  (sign in with the admin token in target/demo/admin-token)
  curl http://$LISTEN/metrics
  curl -H "Authorization: Bearer \$(cat target/demo/admin-token)" http://$LISTEN/api/deliveries
  target/release/pagehook --config target/demo/pagehook.toml deliveries --json
MSG
wait $SERVER
