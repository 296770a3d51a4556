//! Each reason to refuse to start: exact message, exit status, and no listener left open.

use std::time::Duration;

use switchyard_tests::{artifacts, protocol_section, run_config, run_host, Finished, Scratch};

const TIMEOUT: Duration = Duration::from_secs(30);

fn library(name: &str) -> String {
    artifacts().library(name).display().to_string()
}

fn refused(config: &str) -> Finished {
    let finished = run_config(config, TIMEOUT);
    assert_eq!(
        finished.status.code(),
        Some(1),
        "stderr: {}",
        finished.stderr
    );
    assert!(
        !finished.stdout.contains(" ready in "),
        "it must not get ready: {}",
        finished.stdout
    );
    finished
}

#[test]
fn missing_hooks_are_named() {
    let finished = refused(&format!(
        "[server]\n{}",
        protocol_section("mqtt", "fixture_missing_hooks", "")
    ));
    assert_eq!(
        finished.stderr,
        format!(
            "error: protocol \"mqtt\" ({}) is missing hooks: joinChannel, leaveChannel\n\
             hint: rebuild it against plugin-api 1.x; every protocol must export all six hooks\n\
             error: switchyard did not start (1 problem)\n",
            library("fixture_missing_hooks")
        )
    );
}

#[test]
fn a_library_built_against_another_interface_is_refused() {
    let finished = refused(&format!(
        "[server]\n{}",
        protocol_section("future", "fixture_abi_v2", "")
    ));
    assert_eq!(
        finished.stderr,
        format!(
            "error: protocol \"future\" ({}) was built against plugin-api 2.0.0, but this host \
             loads plugins built against plugin-api 1.x (1.0 or newer)\n\
             hint: rebuild it against switchyard-plugin-api 1.3\n\
             error: switchyard did not start (1 problem)\n",
            library("fixture_abi_v2")
        )
    );
}

#[test]
fn files_that_are_not_plugins_are_refused() {
    let scratch = Scratch::new();
    let text_file = scratch.write("libnotes.so", "these are notes, not a library\n");
    let config = format!(
        "[server]\n{}[server.protocols.notes]\nlibrary = {:?}\n",
        protocol_section("plain", "fixture_not_a_plugin", ""),
        text_file
    );
    let finished = refused(&config);
    assert_eq!(
        finished.stderr,
        format!(
            "error: protocol \"plain\" ({}) is not a Switchyard plugin: it exports no Switchyard root module\n\
             hint: a protocol library is a cdylib that uses switchyard-plugin-api's export_protocol!\n\
             error: protocol \"notes\" ({path}) is not a Switchyard plugin: not a loadable shared library ({path}: file too short)\n\
             hint: a protocol library is a cdylib that uses switchyard-plugin-api's export_protocol!\n\
             error: switchyard did not start (2 problems)\n",
            library("fixture_not_a_plugin"),
            path = text_file.display(),
        )
    );
}

