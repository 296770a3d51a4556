//! Channels: broadcast, notify, disconnect, slow consumers, listeners.

use switchyard_plugin_api::{ConnectionId, DisconnectReason};
use websocket::{Instance, Section};

use crate::support::{Harness, HostEvent, RawClient, WAIT};

async fn clients(harness: &mut Harness, count: usize) -> Vec<(RawClient, ConnectionId)> {
    let mut out = Vec::new();
    for _ in 0..count {
        let client = RawClient::connect(harness.address(), "").await;
        let id = harness.connected().await;
        out.push((client, id));
    }
    out
}

#[tokio::test]
async fn broadcasts_reach_members_with_room_set_to_the_channel() {
    let mut harness = Harness::start("{}");
    let mut all = clients(&mut harness, 3).await;
    harness.server.join_channel("chan-a", all[0].1);
    harness.server.join_channel("chan-a", all[1].1);
    harness.server.join_channel("chan-a", all[1].1);
    harness.server.join_channel("chan-b", all[1].1);
    harness.server.join_channel("chan-a", ConnectionId(999)); // another instance's: ignored

    harness
        .server
        .broadcast(["chan-a", "chan-b", "nobody"].into_iter(), r#"{"n":1}"#);
    harness
        .server
        .notify(all[2].1, ["direct"].into_iter(), r#"{"n":2}"#);
    assert_eq!(
        all[0].0.frame().await.unwrap().text(),
        r#"{"n":1,"room":"chan-a"}"#
    );
    assert_eq!(
        all[1].0.frame().await.unwrap().text(),
        r#"{"n":1,"room":"chan-a"}"#
    );
    assert_eq!(
        all[1].0.frame().await.unwrap().text(),
        r#"{"n":1,"room":"chan-b"}"#
    );
    assert_eq!(
        all[2].0.frame().await.unwrap().text(),
        r#"{"n":2,"room":"direct"}"#
    );

    harness.server.leave_channel("chan-a", all[0].1);
    harness.server.leave_channel("chan-a", all[0].1);
    assert_eq!(harness.server.member_count("chan-a"), 1);
}

#[tokio::test]
async fn disconnect_closes_with_1001_on_shutdown_and_1011_otherwise() {
    let mut harness = Harness::start("{}");
    let mut all = clients(&mut harness, 2).await;
    harness.server.join_channel("c", all[0].1);
    harness
        .server
        .disconnect(all[0].1, DisconnectReason::SHUTDOWN, "server shutting down");
    harness
        .server
        .disconnect(all[1].1, DisconnectReason::REQUESTED, "protocol disabled");
    assert_eq!(
        all[0].0.frame().await.unwrap().close(),
        (1001, "server shutting down".into())
    );
    assert_eq!(
        all[1].0.frame().await.unwrap().close(),
        (1011, "protocol disabled".into())
    );
    harness.removed(all[0].1).await;
    assert_eq!(harness.server.member_count("c"), 0);
}

#[tokio::test]
async fn no_new_connections_while_shutting_down() {
    let harness = Harness::start("{}");
    let address = harness.address();
    harness
        .host
        .shutting_down
        .store(true, std::sync::atomic::Ordering::Relaxed);
    // The accept loop notices within its shutdown check (100 ms) and closes its listener (a
    // hot upgrade hands the host's copy to the next process; here the plugin bound it): from
    // then on a client is refused by the kernel. One that arrived before it noticed is served
    // (the host's drain closes it), so a connection that gets through is dropped and tried again.
    let until = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::net::TcpStream::connect(address).await {
            Err(error) => {
                // Refused, or reset by a listener being closed under it.
                assert!(
                    matches!(
                        error.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                    ),
                    "{error}"
                );
                break;
            }
            Ok(stream) => drop(stream),
        }
        assert!(
            tokio::time::Instant::now() < until,
            "the listener still accepts connections {WAIT:?} after the shutdown began"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_cut_off_and_nobody_else_waits() {
    let mut harness = Harness::start(r#"{"maxQueuedBytes":"64KB"}"#);
    // The slow client never reads; a small receive buffer makes it fill up sooner.
    let slow = RawClient::connect_small(harness.address()).await;
    let first = harness.connected().await;
    let mut fast_clients = clients(&mut harness, 1).await;
    let (mut fast, fast_id) = fast_clients.pop().unwrap();
    harness.server.join_channel("c", first);
    harness.server.join_channel("c", fast_id);

    let payload = format!(r#"{{"pad":"{}"}}"#, "x".repeat(4000));
    // The fast client reports what it received; the producer stays at most 8 messages (32 KB,
    // half the cap) ahead of it, so it keeps up by construction while the slow one never reads.
    let (progress, mut received) = tokio::sync::watch::channel(0u64);
    let reader = tokio::spawn(async move {
        let mut count = 0u64;
        loop {
            let frame = fast.frame().await.expect("the fast client stays connected");
            if frame.text().starts_with(r#"{"end""#) {
                return count;
            }
            count += 1;
            let _ = progress.send(count);
        }
    });
    let mut sent = 0u64;
    let removed = loop {
        while sent >= *received.borrow() + 8 {
            tokio::time::timeout(WAIT, received.changed())
                .await
                .unwrap()
                .unwrap();
        }
        harness.server.broadcast(["c"].into_iter(), &payload);
        sent += 1;
        assert!(sent < 100_000, "the slow consumer was never disconnected");
        match harness.events.try_recv() {
            Ok(HostEvent::Removed(id)) => break id,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => {}
        }
    };
    assert_eq!(removed, first);
    assert_eq!(
        harness.server.member_count("c"),
        1,
        "its membership is gone"
    );
    harness
        .server
        .broadcast(["c"].into_iter(), r#"{"end":true}"#);
    let received = tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();
    assert_eq!(received, sent, "the fast client got every message");
    drop(slow);
}

#[tokio::test]
async fn two_instances_listen_side_by_side_and_a_taken_port_fails_start_up() {
    let first = Harness::start("{}");
    let second = Harness::start("{}");
    assert_ne!(first.address().port(), second.address().port());
    let settings = websocket::Settings::from_json(
        "ws2",
        &format!(
            r#"{{"address":"127.0.0.1","port":{}}}"#,
            first.address().port()
        ),
        "{}",
    )
    .unwrap();
    let error = websocket::Server::start("ws2", settings, first.host.clone())
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(&format!(
            "protocol \"ws2\" cannot listen on {}: ",
            first.address()
        )),
        "{error}"
    );
    assert!(
        error.ends_with(
            "\nhint: another process may use this port; change server.protocols.ws2.port"
        ),
        "{error}"
    );
}
