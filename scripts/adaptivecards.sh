#!/usr/bin/env bash
# Checks (default) or replaces (--update VERSION) the vendored Adaptive Cards
# renderer in host/src/server/console/assets/vendor/ against the npm package's
# own build: npm fetches the tarball and verifies its integrity; the pinned
# integrity is checked too; the files must match byte for byte.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=3.0.6
INTEGRITY="sha512-WDCIb2WXZ7cOHJ9HIHRNdhSt861HySVOdN2xPk2aKHAF3JvD8QGQ8/XcNFrDJxCteOog8MM7EBlXfSAR8JXKAg=="
VENDOR=host/src/server/console/assets/vendor
MODE=check
if [ "${1:-}" = "--update" ]; then
  MODE=update
  VERSION="${2:?usage: $0 --update VERSION}"
fi
command -v npm >/dev/null || { echo "npm is needed (apt-get install npm)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "adaptivecards@$VERSION" >/dev/null)
tarball="$work/adaptivecards-$VERSION.tgz"
got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [ "$MODE" = check ] && [ "$got" != "$INTEGRITY" ]; then
  echo "adaptivecards $VERSION: tarball integrity $got, expected $INTEGRITY"; exit 1
fi
tar -xzf "$tarball" -C "$work"
pairs="dist/adaptivecards.min.js:adaptivecards.min.js dist/adaptivecards.css:adaptivecards.css dist/adaptivecards.min.js.LICENSE.txt:adaptivecards.min.js.LICENSE.txt LICENSE:adaptivecards.LICENSE"
status=0
for pair in $pairs; do
  from="$work/package/${pair%%:*}"
  to="$VENDOR/${pair##*:}"
  if [ "$MODE" = update ]; then
    cp "$from" "$to"
    echo "updated $to ($(sha256sum "$to" | cut -d' ' -f1))"
  elif cmp -s "$from" "$to"; then
    echo "ok $to"
  else
    echo "DIFFERS $to (from adaptivecards@$VERSION ${pair%%:*})"; status=1
  fi
done
if [ "$MODE" = update ]; then
  echo "integrity of adaptivecards@$VERSION: $got (put it in this script and the vendor README)"
fi
exit $status
