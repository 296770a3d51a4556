//! Codec tables: every client packet decoded from bytes written by hand (not by our encoder),
//! every violation, and round trips through the encoder.

use crate::codec::{decode, Connect, Packet, Publish, Violation, Will};
use crate::encode::{self, client};

const MAX: usize = 1024;

fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|byte| u8::from_str_radix(byte, 16).unwrap())
        .collect()
}

#[test]
fn well_formed_packets_decode() {
    let cases: Vec<(&str, Packet<'static>)> = vec![
        (
            // CONNECT MQTT 4, clean, keep-alive 60, client id "ab"
            "10 0e 00 04 4d 51 54 54 04 02 00 3c 00 02 61 62",
            Packet::Connect(Connect {
                protocol_level: 4,
                clean_session: true,
                keep_alive: 60,
                client_id: "ab",
                will: None,
                username: None,
                password: None,
            }),
        ),
        (
            // CONNECT MQIsdp 3, will (qos 1, retain) on "w" = "x", user "u", password "p"
            "10 1b 00 06 4d 51 49 73 64 70 03 ee 00 0a 00 01 63 00 01 77 00 01 78 00 01 75 00 01 70",
            Packet::Connect(Connect {
                protocol_level: 3,
                clean_session: true,
                keep_alive: 10,
                client_id: "c",
                will: Some(Will {
                    topic: "w",
                    payload: b"x",
                    qos: 1,
                    retain: true,
                }),
                username: Some("u"),
                password: Some(b"p"),
            }),
        ),
        (
            "30 06 00 01 74 68 69 21",
            Packet::Publish(Publish {
                dup: false,
                qos: 0,
                retain: false,
                topic: "t",
                packet_id: None,
                payload: b"hi!",
            }),
        ),
        (
            "3d 06 00 01 74 00 07 7a",
            Packet::Publish(Publish {
                dup: true,
                qos: 2,
                retain: true,
                topic: "t",
                packet_id: Some(7),
                payload: b"z",
            }),
        ),
        ("40 02 00 05", Packet::PubAck(5)),
        ("50 02 00 06", Packet::PubRec(6)),
        ("62 02 00 07", Packet::PubRel(7)),
        ("70 02 01 00", Packet::PubComp(256)),
        (
            "82 0c 00 01 00 03 61 2f 23 01 00 01 62 02",
            Packet::Subscribe {
                packet_id: 1,
                filters: vec![("a/#", 1), ("b", 2)],
            },
        ),
        (
            "a2 05 00 02 00 01 2b",
            Packet::Unsubscribe {
                packet_id: 2,
                filters: vec!["+"],
            },
        ),
        ("c0 00", Packet::PingReq),
        ("e0 00", Packet::Disconnect),
    ];
    for (bytes, expected) in cases {
        let bytes = hex(bytes);
        let decoded = decode(&bytes, MAX).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(
            decoded,
            Some((bytes.len(), expected.clone())),
            "{expected:?}"
        );
        // A packet cut anywhere is incomplete, never an error.
        for cut in 0..bytes.len() {
            assert_eq!(
                decode(&bytes[..cut], MAX),
                Ok(None),
                "{expected:?} cut at {cut}"
            );
        }
    }
}

