//! Answers: Kuzzle's response `content` for what the plugin answers itself, and the HTTP
//! response around any content (status, headers, `?pretty`, compression).

use std::io::Write;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::StatusCode;
use switchyard_plugin_api::errors::KuzzleError;
use switchyard_plugin_api::json;

/// An answer before its HTTP framing.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status (the response's `status`).
    pub status: u16,
    /// The response `content` (JSON), or nothing (`HEAD`).
    pub body: Bytes,
    /// Close the connection after this answer (the request body was not read to its end).
    pub close: bool,
}

impl Reply {
    /// An answer with the host's content.
    pub fn content(status: u16, body: Bytes) -> Reply {
        Reply {
            status,
            body,
            close: false,
        }
    }

    /// An error the plugin found, in Kuzzle's response shape.
    pub fn error(request_id: &str, error: &KuzzleError) -> Reply {
        let mut text = String::with_capacity(320);
        start(&mut text, request_id, error.status());
        error.write_json(&mut text);
        finish_null(&mut text, None, None);
        text.push_str("null}");
        Reply::content(error.status(), Bytes::from(text))
    }

    /// A success the plugin answers itself (`_healthcheck`, `_publicApi`, `OPTIONS`…);
    /// `result` is raw JSON.
    pub fn result(
        request_id: &str,
        status: u16,
        action: Option<(&str, &str)>,
        result: &str,
    ) -> Reply {
        let mut text = String::with_capacity(256 + result.len());
        start(&mut text, request_id, status);
        text.push_str("null");
        finish_null(&mut text, action.map(|a| a.0), action.map(|a| a.1));
        text.push_str(result);
        text.push('}');
        Reply::content(status, Bytes::from(text))
    }

    /// Marks the connection to be closed after this answer.
    pub fn closing(mut self) -> Reply {
        self.close = true;
        self
    }
}

/// `{"requestId":…,"status":…,"error":`
fn start(text: &mut String, request_id: &str, status: u16) {
    text.push_str("{\"requestId\":");
    json::push_str(text, request_id);
    text.push_str(",\"status\":");
    json::push_u64(text, status.into());
    text.push_str(",\"error\":");
}

/// `,"controller":…,"action":…,"collection":null,…,"result":`
fn finish_null(text: &mut String, controller: Option<&str>, action: Option<&str>) {
    for (key, value) in [("controller", controller), ("action", action)] {
        text.push_str(",\"");
        text.push_str(key);
        text.push_str("\":");
        match value {
            Some(value) => json::push_str(text, value),
            None => text.push_str("null"),
        }
    }
    text.push_str(
        ",\"collection\":null,\"index\":null,\"volatile\":null,\"headers\":{},\"result\":",
    );
}

/// A response compression a client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `Content-Encoding: gzip`.
    Gzip,
    /// `Content-Encoding: deflate` (zlib).
    Deflate,
}

/// Picks a compression from `Accept-Encoding`: the highest `q` among gzip and deflate (no `q`
/// means 1, `q=0` means refused), gzip on a tie. `None`: send as is.
pub fn negotiate(accept_encoding: Option<&HeaderValue>) -> Option<Compression> {
    let text = accept_encoding?.to_str().ok()?;
    let mut best: Option<(Compression, f32)> = None;
    for entry in text.split(',') {
        let mut parts = entry.split(';');
        let name = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let compression = match name.as_str() {
            "gzip" | "x-gzip" => Compression::Gzip,
            "deflate" => Compression::Deflate,
            _ => continue,
        };
        let quality = parts
            .filter_map(|parameter| parameter.trim().strip_prefix("q="))
            .find_map(|value| value.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if quality <= 0.0 {
            continue;
        }
        best = match best {
            Some((current, q)) if q > quality => Some((current, q)),
            Some((Compression::Gzip, q)) if q == quality => Some((Compression::Gzip, q)),
            _ => Some((compression, quality)),
        };
    }
    best.map(|(compression, _)| compression)
}

/// Compresses `body`; `None` if the encoder failed (the body is then sent as is).
pub fn compress(body: &[u8], compression: Compression) -> Option<Vec<u8>> {
    let level = flate2::Compression::fast();
    match compression {
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 2), level);
            encoder.write_all(body).ok()?;
            encoder.finish().ok()
        }
        Compression::Deflate => {
            let mut encoder =
                flate2::write::ZlibEncoder::new(Vec::with_capacity(body.len() / 2), level);
            encoder.write_all(body).ok()?;
            encoder.finish().ok()
        }
    }
}

