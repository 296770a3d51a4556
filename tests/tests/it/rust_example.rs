//! The Rust example (`examples/rust-line`, a workspace member) serves a client end to end, as
//! `c_abi.rs` does for the C one; the template (`templates/protocol`) builds outside the
//! workspace, passes `switchyard check` and serves the same client.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_tests::{artifacts, protocol_section, run_host, LineClient, Scratch, Server};
use tungstenite::Message;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Subscribes to red documents of `i/c`; returns the channel.
fn subscribe(client: &mut LineClient) -> String {
    client.send(
        r#"{"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":{"equals":{"color":"red"}}}"#,
    );
    let line = client.read_line().expect("an answer");
    let rest = line
        .strip_prefix("answer 200 ")
        .unwrap_or_else(|| panic!("not a 200 answer: {line}"));
    let content: Value = serde_json::from_str(rest).expect("JSON content");
    content["result"]["channel"]
        .as_str()
        .expect("a channel")
        .to_string()
}

#[test]
fn the_rust_example_receives_a_publication_made_over_websocket() {
    let library = artifacts().library("rust_line").to_path_buf();
    let finished = run_host(&["check", library.to_str().unwrap()], TIMEOUT);
    assert_eq!(
        finished.stdout,
        format!(
            "{}: rust-line 0.1.0, plugin-api 1.3.0: OK\n",
            library.display()
        ),
        "{}",
        finished.stderr
    );

    serves_a_subscriber(&library);
}

/// Starts the host with `library` as protocol "line" and a WebSocket listener; a line client
/// subscribes, gets the plugin's own error for a non-JSON line, receives the one matching
/// publication made over WebSocket, unsubscribes, and sees its socket closed at shutdown.
fn serves_a_subscriber(library: &Path) {
    let server = Server::start(&format!(
        "[server]\n[server.protocols.line]\nlibrary = {library:?}\nport = 0\n{}",
        protocol_section(
            "websocket",
            "websocket",
            "port = 0\naddress = \"127.0.0.1\""
        )
    ));
    server.wait_for_log(&["listening on tcp://127.0.0.1:"], TIMEOUT);
    let mut subscriber = LineClient::connect(&server.address("line"));
    let channel = subscribe(&mut subscriber);
    // Not JSON: the plugin answers by itself, without the host.
    subscriber.send("hello");
    assert_eq!(
        subscriber.read_line().as_deref(),
        Some("error expected a JSON request on one line")
    );

    let (mut publisher, _) = tungstenite::connect(server.url("websocket")).expect("connect");
    for color in ["blue", "red"] {
        let request = json!({
            "controller": "realtime", "action": "publish", "index": "i", "collection": "c",
            "requestId": color, "body": {"color": color}
        });
        publisher
            .send(Message::text(request.to_string()))
            .expect("publish");
        let answer: Value = loop {
            match publisher.read().expect("an answer") {
                Message::Text(text) => break serde_json::from_str(text.as_str()).unwrap(),
                _ => continue,
            }
        };
        assert_eq!(answer["status"], 200, "{answer}");
    }

    // Only the red document matches the filter.
    let line = subscriber.read_line().expect("a notification");
    let rest = line
        .strip_prefix(&format!("notification {channel} "))
        .unwrap_or_else(|| panic!("not a notification on {channel}: {line}"));
    let payload: Value = serde_json::from_str(rest).expect("JSON payload");
    assert_eq!(payload["requestId"], "red");
    assert_eq!(payload["protocol"], "websocket");
    assert_eq!(payload["result"]["_source"]["color"], "red");

    // Unsubscribing goes through the host, which calls the plugin's leave_channel.
    subscriber.send(&format!(
        r#"{{"controller":"realtime","action":"unsubscribe","body":{{"roomId":"{}"}}}}"#,
        channel.split('-').next().unwrap()
    ));
    let answer = subscriber.read_line().expect("an answer");
    assert!(answer.starts_with("answer 200 "), "{answer}");

    // At shutdown the host calls disconnect: the writer flushes and closes the socket.
    server.stop_with(nix::sys::signal::Signal::SIGTERM, TIMEOUT);
    assert_eq!(subscriber.read_line(), None);
}

/// The template is the tested example under a neutral name: same code, word for word.
#[test]
fn the_template_is_the_rust_example() {
    let root = switchyard_tests::repository();
    let read = |path: &str| std::fs::read_to_string(root.join(path)).expect(path);
    assert!(
        read("templates/protocol/src/lib.rs") == read("examples/rust-line/src/lib.rs"),
        "templates/protocol/src/lib.rs differs from examples/rust-line/src/lib.rs: copy it over"
    );
}

/// Copies `from` into `to`, recursively, leaving out build output.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a folder");
    for entry in std::fs::read_dir(from).expect("read a folder") {
        let entry = entry.expect("a folder entry");
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if entry.file_name() == "target" || entry.file_name() == "build" {
            continue;
        }
        if entry.file_type().expect("a file type").is_dir() {
            copy_tree(&source, &target);
        } else {
            std::fs::copy(&source, &target).expect("copy a file");
        }
    }
}

/// The template and plugin-api, copied out of the repository, build on their own (offline, with
/// the workspace's lock file so the registry cache has every crate), the template's own test
/// passes there, the library passes `switchyard check`, and the host serves a client with it.
#[test]
fn the_template_builds_outside_the_repository_passes_check_and_serves_a_client() {
    let root = switchyard_tests::repository();
    let scratch = Scratch::new();
    let template = scratch.path().join("templates/protocol");
    copy_tree(&root.join("templates/protocol"), &template);
    copy_tree(&root.join("plugin-api"), &scratch.path().join("plugin-api"));
    std::fs::copy(root.join("Cargo.lock"), template.join("Cargo.lock")).expect("copy Cargo.lock");

    // The workspace's target folder: the registry crates are built there already.
    let target = artifacts()
        .host
        .parent()
        .and_then(Path::parent)
        .expect("the host is in <target>/<profile>/")
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    // Its own test (the socket code against a fake host), then the library.
    for command in ["test", "build"] {
        let output = Command::new(&cargo)
            .current_dir(&template)
            .args([command, "--offline"])
            .env("CARGO_TARGET_DIR", &target)
            .stdin(Stdio::null())
            .output()
            .expect("cargo runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let unresolvable = [
            "--offline was specified",
            "failed to download",
            "no matching package named",
        ];
        if !output.status.success() && unresolvable.iter().any(|cause| stderr.contains(cause)) {
            eprintln!(
                "SKIPPED the_template_builds_outside_the_repository: cargo cannot resolve the template's dependencies offline (the local registry cache lacks a crate):\n{stderr}"
            );
            return;
        }
        assert!(
            output.status.success(),
            "`cargo {command}` in the template failed:\n{stderr}{}",
            String::from_utf8_lossy(&output.stdout)
        );
    }

    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let library = target.join(profile).join(format!(
        "{}my_protocol{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let finished = run_host(&["check", library.to_str().unwrap()], TIMEOUT);
    assert_eq!(
        finished.stdout,
        format!(
            "{}: my-protocol 0.1.0, plugin-api 1.3.0: OK\n",
            library.display()
        ),
        "{}",
        finished.stderr
    );
    serves_a_subscriber(&library);
}
