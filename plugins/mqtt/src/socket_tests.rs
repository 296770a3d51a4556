//! Socket tests with a fake host: a real listener and raw TCP clients, no `switchyard` binary.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_plugin_api::{ConnectionId, Response};

use crate::codec::{self, Packet};
use crate::config::Settings;
use crate::encode::client;
use crate::server::Server;
use switchyard_plugin_api::{Backend, ResponseCallback};

/// Answers every request with `{"echo":<request>}` at once; records removals.
#[derive(Default)]
struct FakeHost {
    next_id: AtomicU64,
    removed: Mutex<Vec<ConnectionId>>,
}

impl Backend for FakeHost {
    fn new_connection(&self, _: &[&str], _: &[(&str, &str)]) -> ConnectionId {
        ConnectionId(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn remove_connection(&self, connection: ConnectionId) {
        self.removed.lock().unwrap().push(connection);
    }
    fn execute(&self, _: ConnectionId, request: &str, on_response: ResponseCallback) {
        let content = format!("{{\"echo\":{request}}}");
        on_response(Response {
            status: 200,
            request_id: "r",
            content: &content,
            headers: "{}",
        });
    }
    fn announce_listener(&self, _: &str) {}
    fn is_shutting_down(&self) -> bool {
        false
    }
}

fn start(allow_pub_sub: bool) -> (Server, Arc<FakeHost>) {
    let settings = Settings {
        address: [127, 0, 0, 1].into(),
        port: 0,
        allow_pub_sub,
        max_packet_size: 4096,
        ..Settings::default()
    };
    let host = Arc::new(FakeHost::default());
    (Server::start("mqtt", settings, host.clone()).unwrap(), host)
}

struct Client {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Client {
    fn connect(server: &Server, client_id: &str) -> Client {
        let stream = TcpStream::connect(server.local_address()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut client = Client {
            stream,
            buffer: Vec::new(),
        };
        client.send(&client::connect(&client::ConnectOptions {
            client_id,
            clean_session: true,
            ..Default::default()
        }));
        assert_eq!(client.next(), vec![0x20, 2, 0, 0], "CONNACK accepted");
        client
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next packet's bytes.
    fn next(&mut self) -> Vec<u8> {
        loop {
            if let Some((length, _)) = codec::remaining_length(&self.buffer)
                .unwrap()
                .map(|(remaining, size)| (1 + size + remaining, ()))
                .filter(|(length, _)| self.buffer.len() >= *length)
            {
                return self.buffer.drain(..length).collect();
            }
            let mut chunk = [0u8; 4096];
            let read = self.stream.read(&mut chunk).expect("a packet within 5 s");
            assert!(read > 0, "connection closed");
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }

    /// The next packet, which must be a PUBLISH: (topic, payload).
    fn next_publish(&mut self) -> (String, String) {
        let packet = self.next();
        // PUBLISH has the same layout both ways, so the server-side decoder reads it.
        let Ok(Some((_, Packet::Publish(publish)))) = codec::decode(&packet, usize::MAX) else {
            panic!("not a PUBLISH: {packet:?}");
        };
        let payload = String::from_utf8(publish.payload.to_vec()).unwrap();
        (publish.topic.to_string(), payload)
    }

    fn expect_closed(&mut self) {
        let mut chunk = [0u8; 64];
        assert_eq!(self.stream.read(&mut chunk).expect("closed within 5 s"), 0);
    }
}

#[test]
fn requests_are_answered_to_their_sender_on_the_response_topic() {
    let (server, _) = start(false);
    let mut requester = Client::connect(&server, "a");
    let mut other = Client::connect(&server, "b");
    other.send(&client::subscribe(1, &[("Kuzzle/response", 0)]));
    assert_eq!(other.next(), vec![0x90, 3, 0, 1, 0]);
    requester.send(&crate::encode::publish(
        "Kuzzle/request",
        br#"{"x":1}"#,
        0,
        false,
        false,
        None,
    ));
    assert_eq!(
        requester.next_publish(),
        ("Kuzzle/response".into(), r#"{"echo":{"x":1}}"#.into())
    );
    // `other` got nothing: a ping's answer is the next thing it reads.
    other.send(&client::pingreq());
    assert_eq!(other.next(), vec![0xd0, 0]);
}

#[test]
fn broadcasts_reach_channel_subscribers_with_one_shared_packet() {
    let (server, _) = start(false);
    let mut clients: Vec<Client> = (0..3)
        .map(|n| Client::connect(&server, &format!("c{n}")))
        .collect();
    for client in &mut clients {
        client.send(&client::subscribe(1, &[("room-1", 0), ("#", 0)]));
        assert_eq!(
            client.next(),
            vec![0x90, 4, 0, 1, 0, 0x80],
            "wildcards refused"
        );
    }
    assert_eq!(server.subscriber_count("room-1"), 3);
    let fanout = server.fanout(["room-1", "room-2"].into_iter(), r#"{"n":1}"#);
    assert_eq!(fanout.sent, 3);
    for client in &mut clients {
        assert_eq!(
            client.next_publish(),
            ("room-1".into(), r#"{"n":1}"#.into())
        );
    }
}

#[test]
fn a_bad_packet_closes_only_its_connection() {
    let (server, host) = start(true);
    let mut good = Client::connect(&server, "good");
    good.send(&client::subscribe(1, &[("t", 0)]));
    good.next();
    let mut bad = Client::connect(&server, "bad");
    bad.send(&[0xc1, 0]); // PINGREQ with reserved flags
    bad.expect_closed();
    let mut publisher = Client::connect(&server, "pub");
    publisher.send(&crate::encode::publish(
        "t",
        b"still here",
        0,
        false,
        false,
        None,
    ));
    assert_eq!(good.next_publish(), ("t".into(), "still here".into()));
    // The host forgets the bad connection (its FIN may arrive just before).
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while host.removed.lock().unwrap().len() != 1 {
        assert!(
            std::time::Instant::now() < until,
            "remove_connection was not called"
        );
        std::thread::yield_now();
    }
}
