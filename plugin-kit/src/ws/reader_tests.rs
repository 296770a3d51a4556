//! Table tests for `reader.rs`: every RFC 6455 receive rule, fed byte streams as a client sends.

use super::*;
use crate::ws::testing::masked_frame as frame;

/// What decoding a stream yields, as owned values.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    Close(u16, String),
    Fail(u16, &'static str),
}

/// Decodes `input` whole, then again one byte at a time (a slow network), and checks that both
/// give the same events.
fn decode_all(input: &[u8], max: usize, deflate: bool) -> Vec<Seen> {
    let whole = run(input, max, deflate, input.len().max(1));
    let trickled = run(input, max, deflate, 1);
    assert_eq!(whole, trickled, "byte-at-a-time decoding differs");
    whole
}

fn run(input: &[u8], max: usize, deflate: bool, chunk: usize) -> Vec<Seen> {
    let mut reader = MessageReader::new(max, deflate);
    let mut buffer = Vec::new();
    let mut seen = Vec::new();
    for piece in input.chunks(chunk) {
        buffer.extend_from_slice(piece);
        loop {
            match reader.decode(&mut buffer) {
                Err(violation) => {
                    seen.push(Seen::Fail(violation.code(), violation.reason()));
                    return seen;
                }
                Ok((used, event)) => {
                    let event = event.map(|event| match event {
                        Event::Text(text) => Seen::Text(text.to_string()),
                        Event::Binary(bytes) => Seen::Binary(bytes.to_vec()),
                        Event::Ping(bytes) => Seen::Ping(bytes.to_vec()),
                        Event::Pong => Seen::Pong,
                        Event::Close { code, reason } => Seen::Close(code, reason.to_string()),
                    });
                    buffer.drain(..used);
                    match event {
                        Some(event) => seen.push(event),
                        None => break,
                    }
                }
            }
        }
    }
    seen
}

fn concat(frames: &[Vec<u8>]) -> Vec<u8> {
    frames.concat()
}

fn text(value: &str) -> Seen {
    Seen::Text(value.to_string())
}

