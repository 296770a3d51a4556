//! Request bodies: content type and charset checks, reading with a size cap and a deadline,
//! `Content-Encoding` layers (gzip, deflate) decoded with the same cap on decoded bytes.
//!
//! Invariant: no more than `maxRequestSize` bytes are ever held for one body, compressed or
//! not; a gzip bomb stops at the cap with 413.

use std::io::Read;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use switchyard_plugin_api::errors::{self, KuzzleError};
use switchyard_plugin_kit::partial::PartialClaim;

use crate::errors::{NETWORK_HTTP_BODY_PARSE_FAILED, NETWORK_HTTP_COMPRESSION_DISABLED};

/// What a body's `Content-Type` says it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    /// `application/json`, or no `Content-Type` at all (Kuzzle parses it as JSON too).
    Json,
    /// `application/x-www-form-urlencoded`: keys become the body's string fields.
    Form,
}

/// Checks `Content-Type` as Kuzzle does: the media type must be JSON or a form, and a
/// `charset` parameter, when present, must be UTF-8.
pub fn content_kind(content_type: Option<&[u8]>) -> Result<ContentKind, KuzzleError> {
    let Some(raw) = content_type else {
        return Ok(ContentKind::Json);
    };
    let text = String::from_utf8_lossy(raw);
    let (media, parameters) = text.split_once(';').unwrap_or((&text, ""));
    let media = media.trim();
    let kind = if media.eq_ignore_ascii_case("application/json") {
        ContentKind::Json
    } else if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        ContentKind::Form
    } else {
        return Err(errors::NETWORK_HTTP_UNSUPPORTED_CONTENT.with(&[media]));
    };
    for parameter in parameters.split(';') {
        let Some((name, value)) = parameter.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("charset") {
            let charset = value.trim().trim_matches('"').to_ascii_lowercase();
            if charset != "utf-8" && charset != "utf8" {
                return Err(errors::NETWORK_HTTP_UNSUPPORTED_CHARSET.with(&[&charset]));
            }
        }
    }
    Ok(kind)
}

/// One `Content-Encoding` layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// RFC 1952 gzip (several members allowed).
    Gzip,
    /// HTTP's `deflate`: a zlib stream (RFC 1950), as Node's `zlib.inflate` reads it.
    Deflate,
}

/// Reads `Content-Encoding` into the layers to undo, outermost first. `identity` layers are
/// dropped. Checked before the body is read, so a refusal costs nothing.
pub fn encodings(
    header: Option<&[u8]>,
    max_layers: usize,
    allow_compression: bool,
) -> Result<Vec<Encoding>, KuzzleError> {
    let Some(raw) = header else {
        return Ok(Vec::new());
    };
    let text = String::from_utf8_lossy(raw).to_ascii_lowercase();
    let names: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    if names.len() > max_layers {
        return Err(errors::NETWORK_HTTP_TOO_MANY_ENCODINGS.error());
    }
    let mut layers = Vec::with_capacity(names.len());
    // Listed in the order they were applied: undo them from the last.
    for name in names.iter().rev() {
        match *name {
            "identity" => continue,
            "gzip" | "x-gzip" => layers.push(Encoding::Gzip),
            "deflate" => layers.push(Encoding::Deflate),
            other => return Err(errors::NETWORK_HTTP_UNSUPPORTED_COMPRESSION.with(&[other])),
        }
    }
    if !layers.is_empty() && !allow_compression {
        return Err(NETWORK_HTTP_COMPRESSION_DISABLED.error());
    }
    Ok(layers)
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// An answer to send (413, 400…).
    Refused(KuzzleError),
    /// The connection failed or the deadline passed: nothing sensible can be answered.
    Timeout,
    /// The client went away or broke HTTP framing mid-body.
    Broken(String),
}

/// The message of the 413 refusing a body past `maxTotalPartialBytes`.
pub const BUSY_MESSAGE: &str =
    "Maximum HTTP request size exceeded: the server holds too many unfinished request bodies; retry later.";

impl ReadError {
    fn too_large() -> ReadError {
        ReadError::Refused(errors::NETWORK_HTTP_REQUEST_TOO_LARGE.error())
    }

    /// 413 with its own message: this body is not too large, the server is too full.
    fn busy() -> ReadError {
        ReadError::Refused(KuzzleError {
            spec: errors::NETWORK_HTTP_REQUEST_TOO_LARGE,
            message: std::borrow::Cow::Borrowed(BUSY_MESSAGE),
        })
    }
}

