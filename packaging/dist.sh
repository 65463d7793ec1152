#!/usr/bin/env bash
# The release bundle: dist/pagehook-<version>-<target>.tar.gz with the
# binary, the bundled plugins and the public key they are signed with
# (keys/publisher.pub), an example config, the systemd unit, this
# project's licence and those of every crate linked in, and a CycloneDX SBOM;
# beside it its SHA-256 sum and the SBOM.
#
# usage: packaging/dist.sh BINARY OUTDIR [--no-sbom]
#   make dist passes target/release/pagehook built with `cargo auditable`
#   (the dependency list is also inside the binary); the packaging test
#   passes the test build's binary and --no-sbom (no cargo-cyclonedx there).
# Needs: the plugins built (make plugins), cargo (for `cargo metadata`),
# python3, tar, sha256sum.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
binary="$1"
out="$2"
sbom=yes
[ "${3:-}" = "--no-sbom" ] && sbom=no

version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$root/Cargo.toml")"
target="$(rustc -vV | sed -n 's/^host: //p')"
name="pagehook-$version-$target"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
dir="$stage/$name"
mkdir -p "$dir/bin" "$dir/plugins" "$dir/systemd"

install -m 0755 "$binary" "$dir/bin/pagehook"
strip "$dir/bin/pagehook" 2>/dev/null || true
for p in slack-poster teams-poster retro-writer; do
    src="$root/target/plugins/$p"
    [ -f "$src/plugin.toml" ] || { echo "dist: $src/plugin.toml missing: run make plugins" >&2; exit 1; }
    mkdir -p "$dir/plugins/$p"
    install -m 0644 "$src"/* "$dir/plugins/$p/"
done
# The key the bundled plugins are signed with, for [plugins] trusted-keys
# (make sign-plugins puts it there); signed plugins without it are refused.
if ls "$dir"/plugins/*/plugin.statement.minisig >/dev/null 2>&1; then
    pub="$root/target/plugins/publisher.pub"
    [ -f "$pub" ] || { echo "dist: the plugins are signed but $pub is missing: run make sign-plugins" >&2; exit 1; }
    install -D -m 0644 "$pub" "$dir/keys/publisher.pub"
fi
install -m 0644 "$root/examples/pagehook.toml" "$dir/pagehook.toml"
install -m 0644 "$root/packaging/pagehook.service" "$dir/systemd/pagehook.service"
install -m 0644 "$root/LICENSE" "$dir/LICENSE"
[ -f "$root/docs/install.md" ] && install -m 0644 "$root/docs/install.md" "$dir/INSTALL.md"
python3 "$root/packaging/licenses.py" "$dir/licenses" "$target" >/dev/null
if [ "$sbom" = yes ]; then
    # One SBOM of the crates linked into the binary (no build-time crates).
    (cd "$root/host" && cargo cyclonedx --format json --spec-version 1.5 --target "$target" \
        --no-build-deps --override-filename pagehook.cdx -qq)
    mv "$root/host/pagehook.cdx.json" "$dir/sbom.cdx.json"
    cp "$dir/sbom.cdx.json" "$out/$name.cdx.json"
fi

tar -C "$stage" --owner=0 --group=0 --numeric-owner -czf "$out/$name.tar.gz" "$name"
(cd "$out" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
echo "$out/$name.tar.gz"
