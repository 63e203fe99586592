//! The deployment: `deploy/kubernetes`'s manifests against the Kubernetes
//! API's schemas, and `deploy/image`'s OCI image, built by its script and
//! run from its own file system as its config says.
//!
//! The tools are `just install-deploy-tools`'s: kubernetes-validate (PyPI),
//! umoci and jq (Debian). A missing one fails the test with that command;
//! nothing is skipped.

use serde_json::{Value, json};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use switchyard_tests::process::run;
use switchyard_tests::{APP_COMPONENT, Server, get};

use crate::SWITCHYARD;

/// The Kubernetes versions the manifests must be valid for: the first whose
/// kubelet runs a `preStop` sleep without a feature gate (beta, on by
/// default), and the newest the pinned validator knows (the justfile's
/// `kubernetes_validate_version`).
const KUBERNETES_VERSIONS: &[&str] = &["1.30.0", "1.37.0"];

const INSTALL: &str = "install it with `just install-deploy-tools`";

/// How long building the image may take (it compresses the debug binary).
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

/// The repository's root.
fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn kubernetes_manifests_pass_the_api_schemas() {
    let dir = repository().join("deploy").join("kubernetes");
    let mut manifests: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
        .collect();
    manifests.sort();
    let kustomization = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
    let mut listed: Vec<&str> = kustomization
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- "))
        .collect();
    listed.sort();
    assert_eq!(
        listed, manifests,
        "kustomization.yaml's resources must be every manifest of deploy/kubernetes"
    );

    let mut args = vec!["-m", "kubernetes_validate", "--strict"];
    for version in KUBERNETES_VERSIONS {
        args.extend(["-k", *version]);
    }
    args.extend(manifests.iter().map(String::as_str));
    let (status, stdout, stderr) = run("python3", &args, Some(&dir), Duration::from_secs(120));
    assert!(
        !stderr.contains("No module named kubernetes_validate"),
        "kubernetes-validate is needed for this test; {INSTALL}"
    );
    // An unknown kind or apiVersion is only a warning with exit code 0:
    // every line must say that a resource passed, one per file and version.
    let passed = stdout
        .lines()
        .filter(|line| line.starts_with("INFO ") && line.contains(" passed for resource "))
        .count();
    assert!(
        status.success() && passed == manifests.len() * KUBERNETES_VERSIONS.len(),
        "kubernetes-validate {args:?} ({status}):\n{stdout}{stderr}"
    );
    assert_eq!(stdout.lines().count(), passed, "{stdout}");
}

