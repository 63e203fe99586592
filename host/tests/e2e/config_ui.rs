//! Invalid-config snapshots: each `ui/*.toml` is checked with
//! `switchyard check --config`, and its error must be exactly the `.stderr`
//! file beside it. `BLESS=1` rewrites the snapshots.

use std::path::Path;
use std::time::Duration;
use switchyard_tests::APP_COMPONENT;
use switchyard_tests::process::run;

#[test]
fn invalid_configs_name_the_file_the_key_and_the_reason() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let mut cases: Vec<_> = std::fs::read_dir(&ui)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 8, "snapshots are missing");
    let mut failures = Vec::new();
    for case in cases {
        let name = case.file_name().unwrap().to_str().unwrap();
        let bin = crate::SWITCHYARD;
        let (status, _, stderr) = run(
            bin,
            &["check", APP_COMPONENT, "--config", name],
            Some(&ui),
            Duration::from_secs(60),
        );
        assert_eq!(status.code(), Some(1), "{name} was accepted");
        // The app's path differs between checkouts.
        let stderr = stderr.replace(APP_COMPONENT, "$APP");
        let expected_path = case.with_extension("stderr");
        if std::env::var_os("BLESS").is_some() {
            std::fs::write(&expected_path, &stderr).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if stderr != expected {
            failures.push(format!(
                "{name}:\n  expected: {expected}  actual:   {stderr}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
