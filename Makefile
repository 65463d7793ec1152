# Pagehook — the two commands a newcomer needs are `make run` and `make test`.
# Every target installs what it needs (idempotently) and works on a fresh machine.

CARGO          ?= cargo
WASM_TARGET    := wasm32-wasip2
# Guest components build in their own target dir so that building them never
# waits on (or invalidates) the host's build.
WASM_DIR       := target/wasm
PLUGIN_OUT     := target/plugins
# Every Rust plugin crate: a directory with Cargo.toml and plugin.toml.
RUST_PLUGINS   := examples/hello plugins/slack-poster plugins/teams-poster plugins/retro-writer tests/plugins/hostile tests/plugins/imports-outside

# Plugins in other languages; each build.sh installs its pinned tool project-locally.
POLYGLOT       := examples/python-filter examples/js-filter

# The plugins this project signs (docs/security.md), with the development key
# in keys/ unless PAGEHOOK_SIGNING_KEY names another (the release key, kept
# off this repository; an encrypted key's password comes from
# PAGEHOOK_SIGNING_KEY_PASSWORD). PAGEHOOK is the binary that signs.
SIGNING_KEY    ?= $(or $(PAGEHOOK_SIGNING_KEY),keys/pagehook-dev.key)
# Its public key, shipped beside the plugins (target/plugins/publisher.pub) in
# the release bundle, the Debian package and the image, for [plugins] trusted-keys.
SIGNING_PUB    ?= $(or $(PAGEHOOK_SIGNING_PUB),$(SIGNING_KEY:.key=.pub))
SIGNED_PLUGINS := hello slack-poster teams-poster retro-writer python-filter js-filter
PAGEHOOK       ?= target/release/pagehook

.PHONY: run test bench build setup postgres chromium plugins sign-plugins polyglot lint fmt clean fuzz schemathesis adaptivecards

## run: build everything and run the sidecar with the bundled plugins on SQLite (target/demo/)
run: build
	@command -v curl >/dev/null && command -v openssl >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq curl openssl; }
	examples/demo/run.sh

## test: build the plugins and run the whole test suite (what CI runs): scripts/test.sh runs fmt, the test build linted by clippy, then signs the plugins, schemathesis, cargo test and the polyglot plugins' tests
test: setup postgres chromium container-engine k8s-tools plugins polyglot
	CARGO="$(CARGO)" scripts/test.sh $(MAKE) --no-print-directory sign-plugins PAGEHOOK=target/debug/pagehook

## bench: the five benches (component load, dispatch sandbox vs native, ingest vs bare axum with memory, end to end to a fake Slack, cluster: 1-3 PostgreSQL replicas beside SQLite); see docs/benchmarks.md
bench: setup postgres plugins polyglot
	$(CARGO) bench --locked -p pagehook --bench component_load --bench dispatch --bench ingest --bench end_to_end --bench cluster

## build: release binary target/release/pagehook and every plugin under target/plugins/
build: setup plugins
	$(CARGO) build --release --locked -p pagehook
	$(MAKE) --no-print-directory sign-plugins PAGEHOOK=target/release/pagehook

## setup: install the wasm32-wasip2 target (idempotent)
setup:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

