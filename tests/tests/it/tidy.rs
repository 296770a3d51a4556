//! Conventions the whole repository keeps, checked on every test run (as rust-analyzer's "tidy"
//! tests do): every Rust file says what it is for, and `unsafe` stays in the ABI layer with an
//! argument for each block.

use std::path::{Path, PathBuf};

/// The only files allowed to contain `unsafe` code (the export macro's expansion is checked by
/// the compiler: plugins are `#![deny(unsafe_code)]` and the macro allows its own item).
const UNSAFE_ALLOWED: &[&str] = &[
    "plugin-api/src/abi.rs",
    "plugin-api/src/c_abi.rs",
    "plugin-api/src/export.rs",
    "host/src/plugin/host_api.rs",
    "host/src/plugin/c_abi.rs",
    // plugin-api 1.0.0, frozen (tests/it/abi_compat.rs).
    "compat/plugin-api-1.0/src/abi.rs",
    "compat/plugin-api-1.0/src/export.rs",
    // plugin-api 1.1.0, frozen (tests/it/abi_compat.rs): its ABI layer, as it was.
    "compat/plugin-api-1.1/src/abi.rs",
    "compat/plugin-api-1.1/src/c_abi.rs",
    "compat/plugin-api-1.1/src/export.rs",
    // plugin-api 1.2.0, frozen (tests/it/abi_compat.rs): its ABI layer, as it was.
    "compat/plugin-api-1.2/src/abi.rs",
    "compat/plugin-api-1.2/src/c_abi.rs",
    "compat/plugin-api-1.2/src/export.rs",
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

/// The host's modules in layers, lowest first: a module uses only modules of lower layers, so
/// there is no import circle and a newcomer reads the host bottom-up. `host/src/lib.rs` says
/// the same in prose.
const HOST_LAYERS: &[&[&str]] = &[
    &[
        "config",
        "connections",
        "execution",
        "listeners",
        "metrics",
        "pressure",
        "security",
    ],
    &["plugin"],
    &["realtime"],
    &["cluster", "validation"],
    &["services"],
    &["sessions"],
    &["api"],
    &["admission"],
    &["entry_point"],
    &["admin"],
    &["startup", "shutdown"],
    &["upgrade"],
];

fn host_layer(module: &str) -> Option<usize> {
    HOST_LAYERS.iter().position(|layer| layer.contains(&module))
}

#[test]
fn host_modules_import_only_from_layers_below() {
    let mut problems = Vec::new();
    for (path, text) in rust_files() {
        let Some(inside) = path.strip_prefix("host/src/") else {
            continue;
        };
        if matches!(inside, "lib.rs" | "main.rs") {
            continue;
        }
        let module = inside
            .split(['/', '.'])
            .next()
            .expect("a path has a first component");
        let Some(layer) = host_layer(module) else {
            problems.push(format!(
                "{path}: module `{module}` is in no layer of HOST_LAYERS"
            ));
            continue;
        };
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for (at, _) in code.match_indices("crate::") {
                let used: String = code[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if used == module || used.is_empty() {
                    continue;
                }
                match host_layer(&used) {
                    Some(below) if below < layer => {}
                    _ => problems.push(format!(
                        "{path}:{}: `{module}` uses `crate::{used}`, which is not in a lower layer",
                        number + 1
                    )),
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Plugin hooks are called in one place (`ProtocolSlot`, which counts panics and disables a
/// protocol), except `init`, which start-up calls once per protocol.
#[test]
fn plugin_hooks_are_called_only_by_the_registry() {
    let mut problems = Vec::new();
    for (path, text) in rust_files() {
        if !path.starts_with("host/") || path == "host/src/plugin/registry.rs" {
            continue;
        }
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for hook in [
                "broadcast",
                "notify",
                "join_channel",
                "leave_channel",
                "disconnect",
                "init",
            ] {
                // abi_stable hooks are called as `(hooks.x)(…)`, C hooks as `module.x(…)`.
                let calls = [format!("hooks.{hook})"), format!("module.{hook}(")];
                let allowed = hook == "init" && path == "host/src/startup.rs";
                if calls.iter().any(|call| code.contains(call.as_str())) && !allowed {
                    problems.push(format!(
                        "{path}:{}: calls the `{hook}` hook outside plugin/registry.rs",
                        number + 1
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `ARCHITECTURE.md` names every source file of the host: the map stays complete.
#[test]
fn the_architecture_map_names_every_host_file() {
    let map = std::fs::read_to_string(repository().join("ARCHITECTURE.md")).expect("the map");
    let missing: Vec<String> = rust_files()
        .into_iter()
        .filter_map(|(path, _)| path.strip_prefix("host/").map(str::to_string))
        .filter(|inside| !map.contains(inside.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not mention: {missing:?}"
    );
}
