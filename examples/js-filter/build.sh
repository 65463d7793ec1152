#!/usr/bin/env bash
# Builds the JavaScript example plugin into an installable plugin directory:
#
#   target/plugins/js-filter/{plugin.toml,js_filter.wasm}
#
# Needs node 20+ and npm, and the network to the npm registry the first time
# only: componentize-js (pinned in package.json / package-lock.json) is
# installed with `npm ci` into this folder's node_modules, never globally.
# Safe to run again; works from any cwd.
set -euo pipefail

NAME=js-filter
COMPONENT=js_filter.wasm
COMPONENTIZE_JS_VERSION=0.23.0   # keep equal to package.json

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="$ROOT/target/plugins/$NAME"

die() { echo "build.sh ($NAME): $*" >&2; exit 1; }
say() { echo "build.sh ($NAME): $*" >&2; }

command -v node >/dev/null 2>&1 || die "node not found: install Node.js 20 or newer (Debian: apt-get install nodejs npm)"
node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' ||
    die "node $(node --version) is too old: componentize-js needs Node.js 20 or newer"

# Concurrent runs share node_modules and the build folders: take turns where
# flock(1) is available.
mkdir -p "$ROOT/target/build"
if command -v flock >/dev/null 2>&1; then exec 8>"$ROOT/target/build/$NAME.lock" && flock 8; fi

# --- the pinned tool, in ./node_modules -------------------------------------------
# `npm ci` installs exactly package-lock.json; it runs again only when the lock
# file changed since the last install (or node_modules is missing or broken).
STAMP="$HERE/node_modules/.pagehook-lock.sha256"
lock_sum=$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)
installed_version() {
    node -e 'try { console.log(require(process.argv[1]).version) } catch { }' \
        "$HERE/node_modules/@bytecodealliance/componentize-js/package.json"
}
if [ "$(cat "$STAMP" 2>/dev/null)" != "$lock_sum" ] || [ "$(installed_version)" != "$COMPONENTIZE_JS_VERSION" ]; then
    command -v npm >/dev/null 2>&1 || die "npm not found (Debian: apt-get install npm)"
    say "npm ci: installing @bytecodealliance/componentize-js@$COMPONENTIZE_JS_VERSION into $HERE/node_modules"
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error) ||
        die "npm ci failed (is the npm registry reachable?)"
    [ "$(installed_version)" = "$COMPONENTIZE_JS_VERSION" ] ||
        die "package-lock.json does not pin @bytecodealliance/componentize-js@$COMPONENTIZE_JS_VERSION"
    echo "$lock_sum" >"$STAMP"
fi

# --- the component --------------------------------------------------------------
# -d: leave out the WASI features the plugin does not use. `http` and
# `fetch-event` would import wasi:http, which the Pagehook sandbox refuses;
# without `random` and `clocks` Math.random() is deterministic and timers are
# unavailable (a plugin is a pure function). `stdio` stays, so console.log and
# console.error land in the plugin's per-call log.
STAGE="$ROOT/target/plugins/.$NAME.tmp"
rm -rf "$STAGE"
mkdir -p "$STAGE"

say "componentize-js $COMPONENTIZE_JS_VERSION: plugin.js -> $COMPONENT"
start=$(date +%s.%N)
# Run from this folder with a relative source path: componentize-js 0.23.0
# mangles the path of a source outside the cwd when the cwd is `/`.
(cd "$HERE" && ./node_modules/.bin/componentize-js \
    --wit "$ROOT/wit" --world-name plugin \
    --disable http fetch-event random clocks \
    --out "$STAGE/$COMPONENT" \
    plugin.js)
end=$(date +%s.%N)
[ -s "$STAGE/$COMPONENT" ] || die "componentize-js wrote no component"

cp "$HERE/plugin.toml" "$STAGE/plugin.toml"
rm -rf "$OUT"
mv "$STAGE" "$OUT"

size=$(wc -c <"$OUT/$COMPONENT")
say "built $OUT/$COMPONENT ($size bytes) in $(awk "BEGIN{printf \"%.1f\", $end-$start}") s"
echo "$OUT"
