#!/usr/bin/env bash
# Runs the JavaScript example plugin on sample events with `pagehook plugin run`
# and checks what it returns; every card is validated against Microsoft's
# Adaptive Card schema with jsonschema (pinned in test-requirements.txt,
# installed into the project-local venv .tools/python). Builds the plugin
# first when it is missing or older than its sources.
#
#   PAGEHOOK               pagehook binary (default: target/debug/pagehook)
#   PAGEHOOK_CACHE_DIR     compiled-component cache (default: target/pagehook-cache)
#   ADAPTIVE_CARD_SCHEMA   schema file (default: ../shared/schemas/adaptive-card-1.6.schema.json)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PAGEHOOK="${PAGEHOOK:-$ROOT/target/debug/pagehook}"
export PAGEHOOK_CACHE_DIR="${PAGEHOOK_CACHE_DIR:-$ROOT/target/pagehook-cache}"
SCHEMA="${ADAPTIVE_CARD_SCHEMA:-$ROOT/../shared/schemas/adaptive-card-1.6.schema.json}"
PLUGIN="$ROOT/target/plugins/js-filter"
EVENTS="$ROOT/examples/events"
VENV="$ROOT/.tools/python"

die() { echo "test.sh (js-filter): $*" >&2; exit 1; }

[ -x "$PAGEHOOK" ] || die "no pagehook binary at $PAGEHOOK (cargo build -p pagehook, or set PAGEHOOK)"
[ -f "$SCHEMA" ] || die "no Adaptive Card schema at $SCHEMA (set ADAPTIVE_CARD_SCHEMA)"

# jsonschema, pinned, in the project-local venv (shared with python-filter's
# build.sh: take turns where flock(1) is available).
mkdir -p "$ROOT/.tools"
if command -v flock >/dev/null 2>&1; then exec 9>"$ROOT/.tools/python.lock" && flock 9; fi
if ! "$VENV/bin/python" -m pip freeze --disable-pip-version-check 2>/dev/null | grep -qx 'jsonschema==4.26.0'; then
    if [ ! -x "$VENV/bin/python" ]; then
        command -v python3 >/dev/null 2>&1 || die "python3 not found (Debian: apt-get install python3 python3-venv)"
        python3 -c 'import venv, ensurepip' 2>/dev/null || die "python3 cannot create a venv with pip (Debian: apt-get install python3-venv)"
        mkdir -p "$(dirname "$VENV")"
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$HERE/test-requirements.txt" ||
        die "pip could not install $HERE/test-requirements.txt (is PyPI reachable?)"
fi

if command -v flock >/dev/null 2>&1; then flock -u 9; fi

stale=0
[ -f "$PLUGIN/js_filter.wasm" ] || stale=1
for src in "$HERE/plugin.js" "$HERE/plugin.toml" "$HERE/build.sh" "$HERE/package-lock.json" "$ROOT/wit/plugin.wit"; do
    if [ "$src" -nt "$PLUGIN/js_filter.wasm" ]; then stale=1; fi
done
[ "$stale" = 0 ] || "$HERE/build.sh" >/dev/null

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0

run() {
    local name=$1 event=$2
    shift 2
    set +e
    "$PAGEHOOK" plugin run "$PLUGIN" --event "$event" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err"
    echo $? >"$TMP/$name.rc"
    set -e
}

# check NAME EVENT PYTHON: asserts about `actions` (parsed stdout), `rc`,
# `err` (stderr) and `event`; `valid_card(card)` checks a card against the
# schema and the Teams rules (version 1.5, no Action.Submit, <= 28 KB).
check() {
    local name=$1 event=$2 code=$3
    if "$VENV/bin/python" - "$TMP/$name" "$event" "$SCHEMA" <<EOF; then
import json, sys
import jsonschema
base, event_file, schema_file = sys.argv[1:4]
rc = int(open(base + ".rc").read())
err = open(base + ".err").read()
out = open(base + ".out").read()
actions = json.loads(out) if out.strip() else None
event = json.load(open(event_file))
schema = json.load(open(schema_file))

def walk(node):
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)

defs = schema["definitions"]

def props(name):
    """Properties of a schema definition, with those it inherits through allOf."""
    d = defs[name]
    found = dict(d.get("properties", {}))
    for part in d.get("allOf", []):
        if "\$ref" in part:
            found.update(props(part["\$ref"].split("/")[-1]))
    return found

