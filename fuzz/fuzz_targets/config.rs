//! Any text as `switchyard.toml`: an error that names the file, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(error) = switchyard::Config::parse(text, "switchyard.toml".as_ref()) {
        assert!(error.to_string().contains("switchyard.toml"));
    }
});
