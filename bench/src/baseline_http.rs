//! The HTTP baselines, run in their own process by this same binary (`__baseline-http
//! [THREADS]`): a bare hyper HTTP/1.1 server with keep-alive answering every request with a
//! fixed JSON body of the size and shape of a real `server:now` response, with the same headers
//! — what the same exchange costs with no host and no plugin layer. Same hyper builder settings
//! as the plugin (keep-alive, a header-read timer). Two runtime shapes: tokio's multi-thread
//! runtime (one worker per core, `#[tokio::main]`'s: the usual bare hyper server, and the
//! reference of the speed target), and with `1` a single current-thread runtime (the shape of
//! the HTTP plugin's one request thread on a 2-core machine: the stricter comparison).

use std::convert::Infallible;
use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};

/// What the baseline answers: the shape and size of the plugin's `GET /_now` answer.
pub const FIXED_BODY: &str = r#"{"requestId":"3f9a12c0-123456","status":200,"error":null,"controller":"server","action":"now","collection":null,"index":null,"volatile":null,"headers":{},"result":{"now":1764432000000}}"#;

/// The headers the plugin sends with that answer (Kuzzle's CORS defaults included), fixed.
const HEADERS: &[(&str, &str)] = &[
    ("content-type", "application/json"),
    ("x-kuzzle-request-id", "3f9a12c0-123456"),
    (
        "access-control-allow-headers",
        "Content-Type, Access-Control-Allow-Headers, Authorization, X-Requested-With, \
         Content-Encoding, Content-Length, X-Kuzzle-Volatile",
    ),
    (
        "access-control-allow-methods",
        "GET,POST,PUT,PATCH,DELETE,OPTIONS,HEAD",
    ),
];

/// Runs the server on loopback, any free port; prints `listening on 127.0.0.1:PORT` once ready.
/// `single_thread`: one current-thread runtime instead of tokio's multi-thread one. Never
/// returns.
pub fn run_http(single_thread: bool) -> anyhow::Result<()> {
    let runtime = if single_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    };
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on {}", listener.local_addr()?);
        std::io::stdout().flush()?;
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .keep_alive(true);
        let builder = std::sync::Arc::new(builder);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let builder = builder.clone();
            tokio::spawn(async move {
                let service = service_fn(|_request| async {
                    let mut response =
                        hyper::Response::new(Full::new(Bytes::from_static(FIXED_BODY.as_bytes())));
                    let headers = response.headers_mut();
                    for (name, value) in HEADERS {
                        headers.insert(*name, hyper::header::HeaderValue::from_static(value));
                    }
                    Ok::<_, Infallible>(response)
                });
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
