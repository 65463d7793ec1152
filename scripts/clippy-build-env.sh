# Sourced by scripts/test.sh and packaging/package-test.sh: makes clippy
# (warnings are errors) the compiler of the workspace's own crates, as
# `cargo clippy -- -D warnings` does, so the test build is also the lint and
# every cargo command after it reuses that build instead of compiling the
# workspace again without the wrapper (cargo keeps the wrapper in its
# fingerprints). Dependencies compile with plain rustc either way.
CLIPPY_DRIVER="$(rustc --print sysroot)/bin/clippy-driver"
if [ ! -x "$CLIPPY_DRIVER" ]; then
    echo "no clippy-driver at $CLIPPY_DRIVER (rustup component add clippy)" >&2
    exit 1
fi
export RUSTC_WORKSPACE_WRAPPER="$CLIPPY_DRIVER"
# `-D warnings` as cargo-clippy hands its arguments to the driver.
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
