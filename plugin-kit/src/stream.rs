//! A connection's socket, plain TCP or TLS, and its read and write halves.
//!
//! Connection loops read on readiness (`readable()`, then `try_read` in the same poll, into a
//! thread's scratch buffer) and write with `try_write_vectored`: the plain halves are tokio's
//! own, so the plain path costs what it did before TLS existed (one enum match per call, no
//! lock, no copy, no allocation). The TLS halves share the rustls session behind a mutex held
//! only inside those non-async calls (never across an `.await`): the reader decrypts records
//! into the session's plaintext buffer and copies them out; the writer encrypts into the
//! session's buffer and sends it with `try_write`. Every byte a TLS half writes goes through the
//! session under the lock, so records never interleave.
//!
//! hyper (HTTP, Socket.io's polling) drives a whole [`Stream`] through `AsyncRead` and
//! `AsyncWrite`; Socket.io takes it back after a WebSocket upgrade and splits it like the
//! others.

use std::future::Future;
use std::io::{self, BufRead, IoSlice, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use rustls::ServerConnection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// An accepted connection after its handshake (if any).
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP, handshake done (boxed: the session is large, the plain path stays small).
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// The TCP socket underneath.
    #[inline]
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(stream) => stream,
            Stream::Tls(stream) => stream.get_ref().0,
        }
    }

    /// Sets `TCP_NODELAY` on the socket underneath.
    #[inline]
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.tcp().set_nodelay(nodelay)
    }

    /// Splits the stream into a read half and a write half, each usable from its own task.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Plain(stream) => {
                let (read, write) = stream.into_split();
                (ReadHalf::Plain(read), WriteHalf::Plain(write))
            }
            Stream::Tls(stream) => {
                let (tcp, session) = stream.into_inner();
                let session = Arc::new(Mutex::new(session));
                let (read, write) = tcp.into_split();
                (
                    ReadHalf::Tls(TlsRead {
                        tcp: read,
                        session: session.clone(),
                    }),
                    WriteHalf::Tls(TlsWrite {
                        tcp: write,
                        session,
                    }),
                )
            }
        }
    }
}

impl AsyncRead for Stream {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(stream) => stream.is_write_vectored(),
            Stream::Tls(stream) => stream.is_write_vectored(),
        }
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The reading side of a connection.
#[derive(Debug)]
pub enum ReadHalf {
    /// Plain TCP: tokio's half, unchanged.
    Plain(OwnedReadHalf),
    /// TLS: records read from the socket, decrypted through the shared session.
    Tls(TlsRead),
}

/// The TLS reading side: the socket's read half and the session it shares with the writer.
#[derive(Debug)]
pub struct TlsRead {
    tcp: OwnedReadHalf,
    session: Arc<Mutex<ServerConnection>>,
}

impl ReadHalf {
    /// Waits until [`ReadHalf::try_read`] has something to say: data, the end of the stream or
    /// an error. Cancel-safe (a `select!` branch): records read so far stay in the session.
    ///
    /// A `poll_fn` over tokio's `poll_read_ready`, inlined into the caller's `select!`: an
    /// `async fn` wrapper around tokio's `readable()` cost ~290 instructions per WebSocket round
    /// trip, and an `Either` of the two futures as much; this costs ~47 (tokio's cooperative
    /// budget check, which `readable()` skips). Measured with callgrind,
    /// `bench/scripts/ws-instructions-per-request.sh` (BENCHMARKS.md).
    #[inline]
    pub fn readable(&self) -> impl Future<Output = io::Result<()>> + '_ {
        std::future::poll_fn(move |cx| self.poll_readable(cx))
    }

    /// [`ReadHalf::readable`] as a poll: only the task that polled last is woken.
    #[inline]
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            ReadHalf::Plain(read) => read.as_ref().poll_read_ready(cx),
            ReadHalf::Tls(tls) => tls.poll_readable(cx),
        }
    }

    /// Reads what is there into `buffer` without waiting: `Ok(0)` at the end of the stream,
    /// `WouldBlock` when nothing is.
    #[inline]
    pub fn try_read(&self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            ReadHalf::Plain(read) => read.try_read(buffer),
            ReadHalf::Tls(tls) => tls.read_with(|reader| reader.read(buffer)),
        }
    }

    /// [`ReadHalf::try_read`], appending to `buffer` within its spare capacity (at least one
    /// byte of which the caller reserved).
    #[inline]
    pub fn try_read_buf(&self, buffer: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            ReadHalf::Plain(read) => read.try_read_buf(buffer),
            ReadHalf::Tls(tls) => tls.read_with(|reader| {
                let spare = buffer.capacity() - buffer.len();
                let chunk = reader.fill_buf()?;
                let taken = chunk.len().min(spare);
                buffer.extend_from_slice(&chunk[..taken]);
                reader.consume(taken);
                Ok(taken)
            }),
        }
    }
}