/// Re-indents a JSON body with two spaces (`?pretty`); unchanged if it is not JSON.
pub fn pretty(body: &Bytes) -> Bytes {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => serde_json::to_vec_pretty(&value).map_or_else(|_| body.clone(), Bytes::from),
        Err(_) => body.clone(),
    }
}

/// How the HTTP response around a `Reply` is framed.
#[derive(Debug)]
pub struct Framing<'a> {
    /// Echoed as `X-Kuzzle-Request-Id`.
    pub request_id: &'a str,
    /// `?pretty` was given.
    pub pretty: bool,
    /// What `Accept-Encoding` allows (already `None` when compression is off).
    pub compression: Option<Compression>,
    /// `HEAD`: headers only.
    pub head: bool,
}

/// The HTTP response: status, `Content-Type`, `X-Kuzzle-Request-Id`, compression; the caller
/// adds CORS headers.
pub fn http_response(reply: Reply, framing: &Framing<'_>) -> hyper::Response<Full<Bytes>> {
    let mut body = if framing.pretty {
        pretty(&reply.body)
    } else {
        reply.body
    };
    // Grown on first insert to room for the usual handful (sized up front, it costs more).
    let mut headers = HeaderMap::new();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = HeaderValue::from_str(framing.request_id) {
        headers.insert(crate::exchange::X_KUZZLE_REQUEST_ID.clone(), value);
    }
    if framing.head {
        body = Bytes::new();
    } else if let Some(compression) = framing.compression {
        if let Some(compressed) = compress(&body, compression) {
            body = Bytes::from(compressed);
            headers.insert(
                hyper::header::CONTENT_ENCODING,
                HeaderValue::from_static(match compression {
                    Compression::Gzip => "gzip",
                    Compression::Deflate => "deflate",
                }),
            );
        }
    }
    if reply.close {
        headers.insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    }
    let mut response = hyper::Response::new(Full::new(body));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_plugin_api::errors;

    #[test]
    fn local_answers_have_kuzzles_shape() {
        let reply = Reply::error("r-1", &errors::NETWORK_HTTP_URL_NOT_FOUND.with(&["/x"]));
        assert_eq!(reply.status, 404);
        assert_eq!(
            std::str::from_utf8(&reply.body).unwrap(),
            r#"{"requestId":"r-1","status":404,"error":{"message":"API URL not found: /x.","status":404,"id":"network.http.url_not_found","code":50397191,"props":[]},"controller":null,"action":null,"collection":null,"index":null,"volatile":null,"headers":{},"result":null}"#
        );
        let reply = Reply::result("r-2", 200, Some(("server", "publicApi")), r#"{"a":1}"#);
        assert_eq!(
            std::str::from_utf8(&reply.body).unwrap(),
            r#"{"requestId":"r-2","status":200,"error":null,"controller":"server","action":"publicApi","collection":null,"index":null,"volatile":null,"headers":{},"result":{"a":1}}"#
        );
    }

    #[test]
    fn accept_encoding_is_negotiated() {
        let cases = [
            ("gzip", Some(Compression::Gzip)),
            ("deflate", Some(Compression::Deflate)),
            ("deflate, gzip", Some(Compression::Gzip)),
            ("gzip;q=0.5, deflate", Some(Compression::Deflate)),
            ("gzip;q=0, deflate;q=0", None),
            ("br, identity", None),
            ("GZIP;q=0.9, deflate;q=0.8", Some(Compression::Gzip)),
            ("*", None),
        ];
        for (header, expected) in cases {
            assert_eq!(
                negotiate(Some(&HeaderValue::from_static(header))),
                expected,
                "{header}"
            );
        }
        assert_eq!(negotiate(None), None);
    }

    #[test]
    fn pretty_indents_with_two_spaces_and_keeps_order() {
        let body = Bytes::from_static(br#"{"b":1,"a":[true]}"#);
        assert_eq!(
            std::str::from_utf8(&pretty(&body)).unwrap(),
            "{\n  \"b\": 1,\n  \"a\": [\n    true\n  ]\n}"
        );
    }
}
