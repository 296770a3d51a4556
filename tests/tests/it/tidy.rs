//! Conventions the whole repository keeps, checked on every test run (as rust-analyzer's "tidy"
//! tests do): every Rust file says what it is for, and `unsafe` stays in the ABI layer with an
//! argument for each block.

use std::path::{Path, PathBuf};

/// The only files allowed to contain `unsafe` code (the export macro's expansion is checked by
/// the compiler: plugins are `#![deny(unsafe_code)]` and the macro allows its own item).
const UNSAFE_ALLOWED: &[&str] = &[
    "plugin-api/src/abi.rs",
    "plugin-api/src/export.rs",
    "host/src/plugin/host_api.rs",
];

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

/// Every `.rs` file of the workspace (not build output, not npm packages).
fn rust_files() -> Vec<(String, String)> {
    let root = repository();
    let mut files = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable folder").flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if path.is_dir() {
                if !matches!(name.as_str(), "target" | "node_modules" | ".git") {
                    pending.push(path);
                }
            } else if name.ends_with(".rs") {
                let relative = path
                    .strip_prefix(&root)
                    .expect("under the root")
                    .to_string_lossy()
                    .replace('\\', "/");
                let text = std::fs::read_to_string(&path).expect("readable file");
                files.push((relative, text));
            }
        }
    }
    assert!(files.len() > 50, "found only {} Rust files", files.len());
    files
}

#[test]
fn every_rust_file_opens_with_a_doc_line() {
    let missing: Vec<String> = rust_files()
        .into_iter()
        .filter(|(_, text)| !text.starts_with("//!"))
        .map(|(path, _)| path)
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading //! line: {missing:?}"
    );
}

#[test]
fn unsafe_code_stays_in_the_abi_layer_with_a_safety_argument() {
    let mut problems = Vec::new();
    for (path, text) in rust_files() {
        if path.ends_with("tests/it/tidy.rs") {
            continue; // this file names what it looks for
        }
        let lines: Vec<&str> = text.lines().collect();
        for (number, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let is_unsafe = code.contains("unsafe {")
                || code.contains("unsafe impl")
                || code.contains("unsafe fn");
            if !is_unsafe {
                continue;
            }
            if !UNSAFE_ALLOWED.contains(&path.as_str()) {
                problems.push(format!(
                    "{path}:{}: unsafe outside the ABI layer",
                    number + 1
                ));
                continue;
            }
            // A block or impl argues its soundness in the comment lines just above it; an
            // unsafe fn states its contract in a `# Safety` doc section.
            let above = &lines[number.saturating_sub(6)..number];
            let argued = above
                .iter()
                .any(|line| line.contains("SAFETY:") || line.contains("# Safety"));
            if !argued {
                problems.push(format!(
                    "{path}:{}: unsafe without a SAFETY comment",
                    number + 1
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn shipped_plugins_deny_unsafe_code() {
    let root = repository();
    let plugins = std::fs::read_dir(root.join("plugins")).expect("plugins/");
    let mut checked = 0;
    for plugin in plugins.flatten() {
        let lib = plugin.path().join("src/lib.rs");
        let text = std::fs::read_to_string(&lib).expect("a lib.rs");
        assert!(
            text.contains("#![deny(unsafe_code)]") || text.contains("#![forbid(unsafe_code)]"),
            "{} does not deny unsafe code",
            lib.display()
        );
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} plugins found");
}