impl TlsRead {
    /// Ready once plaintext, the end or an error is there; else waits for the socket.
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if pump(self.tcp.as_ref(), &mut self.session.lock()) {
                return Poll::Ready(Ok(()));
            }
            // `pump` left the socket's readiness cleared: this registers the waker, unless
            // records arrived meanwhile (then pump again).
            if let Poll::Ready(ready) = self.tcp.as_ref().poll_read_ready(cx) {
                ready?;
            } else {
                return Poll::Pending;
            }
        }
    }

    /// Pulls records from the socket until plaintext is there, then lets `read` take it.
    fn read_with(
        &self,
        read: impl FnOnce(&mut rustls::Reader<'_>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut session = self.session.lock();
        let ready = pump(self.tcp.as_ref(), &mut session);
        match read(&mut session.reader()) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock && ready => {
                // Ready without plaintext: the session failed (a bad record, a bad certificate
                // late in the handshake) or the socket ended.
                match session.process_new_packets() {
                    Err(error) => Err(io::Error::new(io::ErrorKind::InvalidData, error)),
                    Ok(_) => Err(io::ErrorKind::UnexpectedEof.into()),
                }
            }
            other => other,
        }
    }
}

/// Reads and decrypts records until plaintext is buffered (true), the peer closed or the
/// session failed (true: the next read reports it), or the socket has nothing more (false, its
/// readiness cleared). Sends what the session must answer on its own (alerts, key updates).
fn pump(tcp: &TcpStream, session: &mut ServerConnection) -> bool {
    loop {
        let state = session.process_new_packets();
        if session.wants_write() {
            let _ = flush(tcp, session);
        }
        match state {
            Err(_) => return true,
            Ok(state) if state.plaintext_bytes_to_read() > 0 || state.peer_has_closed() => {
                return true
            }
            Ok(_) => {}
        }
        match session.read_tls(&mut Socket(tcp)) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// Sends what the session holds encrypted; `WouldBlock` if the socket takes only part of it.
fn flush(tcp: &TcpStream, session: &mut ServerConnection) -> io::Result<()> {
    while session.wants_write() {
        if session.write_tls(&mut Socket(tcp))? == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
    }
    Ok(())
}

/// The writing side of a connection.
#[derive(Debug)]
pub enum WriteHalf {
    /// Plain TCP: tokio's half, unchanged.
    Plain(OwnedWriteHalf),
    /// TLS: plaintext encrypted through the shared session, records sent on the socket.
    Tls(TlsWrite),
}

/// The TLS writing side. Dropping it sends `close_notify` (best effort), then the FIN.
#[derive(Debug)]
pub struct TlsWrite {
    tcp: OwnedWriteHalf,
    session: Arc<Mutex<ServerConnection>>,
}

impl WriteHalf {
    /// Waits until the socket may take more.
    #[inline]
    pub async fn writable(&self) -> io::Result<()> {
        match self {
            WriteHalf::Plain(write) => write.writable().await,
            WriteHalf::Tls(tls) => tls.tcp.writable().await,
        }
    }

    /// Writes what the socket takes now of `slices`; `WouldBlock` when it takes nothing. Over
    /// TLS, the count is of plaintext bytes taken; their records may still wait in the
    /// session ([`WriteHalf::holds_unsent`]).
    #[inline]
    pub fn try_write_vectored(&self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            WriteHalf::Plain(write) => write.try_write_vectored(slices),
            WriteHalf::Tls(tls) => {
                let tcp = tls.tcp.as_ref();
                let mut session = tls.session.lock();
                // Records from the last call go first; new plaintext is taken only once they
                // are out, so the session holds at most one batch.
                flush(tcp, &mut session)?;
                let taken = session.writer().write_vectored(slices)?;
                match flush(tcp, &mut session) {
                    Err(error) if error.kind() != io::ErrorKind::WouldBlock => Err(error),
                    _ => Ok(taken),
                }
            }
        }
    }

    /// Writes all of `bytes`, waiting for the socket as needed.
    pub async fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
        let mut unsent = bytes;
        while !unsent.is_empty() {
            match self.try_write_vectored(&[IoSlice::new(unsent)]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => unsent = &unsent[written..],
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                Err(error) => return Err(error),
            }
        }
        while self.holds_unsent() {
            match self.try_flush() {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                other => other?,
            }
        }
        Ok(())
    }

    /// True while TLS records wait in the session for the socket (never for plain TCP).
    #[inline]
    pub fn holds_unsent(&self) -> bool {
        match self {
            WriteHalf::Plain(_) => false,
            WriteHalf::Tls(tls) => tls.session.lock().wants_write(),
        }
    }

    /// Sends waiting TLS records; `WouldBlock` if some still wait.
    #[inline]
    pub fn try_flush(&self) -> io::Result<()> {
        match self {
            WriteHalf::Plain(_) => Ok(()),
            WriteHalf::Tls(tls) => flush(tls.tcp.as_ref(), &mut tls.session.lock()),
        }
    }
}

impl Drop for TlsWrite {
    fn drop(&mut self) {
        let mut session = self.session.lock();
        session.send_close_notify();
        let _ = flush(self.tcp.as_ref(), &mut session);
    }
}

/// `Read` and `Write` on a tokio socket without waiting (`WouldBlock` instead), as rustls
/// wants them.
struct Socket<'a>(&'a TcpStream);

impl Read for Socket<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buffer)
    }
}

impl Write for Socket<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.try_write(bytes)
    }

    fn write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(slices)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
