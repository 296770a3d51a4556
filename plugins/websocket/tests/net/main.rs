//! The plugin over real sockets on 127.0.0.1, with a fake host: requests, bad input, RFC 6455
//! rules, keep-alive and fan-out. One test binary; `support` holds the fake host and raw client.

mod fanout;
mod protocol;
mod requests;
mod support;
