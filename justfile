# Switchyard tasks. `just build-guest && just serve` is the quick start.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Guests build into a target directory of their own (tests/build.rs uses it too).
guest_target := justfile_directory() / "target" / "wasm"
guest_release := guest_target / "wasm32-wasip2" / "release"

# List the recipes.
default:
    @just --list

# Build the guest components in release: build/app.wasm.
build-guest:
    rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
    CARGO_TARGET_DIR="{{guest_target}}" cargo build --release --target wasm32-wasip2 --manifest-path guest/Cargo.toml -p app
    mkdir -p build
    cp "{{guest_release}}/app.wasm" build/app.wasm
    @echo "built build/app.wasm"

# Build the release host.
build-host:
    cargo build --release -p switchyard

# Serve build/app.wasm (building what it needs): `just serve --listen 127.0.0.1:0`.
serve *ARGS: build-guest build-host
    ./target/release/switchyard serve build/app.wasm {{ARGS}}

# Run every test: the guest SDK's unit tests, then the host's unit and end-to-end tests.
test:
    rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
    cargo test --manifest-path guest/Cargo.toml -p switchyard-guest
    cargo test --workspace

# Formatting and clippy (warnings are errors), both workspaces.
lint:
    cargo fmt --all -- --check
    cargo fmt --all --manifest-path guest/Cargo.toml -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    CARGO_TARGET_DIR="{{guest_target}}" cargo clippy --manifest-path guest/Cargo.toml --workspace --target wasm32-wasip2 -- -D warnings