#[test]
fn a_missing_library_lists_the_paths_searched() {
    let scratch = Scratch::new();
    let config = scratch.write(
        "config.toml",
        "[server]\npluginDir = \"plugins\"\n[server.protocols.ghost]\n",
    );
    let finished = run_host(&["--config", config.to_str().unwrap()], TIMEOUT);
    assert_eq!(finished.status.code(), Some(1));
    let host_dir = artifacts().host.parent().unwrap().to_path_buf();
    let file = format!(
        "{}ghost{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let in_plugin_dir = scratch.path().join("plugins").join(&file);
    assert_eq!(
        finished.stderr,
        format!(
            "error: protocol \"ghost\" ({}) library not found; searched: {}, {}\n\
             hint: build it (`cargo build --release`), copy it into server.pluginDir, or set `library` to its path\n\
             error: switchyard did not start (1 problem)\n",
            in_plugin_dir.display(),
            in_plugin_dir.display(),
            host_dir.join(&file).display(),
        )
    );
}

#[test]
fn duplicate_and_reserved_names_are_refused_before_any_init() {
    // `fixture_init_hang` would block start-up for the whole init timeout if its init ran.
    let config = format!(
        "[server]\ninitTimeout = 600000\n{}{}{}",
        protocol_section("line", "fixture_line", ""),
        protocol_section("LINE", "fixture_init_hang", ""),
        protocol_section("internal", "fixture_init_hang", ""),
    );
    let finished = refused(&config);
    assert_eq!(
        finished.stderr.lines().collect::<Vec<_>>(),
        [
            format!(
                "error: invalid configuration {}: server.protocols.LINE: duplicate protocol name \"LINE\" (same as \"line\"; names are case-insensitive)",
                finished_config_path(&finished)
            ),
            format!(
                "error: invalid configuration {}: server.protocols.internal: protocol name \"internal\" is reserved",
                finished_config_path(&finished)
            ),
            "error: switchyard did not start (2 problems)".to_string(),
        ]
    );
}

/// The config path as the host printed it (run_config writes to a scratch folder).
fn finished_config_path(finished: &Finished) -> String {
    let first = finished.stderr.lines().next().unwrap_or_default();
    first
        .strip_prefix("error: invalid configuration ")
        .and_then(|rest| rest.split(": ").next())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_failing_init_shows_its_error() {
    let finished = refused(&format!(
        "[server]\n{}",
        protocol_section("broken", "fixture_init_error", "")
    ));
    assert_eq!(
        finished.stderr,
        format!(
            "error: protocol \"broken\" ({}) failed to start: init returned an error: cannot listen on port 1: permission denied (fixture)\n\
             error: switchyard did not start (1 problem)\n",
            library("fixture_init_error")
        )
    );
}

#[test]
fn a_panicking_init_is_caught_and_reported() {
    let finished = refused(&format!(
        "[server]\n{}",
        protocol_section("boom", "fixture_init_panic", "")
    ));
    let first = finished.stderr.lines().next().unwrap();
    let expected_start = format!(
        "error: protocol \"boom\" ({}) failed to start: init panicked at tests/fixtures/init-panic/src/lib.rs:",
        library("fixture_init_panic")
    );
    assert!(first.starts_with(&expected_start), "{first}");
    assert!(
        first.ends_with(": fixture init panicked on purpose"),
        "{first}"
    );
    assert_eq!(
        finished.stderr.lines().nth(1),
        Some("error: switchyard did not start (1 problem)")
    );
}

#[test]
fn an_init_that_never_returns_times_out() {
    let finished = refused(&format!(
        "[server]\ninitTimeout = 300\n{}",
        protocol_section("stuck", "fixture_init_hang", "")
    ));
    assert_eq!(
        finished.stderr,
        format!(
            "error: protocol \"stuck\" ({}) failed to start: init did not return within 300 ms\n\
             hint: increase server.initTimeout (milliseconds) if it is just slow\n\
             error: switchyard did not start (1 problem)\n",
            library("fixture_init_hang")
        )
    );
}

#[test]
fn every_init_failure_is_reported_not_only_the_first() {
    let finished = refused(&format!(
        "[server]\ninitTimeout = 300\n{}{}{}",
        protocol_section("broken", "fixture_init_error", ""),
        protocol_section("fine", "fixture_line", ""),
        protocol_section("stuck", "fixture_init_hang", ""),
    ));
    let errors: Vec<&str> = finished
        .stderr
        .lines()
        .filter(|line| line.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 3, "{}", finished.stderr);
    assert!(errors[0].contains("\"broken\""));
    assert!(errors[1].contains("\"stuck\""));
    assert_eq!(errors[2], "error: switchyard did not start (2 problems)");
}

#[test]
fn config_syntax_errors_give_line_and_column() {
    let finished = refused("[server]\nmaxRequestSize = \"1MB\"\n[server.protocols.ws\nport = 1\n");
    let line = finished.stderr.lines().next().unwrap();
    assert!(line.starts_with("error: invalid configuration "), "{line}");
    assert!(line.ends_with("(line 3, column 21)"), "{line}");
}

#[test]
fn config_type_errors_and_unknown_keys_give_their_path() {
    let finished = refused(&format!(
        "[server]\nrequestQueueSize = \"big\"\n{}",
        protocol_section("line", "fixture_line", "")
    ));
    let line = finished.stderr.lines().next().unwrap();
    assert!(
        line.ends_with(
            ": server.requestQueueSize: invalid type: string \"big\", expected usize (line 2, column 20)"
        ),
        "{line}"
    );

    let finished = refused(&format!(
        "[server]\n{}",
        protocol_section("line", "fixture_line", "prot = 5")
    ));
    let line = finished.stderr.lines().next().unwrap();
    assert!(
        line.ends_with(
            "failed to start: init returned an error: server.protocols.line.prot: unknown field `prot`, expected one of `port`, `panicOnBroadcast`, `ignoreShutdown`"
        ),
        "{line}"
    );
}

#[test]
fn check_reports_each_library() {
    let good = library("fixture_line");
    let bad = library("fixture_missing_hooks");
    let finished = run_host(&["check", &good, &bad], TIMEOUT);
    assert_eq!(finished.status.code(), Some(1));
    assert_eq!(
        finished.stdout,
        format!(
            "{good}: fixture-line 0.3.0, plugin-api 1.3.0: OK\n\
             {bad}: error: is missing hooks: joinChannel, leaveChannel\n\
             {bad}: hint: rebuild it against plugin-api 1.x; every protocol must export all six hooks\n"
        )
    );
    let finished = run_host(&["check", &good], TIMEOUT);
    assert_eq!(finished.status.code(), Some(0));
}

/// Issue 17: `switchyard check libfoo.so` in the library's folder made `dlopen` search the
/// system's folders ("cannot open shared object file"); a bare name is the current folder's.
#[test]
fn check_takes_a_bare_file_name_from_the_current_folder() {
    let scratch = Scratch::new();
    std::fs::copy(
        library("fixture_line"),
        scratch.path().join("libcopied_line.so"),
    )
    .expect("copy the fixture");
    let finished =
        switchyard_tests::run_host_in(scratch.path(), &["check", "libcopied_line.so"], TIMEOUT);
    assert_eq!(
        finished.stdout,
        "libcopied_line.so: fixture-line 0.3.0, plugin-api 1.3.0: OK\n"
    );
    assert_eq!(finished.status.code(), Some(0));
}

/// Issue 17, finding 1, at compile time: `export_protocol!` in a crate built with
/// `panic = "abort"` is a compile error that says what to change (the same crate with unwind
/// compiles, so the error is the strategy's). Compiled with `rustc` against today's plugin-api.
#[test]
fn export_protocol_does_not_compile_with_panic_abort() {
    let scratch = Scratch::new();
    let source = scratch.write(
        "aborting.rs",
        "#![forbid(unsafe_code)]\n\
         use switchyard_plugin_api::*;\n\
         struct Quiet;\n\
         impl Protocol for Quiet {\n\
         \x20   fn init(_: Host, _: InitConfig<'_>) -> Result<Self, BoxError> { Ok(Quiet) }\n\
         \x20   fn broadcast(&self, _: Channels<'_>, _: &str) {}\n\
         \x20   fn notify(&self, _: ConnectionId, _: Channels<'_>, _: &str) {}\n\
         \x20   fn join_channel(&self, _: &str, _: ConnectionId) {}\n\
         \x20   fn leave_channel(&self, _: &str, _: ConnectionId) {}\n\
         \x20   fn disconnect(&self, _: ConnectionId, _: DisconnectReason, _: &str) {}\n\
         }\n\
         export_protocol!(Quiet, name = \"quiet\");\n",
    );
    let rmeta = &artifacts().plugin_api_rmeta;
    let deps = rmeta.parent().expect("in <target>/<profile>/deps");
    // rustc from cargo's toolchain.
    let rustc = std::env::var_os("CARGO")
        .map(std::path::PathBuf::from)
        .and_then(|cargo| cargo.parent().map(|bin| bin.join("rustc")))
        .filter(|rustc| rustc.is_file())
        .unwrap_or_else(|| "rustc".into());
    let compile = |strategy: &str| {
        std::process::Command::new(&rustc)
            .args([
                "--edition",
                "2021",
                "--crate-type",
                "cdylib",
                "--emit",
                "metadata",
            ])
            .args(["-C", &format!("panic={strategy}")])
            .arg("-L")
            .arg(format!("dependency={}", deps.display()))
            .arg("--extern")
            .arg(format!("switchyard_plugin_api={}", rmeta.display()))
            .arg("--out-dir")
            .arg(scratch.path())
            .arg(&source)
            .output()
            .expect("rustc runs")
    };
    let unwind = compile("unwind");
    assert!(
        unwind.status.success(),
        "{}",
        String::from_utf8_lossy(&unwind.stderr)
    );
    let abort = compile("abort");
    let stderr = String::from_utf8_lossy(&abort.stderr);
    assert!(!abort.status.success());
    assert!(
        stderr.contains(
            "error: a Switchyard protocol must be built with panic = \"unwind\": with panic = \"abort\" a panic in a hook kills the host; remove `panic = \"abort\"` from the profile"
        ),
        "{stderr}"
    );
}

/// Issue 17, item 5, for `library`: a bare file name ending in `.so` is a path from the
/// config's folder (`./libcopied_line.so` with `--config config.toml`), never a name for
/// `dlopen` to look up in the system's folders as `check` once did. Here the library is found:
/// its `init` runs (and refuses the unknown key it is given, so the host exits).
#[test]
fn a_library_value_that_is_a_bare_file_name_is_found_in_the_config_folder() {
    let scratch = Scratch::new();
    std::fs::copy(
        library("fixture_line"),
        scratch.path().join("libcopied_line.so"),
    )
    .expect("copy the fixture");
    scratch.write(
        "config.toml",
        "[server]\n[server.protocols.line]\nlibrary = \"libcopied_line.so\"\nprot = 5\n",
    );
    let finished =
        switchyard_tests::run_host_in(scratch.path(), &["--config", "config.toml"], TIMEOUT);
    assert_eq!(finished.status.code(), Some(1), "{}", finished.stderr);
    let line = finished.stderr.lines().next().unwrap_or_default();
    assert!(
        line.ends_with(
            "failed to start: init returned an error: server.protocols.line.prot: unknown field `prot`, expected one of `port`, `panicOnBroadcast`, `ignoreShutdown`"
        ),
        "{}",
        finished.stderr
    );
}

/// Issue 17: a plugin built with `panic = "abort"` loaded, and its first hook panic killed the
/// host without a log line. Its header says how it was built; the host refuses it.
#[test]
fn a_plugin_built_with_panic_abort_is_refused() {
    let finished = refused(&format!(
        "[server]\n{}",
        protocol_section("fragile", "fixture_panic_abort", "")
    ));
    assert_eq!(
        finished.stderr,
        format!(
            "error: protocol \"fragile\" ({}) was built with panic = \"abort\": a panic in one of its hooks would kill the host\n\
             hint: build it with panic = \"unwind\" (Cargo's default): remove `panic = \"abort\"` from its profile\n\
             error: switchyard did not start (1 problem)\n",
            library("fixture_panic_abort")
        )
    );
    let path = library("fixture_panic_abort");
    let finished = run_host(&["check", &path], TIMEOUT);
    assert_eq!(finished.status.code(), Some(1));
    assert!(
        finished
            .stdout
            .starts_with(&format!("{path}: error: was built with panic = \"abort\"")),
        "{}",
        finished.stdout
    );
}