def since(spec):
    """The card version a property needs: its own or that of the type it refers to."""
    v = spec.get("version")
    if v is None and "\$ref" in spec:
        v = defs[spec["\$ref"].split("/")[-1]].get("version")
    return tuple(int(x) for x in v.split(".")) if v else (1, 0)

def valid_card(card):
    jsonschema.validators.validator_for(schema)(schema).validate(card)
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.5", card
    # The 1.6 schema marks what came after 1.0; a 1.5 card may use nothing newer.
    for node in walk(card):
        if isinstance(node, dict) and node.get("type") in defs:
            for key, spec in props(node["type"]).items():
                if key in node:
                    assert since(spec) <= (1, 5), f"{node['type']}.{key} needs card version {'.'.join(map(str, since(spec)))}"
    types = [n.get("type") for n in walk(card) if isinstance(n, dict)]
    assert "Action.Submit" not in types, types
    envelope = {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}]}
    assert len(json.dumps(envelope).encode()) <= 28 * 1024

def card_text(text):
    # What plugin.js's cardText makes of Confluence text: markup characters as
    # entities (Teams shows them as written), no link syntax.
    return (text.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')
            .replace(']', ']\u200b'))

def facts(card):
    [fs] = [b for b in card["body"] if b["type"] == "FactSet"]
    return {f["title"]: f["value"] for f in fs["facts"]}

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

# The schema check must be able to fail: a card with Action.Submit and a
# TextBlock without text is refused.
if "$VENV/bin/python" - "$SCHEMA" <<'EOF'; then
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
bad = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "size": "Huge"}]}
try:
    jsonschema.validators.validator_for(schema)(schema).validate(bad)
except jsonschema.ValidationError:
    sys.exit(0)
sys.exit(1)
EOF
    echo "ok   schema-rejects-bad-card"
    passed=$((passed + 1))
else
    echo "FAIL schema-rejects-bad-card: the schema accepted an invalid card" >&2
    failed=$((failed + 1))
fi

run blog-created "$EVENTS/blog_created.json" --set channel=eng-blog
check blog-created "$EVENTS/blog_created.json" "
assert rc == 0, rc
assert len(actions) == 1, actions
a = actions[0]
assert a['type'] == 'post-teams' and a['channel'] == 'eng-blog', a
card = a['card']
valid_card(card)
c = event['content']
heading = [b for b in card['body'] if b.get('style') == 'heading']
assert [h['text'] for h in heading] == [c['title']], heading
assert facts(card) == {'Space': 'Engineering (ENG)', 'Author': 'Grace Hopper', 'Version': '1'}, facts(card)
assert card['body'][-1] == {'type': 'TextBlock', 'text': c['excerpt'], 'wrap': True, 'spacing': 'Medium'}, card['body'][-1]
assert card['actions'] == [{'type': 'Action.OpenUrl', 'title': 'Open blog post', 'url': c['url']}], card['actions']
assert 'to Teams channel eng-blog' in err, err   # the log import reached the host
"

run blog-updated "$HERE/events/blog_updated.json" --set channel=eng-blog
check blog-updated "$HERE/events/blog_updated.json" "
assert rc == 0, rc
[a] = actions
card = a['card']
valid_card(card)
assert card['body'][1]['text'] == card_text(event['content']['title']), card['body'][1]
assert '<' not in card['body'][1]['text'], 'a title cannot make markup or an <at> mention'
assert facts(card) == {'Space': 'Engineering (ENG)', 'Updated by': 'Ada Lovelace', 'Version': '2',
                       'Change note': 'Added the retro action items'}, facts(card)
assert card['body'][-1]['type'] == 'FactSet', 'no excerpt block without an excerpt'
"

run page-created "$EVENTS/page_created.json" --set channel=eng-blog
check page-created "$EVENTS/page_created.json" "
assert rc == 0 and actions == [], (rc, actions)
assert 'skipped, kind page-created is not handled' in err, err
"

run blank-channel "$EVENTS/blog_created.json" --set 'channel= '
check blank-channel "$EVENTS/blog_created.json" "
assert rc == 1 and actions is None, (rc, out)
assert 'returned an error: setting \`channel\` is required' in err, err
"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
