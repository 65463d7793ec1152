#!/usr/bin/env bash
# Builds the Python example plugin into an installable plugin directory:
#
#   target/plugins/python-filter/{plugin.toml,python_filter.wasm}
#
# Needs python3 (3.9+: the componentize-py wheel is cp39-abi3, manylinux
# glibc 2.28+; set PYTHON to use another interpreter) with venv and pip, and
# the network to PyPI the first time only: componentize-py (pinned below) is
# installed into the project-local venv .tools/python, never globally. Safe to
# run again; works from any cwd.
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1
NAME=python-filter
COMPONENT=python_filter.wasm

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$ROOT/.tools/python"
OUT="$ROOT/target/plugins/$NAME"

die() { echo "build.sh ($NAME): $*" >&2; exit 1; }
say() { echo "build.sh ($NAME): $*" >&2; }

# Concurrent runs (this script, js-filter's test.sh) share the venv and the
# build folders: take turns where flock(1) is available.
mkdir -p "$ROOT/.tools" "$ROOT/target/build"
if command -v flock >/dev/null 2>&1; then
    exec 8>"$ROOT/target/build/$NAME.lock" && flock 8
    exec 9>"$ROOT/.tools/python.lock" && flock 9
fi

# --- the pinned tool, in the project-local venv -------------------------------
have_tool() {
    [ -x "$VENV/bin/componentize-py" ] &&
        [ "$("$VENV/bin/componentize-py" --version 2>/dev/null)" = "componentize-py $COMPONENTIZE_PY_VERSION" ]
}

if ! have_tool; then
    PYTHON="${PYTHON:-python3}"
    command -v "$PYTHON" >/dev/null 2>&1 ||
        die "$PYTHON not found: install Python 3.9 or newer (Debian: apt-get install python3 python3-venv python3-pip)"
    "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' 2>/dev/null ||
        die "$PYTHON is not a working Python 3.9 or newer ($("$PYTHON" --version 2>&1 | head -n 1)); set PYTHON=/path/to/python3"
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null ||
            die "python3 cannot create a venv with pip (Debian: apt-get install python3-venv)"
        say "creating venv $VENV"
        mkdir -p "$(dirname "$VENV")"
        "$PYTHON" -m venv "$VENV" || die "could not create venv $VENV"
    fi
    say "installing componentize-py==$COMPONENTIZE_PY_VERSION into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "componentize-py==$COMPONENTIZE_PY_VERSION" ||
        die "pip could not install componentize-py==$COMPONENTIZE_PY_VERSION (is PyPI reachable?)"
    have_tool || die "componentize-py $COMPONENTIZE_PY_VERSION did not install correctly in $VENV"
fi

if command -v flock >/dev/null 2>&1; then flock -u 9; fi

# --- the component --------------------------------------------------------------
# componentize-py adds site-packages to the app's Python path: a VIRTUAL_ENV it
# is given, else the build machine's own (whose directory listings then end up
# in the component's memory snapshot). The plugin uses only the standard
# library, so point it at an empty one: the build depends only on this folder.
WORK="$ROOT/target/build/$NAME"
EMPTY_VENV="$WORK/no-deps"
mkdir -p "$EMPTY_VENV/lib/site-packages"
# The app is copied out of the source tree because the build writes
# __pycache__ next to the modules it imports.
SRC="$WORK/src"
rm -rf "$SRC"
mkdir -p "$SRC"
cp "$HERE/app.py" "$SRC/"
STAGE="$ROOT/target/plugins/.$NAME.tmp"
rm -rf "$STAGE"
mkdir -p "$STAGE"

say "componentize-py $COMPONENTIZE_PY_VERSION: app.py -> $COMPONENT"
start=$(date +%s.%N)
VIRTUAL_ENV="$EMPTY_VENV" "$VENV/bin/componentize-py" --quiet \
    --wit-path "$ROOT/wit" --world plugin \
    componentize --python-path "$SRC" app \
    --output "$STAGE/$COMPONENT"
end=$(date +%s.%N)
# componentize-py records only the tools it used inside (wit-component,
# component-init-transform): name the language and the tool too, so
# `pagehook plugin audit` can say how this component was made.
"$VENV/bin/python" "$ROOT/scripts/add-producers.py" "$STAGE/$COMPONENT" \
    "processed-by=componentize-py=$COMPONENTIZE_PY_VERSION" "language=Python=" ||
    die "could not record the producers in $COMPONENT"

cp "$HERE/plugin.toml" "$STAGE/plugin.toml"
rm -rf "$OUT"
mv "$STAGE" "$OUT"

size=$(wc -c <"$OUT/$COMPONENT")
say "built $OUT/$COMPONENT ($size bytes) in $(awk "BEGIN{printf \"%.1f\", $end-$start}") s"
echo "$OUT"