#[test]
fn violations_are_named() {
    use Violation::*;
    let cases = [
        ("00 00", UnexpectedType(0)),
        ("f0 00", UnexpectedType(15)),
        ("20 02 00 00", UnexpectedType(2)),
        ("90 03 00 01 00", UnexpectedType(9)),
        (
            "ff ff ff ff ff",
            Malformed("remaining length longer than 4 bytes"),
        ),
        ("c1 00", Malformed("reserved fixed-header flags are wrong")),
        (
            "80 06 00 01 00 01 61 00",
            Malformed("reserved fixed-header flags are wrong"),
        ),
        (
            "60 02 00 01",
            Malformed("reserved fixed-header flags are wrong"),
        ),
        ("c0 01 00", Malformed("bytes after the end of the packet")),
        (
            "10 0c 00 04 4d 51 54 54 05 02 00 3c 00 00",
            UnsupportedLevel(5),
        ),
        (
            "10 0c 00 04 4d 51 54 54 03 02 00 3c 00 00",
            UnsupportedLevel(3),
        ),
        (
            "10 0c 00 04 4d 51 54 58 04 02 00 3c 00 00",
            Malformed("unknown protocol name"),
        ),
        (
            "10 0c 00 04 4d 51 54 54 04 03 00 3c 00 00",
            Malformed("CONNECT reserved flag is set"),
        ),
        (
            "10 0c 00 04 4d 51 54 54 04 1e 00 3c 00 00",
            Malformed("will QoS 3"),
        ),
        (
            "10 0c 00 04 4d 51 54 54 04 0a 00 3c 00 00",
            Malformed("will QoS or retain set without a will"),
        ),
        (
            "10 0c 00 04 4d 51 54 54 04 42 00 3c 00 00",
            Malformed("password without a user name"),
        ),
        (
            "10 0d 00 04 4d 51 54 54 04 02 00 3c 00 02 61",
            Malformed("packet shorter than its fields"),
        ),
        ("36 05 00 01 74 00 01", Malformed("PUBLISH with QoS 3")),
        (
            "38 04 00 01 74 78",
            Malformed("PUBLISH with QoS 0 and DUP set"),
        ),
        ("30 04 00 01 23 78", Malformed("wildcard in a topic name")),
        ("30 02 00 00", Malformed("empty topic name")),
        ("30 04 00 02 c3 28", Malformed("string is not UTF-8")),
        ("30 03 00 01 00", Malformed("string contains U+0000")),
        ("32 05 00 01 74 00 00", Malformed("packet identifier 0")),
        ("40 02 00 00", Malformed("packet identifier 0")),
        ("82 02 00 01", Malformed("SUBSCRIBE without a topic filter")),
        (
            "82 06 00 01 00 01 61 03",
            Malformed("requested QoS must be 0, 1 or 2"),
        ),
        (
            "82 08 00 01 00 03 61 23 62 00",
            Malformed("wildcard inside a level"),
        ),
        (
            "a2 02 00 01",
            Malformed("UNSUBSCRIBE without a topic filter"),
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(decode(&hex(bytes), MAX), Err(expected), "{bytes}");
    }
}

#[test]
fn oversized_packets_are_refused_from_their_header() {
    // Remaining length 2,097,152 (4 bytes): refused with only the header buffered.
    assert_eq!(
        decode(&hex("30 80 80 80 01"), MAX),
        Err(Violation::TooLarge(2_097_157))
    );
    // Exactly at the limit: accepted.
    let packet = encode::publish("t", &vec![b'x'; MAX - 6], 0, false, false, None);
    assert_eq!(packet.len(), MAX);
    assert!(decode(&packet, MAX).unwrap().is_some());
    assert_eq!(decode(&packet, MAX - 1), Err(Violation::TooLarge(MAX)));
}

#[test]
fn encoded_packets_decode_to_what_was_encoded() {
    let connect = client::connect(&client::ConnectOptions {
        client_id: "me",
        clean_session: false,
        keep_alive: 30,
        will: Some(("last/will", b"bye", 2, false)),
        username: Some("user"),
    });
    let Ok(Some((_, Packet::Connect(decoded)))) = decode(&connect, MAX) else {
        panic!("not a CONNECT");
    };
    assert_eq!(decoded.client_id, "me");
    assert!(!decoded.clean_session);
    assert_eq!(decoded.keep_alive, 30);
    assert_eq!(decoded.will.unwrap().qos, 2);
    assert_eq!(decoded.username, Some("user"));

    let payload = vec![7u8; 300];
    for (qos, id) in [(0, None), (1, Some(9)), (2, Some(65535))] {
        let packet = encode::publish("a/b", &payload, qos, true, qos > 0, id);
        let expected = Packet::Publish(Publish {
            dup: qos > 0,
            qos,
            retain: true,
            topic: "a/b",
            packet_id: id,
            payload: &payload,
        });
        assert_eq!(decode(&packet, MAX), Ok(Some((packet.len(), expected))));
    }
    let subscribe = client::subscribe(3, &[("x/+", 0), ("#", 2)]);
    assert_eq!(
        decode(&subscribe, MAX).unwrap().unwrap().1,
        Packet::Subscribe {
            packet_id: 3,
            filters: vec![("x/+", 0), ("#", 2)]
        }
    );
    let unsubscribe = client::unsubscribe(4, &["x/+"]);
    assert_eq!(
        decode(&unsubscribe, MAX).unwrap().unwrap().1,
        Packet::Unsubscribe {
            packet_id: 4,
            filters: vec!["x/+"]
        }
    );
}

#[test]
fn server_packets_have_the_specified_bytes() {
    let cases = [
        (encode::connack(true, 0), "20 02 01 00"),
        (encode::connack(false, 1), "20 02 00 01"),
        (encode::connack_v5_unsupported(), "20 03 00 84 00"),
        (encode::ack(crate::codec::kind::PUBACK, 258), "40 02 01 02"),
        (encode::ack(crate::codec::kind::PUBREL, 1), "62 02 00 01"),
        (encode::suback(5, &[0, 2, 0x80]), "90 05 00 05 00 02 80"),
        (encode::unsuback(6), "b0 02 00 06"),
        (encode::pingresp(), "d0 00"),
        (
            encode::publish("t", b"", 0, false, false, None),
            "30 03 00 01 74",
        ),
    ];
    for (packet, expected) in cases {
        assert_eq!(packet.to_vec(), hex(expected), "{expected}");
    }
    let long = encode::publish("t", &[0; 200], 0, false, false, None);
    assert_eq!(
        &long[..3],
        &hex("30 cb 01")[..],
        "two-byte remaining length"
    );
}
