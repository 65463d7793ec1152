#!/usr/bin/env bash
# Runs the Python example plugin on sample events with `pagehook plugin run`
# and checks what it returns. Builds the plugin first when it is missing or
# older than its sources.
#
#   PAGEHOOK            pagehook binary (default: target/debug/pagehook)
#   PAGEHOOK_CACHE_DIR  compiled-component cache (default: target/pagehook-cache)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PAGEHOOK="${PAGEHOOK:-$ROOT/target/debug/pagehook}"
export PAGEHOOK_CACHE_DIR="${PAGEHOOK_CACHE_DIR:-$ROOT/target/pagehook-cache}"
PLUGIN="$ROOT/target/plugins/python-filter"
EVENTS="$ROOT/examples/events"

[ -x "$PAGEHOOK" ] || { echo "test.sh: no pagehook binary at $PAGEHOOK (cargo build -p pagehook, or set PAGEHOOK)" >&2; exit 1; }
command -v python3 >/dev/null 2>&1 || { echo "test.sh: python3 not found" >&2; exit 1; }

stale=0
[ -f "$PLUGIN/python_filter.wasm" ] || stale=1
for src in "$HERE/app.py" "$HERE/plugin.toml" "$HERE/build.sh" "$ROOT/wit/plugin.wit"; do
    if [ "$src" -nt "$PLUGIN/python_filter.wasm" ]; then stale=1; fi
done
[ "$stale" = 0 ] || "$HERE/build.sh" >/dev/null

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0

# run NAME EVENT [--set k=v]...: runs the plugin, keeps stdout/stderr/status.
run() {
    local name=$1 event=$2
    shift 2
    set +e
    "$PAGEHOOK" plugin run "$PLUGIN" --event "$event" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err"
    echo $? >"$TMP/$name.rc"
    set -e
}

# check NAME PYTHON: asserts about `actions` (parsed stdout), `rc`, `err` (stderr).
check() {
    local name=$1 code=$2
    if python3 - "$TMP/$name" <<EOF; then
import json, sys
base = sys.argv[1]
rc = int(open(base + ".rc").read())
err = open(base + ".err").read()
out = open(base + ".out").read()
actions = json.loads(out) if out.strip() else None
$code
EOF
        echo "ok   $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name" >&2
        sed 's/^/     stdout: /' "$TMP/$name.out" >&2
        sed 's/^/     stderr: /' "$TMP/$name.err" >&2
        failed=$((failed + 1))
    fi
}

URL="https://wiki.example.com/spaces/ENG/pages/2818051/Q3+launch+checklist"

run match "$EVENTS/page_created.json" --set 'title-pattern=(?i)launch' --set 'channel=#eng'
check match "
assert rc == 0, rc
assert len(actions) == 1, actions
a = actions[0]
assert a['type'] == 'post-slack' and a['channel'] == '#eng', a
assert a['text'] == 'Matching page: <$URL|Q3 launch checklist> (page in Engineering)', a['text']
assert a['blocks'] is None and a['thread_key'] is None, a
assert 'matches, posting to #eng' in err, err   # the log import reached the host
"

run custom-message "$EVENTS/page_updated.json" --set 'title-pattern=^Q\d ' --set 'channel=#launches' --set 'message=Launch <doc> updated'
check custom-message "
assert rc == 0, rc
assert [a['channel'] for a in actions] == ['#launches'], actions
assert actions[0]['text'].startswith('Launch &lt;doc&gt; updated: <$URL|'), actions[0]['text']
"

run no-match "$EVENTS/page_created.json" --set 'title-pattern=^Incident' --set 'channel=#eng'
check no-match "
assert rc == 0, rc
assert actions == [], actions
"

run minor-edit "$HERE/events/page_updated_minor.json" --set 'title-pattern=.' --set 'channel=#eng'
check minor-edit "
assert rc == 0 and actions == [], (rc, actions)
assert 'skipped, minor edit' in err, err
"

run by-pagehook "$HERE/events/page_created_by_pagehook.json" --set 'title-pattern=.' --set 'channel=#eng'
check by-pagehook "
assert rc == 0 and actions == [], (rc, actions)
assert 'caused by Pagehook itself' in err, err
"

run bad-regex "$EVENTS/page_created.json" --set 'title-pattern=(unclosed' --set 'channel=#eng'
check bad-regex "
assert rc == 1, rc
assert actions is None, out
assert 'setting \`title-pattern\` is not a valid regular expression: missing ), unterminated subpattern' in err, err
"

# An admin's pattern that backtracks catastrophically on this title: the fuel
# limit in plugin.toml stops it (in about 15 ms) instead of hanging the host.
run backtracking "$HERE/events/page_created_backtracking_title.json" --set 'title-pattern=^(a+)+$' --set 'channel=#eng'
check backtracking "
assert rc == 1 and actions is None, (rc, out)
assert 'ran out of fuel after 100000000 units' in err, err
"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
