//! Small JSON writing helpers shared by the host and plugins (escaping, splicing a field).
//!
//! Responses and notifications are built as text once and then only spliced, never re-parsed:
//! these helpers are what makes that cheap.

use std::fmt::Write as _;

/// Appends `value` to `out` as a JSON string literal (quotes included).
pub fn push_str(out: &mut String, value: &str) {
    out.reserve(value.len() + 2);
    out.push('"');
    // Ids, names and most values need no escape: one pass to check, one copy.
    if !needs_escape(value.as_bytes()) {
        out.push_str(value);
        out.push('"');
        return;
    }
    let mut start = 0;
    for (at, byte) in value.bytes().enumerate() {
        let escape: &str = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&value[start..at]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escape);
        }
        start = at + 1;
    }
    out.push_str(&value[start..]);
    out.push('"');
}

/// The bytes a JSON string cannot hold as they are: control characters, `"` and `\\`.
static SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// True for a byte a JSON string cannot hold as it is (a control character, `"`, `\\`): where
/// a plain run of string text ends.
#[inline]
pub fn is_special(byte: u8) -> bool {
    SPECIAL[usize::from(byte)]
}

/// True when `bytes` holds a control character, `"` or `\\`: a table lookup per byte for short
/// strings (ids, names), eight bytes per step for longer ones.
fn needs_escape(bytes: &[u8]) -> bool {
    if bytes.len() < 16 {
        return bytes.iter().any(|&byte| SPECIAL[usize::from(byte)]);
    }
    find_special(bytes).is_some()
}

/// Where the first byte a JSON string cannot hold as it is (a control character, `"`, `\\`)
/// is in `bytes`.
///
/// Most strings are short (keys, ids, names): the first 32 bytes are read eight
/// at a time. Past them (a token, a long text), 32 bytes per step by a branch-free check the
/// compiler turns into SIMD (SSE2: about 27 instructions per 32 bytes, against some 70 eight
/// bytes at a time), then the block that holds one is read again eight bytes at a time.
pub fn find_special(bytes: &[u8]) -> Option<usize> {
    if bytes.len() <= WORDS_PREFIX {
        return find_special_by_words(bytes);
    }
    // A constant-length head: its word loop is unrolled, no remainder.
    let (head, tail) = bytes.split_at(WORDS_PREFIX);
    if let Some(at) = find_special_by_words(head) {
        return Some(at);
    }
    let mut blocks = tail.chunks_exact(BLOCK);
    let mut offset = WORDS_PREFIX;
    for block in &mut blocks {
        if block_has_special(block) {
            return find_special_by_words(block).map(|at| offset + at);
        }
        offset += BLOCK;
    }
    find_special_by_words(blocks.remainder()).map(|at| offset + at)
}

/// The last long plain string (no escape, no control character) found at one place in a
/// request, kept so the next request's copy of it costs one comparison instead of a scan: a
/// connection sends the same token (`jwt`, ~230 bytes) with every request.
///
/// [`KnownPlainString::find_special`] answers exactly as [`find_special`] does: when `bytes`
/// starts with the remembered string (which holds no special byte) followed by `"`, that quote
/// is the first special byte. The comparison reads every byte whatever they hold (no early
/// exit), so its time says nothing about how much of a token matched: the string remembered
/// may be another connection's token.
#[derive(Debug, Default, Clone)]
pub struct KnownPlainString {
    /// The string, without its quotes; empty when nothing is remembered.
    bytes: Vec<u8>,
}

impl KnownPlainString {
    /// Shorter strings are scanned as fast as they are compared.
    const MIN_LEN: usize = 2 * WORDS_PREFIX;
    /// Longer strings are not kept: this is memory per connection (a token is ~230 bytes).
    const MAX_LEN: usize = 1024;

    /// A memory holding nothing yet.
    pub fn new() -> KnownPlainString {
        KnownPlainString::default()
    }

