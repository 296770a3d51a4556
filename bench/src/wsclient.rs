//! A minimal WebSocket client for load generation: handshake, masked text frames out, unmasked
//! frames in. It does far less than a real client on purpose: at two million deliveries a second
//! the generator must cost less than the server it measures.

use std::io;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use crate::tls::{self, Stream};

/// A connected client.
pub struct WsClient {
    reader: WsReader,
    writer: WsWriter,
}

/// The receiving half of a client.
pub struct WsReader {
    /// A TCP read half, or a TLS stream's (`--tls`): one virtual call per read.
    stream: Box<dyn AsyncRead + Unpin + Send>,
    buffer: BytesMut,
}

/// The sending half of a client.
pub struct WsWriter {
    stream: Box<dyn AsyncWrite + Unpin + Send>,
}

/// One frame received.
pub struct Frame<'a> {
    /// The opcode (1 text, 2 binary, 8 close, 9 ping, 10 pong).
    pub opcode: u8,
    /// The payload.
    pub payload: &'a [u8],
}

impl WsClient {
    /// Connects to `address` (`127.0.0.1:7512`) and completes the opening handshake.
    pub async fn connect(address: &str) -> io::Result<WsClient> {
        WsClient::connect_path(address, "/").await
    }

    /// Connects to `address` and completes the opening handshake for `path` (a Socket.io
    /// client would ask for `/socket.io/?EIO=4&transport=websocket`).
    pub async fn connect_path(address: &str, path: &str) -> io::Result<WsClient> {
        WsClient::connect_with(address, path, None).await
    }

    /// Connects to `address`, over TLS when `tls` is given (`--tls`), and completes the
    /// opening handshake for `path`.
    pub async fn connect_with(
        address: &str,
        path: &str,
        tls: Option<&TlsConnector>,
    ) -> io::Result<WsClient> {
        let mut stream = tls::connect(address, tls).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut buffer = BytesMut::with_capacity(4096);
        loop {
            if stream.read_buf(&mut buffer).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed during the handshake",
                ));
            }
            if let Some(end) = find(&buffer, b"\r\n\r\n") {
                if !buffer.starts_with(b"HTTP/1.1 101") {
                    let text = String::from_utf8_lossy(&buffer[..end]).to_string();
                    return Err(io::Error::other(format!("handshake refused: {text}")));
                }
                buffer.advance(end + 4);
                let (read, write): (
                    Box<dyn AsyncRead + Unpin + Send>,
                    Box<dyn AsyncWrite + Unpin + Send>,
                ) = match stream {
                    Stream::Plain(stream) => {
                        let (read, write) = stream.into_split();
                        (Box::new(read), Box::new(write))
                    }
                    tls => {
                        let (read, write) = tokio::io::split(tls);
                        (Box::new(read), Box::new(write))
                    }
                };
                return Ok(WsClient {
                    reader: WsReader {
                        stream: read,
                        buffer,
                    },
                    writer: WsWriter { stream: write },
                });
            }
        }
    }

    /// Sends one masked text frame.
    pub async fn send_text(&mut self, text: &[u8]) -> io::Result<()> {
        self.writer.send_text(text).await
    }

    /// Waits for a text frame whose payload contains `needle`; returns it.
    pub async fn wait_for(&mut self, needle: &str) -> io::Result<String> {
        self.reader.wait_for(needle).await
    }

    /// Its sending half.
    pub fn writer_mut(&mut self) -> &mut WsWriter {
        &mut self.writer
    }

    /// Its receiving half.
    pub fn reader_mut(&mut self) -> &mut WsReader {
        &mut self.reader
    }

    /// Splits the client into its halves.
    pub fn split(self) -> (WsReader, WsWriter) {
        (self.reader, self.writer)
    }
}

impl WsWriter {
    /// Sends one masked text frame.
    pub async fn send_text(&mut self, text: &[u8]) -> io::Result<()> {
        let mut frame = Vec::with_capacity(text.len() + 14);
        encode_text(&mut frame, text);
        self.stream.write_all(&frame).await
    }

    /// Sends several pre-encoded frames at once.
    pub async fn send_raw(&mut self, frames: &[u8]) -> io::Result<()> {
        self.stream.write_all(frames).await
    }
}

impl WsReader {
    /// Reads frames as they arrive, calling `on_frame` for each, until it returns false or the
    /// connection closes (then returns Ok(false)).
    pub async fn read_frames(
        &mut self,
        mut on_frame: impl FnMut(Frame<'_>) -> bool,
    ) -> io::Result<bool> {
        loop {
            while let Some((opcode, start, end)) = parse(&self.buffer) {
                let keep_going = on_frame(Frame {
                    opcode,
                    payload: &self.buffer[start..end],
                });
                self.buffer.advance(end);
                if opcode == 8 {
                    return Ok(false);
                }
                if !keep_going {
                    return Ok(true);
                }
            }
            if self.buffer.capacity() - self.buffer.len() < 16 * 1024 {
                self.buffer.reserve(64 * 1024);
            }
            if self.stream.read_buf(&mut self.buffer).await? == 0 {
                return Ok(false);
            }
        }
    }

    /// Waits for a text frame whose payload contains `needle`; returns it.
    pub async fn wait_for(&mut self, needle: &str) -> io::Result<String> {
        let mut found = None;
        let open = self
            .read_frames(|frame| {
                if frame.opcode == 1 && find(frame.payload, needle.as_bytes()).is_some() {
                    found = Some(String::from_utf8_lossy(frame.payload).to_string());
                    false
                } else {
                    true
                }
            })
            .await?;
        match found {
            Some(text) => Ok(text),
            None if !open => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed")),
            None => Err(io::Error::other("no frame")),
        }
    }
}

/// Appends a masked text frame (mask 0: the payload is sent as is, which RFC 6455 allows).
pub fn encode_text(out: &mut Vec<u8>, text: &[u8]) {
    out.push(0x81);
    let len = text.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(text);
}

/// `(opcode, payload start, frame end)` of the first complete frame in `buffer`.
fn parse(buffer: &[u8]) -> Option<(u8, usize, usize)> {
    if buffer.len() < 2 {
        return None;
    }
    let opcode = buffer[0] & 0x0f;
    let short = (buffer[1] & 0x7f) as usize;
    let (len, header) = match short {
        126 => {
            if buffer.len() < 4 {
                return None;
            }
            (u16::from_be_bytes([buffer[2], buffer[3]]) as usize, 4)
        }
        127 => {
            if buffer.len() < 10 {
                return None;
            }
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&buffer[2..10]);
            (u64::from_be_bytes(bytes) as usize, 10)
        }
        len => (len, 2),
    };
    let end = header + len;
    (buffer.len() >= end).then_some((opcode, header, end))
}

/// The position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Reads the number after `"ts":` in a payload.
pub fn timestamp(payload: &[u8]) -> Option<u64> {
    let at = find(payload, b"\"ts\":")? + 5;
    let digits = payload[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&payload[at..at + digits])
        .ok()?
        .parse()
        .ok()
}