/// Reads a whole body: at most `max` bytes (413 past it, without reading further) and within
/// `deadline`. The bytes received so far count in `partial` (the instance's
/// `maxTotalPartialBytes`) until the body is whole; past that total, a body over 64 KB is
/// refused with 413 and [`BUSY_MESSAGE`].
pub async fn read_capped<B>(
    body: B,
    max: usize,
    deadline: Duration,
    partial: &mut PartialClaim,
) -> Result<Bytes, ReadError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    if body.is_end_stream() {
        // No body (a GET): no deadline to arm.
        return Ok(Bytes::new());
    }
    let read = async move {
        let mut body = body;
        let mut buffer = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|error| ReadError::Broken(error.to_string()))?;
            if let Ok(data) = frame.into_data() {
                if buffer.len() + data.len() > max {
                    return Err(ReadError::too_large());
                }
                if partial.hold(buffer.len() + data.len()).is_err() {
                    return Err(ReadError::busy());
                }
                if buffer.is_empty() {
                    buffer = BytesMut::from(data);
                } else {
                    buffer.extend_from_slice(&data);
                }
            }
        }
        Ok(buffer.freeze())
    };
    tokio::time::timeout(deadline, read)
        .await
        .unwrap_or(Err(ReadError::Timeout))
}

/// Undoes `layers` (outermost first); decoded bytes are capped at `max` too.
pub fn decode(mut body: Bytes, layers: &[Encoding], max: usize) -> Result<Bytes, KuzzleError> {
    for layer in layers {
        let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max + 1));
        let cap = max as u64 + 1;
        let result = match layer {
            Encoding::Gzip => flate2::read::MultiGzDecoder::new(&body[..])
                .take(cap)
                .read_to_end(&mut out),
            Encoding::Deflate => flate2::read::ZlibDecoder::new(&body[..])
                .take(cap)
                .read_to_end(&mut out),
        };
        if out.len() > max {
            return Err(errors::NETWORK_HTTP_REQUEST_TOO_LARGE.error());
        }
        if let Err(error) = result {
            let name = match layer {
                Encoding::Gzip => "gzip",
                Encoding::Deflate => "deflate",
            };
            return Err(errors::NETWORK_HTTP_UNEXPECTED_ERROR
                .with(&[&format!("invalid {name} body: {error}")]));
        }
        body = Bytes::from(out);
    }
    Ok(body)
}