#[test]
fn the_image_serves_a_page_from_its_own_filesystem() {
    for tool in ["umoci", "jq"] {
        let found = std::process::Command::new(tool).arg("--version").output();
        assert!(found.is_ok(), "`{tool}` is needed for this test; {INSTALL}");
    }
    let repository = repository();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path();
    let script = repository.join("deploy/image/build.sh");
    let public = repository.join("public");
    let args = [
        script.to_str().unwrap(),
        SWITCHYARD,
        APP_COMPONENT,
        public.to_str().unwrap(),
        out.to_str().unwrap(),
    ];
    let (status, stdout, stderr) = run("bash", &args, Some(&repository), BUILD_TIMEOUT);
    assert!(status.success(), "build.sh failed:\n{stdout}{stderr}");
    assert!(
        stdout.contains("switchyard.tar ("),
        "it prints the size: {stdout}"
    );

    let layout = out.join("oci");
    let manifest = manifest(&layout, "latest");
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1, "one layer");
    let image = blob(&layout, &manifest["config"]["digest"]);
    let config = &image["config"];
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(config["WorkingDir"], "/app");
    assert_eq!(config["Entrypoint"], json!(["/switchyard"]));
    assert_eq!(config["Cmd"], json!(["serve"]));
    assert_eq!(
        config["ExposedPorts"],
        json!({ "3000/tcp": {}, "9000/tcp": {} })
    );
    let env: Vec<&str> = config["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        env,
        [
            "XDG_CACHE_HOME=/tmp/cache",
            "SWITCHYARD_LISTEN=0.0.0.0:3000",
            "SWITCHYARD_ADMIN_LISTEN=0.0.0.0:9000",
            "SWITCHYARD_LOG_FORMAT=json",
        ]
    );
    let labels = &config["Labels"];
    assert_eq!(labels["org.opencontainers.image.title"], "switchyard");
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );

    // The archive is the layout, named for podman and Docker.
    let archive = out.join("switchyard.tar");
    let (status, listing, stderr) = run(
        "tar",
        &["-tf", archive.to_str().unwrap()],
        None,
        Duration::from_secs(60),
    );
    assert!(status.success(), "{stderr}");
    for entry in ["oci-layout", "index.json", "manifest.json"] {
        assert!(
            listing.lines().any(|line| line == entry),
            "{entry}: {listing}"
        );
    }
    let archived = |file: &str| -> Value {
        let args = ["-xOf", archive.to_str().unwrap(), file];
        let (status, text, stderr) = run("tar", &args, None, Duration::from_secs(60));
        assert!(status.success(), "{stderr}");
        serde_json::from_str(&text).unwrap()
    };
    let named = &archived("index.json")["manifests"][0];
    assert_eq!(named["digest"], json!(digest_of(&layout, "latest")));
    assert_eq!(
        named["annotations"]["org.opencontainers.image.ref.name"],
        "switchyard:latest"
    );
    assert_eq!(
        named["annotations"]["io.containerd.image.name"],
        "docker.io/library/switchyard:latest"
    );
    assert_eq!(
        archived("manifest.json")[0]["RepoTags"],
        json!(["switchyard:latest"])
    );

    // Unpacked as a runtime would: only the server and what it needs.
    let bundle_dir = tempfile::tempdir().unwrap();
    let bundle = bundle_dir.path().join("bundle");
    let image_ref = format!("{}:latest", layout.display());
    let args = [
        "unpack",
        "--rootless",
        "--image",
        &image_ref,
        bundle.to_str().unwrap(),
    ];
    let (status, stdout, stderr) = run("umoci", &args, None, BUILD_TIMEOUT);
    assert!(status.success(), "umoci unpack: {stdout}{stderr}");
    let rootfs = bundle.join("rootfs");
    assert!(
        std::fs::symlink_metadata(rootfs.join("bin/sh")).is_err()
            && std::fs::symlink_metadata(rootfs.join("bin")).is_err(),
        "no shell in the image"
    );
    for file in files(&rootfs, &rootfs) {
        let library = (file.starts_with("lib") || file.starts_with("usr/lib"))
            && file.rsplit('/').next().unwrap().contains(".so");
        let expected = file == "switchyard"
            || file.starts_with("app/")
            || ["etc/passwd", "etc/group", "etc/nsswitch.conf"].contains(&file.as_str());
        assert!(
            library || expected,
            "`/{file}` has no business in the image"
        );
    }
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.contains("\nnonroot:x:65532:65532:"), "{passwd}");
    let tmp = std::fs::metadata(rootfs.join("tmp")).unwrap();
    assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);

    // Run as the config says: its user, working directory, environment,
    // entrypoint and command, in its root file system. `--listen` for a free
    // port; not its admin listener's fixed 0.0.0.0:9000 either.
    let as_root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    let mut command = vec!["-i".to_string()];
    command.extend(
        env.iter()
            .filter(|var| !var.starts_with("SWITCHYARD_LISTEN="))
            .filter(|var| !var.starts_with("SWITCHYARD_ADMIN_LISTEN="))
            .map(|var| var.to_string()),
    );
    command.extend(["unshare".into(), format!("--root={}", rootfs.display())]);
    command.push(format!("--wd={}", config["WorkingDir"].as_str().unwrap()));
    let (uid, gid) = config["User"].as_str().unwrap().split_once(':').unwrap();
    if as_root {
        // chroot, then the image's user, as a container runtime does.
        command.extend([format!("--setuid={uid}"), format!("--setgid={gid}")]);
    } else {
        // No chroot without root: a user namespace of our own, where we are
        // root, allows one (the server runs as us, not 65532).
        let (status, _, stderr) = run(
            "unshare",
            &["--user", "--map-root-user", "true"],
            None,
            Duration::from_secs(60),
        );
        assert!(
            status.success(),
            "running the image's file system needs root (for chroot) or user namespaces \
             (`unshare --user`), and this machine refuses them ({stderr}): run the tests as root"
        );
        command.extend(["--user".into(), "--map-root-user".into()]);
    }
    command.push("--".into());
    for arg in [&config["Entrypoint"], &config["Cmd"]] {
        command.extend(
            arg.as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().into()),
        );
    }
    command.extend(["--listen".into(), "127.0.0.1:0".into()]);
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    let server = Server::start("env", &command, None, &[]);

    let page = get(server.address, "/");
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("<h1>Welcome to Switchyard</h1>"));
    let style = get(server.address, "/style.css");
    assert_eq!(style.status, 200);
    assert_eq!(style.body, std::fs::read(public.join("style.css")).unwrap());

    // The compile cache went to the image's /tmp, written by its user.
    let cache = rootfs.join("tmp/cache/switchyard");
    let cached = std::fs::read_dir(&cache)
        .unwrap_or_else(|error| panic!("no compile cache at {}: {error}", cache.display()))
        .any(|entry| entry.unwrap().path().extension() == Some("cwasm".as_ref()));
    assert!(cached, "a compiled component in {}", cache.display());
    if as_root {
        let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert_eq!(
            uid_line.split_whitespace().collect::<Vec<_>>(),
            ["Uid:", uid, uid, uid, uid]
        );
        assert_eq!(std::fs::metadata(&cache).unwrap().uid().to_string(), uid);
    }
}

/// The manifest that `tag` names in the OCI layout at `layout`.
fn manifest(layout: &Path, tag: &str) -> Value {
    blob(layout, &json!(digest_of(layout, tag)))
}

/// The digest of the manifest that `tag` names.
fn digest_of(layout: &Path, tag: &str) -> String {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    let tagged = manifests
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no tag `{tag}` in {index}"));
    tagged["digest"].as_str().unwrap().to_string()
}

/// The JSON blob `digest` (`"sha256:..."`) of the layout at `layout`.
fn blob(layout: &Path, digest: &Value) -> Value {
    let hex = digest.as_str().unwrap().strip_prefix("sha256:").unwrap();
    let path = layout.join("blobs").join("sha256").join(hex);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every file (not directory) under `dir`, relative to `root`, `/`-separated.
fn files(root: &Path, dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if std::fs::symlink_metadata(&path).unwrap().is_dir() {
            found.extend(files(root, &path));
        } else {
            let relative = path.strip_prefix(root).unwrap();
            found.push(relative.to_str().unwrap().to_string());
        }
    }
    found
}