#[test]
fn receive_rules() {
    let mut compressed = Vec::new();
    deflate::compress(b"{\"p\":1}", &mut compressed);
    let (first_half, second_half) = compressed.split_at(compressed.len() / 2);
    let euro = "€".as_bytes(); // 3 bytes: e2 82 ac

    /// (name, bytes sent, maxRequestSize, deflate negotiated, what the server sees)
    type Case = (&'static str, Vec<u8>, usize, bool, Vec<Seen>);
    let cases: Vec<Case> = vec![
        (
            "one text frame",
            frame(0x81, b"hello"),
            100,
            false,
            vec![text("hello")],
        ),
        ("empty text", frame(0x81, b""), 100, false, vec![text("")]),
        (
            "binary",
            frame(0x82, &[0, 255]),
            100,
            false,
            vec![Seen::Binary(vec![0, 255])],
        ),
        (
            "two messages",
            concat(&[frame(0x81, b"a"), frame(0x81, b"b")]),
            100,
            false,
            vec![text("a"), text("b")],
        ),
        (
            "three fragments",
            concat(&[frame(0x01, b"he"), frame(0x00, b"ll"), frame(0x80, b"o")]),
            100,
            false,
            vec![text("hello")],
        ),
        (
            "ping between fragments",
            concat(&[frame(0x01, b"he"), frame(0x89, b"x"), frame(0x80, b"llo")]),
            100,
            false,
            vec![Seen::Ping(b"x".to_vec()), text("hello")],
        ),
        (
            "character split across fragments",
            concat(&[
                frame(0x01, &euro[..1]),
                frame(0x00, &euro[1..2]),
                frame(0x80, &euro[2..]),
            ]),
            100,
            false,
            vec![text("€")],
        ),
        (
            "empty fragments",
            concat(&[frame(0x01, b""), frame(0x80, b"")]),
            100,
            false,
            vec![text("")],
        ),
        ("pong", frame(0x8A, b"x"), 100, false, vec![Seen::Pong]),
        (
            "close without code",
            frame(0x88, b""),
            100,
            false,
            vec![Seen::Close(1005, String::new())],
        ),
        (
            "close with reason",
            frame(0x88, b"\x03\xe8bye"),
            100,
            false,
            vec![Seen::Close(1000, "bye".into())],
        ),
        (
            "close 1-byte",
            frame(0x88, b"\x03"),
            100,
            false,
            vec![Seen::Fail(1002, "close frame with a 1-byte payload")],
        ),
        (
            "close code 1005",
            frame(0x88, b"\x03\xed"),
            100,
            false,
            vec![Seen::Fail(1002, "invalid close code")],
        ),
        (
            "close code 999",
            frame(0x88, b"\x03\xe7"),
            100,
            false,
            vec![Seen::Fail(1002, "invalid close code")],
        ),
        (
            "close reason not UTF-8",
            frame(0x88, b"\x03\xe8\xff"),
            100,
            false,
            vec![Seen::Fail(1007, "invalid UTF-8 in text message")],
        ),
        (
            "invalid UTF-8",
            frame(0x81, b"\xff"),
            100,
            false,
            vec![Seen::Fail(1007, "invalid UTF-8 in text message")],
        ),
        (
            "truncated UTF-8",
            frame(0x81, &euro[..2]),
            100,
            false,
            vec![Seen::Fail(1007, "invalid UTF-8 in text message")],
        ),
        (
            "invalid UTF-8 fails at its fragment",
            concat(&[frame(0x01, b"ok"), frame(0x00, b"\xc0\xaf")]),
            100,
            false,
            vec![Seen::Fail(1007, "invalid UTF-8 in text message")],
        ),
        (
            "unfinished character at the end",
            concat(&[frame(0x01, b"ok"), frame(0x80, &euro[..1])]),
            100,
            false,
            vec![Seen::Fail(1007, "invalid UTF-8 in text message")],
        ),
        (
            "binary is not UTF-8 checked",
            frame(0x82, b"\xff"),
            100,
            false,
            vec![Seen::Binary(vec![255])],
        ),
        (
            "continuation first",
            frame(0x80, b"x"),
            100,
            false,
            vec![Seen::Fail(
                1002,
                "continuation frame without a message to continue",
            )],
        ),
        (
            "text inside a fragmented message",
            concat(&[frame(0x01, b"x"), frame(0x81, b"y")]),
            100,
            false,
            vec![Seen::Fail(
                1002,
                "new message before the previous one ended",
            )],
        ),
        (
            "frame at the cap",
            frame(0x81, &[b'a'; 10]),
            10,
            false,
            vec![text("aaaaaaaaaa")],
        ),
        (
            "frame over the cap",
            frame(0x81, &[b'a'; 11]),
            10,
            false,
            vec![Seen::Fail(1009, "message too big")],
        ),
        (
            "fragments over the cap together",
            concat(&[frame(0x01, &[b'a'; 6]), frame(0x80, &[b'a'; 5])]),
            10,
            false,
            vec![Seen::Fail(1009, "message too big")],
        ),
        (
            "compressed",
            frame(0xC1, &compressed),
            100,
            true,
            vec![text("{\"p\":1}")],
        ),
        (
            "compressed in fragments",
            concat(&[frame(0x41, first_half), frame(0x80, second_half)]),
            100,
            true,
            vec![text("{\"p\":1}")],
        ),
        (
            "compressed over the cap",
            frame(0xC1, &compressed),
            6,
            true,
            vec![Seen::Fail(1009, "message too big")],
        ),
        (
            "compressed garbage",
            frame(0xC1, b"\xff\xff\xff"),
            100,
            true,
            vec![Seen::Fail(1007, "invalid compressed data")],
        ),
        (
            "rsv1 not negotiated",
            frame(0xC1, &compressed),
            100,
            false,
            vec![Seen::Fail(1002, "reserved bits set")],
        ),
    ];
    for (name, input, max, deflate, expected) in cases {
        assert_eq!(decode_all(&input, max, deflate), expected, "{name}");
    }
}

#[test]
fn unmasked_frames_fail_the_connection() {
    assert_eq!(
        decode_all(&[0x81, 0x01, b'x'], 100, false),
        vec![Seen::Fail(1002, "client frames must be masked")]
    );
}

#[test]
fn an_oversized_frame_is_refused_from_its_header() {
    // Only the header has arrived: the reader must not wait for (and buffer) the payload.
    let header = &frame(0x82, &vec![0; 70_000])[..14];
    let mut reader = MessageReader::new(65_536, false);
    let mut input = header.to_vec();
    assert_eq!(reader.decode(&mut input).unwrap_err(), Violation::TooBig);
}

#[test]
fn decompression_stops_at_the_inflate_allowance() {
    let mut compressed = Vec::new();
    deflate::compress(&[b' '; 10_000], &mut compressed);
    let message = frame(0xc1, &compressed);
    let mut reader = MessageReader::new(1 << 20, true);
    // Within the allowance: decoded, and what it inflated to is reported.
    reader.set_inflate_allowance(10_000);
    let mut input = message.clone();
    let (used, event) = reader.decode(&mut input).unwrap();
    assert_eq!(used, message.len());
    assert!(matches!(event, Some(Event::Text(text)) if text.len() == 10_000));
    assert_eq!(reader.inflated(), 10_000);
    // An uncompressed message inflates nothing.
    let mut plain = frame(0x81, b"{}");
    reader.decode(&mut plain).unwrap();
    assert_eq!(reader.inflated(), 0);
    // One byte short: refused with 1008, before inflating past it.
    reader.set_inflate_allowance(9_999);
    let mut input = message.clone();
    let violation = reader.decode(&mut input).unwrap_err();
    assert_eq!(violation, Violation::InflateBudget);
    assert_eq!(violation.code(), 1008);
    // The smaller of the allowance and maxRequestSize says which refusal it is.
    let mut small = MessageReader::new(5_000, true);
    small.set_inflate_allowance(1_000);
    let mut input = message;
    assert_eq!(
        small.decode(&mut input).unwrap_err(),
        Violation::InflateBudget
    );
    small.set_inflate_allowance(usize::MAX);
    let mut input = frame(0xc1, &compressed);
    assert_eq!(small.decode(&mut input).unwrap_err(), Violation::TooBig);
}
