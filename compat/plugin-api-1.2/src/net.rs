//! Listening sockets, made in one place for every protocol.
//!
//! A later host version will hand plugins pre-opened sockets (restarts without dropping
//! clients, an append-only host-API addition): only `bind_listener` will then change.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};

use crate::sdk::BoxError;

/// Binds `address:port` for protocol `protocol` in **non-blocking** mode, for an async
/// runtime (`tokio::net::TcpListener::from_std`). A port in use fails with a message naming
/// the protocol and the key to change.
///
/// Do not use it with std's blocking `accept`/`incoming()`: on a non-blocking listener they
/// return `WouldBlock` at once, and a `for stream in listener.incoming().flatten()` loop spins
/// a core while everything appears to work. Plain threads want [`bind_blocking_listener`].
pub fn bind_listener(protocol: &str, address: IpAddr, port: u16) -> Result<TcpListener, BoxError> {
    bind_nonblocking_listener(protocol, address, port)
}

/// [`bind_listener`] under a name that says its mode.
pub fn bind_nonblocking_listener(
    protocol: &str,
    address: IpAddr,
    port: u16,
) -> Result<TcpListener, BoxError> {
    let listener = bind(protocol, address, port)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Binds `address:port` for protocol `protocol` in **blocking** mode, for a plain accept
/// thread (`for stream in listener.incoming()`): `accept` waits for a client. Same messages
/// as [`bind_listener`].
pub fn bind_blocking_listener(
    protocol: &str,
    address: IpAddr,
    port: u16,
) -> Result<TcpListener, BoxError> {
    let listener = bind(protocol, address, port)?;
    listener.set_nonblocking(false)?;
    Ok(listener)
}

fn bind(protocol: &str, address: IpAddr, port: u16) -> Result<TcpListener, BoxError> {
    let address = SocketAddr::new(address, port);
    let listener = TcpListener::bind(address).map_err(|error| {
        format!(
            "protocol \"{protocol}\" cannot listen on {address}: {error}\nhint: another process may use this port; change server.protocols.{protocol}.port"
        )
    })?;
    Ok(listener)
}

/// The URL clients on this machine can use (`ws://127.0.0.1:7512`): an unspecified bind
/// address (`0.0.0.0`, `::`) is reached on loopback.
pub fn announced_url(scheme: &str, bound: SocketAddr) -> String {
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("{scheme}://{}", SocketAddr::new(ip, bound.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announced_urls_are_reachable() {
        let cases = [
            ("0.0.0.0:7512", "ws://127.0.0.1:7512"),
            ("127.0.0.1:1", "ws://127.0.0.1:1"),
            ("[::]:80", "ws://[::1]:80"),
            ("10.1.2.3:9", "ws://10.1.2.3:9"),
        ];
        for (bound, url) in cases {
            assert_eq!(announced_url("ws", bound.parse().unwrap()), url);
        }
    }

    /// Issue 17: a std accept loop on `bind_listener`'s socket spun at 94 % CPU. The blocking
    /// listener's `accept` waits for a client; the non-blocking one says `WouldBlock`.
    #[test]
    fn the_blocking_listener_waits_in_accept_and_the_nonblocking_one_does_not() {
        let localhost = "127.0.0.1".parse().unwrap();
        let nonblocking = bind_nonblocking_listener("p", localhost, 0).unwrap();
        let error = nonblocking.accept().unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::WouldBlock);

        let blocking = bind_blocking_listener("p", localhost, 0).unwrap();
        let address = blocking.local_addr().unwrap();
        let (accepted, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = accepted.send(blocking.accept().map(|_| ()).map_err(|error| error.kind()));
        });
        // Nothing to accept yet: a blocking `accept` has not returned (a non-blocking one
        // would have sent `WouldBlock` at once).
        assert!(outcome
            .recv_timeout(std::time::Duration::from_millis(200))
            .is_err());
        let _client = std::net::TcpStream::connect(address).unwrap();
        assert_eq!(
            outcome.recv_timeout(std::time::Duration::from_secs(10)),
            Ok(Ok(()))
        );
    }

    #[test]
    fn a_port_in_use_names_the_protocol_and_the_key() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let error = bind_listener("ws2", "127.0.0.1".parse().unwrap(), port)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(&format!(
                "protocol \"ws2\" cannot listen on 127.0.0.1:{port}: "
            )),
            "{error}"
        );
        assert!(error.ends_with(
            "\nhint: another process may use this port; change server.protocols.ws2.port"
        ));
    }
}
