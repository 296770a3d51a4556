//! TLS for every protocol: a section's `ssl` keys (certificate chain, private key, optional
//! client CA) loaded into a rustls `ServerConfig` (TLS 1.2 and 1.3 only, the `ring` provider),
//! the handshake of each accepted socket, and the certificates reloaded on SIGHUP.
//!
//! Reloading swaps the `ServerConfig` new handshakes start from: connections already open keep
//! the session they negotiated. Each plugin carries its own copy of tokio, whose signal handling
//! (signal-hook-registry) chains to the handler installed before it, so every TLS-enabled
//! instance of every plugin sees the same SIGHUP; the host's own SIGINT and SIGTERM handlers are
//! untouched. A reload that fails (a file missing or broken mid-rotation) keeps the certificates
//! in use and logs why.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rustls::crypto::ring as provider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use switchyard_plugin_api::BoxError;
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tracing::{debug, info, warn};

use crate::stream::Stream;

/// How long a client has to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of a TLS record carrying a handshake message: what a TLS client sends first.
const HANDSHAKE_RECORD: u8 = 0x16;

/// What a plain-text HTTP client (a `ws://` or `http://` URL aimed at a TLS port) reads.
pub const PLAIN_HTTP_REFUSAL: &str =
    "this port speaks TLS: use https:// or wss:// URLs to reach it";

/// A section's `ssl` table as written.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawTls {
    /// The certificate chain, PEM, the server's own certificate first.
    pub certificate: PathBuf,
    /// The private key of the first certificate, PEM (PKCS#8, PKCS#1 or SEC1).
    pub private_key: PathBuf,
    /// CA certificates, PEM: when set, clients must present a certificate they signed.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// Validated TLS settings: where the files are (read again on each reload) and what they held
/// at start-up. Two settings are equal when they name the same files.
#[derive(Clone)]
pub struct TlsSettings {
    /// The files and the section's path, for messages.
    files: RawTls,
    /// `server.protocols.<name>.ssl`.
    section: String,
    /// The configuration new handshakes use until the next reload.
    config: Arc<ServerConfig>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl PartialEq for TlsSettings {
    fn eq(&self, other: &Self) -> bool {
        self.files.certificate == other.files.certificate
            && self.files.private_key == other.files.private_key
            && self.files.client_ca == other.files.client_ca
    }
}

impl Eq for TlsSettings {}

/// Reads and checks a section's `ssl` table (`section` is the protocol's section path): every
/// problem names its key (`server.protocols.websocket.ssl.certificate`), the file and why.
pub fn validate(raw: Option<&RawTls>, section: &str) -> Result<Option<TlsSettings>, BoxError> {
    let Some(raw) = raw else { return Ok(None) };
    let section = format!("{section}.ssl");
    let config = load(raw, &section)?;
    Ok(Some(TlsSettings {
        files: raw.clone(),
        section,
        config,
    }))
}

impl TlsSettings {
    /// `wss` for `ws`, `https` for `http`, `mqtts` for `mqtt`: the scheme of URLs over TLS.
    pub fn secure_scheme(scheme: &'static str) -> &'static str {
        match scheme {
            "ws" => "wss",
            "http" => "https",
            "mqtt" => "mqtts",
            other => other,
        }
    }
}

fn load(raw: &RawTls, section: &str) -> Result<Arc<ServerConfig>, String> {
    let certificate_key = format!("{section}.certificate");
    let chain = read_certificates(&raw.certificate, &certificate_key)?;
    let key_key = format!("{section}.privateKey");
    let key = PrivateKeyDer::from_pem_file(&raw.private_key).map_err(|error| {
        describe(
            &key_key,
            &raw.private_key,
            error,
            "PEM PRIVATE KEY block (PKCS#8, RSA or EC)",
        )
    })?;
    // `ring`, not aws-lc-rs: building aws-lc needs cmake and clang. rustls 0.23.48 deprecates
    // this provider for lacking post-quantum key exchange; X25519 and the NIST curves remain.
    #[allow(deprecated)]
    let provider = Arc::new(provider::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|error| format!("{section}: {error}"))?;
    let builder = match &raw.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let ca_key = format!("{section}.clientCa");
            let mut roots = RootCertStore::empty();
            for certificate in read_certificates(path, &ca_key)? {
                roots.add(certificate).map_err(|error| {
                    format!(
                        "{ca_key}: {}: not a usable CA certificate: {error}",
                        path.display()
                    )
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|error| format!("{ca_key}: {}: {error}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(chain, key).map_err(|error| {
        format!(
            "{key_key}: {} does not go with {}: {error}",
            raw.private_key.display(),
            raw.certificate.display()
        )
    })?;
    Ok(Arc::new(config))
}

fn read_certificates(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let expected = "PEM CERTIFICATE blocks";
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| describe(key, path, error, expected))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| describe(key, path, error, expected))?;
    if certificates.is_empty() {
        return Err(describe(key, path, pem::Error::NoItemsFound, expected));
    }
    Ok(certificates)
}

fn describe(key: &str, path: &Path, error: pem::Error, expected: &str) -> String {
    let path = path.display();
    match error {
        pem::Error::Io(error) => format!("{key}: cannot read {path}: {error}"),
        pem::Error::NoItemsFound => format!("{key}: {path} holds no {expected}"),
        other => format!("{key}: {path} is not valid PEM: {other}"),
    }
}

/// A listener's TLS: the configuration handshakes start from, swapped on reload.
pub struct Tls {
    /// The files, read again on reload.
    settings: TlsSettings,
    /// The current configuration (the lock is held only to clone or swap the `Arc`).
    current: RwLock<Arc<ServerConfig>>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// A listener's TLS, starting from what `settings` loaded.
    pub fn new(settings: TlsSettings) -> Tls {
        Tls {
            current: RwLock::new(settings.config.clone()),
            settings,
        }
    }

