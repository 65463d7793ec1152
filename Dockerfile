# syntax=docker/dockerfile:1
# Pagehook's container image: `make image` (podman, buildah or docker).
#
# Two stages. `build` compiles the sidecar and the bundled plugins with the
# Rust toolchain and lays out the image's files (deploy/container/stage.sh);
# the runtime stage is Google's distroless cc image for Debian 12: glibc,
# libgcc, CA certificates, a `nonroot` user (65532) and no shell, no package
# manager. Run it with a read-only root file system: Pagehook writes only to
# its two volumes, the state (/var/lib/pagehook: the SQLite store, installed
# plugins) and the cache (/var/cache/pagehook: compiled components).
#
# Both base images are build arguments, so a site that mirrors images builds
# from its own registry:
#   make image RUST_IMAGE=registry.corp/rust:1.95-slim-bookworm \
#              RUNTIME_IMAGE=registry.corp/distroless/cc-debian12:nonroot

ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
# The key the bundled plugins are signed with (docs/security.md): the
# project's development key, unless the build names another file inside the
# build context (`--build-arg SIGNING_KEY=keys/release.key`, with its `.pub`
# beside it; an unencrypted copy made for the build: an encrypted key's
# password is not passed into the build here).
ARG SIGNING_KEY=keys/pagehook-dev.key
WORKDIR /src
RUN rustup target add wasm32-wasip2
COPY . .
# The caches keep crates and the target directory between builds of the
# image; what the image needs is copied out to /out in the same step. As
# make dist: cargo auditable puts each crate list in the binary and the
# components, and the plugins are signed, with the public key beside them.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eu; \
    command -v cargo-auditable >/dev/null || cargo install --locked cargo-auditable; \
    cargo auditable build --release --locked -p pagehook; \
    cargo auditable build --profile plugin --locked --target wasm32-wasip2 --target-dir target/wasm \
        -p slack-poster -p teams-poster -p retro-writer; \
    rm -rf target/image-plugins; \
    for p in slack-poster teams-poster retro-writer; do \
        comp="$(sed -n 's/^component *= *"\(.*\)"/\1/p' plugins/$p/plugin.toml)"; \
        mkdir -p target/image-plugins/$p; \
        cp plugins/$p/plugin.toml target/image-plugins/$p/; \
        cp target/wasm/wasm32-wasip2/plugin/$comp target/image-plugins/$p/; \
        target/release/pagehook plugin sign target/image-plugins/$p --key "$SIGNING_KEY" >/dev/null; \
    done; \
    deploy/container/stage.sh /out target/release/pagehook target/image-plugins "${SIGNING_KEY%.key}.pub"

FROM ${RUNTIME_IMAGE} AS runtime
COPY --from=build /out/ /
# The volumes belong to the user the server runs as, whatever COPY did.
COPY --from=build --chown=65532:65532 /out/var/lib/pagehook /var/lib/pagehook
COPY --from=build --chown=65532:65532 /out/var/cache/pagehook /var/cache/pagehook
USER 65532:65532
ENV PAGEHOOK_CONFIG=/etc/pagehook/pagehook.toml \
    PAGEHOOK_LOG_FORMAT=json
VOLUME ["/var/lib/pagehook", "/var/cache/pagehook"]
EXPOSE 8180
LABEL org.opencontainers.image.title="pagehook" \
      org.opencontainers.image.description="Confluence Data Center sidecar that runs sandboxed WebAssembly plugins over page events" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/usr/bin/pagehook"]
CMD ["serve"]
