# Switchyard tasks. `just build-guest && just serve` is the quick start.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Guests build into a target directory of their own (tests/build.rs uses it too).
guest_target := justfile_directory() / "target" / "wasm"
guest_release := guest_target / "wasm32-wasip2" / "release"

# List the recipes.
default:
    @just --list

# The toolchain rust-toolchain.toml pins.
rust_version := `sed -n 's/^channel = "\(.*\)"$/\1/p' rust-toolchain.toml`

# The wasmtime CLI matching the host's wasmtime, for `serve-wasmtime` and the tests.
wasmtime_version := "50.0.1"

# Debian's Chromium (and ChromeDriver) for the browser tests.
chromium_version := "156.0.8078.114-1~deb12u1"

# Debian's nginx, the load balancer of `just cluster` and the cluster test.
nginx_version := "1.22.1-9+deb12u12"
# Debian's Redis, for the tests of the Redis key-value store and shared cache.
redis_version := "5:7.0.15-1~deb12u10"

# deploy/'s tools: the Kubernetes manifests' validator (PyPI), and Debian's umoci and
# jq, which deploy/image/build.sh builds the OCI image with (no container daemon).
kubernetes_validate_version := "1.37.0"
umoci_version := "0.4.7+ds-3+b7"
jq_version := "1.6-2.1+deb12u1"

# Build the guest components in release: build/app.wasm, build/router.wasm and build/middleware.wasm.
build-guest: wasm-target
    CARGO_TARGET_DIR="{{guest_target}}" cargo build --release --target wasm32-wasip2 --manifest-path guest/Cargo.toml -p app -p router -p middleware
    mkdir -p build
    cp "{{guest_release}}/app.wasm" build/app.wasm
    cp "{{guest_release}}/router.wasm" build/router.wasm
    cp "{{guest_release}}/middleware.wasm" build/middleware.wasm
    @echo "built build/app.wasm, build/router.wasm and build/middleware.wasm"

# Build the example app only (what `just dev` reruns on each change): build/app.wasm.
build-app: wasm-target
    CARGO_TARGET_DIR="{{guest_target}}" cargo build --release --target wasm32-wasip2 --manifest-path guest/Cargo.toml -p app
    mkdir -p build
    cp "{{guest_release}}/app.wasm" build/app.wasm.tmp
    mv build/app.wasm.tmp build/app.wasm

# Install the toolchain rust-toolchain.toml pins, with the wasm32-wasip2 target, when missing.
wasm-target:
    @rustup toolchain list | grep -q "^{{rust_version}}-" || rustup toolchain install {{rust_version}} --profile minimal -c clippy,rustfmt
    @rustup target list --toolchain {{rust_version}} --installed | grep -qx wasm32-wasip2 || rustup target add --toolchain {{rust_version}} wasm32-wasip2

# Build the release host.
build-host:
    cargo build --release -p switchyard

# Serve build/app.wasm (building what it needs): `just serve --listen 127.0.0.1:0`.
serve *ARGS: build-guest build-host
    ./target/release/switchyard serve build/app.wasm {{ARGS}}

# (switchyard.toml's `[dev]` rebuilds it with `just build-app` on each change).
# Serve the example site in dev mode: edit guest/app and the open tab reloads.
dev *ARGS: build-host
    ./target/release/switchyard dev {{ARGS}}

# Serve build/app.wasm behind the example router: `just serve-router --listen 127.0.0.1:0`.
serve-router *ARGS: build-guest build-host
    ./target/release/switchyard serve build/app.wasm --router build/router.wasm {{ARGS}}

# Serve build/app.wasm behind the example middleware: `just serve-middleware --listen 127.0.0.1:0`.
serve-middleware *ARGS: build-guest build-host
    ./target/release/switchyard serve build/app.wasm --router build/middleware.wasm {{ARGS}}

# Compose the example router in front of the app: build/composed.wasm.
compose: build-guest build-host
    ./target/release/switchyard compose --router build/router.wasm build/app.wasm -o build/composed.wasm

# Install the stock wasmtime CLI of the host's wasmtime version, when missing.
install-wasmtime:
    [ "$(wasmtime --version 2>/dev/null | awk '{print $2}')" = "{{wasmtime_version}}" ] || cargo install --locked wasmtime-cli@{{wasmtime_version}}

# Run build/composed.wasm under the stock `wasmtime serve` (default 0.0.0.0:8080; pass `--addr`).
serve-wasmtime *ARGS: compose install-wasmtime
    wasmtime serve -Scli -Skeyvalue -Sconfig {{ARGS}} build/composed.wasm

# target/image/switchyard.tar is for `docker load -i` or `podman load -i`; deploy/kubernetes runs it.
# Build the OCI image of the dist host and build/app.wasm, without a container daemon.
image: build-guest install-deploy-tools
    cargo build --profile dist -p switchyard
    deploy/image/build.sh target/dist/switchyard build/app.wasm public target/image

# The guest SDK's unit and doc tests, then the host's unit and end-to-end tests (some
# run the stock `wasmtime serve` and headless Chromium, installed when missing).
# Run every test.
test: install-wasmtime install-chromium install-deploy-tools install-nginx install-redis wasm-target
    cargo test --manifest-path guest/Cargo.toml -p switchyard-guest -p switchyard-app -p switchyard-router -p switchyard-middleware -p app
    cargo test --workspace