## postgres: install Debian's postgresql package when initdb is missing (idempotent); tests and benches start throwaway servers from it
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { \
		if [ "$$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; else SUDO=; fi; \
		$$SUDO apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

## chromium: install Debian's chromium and chromium-driver when either binary is missing (idempotent); the console's browser test drives them headless
chromium:
	@test -x /usr/bin/chromium && test -x /usr/bin/chromedriver || { \
		if [ "$$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; else SUDO=; fi; \
		$$SUDO apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

## plugins: compile every Rust plugin to a component (with cargo auditable, so it embeds its crate list) and package it as target/plugins/<name>/ (unsigned: make build and make test sign)
plugins: setup
	@command -v cargo-auditable >/dev/null || $(CARGO) install --locked cargo-auditable
	$(CARGO) auditable build --profile plugin --locked --target $(WASM_TARGET) --target-dir $(WASM_DIR) \
		$(foreach d,$(RUST_PLUGINS),-p $(shell sed -n 's/^name *= *"\(.*\)"/\1/p' $(d)/Cargo.toml | head -1))
	@for d in $(RUST_PLUGINS); do \
		name=$$(sed -n 's/^name *= *"\(.*\)"/\1/p' $$d/plugin.toml | head -1); \
		comp=$$(sed -n 's/^component *= *"\(.*\)"/\1/p' $$d/plugin.toml | head -1); \
		mkdir -p $(PLUGIN_OUT)/$$name; \
		cp $$d/plugin.toml $(PLUGIN_OUT)/$$name/plugin.toml; \
		cp $(WASM_DIR)/$(WASM_TARGET)/plugin/$$comp $(PLUGIN_OUT)/$$name/$$comp; \
		rm -f $(PLUGIN_OUT)/$$name/plugin.statement $(PLUGIN_OUT)/$$name/plugin.statement.minisig; \
		echo "packaged $(PLUGIN_OUT)/$$name"; \
	done

## sign-plugins: sign the project's plugins under target/plugins/ with SIGNING_KEY, using PAGEHOOK, and put its public key beside them as target/plugins/publisher.pub (make build and make test do this)
sign-plugins:
	@for p in $(SIGNED_PLUGINS); do \
		test -f $(PLUGIN_OUT)/$$p/plugin.toml || continue; \
		$(PAGEHOOK) plugin sign $(PLUGIN_OUT)/$$p --key $(SIGNING_KEY) >/dev/null || exit 1; \
		echo "signed $(PLUGIN_OUT)/$$p with $(SIGNING_KEY)"; \
	done
	@test -f $(SIGNING_PUB) || { echo "sign-plugins: no public key $(SIGNING_PUB) beside $(SIGNING_KEY): set PAGEHOOK_SIGNING_PUB" >&2; exit 1; }
	@install -m 0644 $(SIGNING_PUB) $(PLUGIN_OUT)/publisher.pub

## schemathesis: fuzz the admin API from its own OpenAPI document against a real server (schemathesis from PyPI in .venv-schemathesis/): no 5xx, every answer as documented
schemathesis: plugins
	scripts/schemathesis.sh

## adaptivecards: check that the vendored Adaptive Cards renderer (console Teams previews) is npm's adaptivecards build, byte for byte (needs npm)
adaptivecards:
	scripts/adaptivecards.sh

## polyglot: build the Python and JavaScript example plugins into target/plugins/
polyglot:
	@for d in $(POLYGLOT); do $$d/build.sh || exit 1; done

## fuzz: run each cargo-fuzz target (fuzz/) for FUZZ_SECONDS (default 60) on nightly; `make test` replays fuzz/corpus on stable
FUZZ_SECONDS   ?= 60
FUZZ_TARGETS   := webhook manifest config actions headers
fuzz:
	@rustup toolchain list | grep -q nightly || { \
		echo "make fuzz needs a nightly toolchain (libFuzzer): rustup toolchain install nightly"; exit 1; }
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && $(CARGO) +nightly fuzz build
	@for t in $(FUZZ_TARGETS); do \
		echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
		(cd fuzz && $(CARGO) +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS)) || exit 1; \
	done

## dist: the release bundle dist/pagehook-<version>-<target>.tar.gz (release binary built with cargo auditable, so it carries its dependency list; the bundled plugins, an example config, the systemd unit, the licences of what is linked in, a CycloneDX SBOM), its .sha256 and the SBOM beside it
dist: setup plugins
	@command -v cargo-auditable >/dev/null || $(CARGO) install --locked cargo-auditable
	@command -v cargo-cyclonedx >/dev/null || $(CARGO) install --locked cargo-cyclonedx
	$(CARGO) auditable build --release --locked -p pagehook
	$(MAKE) --no-print-directory sign-plugins PAGEHOOK=target/release/pagehook
	packaging/dist.sh target/release/pagehook dist

## deb: the Debian package target/debian/pagehook_<version>-1_<arch>.deb (release binary built with cargo auditable; the unit, config and scripts are in packaging/)
deb: setup plugins
	@command -v cargo-auditable >/dev/null || $(CARGO) install --locked cargo-auditable
	@command -v cargo-deb >/dev/null || $(CARGO) install --locked cargo-deb
	$(CARGO) auditable build --release --locked -p pagehook
	$(MAKE) --no-print-directory sign-plugins PAGEHOOK=target/release/pagehook
	$(CARGO) deb -p pagehook --no-build --locked

## package-test: as root on Debian, the .deb (built by cargo-deb from the test build's binary) installed, run as the unit runs it, stopped mid-burst, upgraded and removed with dpkg; plugin calls under the unit's system-call filter (packaging/package-test.sh; CI runs it after make test)
package-test: setup postgres plugins
	packaging/package-test.sh

.PHONY: dist deb package-test

## image: the container image $(IMAGE) from the Dockerfile (build stage: rust:1.95; runtime: distroless cc-debian12, no shell, user 65532, volumes /var/lib/pagehook and /var/cache/pagehook) with podman, buildah or docker; RUST_IMAGE=/RUNTIME_IMAGE= build from a mirror
IMAGE          ?= pagehook:$(shell sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
ENGINE         ?= $(firstword $(foreach e,podman buildah docker,$(shell command -v $(e))))
image:
	@test -n "$(ENGINE)" || { echo "make image needs podman, buildah or docker (make container-engine installs Debian's podman)"; exit 1; }
	$(ENGINE) build -t $(IMAGE) $(if $(RUST_IMAGE),--build-arg RUST_IMAGE=$(RUST_IMAGE)) $(if $(RUNTIME_IMAGE),--build-arg RUNTIME_IMAGE=$(RUNTIME_IMAGE)) -f Dockerfile .

## container-engine: install Debian's podman and runc when missing (idempotent); the container image test builds and runs the image with them
container-engine:
	@command -v podman >/dev/null && command -v runc >/dev/null || { \
		if [ "$$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; else SUDO=; fi; \
		$$SUDO apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc; }

## k8s-tools: Helm's SDK (helm-python-sdk) and kubernetes-validate from PyPI in .venv-k8s/ (idempotent); the deployment tests render and check the charts with them
k8s-tools:
	scripts/k8s-tools.sh

.PHONY: image container-engine k8s-tools

## lint: formatting and clippy, warnings are errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	rm -rf target
