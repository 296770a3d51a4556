//! Table tests of the WebSocket codec.

use super::*;

/// A masked client frame: `first` is the first header byte (FIN, RSV and opcode bits).
pub fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![first];
    match payload.len() {
        len if len < 126 => out.push(0x80 | len as u8),
        len if len < 65536 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, k)| b ^ k));
    out
}

#[test]
fn rfc_6455_example_key() {
    assert_eq!(
        accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    assert!(is_valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
    assert!(!is_valid_key("c2hvcnQ="));
    assert!(!is_valid_key("not base64!"));
}

#[test]
fn server_frames_have_the_shortest_header() {
    let cases = [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)];
    for (len, header) in cases {
        let frame = build(opcode::TEXT, &vec![b'x'; len]);
        assert_eq!(frame.len(), len + header, "{len}");
        assert_eq!(frame[0], 0x81);
        assert_eq!(payload_of(&frame).len(), len, "{len}");
    }
    assert_eq!(&build(opcode::TEXT, b"42[1]")[..], b"\x81\x0542[1]");
    assert_eq!(&close(1001, "bye")[..], b"\x88\x05\x03\xe9bye");
}

#[test]
fn client_frames_decode() {
    let text = masked(0x81, b"42[\"kuzzle\",{}]");
    let mut fragmented = masked(0x01, b"42[\"ku");
    fragmented.extend(masked(0x89, b"hi")); // a ping between fragments
    fragmented.extend(masked(0x80, b"zzle\"]"));
    let cases: Vec<(Vec<u8>, Vec<Event<'static>>)> = vec![
        (text, vec![Event::Text("42[\"kuzzle\",{}]")]),
        (
            fragmented,
            vec![Event::Ping(b"hi"), Event::Text("42[\"kuzzle\"]")],
        ),
        (masked(0x8A, b""), vec![Event::Pong]),
        (masked(0x88, &[0x03, 0xe8]), vec![Event::Close(1000)]),
        (masked(0x88, b""), vec![Event::Close(1005)]),
    ];
    for (mut input, expected) in cases {
        let mut reader = Reader::new(100);
        let mut offset = 0;
        let mut events = Vec::new();
        while offset < input.len() {
            let (used, event) = reader.decode(&mut input[offset..]).unwrap();
            offset += used;
            match event {
                Some(Event::Text(text)) => {
                    events.push(Event::Text(Box::leak(text.to_string().into_boxed_str())))
                }
                Some(Event::Ping(data)) => events.push(Event::Ping(Box::leak(data.into()))),
                Some(other) => events.push(match other {
                    Event::Pong => Event::Pong,
                    Event::Close(code) => Event::Close(code),
                    _ => unreachable!(),
                }),
                None => break,
            }
        }
        assert_eq!(events, expected);
    }
}

#[test]
fn partial_frames_wait_for_more() {
    let frame = masked(0x81, b"40");
    for cut in 0..frame.len() {
        let mut input = frame[..cut].to_vec();
        assert_eq!(Reader::new(100).decode(&mut input), Ok((0, None)), "{cut}");
    }
}

#[test]
fn violations_close_with_a_code() {
    let mut unmasked = masked(0x81, b"40");
    unmasked[1] &= 0x7F;
    let cases = [
        (
            masked(0x82, b"\x01"),
            1003,
            "binary messages are not supported",
        ),
        (masked(0x81, &[0xff, 0xfe]), 1003, "invalid UTF-8"),
        (
            masked(0x81, &[b'x'; 101]),
            1009,
            "Max payload size exceeded",
        ),
        (masked(0xC1, b"40"), 1002, "reserved bits set"),
        (masked(0x83, b"40"), 1002, "reserved opcode"),
        (masked(0x80, b"40"), 1002, "continuation without a message"),
        (masked(0x09, b""), 1002, "invalid control frame"),
        (unmasked, 1002, "client frames must be masked"),
    ];
    for (mut input, code, reason) in cases {
        let error = Reader::new(100).decode(&mut input).unwrap_err();
        assert_eq!((error.code, error.reason), (code, reason));
    }
    // A fragmented message is capped as a whole.
    let mut input = masked(0x01, &[b'x'; 60]);
    input.extend(masked(0x80, &[b'x'; 60]));
    assert_eq!(Reader::new(100).decode(&mut input).unwrap_err().code, 1009);
}
