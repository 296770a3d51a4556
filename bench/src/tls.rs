//! `--tls` (`ws-rtt`, `http`): a CA and a server certificate for `localhost` made with the
//! `openssl` command (as `bench/scripts/ws-instructions-per-request.sh` does with `TLS=1`), the
//! `[server.protocols.<name>.ssl]` table naming them, and a rustls client trusting that CA, so
//! switchyard is measured over TLS against the same requests in plain text.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The files of a throwaway PKI (deleted when dropped).
pub struct Pki {
    _folder: tempfile::TempDir,
    ca: PathBuf,
    certificate: PathBuf,
    key: PathBuf,
}

impl Pki {
    /// A P-256 CA and a server certificate for `localhost` it signed.
    pub fn generate() -> anyhow::Result<Pki> {
        let folder = tempfile::tempdir()?;
        let run = |args: &[&str]| -> anyhow::Result<()> {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(folder.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .context("--tls makes its certificates with the openssl command")?;
            anyhow::ensure!(status.success(), "openssl {} failed", args.join(" "));
            Ok(())
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=bench CA",
        ])?;
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ])?;
        std::fs::write(
            folder.path().join("server.ext"),
            "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )?;
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "1",
            "-days",
            "1",
            "-out",
            "server.pem",
            "-extfile",
            "server.ext",
        ])?;
        Ok(Pki {
            ca: folder.path().join("ca.pem"),
            certificate: folder.path().join("server.pem"),
            key: folder.path().join("server.key"),
            _folder: folder,
        })
    }

    /// The `ssl` table of protocol section `name`, after that section.
    pub fn ssl_section(&self, name: &str) -> String {
        format!(
            "[server.protocols.{name}.ssl]\ncertificate = {:?}\nprivateKey = {:?}\n",
            self.certificate, self.key
        )
    }

    /// A client trusting the CA (TLS 1.3 or 1.2, the `ring` provider, as the server).
    pub fn connector(&self) -> anyhow::Result<TlsConnector> {
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_file_iter(&self.ca)? {
            roots.add(certificate?)?;
        }
        // The provider plugin-kit serves with (rustls deprecates it for lacking post-quantum
        // key exchange; the bench measures what the server does).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsConnector::from(Arc::new(config)))
    }
}

/// A client connection, in plain text or over TLS.
pub enum Stream {
    /// TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

/// Connects to `address` (TCP_NODELAY), then does the TLS handshake for `localhost` when
/// `tls` is given.
pub async fn connect(address: &str, tls: Option<&TlsConnector>) -> io::Result<Stream> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    match tls {
        None => Ok(Stream::Plain(stream)),
        Some(connector) => {
            let name = ServerName::try_from("localhost").expect("a valid name");
            Ok(Stream::Tls(Box::new(
                connector.connect(name, stream).await?,
            )))
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The record of switchyard measured over TLS (`--tls`).
pub const TLS_TARGET: &str = "switchyard (TLS)";

/// `TLS / plain` for `key`, rounded to 0.001 (null without `--tls`).
pub fn tls_vs_plain(results: &[serde_json::Value], key: &str) -> serde_json::Value {
    let figure = |target: &str| {
        results
            .iter()
            .find(|result| result["target"] == target)
            .and_then(|result| result[key].as_f64())
    };
    match (figure(TLS_TARGET), figure("switchyard")) {
        (Some(tls), Some(plain)) if plain > 0.0 => {
            serde_json::json!((tls / plain * 1000.0).round() / 1000.0)
        }
        _ => serde_json::Value::Null,
    }
}