# As root or with sudo: the pinned version, or its successor once Debian's archive moved on.
# Install Debian's Chromium and ChromeDriver for the browser tests, when missing.
install-chromium:
    #!/usr/bin/env bash
    set -euo pipefail
    command -v chromium >/dev/null && command -v chromedriver >/dev/null && exit 0
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    install() { $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; }
    install "chromium={{chromium_version}}" "chromium-driver={{chromium_version}}" || {
        echo "chromium {{chromium_version}} is no longer in the archive: installing its successor" >&2
        install chromium chromium-driver
    }

# As root or with sudo: the pinned version, or its successor once Debian's archive moved on.
# Install Debian's nginx for the cluster test and `just cluster`, when missing.
install-nginx:
    #!/usr/bin/env bash
    set -euo pipefail
    { nginx -v || /usr/sbin/nginx -v; } 2>/dev/null && exit 0
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    install() { $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; }
    install "nginx={{nginx_version}}" "nginx-common={{nginx_version}}" || {
        echo "nginx {{nginx_version}} is no longer in the archive: installing its successor" >&2
        install nginx nginx-common
    }

# As root or with sudo for apt: the pinned versions, or their successors once Debian's archive moved on.
# Install deploy/'s tools when missing: kubernetes-validate (pip), umoci and jq (apt).
install-deploy-tools:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ "$(python3 -m kubernetes_validate --version 2>/dev/null)" != "{{kubernetes_validate_version}}" ]; then
        python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "kubernetes-validate=={{kubernetes_validate_version}}"
    fi
    command -v umoci >/dev/null && command -v jq >/dev/null && exit 0
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    install() { $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; }
    install "umoci={{umoci_version}}" "jq={{jq_version}}" || {
        echo "umoci {{umoci_version}} or jq {{jq_version}} is no longer in the archive: installing the successors" >&2
        install umoci jq
    }

# As root or with sudo: the pinned version, or its successor once Debian's archive moved on.
# Install Debian's redis-server for the Redis tests, when neither it nor valkey-server is there.
install-redis:
    #!/usr/bin/env bash
    set -euo pipefail
    { command -v redis-server || command -v valkey-server; } >/dev/null && exit 0
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    install() { $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; }
    install "redis-server={{redis_version}}" "redis-tools={{redis_version}}" || {
        echo "redis-server {{redis_version}} is no longer in the archive: installing its successor" >&2
        install redis-server redis-tools
    }

# Benchmarks, release builds, every server side by side in one run (needs wrk: installed when missing).
bench: build-guest install-wasmtime
    command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
    command -v taskset >/dev/null || (apt-get update && apt-get install -y util-linux)
    CARGO_TARGET_DIR="{{guest_target}}" cargo build --release --target wasm32-wasip2 --manifest-path guest/Cargo.toml -p p3-handler -p p2-proxy -p p3-middleware
    cargo build --profile dist -p switchyard --bins --example native_hello --example native_site --example render_call
    ./target/dist/switchyard compose --router "{{guest_release}}/p3_middleware.wasm" "{{guest_release}}/p3_handler.wasm" -o build/middleware-composed.wasm
    ./target/dist/switchyard compose --router build/router.wasm build/app.wasm -o build/composed.wasm
    ./target/dist/switchyard compose build/app.wasm -o build/app-any-host.wasm
    bench/bench.sh

# What each layer of the request pipeline costs, by taking it away (pinned layout, dist)
# (ROUNDS, DURATION; BIN=./target/release to compare a quicker build).
profile: build-guest
    command -v perf >/dev/null || (apt-get update && apt-get install -y linux-perf)
    command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
    cargo build --profile dist -p switchyard --bins --example native_hello
    bench/profile.sh

# Mixed good and misbehaving load for a bounded time (DURATION=30 seconds):
# good requests that failed (must be none) and the server's RSS.
soak: build-host
    command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
    cargo test -p switchyard-tests --no-run
    bench/soak.sh

# `just cluster` serves until Ctrl-C; `just cluster demo` restarts them one at a time under load
# (wrk if installed) and counts the requests that failed (must be none). Knobs: bench/cluster.sh.
# Three replicas of build/app.wasm behind nginx (deploy/cluster/nginx.conf), on loopback.
cluster *ARGS: build-guest build-host install-nginx
    bench/cluster.sh {{ARGS}}

# Fuzz the route, redirect, path, query and config parsers (fuzz/), for SECONDS each.
# cargo-fuzz needs nightly features: RUSTC_BOOTSTRAP lets the stable toolchain build them.
fuzz SECONDS="60":
    command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run routing -- -max_total_time={{SECONDS}}
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run config -- -max_total_time={{SECONDS}}

# Formatting and clippy (warnings are errors), both workspaces.
lint:
    cargo fmt --all -- --check
    cargo fmt --all --manifest-path guest/Cargo.toml -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    CARGO_TARGET_DIR="{{guest_target}}" cargo clippy --manifest-path guest/Cargo.toml --target wasm32-wasip2 --workspace -- -D warnings
