//! The config parser (`host/src/config.rs`): `config.toml` as written → a validated `Config`,
//! or every problem with its key path.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use switchyard::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(Path::new("fuzz/config.toml"), text) {
        Ok(config) => {
            let _ = format!("{config:?}");
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