/// Parses a decoded body into the request's `body`: `None` when empty.
pub fn parse(body: &[u8], kind: ContentKind) -> Result<Option<serde_json::Value>, KuzzleError> {
    if body.is_empty() {
        return Ok(None);
    }
    match kind {
        ContentKind::Json => match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Null) => Ok(None),
            Ok(value) => Ok(Some(value)),
            Err(_) => {
                // Kuzzle quotes the first 50 characters of what it could not parse.
                let text = String::from_utf8_lossy(body);
                let excerpt: String = text.chars().take(50).collect();
                Err(NETWORK_HTTP_BODY_PARSE_FAILED.with(&[&excerpt]))
            }
        },
        ContentKind::Form => {
            let text = std::str::from_utf8(body).map_err(|_| {
                errors::NETWORK_HTTP_UNEXPECTED_ERROR.with(&["form body is not UTF-8"])
            })?;
            let mut object = serde_json::Map::new();
            for (key, value) in crate::router::query_pairs(text) {
                crate::router::insert_arg(&mut object, key, value);
            }
            Ok(Some(serde_json::Value::Object(object)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn content_types_and_charsets() {
        let cases: [(Option<&str>, Result<ContentKind, &str>); 10] = [
            (None, Ok(ContentKind::Json)),
            (Some("application/json"), Ok(ContentKind::Json)),
            (
                Some("Application/JSON; charset=UTF-8"),
                Ok(ContentKind::Json),
            ),
            (
                Some("application/json;charset=\"utf-8\""),
                Ok(ContentKind::Json),
            ),
            (
                Some("application/x-www-form-urlencoded"),
                Ok(ContentKind::Form),
            ),
            (Some("text/plain"), Err("network.http.unsupported_content")),
            (
                Some("multipart/form-data; boundary=x"),
                Err("network.http.unsupported_content"),
            ),
            (Some(""), Err("network.http.unsupported_content")),
            (
                Some("application/json; charset=latin1"),
                Err("network.http.unsupported_charset"),
            ),
            (
                Some("application/json; charset=ISO-8859-1"),
                Err("network.http.unsupported_charset"),
            ),
        ];
        for (header, expected) in cases {
            let got = content_kind(header.map(str::as_bytes)).map_err(|error| error.id());
            assert_eq!(got, expected, "{header:?}");
        }
        let error = content_kind(Some(b"application/json; charset=ISO-8859-1")).unwrap_err();
        assert_eq!(
            error.message,
            "Unsupported request charset. Expected \"utf-8\", got: \"iso-8859-1\"."
        );
        let error = content_kind(Some(b"text/plain; charset=utf-8")).unwrap_err();
        assert_eq!(
            error.message,
            "Invalid request content-type. Expected \"application/json\", got: \"text/plain\"."
        );
    }

    #[test]
    fn encodings_are_listed_in_application_order() {
        let cases: [(&str, Result<Vec<Encoding>, &str>); 7] = [
            ("gzip", Ok(vec![Encoding::Gzip])),
            ("identity", Ok(vec![])),
            ("deflate, gzip", Ok(vec![Encoding::Gzip, Encoding::Deflate])),
            ("GZIP", Ok(vec![Encoding::Gzip])),
            ("br", Err("network.http.unsupported_compression")),
            (
                "gzip, gzip, gzip, gzip",
                Err("network.http.too_many_encodings"),
            ),
            ("identity,identity,identity", Ok(vec![])),
        ];
        for (header, expected) in cases {
            let got = encodings(Some(header.as_bytes()), 3, true).map_err(|error| error.id());
            assert_eq!(got, expected, "{header}");
        }
        assert_eq!(
            encodings(Some(b"gzip"), 3, false).unwrap_err().id(),
            "network.http.compression_disabled"
        );
        assert_eq!(encodings(Some(b"identity"), 3, false).unwrap(), vec![]);
    }

    #[test]
    fn layers_are_decoded_with_the_cap_on_decoded_bytes() {
        let json = br#"{"a":1}"#;
        let both = gzip(&zlib(json));
        let decoded = decode(Bytes::from(both), &[Encoding::Gzip, Encoding::Deflate], 100).unwrap();
        assert_eq!(&decoded[..], json);

        // A bomb: 10 MB of zeros in about 10 KB; the cap stops it at 1 KB + 1.
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&vec![0u8; 10 << 20]).unwrap();
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 20_000, "{}", bomb.len());
        let error = decode(Bytes::from(bomb), &[Encoding::Gzip], 1024).unwrap_err();
        assert_eq!(error.id(), "network.http.request_too_large");
        assert_eq!(error.status(), 413);

        let exact = gzip(&[b' '; 1024]);
        assert_eq!(
            decode(Bytes::from(exact), &[Encoding::Gzip], 1024)
                .unwrap()
                .len(),
            1024
        );

        let error = decode(Bytes::from_static(b"not gzip"), &[Encoding::Gzip], 1024).unwrap_err();
        assert_eq!(error.id(), "network.http.unexpected_error");
        assert!(error
            .message
            .starts_with("Caught an unexpected HTTP error: invalid gzip body:"));
        let mut truncated = gzip(json);
        truncated.truncate(truncated.len() - 4);
        assert!(decode(Bytes::from(truncated), &[Encoding::Gzip], 1024).is_err());
    }

    #[test]
    fn bodies_parse_by_kind() {
        assert_eq!(parse(b"", ContentKind::Json).unwrap(), None);
        assert_eq!(parse(b"null", ContentKind::Json).unwrap(), None);
        assert_eq!(
            parse(br#"{"a":[1]}"#, ContentKind::Json).unwrap(),
            Some(serde_json::json!({"a":[1]}))
        );
        let error = parse(b"{not json", ContentKind::Json).unwrap_err();
        assert_eq!(
            error.message,
            "Unable to convert the HTTP body to JSON: {not json"
        );
        assert_eq!(error.status(), 400);
        let long = format!("{{{}", "x".repeat(100));
        let error = parse(long.as_bytes(), ContentKind::Json).unwrap_err();
        assert_eq!(
            error.message,
            format!(
                "Unable to convert the HTTP body to JSON: {{{}",
                "x".repeat(49)
            )
        );
        assert_eq!(
            parse(b"a=1&b=x+y&b=%C3%A9&c", ContentKind::Form).unwrap(),
            Some(serde_json::json!({"a":"1","b":["x y","é"],"c":true}))
        );
    }
}
