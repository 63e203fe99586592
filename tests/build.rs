//! Build the guest components for the tests, like wasmtime's
//! `test-programs/artifacts/build.rs`: cargo for `wasm32-wasip2`, in a target
//! directory of its own (no lock shared with the outer build), and a
//! generated `components.rs` naming each component's path.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest packages the tests use, and the constant naming each, built by
/// one cargo run (apps and routers build together). The `standard` guests
/// are wasi:http components built without our SDK.
const GUESTS: &[(&str, &str)] = &[
    ("app", "APP_COMPONENT"),
    ("fixtures", "FIXTURES_COMPONENT"),
    ("router", "ROUTER_COMPONENT"),
    ("p2-proxy", "P2_PROXY_COMPONENT"),
    ("wstd-proxy", "WSTD_PROXY_COMPONENT"),
    ("p3-handler", "P3_HANDLER_COMPONENT"),
    ("middleware", "MIDDLEWARE_COMPONENT"),
    ("p3-middleware", "P3_MIDDLEWARE_COMPONENT"),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap();
    let guest = root.join("guest");
    for watched in [
        "guest/Cargo.toml",
        "guest/Cargo.lock",
        "guest/sdk",
        "guest/app",
        "public",
        "guest/fixtures",
        "guest/router",
        "guest/middleware",
        "guest/standard",
        "wit",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let target_dir = root.join("target").join("wasm");
    {
        let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cargo
            .current_dir(&guest)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(guest.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target_dir)
            // What the outer build set for itself must not leak into the guests.
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("CARGO_MAKEFLAGS");
        for (package, _) in GUESTS {
            cargo.args(["-p", package]);
        }
        let status = cargo.status().expect("failed to run cargo for the guests");
        assert!(
            status.success(),
            "building the guests failed; is the target installed? `rustup target add wasm32-wasip2`"
        );
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let mut generated = String::new();
    for &(package, constant) in GUESTS {
        let wasm = wasm_path(&target_dir, package);
        assert!(wasm.exists(), "`{}` was not built", wasm.display());
        generated.push_str(&format!(
            "/// The `{package}` guest component.\npub const {constant}: &str = {:?};\n",
            wasm.display().to_string()
        ));
    }
    std::fs::write(out.join("components.rs"), generated).unwrap();
}

/// Where cargo leaves `package`'s component: a library's name has `_` for
/// `-`, a binary's (a `wstd` server is one) keeps the package name.
fn wasm_path(target_dir: &Path, package: &str) -> PathBuf {
    let release = target_dir.join("wasm32-wasip2").join("release");
    let library = release.join(format!("{}.wasm", package.replace('-', "_")));
    if library.exists() {
        library
    } else {
        release.join(format!("{package}.wasm"))
    }
}
