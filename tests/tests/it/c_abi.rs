//! The C ABI: the header agrees with the Rust definitions (sizes and offsets, compiled by the
//! system C compiler), C libraries broken on purpose get the same messages as Rust ones, and
//! the C example (`examples/c-line` and the header alone, copied to a temporary folder and built
//! there with a bare `make`, as an author outside this repository would) serves a client end
//! to end.

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_plugin_api::c_abi::{layouts, C_ABI_VERSION, C_ENTRY_SYMBOL};
use switchyard_tests::{
    build_c_example, compile_c, protocol_section, run_host, LineClient, Scratch, Server,
};
use tungstenite::Message;

const TIMEOUT: Duration = Duration::from_secs(30);

/// A C program printing what the C compiler made of the header: `name size` per struct,
/// `name.field offset` per field, then the version and entry name macros.
#[test]
fn the_header_matches_the_rust_definitions() {
    let mut program = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include \"switchyard_protocol.h\"\nint main(void) {\n",
    );
    let mut expected = String::new();
    for (name, size, fields) in layouts() {
        program.push_str(&format!("    printf(\"{name} %zu\\n\", sizeof({name}));\n"));
        expected.push_str(&format!("{name} {size}\n"));
        for (field, offset) in fields {
            program.push_str(&format!(
                "    printf(\"{name}.{field} %zu\\n\", offsetof({name}, {field}));\n"
            ));
            expected.push_str(&format!("{name}.{field} {offset}\n"));
        }
    }
    program.push_str(
        "    printf(\"version %u\\n\", (unsigned)SWITCHYARD_ABI_VERSION);\n\
         \x20   printf(\"entry %s\\n\", SWITCHYARD_PROTOCOL_ENTRY_NAME);\n\
         \x20   return 0;\n}\n",
    );
    expected.push_str(&format!(
        "version {C_ABI_VERSION}\nentry {C_ENTRY_SYMBOL}\n"
    ));

    let scratch = Scratch::new();
    let source = scratch.write("layout.c", &program);
    let binary = scratch.path().join("layout");
    compile_c(&source, &binary, &[]);
    let output = std::process::Command::new(&binary)
        .output()
        .expect("run the layout program");
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
}

/// A C plugin broken on purpose, one way per `-D` switch.
const BROKEN_C: &str = r#"
#include "switchyard_protocol.h"
static int32_t channel(void *i, switchyard_str c, switchyard_connection_id id) {
    (void)i; (void)c; (void)id; return 0;
}
static int32_t init(switchyard_host host, const switchyard_init_args *args, void **instance) {
    (void)host; (void)args; (void)channel; *instance = 0; return 0;
}
static int32_t broadcast(void *i, const switchyard_str *c, size_t n, switchyard_str p) {
    (void)i; (void)c; (void)n; (void)p; return 0;
}
static int32_t notify(void *i, switchyard_connection_id id, const switchyard_str *c, size_t n,
                      switchyard_str p) {
    (void)i; (void)id; (void)c; (void)n; (void)p; return 0;
}
static int32_t disconnect(void *i, switchyard_connection_id id, uint32_t r, switchyard_str m) {
    (void)i; (void)id; (void)r; (void)m; return 0;
}
#ifndef VERSION
#define VERSION SWITCHYARD_ABI_VERSION
#endif
static const switchyard_protocol description = {
    .abi_version = VERSION,
    .size = sizeof(switchyard_protocol),
    .name = "c-broken",
    .version = "0.0.1",
    .init = init,
    .broadcast = broadcast,
    .notify = notify,
#ifndef NULL_CHANNEL_HOOKS
    .join_channel = channel,
    .leave_channel = channel,
#endif
    .disconnect = disconnect,
};
SWITCHYARD_EXPORT const switchyard_protocol *switchyard_protocol_entry(void) {
    return &description;
}
"#;

#[test]
fn c_plugins_get_the_same_checks_and_messages_as_rust_ones() {
    let scratch = Scratch::new();
    let source = scratch.write("broken.c", BROKEN_C);
    let library = |name: &str, defines: &[&str]| {
        let out = scratch.path().join(format!("lib{name}.so"));
        let mut args = vec!["-shared", "-fvisibility=hidden"];
        args.extend_from_slice(defines);
        compile_c(&source, &out, &args);
        out.display().to_string()
    };
    let good = library("good", &[]);
    let null_hooks = library("nullhooks", &["-DNULL_CHANNEL_HOOKS"]);
    let future = library("future", &["-DVERSION=0x20000"]);

    let finished = run_host(&["check", &good, &null_hooks, &future], TIMEOUT);
    assert_eq!(finished.status.code(), Some(1), "{}", finished.stderr);
    assert_eq!(
        finished.stdout,
        format!(
            "{good}: c-broken 0.0.1, plugin-api 1.3.0: OK\n\
             {null_hooks}: error: is missing hooks: joinChannel, leaveChannel\n\
             {null_hooks}: hint: rebuild it against plugin-api 1.x; every protocol must export all six hooks\n\
             {future}: error: was built against plugin-api 2.0.0, but this host loads plugins built against plugin-api 1.x (1.0 or newer)\n\
             {future}: hint: rebuild it against switchyard-plugin-api 1.3\n"
        )
    );
}

fn subscribe(client: &mut LineClient) -> String {
    let (kind, status, content) = client.request(
        r#"{"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":{"equals":{"color":"red"}}}"#,
    );
    assert_eq!((kind.as_str(), status), ("answer", 200), "{content}");
    content["result"]["channel"]
        .as_str()
        .expect("a channel")
        .to_string()
}

#[test]
fn the_c_example_receives_a_publication_made_over_websocket() {
    let scratch = Scratch::new();
    let library = build_c_example("c-line", scratch.path());
    let finished = run_host(&["check", library.to_str().unwrap()], TIMEOUT);
    assert_eq!(
        finished.stdout,
        format!(
            "{}: c-line 0.1.0, plugin-api 1.3.0: OK\n",
            library.display()
        )
    );

    let server = Server::start(&format!(
        "[server]\n[server.protocols.line]\nlibrary = {library:?}\nport = 0\n{}",
        protocol_section(
            "websocket",
            "websocket",
            "port = 0\naddress = \"127.0.0.1\""
        )
    ));
    server.wait_for_log(&["c-line", "listening on tcp://127.0.0.1:"], TIMEOUT);
    let mut subscriber = LineClient::connect(&server.address("line"));
    let channel = subscribe(&mut subscriber);
    // Not JSON: the C plugin answers by itself, without the host.
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

    // Unsubscribing goes through the host, which calls the C plugin's leaveChannel.
    let (_, status, _) = subscriber.request(&format!(
        r#"{{"controller":"realtime","action":"unsubscribe","body":{{"roomId":"{}"}}}}"#,
        channel.split('-').next().unwrap()
    ));
    assert_eq!(status, 200);
}