    /// Same as [`find_special`]`(bytes)`; remembers the string `bytes` starts with when it is
    /// long, plain and closed by `"`.
    pub fn find_special(&mut self, bytes: &[u8]) -> Option<usize> {
        let length = self.bytes.len();
        if length != 0
            && bytes.get(length) == Some(&b'"')
            && same_bytes(&bytes[..length], &self.bytes)
        {
            return Some(length);
        }
        let found = find_special(bytes);
        if let Some(at) = found {
            if bytes[at] == b'"' && (Self::MIN_LEN..=Self::MAX_LEN).contains(&at) {
                self.bytes.clear();
                self.bytes.extend_from_slice(&bytes[..at]);
            }
        }
        found
    }
}

/// `a == b` in a time that depends on the lengths only: when they match every byte is read,
/// with no early exit, so it may compare secrets (tokens). An OR of XORs sixteen bytes a step
/// (SSE2 once compiled), then the last sixteen again rather than a byte-by-byte tail (reading
/// a byte twice changes nothing to the answer): ~4× cheaper than a byte fold on a 230-byte
/// token, which the host and the HTTP plugin compare on every logged-in request.
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    const LANES: usize = 16;
    if a.len() != b.len() {
        return false;
    }
    if a.len() < LANES {
        let differ = a.iter().zip(b).fold(0u8, |differ, (x, y)| differ | (x ^ y));
        return std::hint::black_box(differ) == 0;
    }
    let mut differ = [0u8; LANES];
    let mut mix = |x: &[u8; LANES], y: &[u8; LANES]| {
        for lane in 0..LANES {
            differ[lane] |= x[lane] ^ y[lane];
        }
    };
    for (x, y) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        if let (Ok(x), Ok(y)) = (x.try_into(), y.try_into()) {
            mix(x, y);
        }
    }
    if let (Some((_, x)), Some((_, y))) = (a.split_last_chunk(), b.split_last_chunk()) {
        mix(x, y);
    }
    std::hint::black_box(u128::from_ne_bytes(differ)) == 0
}

/// How many leading bytes [`find_special`] reads eight at a time: the strings of a request
/// (keys, controller, action, ids) end within them, and a block check costs more than the
/// word it would save on them.
const WORDS_PREFIX: usize = 32;

/// The bytes [`block_has_special`] checks at once.
const BLOCK: usize = 32;

/// True when `block` ([`BLOCK`] bytes) holds a special byte. Written as two per-lane minimums
/// over 16-byte lanes, which the compiler turns into SSE2 `pminub`/`pxor`/`pcmpeqb` with a
/// single `pmovmskb` at the end (the more natural `b == b'"' || b == b'\\'` becomes a much
/// slower shuffle sequence): a byte below 0x20 makes `lowest` small, a `"` or `\\` makes
/// `xored` zero.
#[inline(always)]
fn block_has_special(block: &[u8]) -> bool {
    let mut lowest = [u8::MAX; 16];
    let mut xored = [u8::MAX; 16];
    for lanes in block.chunks_exact(16) {
        for (lane, &byte) in lanes.iter().enumerate() {
            lowest[lane] = lowest[lane].min(byte);
            xored[lane] = xored[lane].min((byte ^ b'"').min(byte ^ b'\\'));
        }
    }
    let mut any = 0;
    for lane in 0..16 {
        any |= u8::from(lowest[lane] < 0x20) | u8::from(xored[lane] == 0);
    }
    any != 0
}

/// [`find_special`] eight bytes per step.
fn find_special_by_words(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A byte below `n` (n <= 0x80), a zero byte. A borrow can flag a byte above a flagged one,
    // never one below it: the lowest flagged byte (the first, little-endian) is always right.
    let below = |word: u64, n: u64| word.wrapping_sub(ONES * n) & !word & HIGHS;
    let zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let special = below(word, 0x20)
            | zero(word ^ (ONES * u64::from(b'"')))
            | zero(word ^ (ONES * u64::from(b'\\')));
        if special != 0 {
            return Some(offset + special.trailing_zeros() as usize / 8);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&byte| SPECIAL[usize::from(byte)])
        .map(|position| offset + position)
}

