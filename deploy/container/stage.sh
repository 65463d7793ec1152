#!/bin/sh
# Lays out the container image's files under OUT, as the runtime stage of
# the Dockerfile copies them (COPY --from=build /out/ /):
#   /usr/bin/pagehook                       the binary (stripped)
#   /usr/share/pagehook/plugins/<name>/     the bundled plugins (plugin.toml + component,
#                                           and their signature when signed)
#   /usr/share/pagehook/keys/publisher.pub  the key they are signed with, when given
#   /etc/pagehook/pagehook.toml             deploy/container/pagehook.toml
#   /var/lib/pagehook, /var/cache/pagehook  the volumes, owned by 65532 (distroless' nonroot)
#
# usage: deploy/container/stage.sh OUT BINARY PLUGINS_DIR [PUBLIC_KEY]
#   The Dockerfile's build stage passes what it compiled; the container test
#   (host/tests/it/container_image.rs) passes the test build, so both lay out
#   the image the same way. POSIX sh: the build stage has no bash guarantee.
set -eu
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$1"
binary="$2"
plugins="$3"
pub="${4:-}"
uid=65532

mkdir -p "$out/usr/bin" "$out/usr/share/pagehook/plugins" "$out/etc/pagehook" \
    "$out/var/lib/pagehook" "$out/var/cache/pagehook"
install -m 0755 "$binary" "$out/usr/bin/pagehook"
strip "$out/usr/bin/pagehook" 2>/dev/null || true
for p in slack-poster teams-poster retro-writer; do
    [ -f "$plugins/$p/plugin.toml" ] || { echo "stage.sh: $plugins/$p/plugin.toml missing (make plugins)" >&2; exit 1; }
    mkdir -p "$out/usr/share/pagehook/plugins/$p"
    install -m 0644 "$plugins/$p"/* "$out/usr/share/pagehook/plugins/$p/"
done
if [ -n "$pub" ]; then
    mkdir -p "$out/usr/share/pagehook/keys"
    install -m 0644 "$pub" "$out/usr/share/pagehook/keys/publisher.pub"
fi
install -m 0644 "$root/deploy/container/pagehook.toml" "$out/etc/pagehook/pagehook.toml"
install -m 0644 "$root/LICENSE" "$out/usr/share/pagehook/LICENSE"
chown "$uid:$uid" "$out/var/lib/pagehook" "$out/var/cache/pagehook"
chmod 0750 "$out/var/lib/pagehook" "$out/var/cache/pagehook"