    /// Reads the files again; new handshakes use them from now on. On failure the current
    /// certificates stay, and the error (naming the key and the file) is returned.
    pub fn reload(&self) -> Result<(), String> {
        let config = load(&self.settings.files, &self.settings.section)?;
        *self.current.write() = config;
        Ok(())
    }

    /// The handshake of an accepted socket, within [`HANDSHAKE_TIMEOUT`]. `None` when it fails
    /// (logged at debug level); a plain-text HTTP request gets a 400 saying the port speaks TLS.
    pub async fn accept(&self, stream: TcpStream, peer: SocketAddr) -> Option<Stream> {
        let config = self.current.read().clone();
        let handshake = async {
            if refuse_plain_text(&stream).await? {
                return Ok(None);
            }
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            acceptor.accept(stream).await.map(Some)
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok(Some(tls))) => Some(Stream::Tls(Box::new(tls))),
            Ok(Ok(None)) => {
                debug!(peer = %peer, "plain text on a TLS port: refused");
                None
            }
            Ok(Err(error)) => {
                debug!(peer = %peer, error = %error, "TLS handshake failed");
                None
            }
            Err(_) => {
                debug!(peer = %peer, "TLS handshake timed out");
                None
            }
        }
    }

    /// Reloads the certificates on every SIGHUP, on the runtime of `handle`, for as long as it
    /// runs. The handler is installed before this returns: a SIGHUP sent once the host printed
    /// its ready line cannot take the default action (ending the process).
    pub fn reload_on_sighup(self: &Arc<Self>, handle: &Handle) -> Result<(), BoxError> {
        let _context = handle.enter();
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|error| {
                format!(
                    "{}: cannot install the SIGHUP handler: {error}",
                    self.settings.section
                )
            })?;
        let tls = self.clone();
        handle.spawn(async move {
            while hangups.recv().await.is_some() {
                match tls.reload() {
                    Ok(()) => info!(
                        certificate = %tls.settings.files.certificate.display(),
                        "TLS certificates reloaded"
                    ),
                    Err(error) => warn!(
                        error = %error,
                        "TLS certificates not reloaded; the previous ones stay in use"
                    ),
                }
            }
        });
        Ok(())
    }
}

/// Answers a plain-text HTTP request on a TLS port with a 400 (browsers and curl then show why),
/// and says whether the socket was refused. Anything else that is not a TLS handshake (an MQTT
/// CONNECT) is left to the handshake, which fails and closes the socket.
async fn refuse_plain_text(stream: &TcpStream) -> io::Result<bool> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 || first[0] == HANDSHAKE_RECORD {
        return Ok(false);
    }
    if !first[0].is_ascii_uppercase() {
        return Ok(false);
    }
    // The socket is closed (dropped) by the caller right after.
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{PLAIN_HTTP_REFUSAL}",
        PLAIN_HTTP_REFUSAL.len()
    );
    let mut unsent = answer.as_bytes();
    while !unsent.is_empty() {
        stream.writable().await?;
        match stream.try_write(unsent) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => unsent = &unsent[written..],
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    // Closing with unread bytes would reset the connection, and the client could lose the
    // answer: the request (already here, it was peeked) is read and dropped first.
    let mut discard = [0u8; 4096];
    while matches!(stream.try_read(&mut discard), Ok(read) if read > 0) {}
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(certificate: &str, key: &str, ca: Option<&str>) -> RawTls {
        RawTls {
            certificate: certificate.into(),
            private_key: key.into(),
            client_ca: ca.map(PathBuf::from),
        }
    }

    fn error(raw: &RawTls) -> String {
        validate(Some(raw), "server.protocols.demo")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn missing_and_broken_files_name_the_key_and_the_file() {
        let folder = std::env::temp_dir().join(format!("kit-tls-{}", std::process::id()));
        std::fs::create_dir_all(&folder).unwrap();
        let empty = folder.join("empty.pem");
        std::fs::write(&empty, "not pem at all\n").unwrap();
        let broken = folder.join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let missing = folder.join("missing.pem");
        assert_eq!(
            error(&raw(missing.to_str().unwrap(), "k", None)),
            format!(
                "server.protocols.demo.ssl.certificate: cannot read {}: No such file or directory (os error 2)",
                missing.display()
            )
        );
        assert_eq!(
            error(&raw(empty.to_str().unwrap(), "k", None)),
            format!(
                "server.protocols.demo.ssl.certificate: {} holds no PEM CERTIFICATE blocks",
                empty.display()
            )
        );
        assert!(
            error(&raw(broken.to_str().unwrap(), "k", None)).starts_with(&format!(
                "server.protocols.demo.ssl.certificate: {} is not valid PEM: ",
                broken.display()
            ))
        );
        std::fs::remove_dir_all(&folder).unwrap();
    }

    #[test]
    fn schemes_over_tls() {
        assert_eq!(TlsSettings::secure_scheme("ws"), "wss");
        assert_eq!(TlsSettings::secure_scheme("http"), "https");
        assert_eq!(TlsSettings::secure_scheme("mqtt"), "mqtts");
    }
}