/// Appends `value` to `out` in decimal.
pub fn push_u64(out: &mut String, value: u64) {
    out.push_str(itoa::Buffer::new().format(value));
}

/// Writes `object` (a JSON object's text) into `out` with `"key":raw_value` added as its last
/// member. `raw_value` must already be valid JSON. Returns false, writing nothing, when `object`
/// does not end with `}`.
pub fn splice_member(out: &mut Vec<u8>, object: &str, key: &str, raw_value: &str) -> bool {
    splice_with(out, object, key, raw_value.len(), |out| {
        out.extend_from_slice(raw_value.as_bytes())
    })
}

/// [`splice_member`] with the value written by `write` (`value_len` bytes, for the reserve:
/// `object.len() + key.len() + value_len + 4` bytes in all, exactly, when `object` ends with
/// `}` and is not empty).
fn splice_with(
    out: &mut Vec<u8>,
    object: &str,
    key: &str,
    value_len: usize,
    write: impl FnOnce(&mut Vec<u8>),
) -> bool {
    let trimmed = object.trim_end();
    let Some(body) = trimmed.strip_suffix('}') else {
        return false;
    };
    let body = body.trim_end();
    out.reserve(body.len() + key.len() + value_len + 5);
    out.extend_from_slice(body.as_bytes());
    if !body.ends_with('{') {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    write(out);
    out.push(b'}');
    true
}

/// Writes `object` with `"room":"<room>"` added (Kuzzle's WebSocket convention for responses and
/// notifications). `room` is escaped as a JSON string.
pub fn splice_room(out: &mut Vec<u8>, object: &str, room: &str) -> bool {
    if needs_escape(room.as_bytes()) {
        let mut quoted = String::with_capacity(room.len() + 2);
        push_str(&mut quoted, room);
        return splice_member(out, object, "room", &quoted);
    }
    // Request ids and channels are plain: no intermediate string (this runs per response).
    splice_with(out, object, "room", room.len() + 2, |out| {
        out.push(b'"');
        out.extend_from_slice(room.as_bytes());
        out.push(b'"');
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn same_bytes_is_equality_at_every_length_and_position() {
        let base: Vec<u8> = (0..80u8).map(|byte| byte.wrapping_mul(37)).collect();
        for length in 0..base.len() {
            let a = &base[..length];
            assert!(same_bytes(a, a), "{length}");
            assert!(!same_bytes(a, &base[..length + 1]), "{length}");
            for at in 0..length {
                let mut b = a.to_vec();
                b[at] ^= 0x40;
                assert!(!same_bytes(a, &b), "{length} {at}");
            }
        }
    }

    #[test]
    fn find_special_finds_the_first_special_byte_wherever_it_is() {
        // Plain bytes around it, among them the neighbours of every special byte and
        // non-ASCII ones, which a word-at-a-time test could mistake.
        let plain: Vec<u8> = [
            0x20u8, 0x21, b'#', b'[', b']', 0x7F, 0x80, 0xA2, 0xDC, 0xFF, b'a',
        ]
        .to_vec();
        // Every length up to 40, then the edges of the eight-bytes-a-step prefix (32) and of
        // the 32-byte blocks past it, and token-sized ones.
        let lengths = (0..40).chain([47, 48, 63, 64, 65, 95, 96, 97, 100, 231, 300]);
        for length in lengths {
            for special in (0u8..0x20).chain([b'"', b'\\']) {
                // A second special byte after the first (the other kind: a quote after a
                // control byte, a control byte after a quote) must not change the answer.
                let later = if special < 0x20 { b'"' } else { 0x01 };
                for position in 0..=length {
                    let mut bytes: Vec<u8> = (0..length).map(|n| plain[n % plain.len()]).collect();
                    let expected = (position < length).then(|| {
                        bytes[position] = special;
                        for after in [position + 3, position + 40] {
                            if after < length {
                                bytes[after] = later;
                            }
                        }
                        position
                    });
                    assert_eq!(find_special(&bytes), expected, "{bytes:?}");
                }
            }
        }
    }

    use super::*;

    #[test]
    fn a_known_plain_string_answers_as_find_special_does() {
        let token = format!("kauth-{}", "eyJhbGciOiJIUzI1NiJ9.".repeat(10));
        let mut known = KnownPlainString::new();
        // Nothing remembered yet, then the token, then texts that start like it but differ:
        // shorter, longer, one byte changed anywhere, a special byte anywhere, no closing quote.
        let mut texts = vec![format!("{token}\"}}"), format!("{token}\"}}")];
        texts.push(format!("{}\"}}", &token[..token.len() - 1]));
        texts.push(format!("{token}x\"}}"));
        texts.push(token.clone());
        texts.push(format!("{token}\\\"\"}}"));
        for at in 0..token.len() {
            for byte in [b'A', b'"', b'\\', 0x01] {
                let mut changed = token.clone().into_bytes();
                changed[at] = byte;
                changed.extend_from_slice(b"\"}");
                texts.push(String::from_utf8(changed).unwrap());
            }
            // The token again, so the next text is compared with it.
            texts.push(format!("{token}\"}}"));
        }
        for text in &texts {
            assert_eq!(
                known.find_special(text.as_bytes()),
                find_special(text.as_bytes()),
                "{text:?}"
            );
        }
        // Short strings and strings with escapes are not remembered; a long plain one is.
        let mut known = KnownPlainString::new();
        known.find_special(b"short\"}");
        known.find_special(format!("{}\\n\"", "a".repeat(100)).as_bytes());
        assert!(known.bytes.is_empty());
        known.find_special(format!("{token}\"").as_bytes());
        assert_eq!(known.bytes, token.as_bytes());
    }

    #[test]
    fn the_escape_check_sees_every_special_byte_at_every_position() {
        for length in 0..20 {
            let plain = "a".repeat(length);
            assert!(!needs_escape(plain.as_bytes()));
            for at in 0..length {
                for special in [0u8, 0x1f, b'"', b'\\'] {
                    let mut bytes = plain.clone().into_bytes();
                    bytes[at] = special;
                    assert!(needs_escape(&bytes), "{bytes:?}");
                }
                for fine in [0x20u8, b'!', b'#', b'[', b']', 0x7f, 0x80, 0xff] {
                    let mut bytes = plain.clone().into_bytes();
                    bytes[at] = fine;
                    assert!(!needs_escape(&bytes), "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn numbers_are_written_in_decimal() {
        for value in [0, 7, 10, 1_764_432_000_000, u64::MAX] {
            let mut out = String::from("n=");
            push_u64(&mut out, value);
            assert_eq!(out, format!("n={value}"));
        }
    }

    #[test]
    fn strings_are_escaped() {
        let cases = [
            ("plain", r#""plain""#),
            ("a\"b", r#""a\"b""#),
            ("back\\slash", r#""back\\slash""#),
            ("line\nbreak\t", r#""line\nbreak\t""#),
            ("\u{1}", r#""\u0001""#),
            ("é✓", "\"é✓\""),
        ];
        for (input, expected) in cases {
            let mut out = String::new();
            push_str(&mut out, input);
            assert_eq!(out, expected);
            let back: String = serde_json::from_str(&out).unwrap();
            assert_eq!(back, input);
        }
    }

    #[test]
    fn members_are_spliced() {
        let cases = [
            (r#"{"a":1}"#, Some(r#"{"a":1,"room":"r-1"}"#)),
            ("{}", Some(r#"{"room":"r-1"}"#)),
            ("{ } \n", Some(r#"{"room":"r-1"}"#)),
            ("[1]", None),
        ];
        for (object, expected) in cases {
            let mut out = Vec::new();
            let done = splice_room(&mut out, object, "r-1");
            assert_eq!(done, expected.is_some());
            if let Some(expected) = expected {
                assert_eq!(String::from_utf8(out).unwrap(), expected);
            }
        }
    }
}
