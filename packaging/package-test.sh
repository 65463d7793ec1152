#!/usr/bin/env bash
# make package-test: the Debian package and the unit, tested as root on this
# machine. Builds two .debs (revisions 1 and 2) with cargo-deb from the
# binary the test build already made (target/debug/pagehook: no release
# build here), then runs the integration tests that install, run, stop,
# upgrade and remove them with dpkg, and run plugin calls under the unit's
# system-call filter (host/tests/it/packaging.rs, marked #[ignore] in
# `make test` because they need root and change the machine).
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO="${CARGO:-cargo}"

if [ "$(id -u)" != 0 ] || ! command -v dpkg >/dev/null; then
    echo "package-test: needs root and dpkg (Debian); not run" >&2
    exit 1
fi
need=()
/usr/bin/python3 -c 'import seccomp' 2>/dev/null || need+=(python3-seccomp)
command -v adduser >/dev/null || need+=(adduser)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v runuser >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
if ! command -v cargo-deb >/dev/null; then
    start=$(date +%s)
    "$CARGO" install --locked cargo-deb
    echo "package-test: cargo install cargo-deb took $(( $(date +%s) - start )) s"
fi

# The test build (a no-op after `make test`, whose build this is): it also
# makes target/debug/pagehook.
. scripts/clippy-build-env.sh
"$CARGO" test --workspace --locked --all-targets --no-run
# The package ships the plugins signed and the key they are signed with.
make --no-print-directory sign-plugins PAGEHOOK=target/debug/pagehook
out=target/package-test
rm -rf "$out" && mkdir -p "$out"
for rev in 1 2; do
    "$CARGO" deb -p pagehook --no-build --profile dev --fast --deb-revision "$rev" -o "$out/" -q
done
version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)"
arch="$(dpkg --print-architecture)"
PAGEHOOK_DEB="$PWD/$out/pagehook_${version}-1_${arch}.deb" \
PAGEHOOK_DEB_UPGRADE="$PWD/$out/pagehook_${version}-2_${arch}.deb" \
    "$CARGO" test --workspace --locked --test it -- --ignored --test-threads 1 packaging::
