//! Listening sockets, made in one place for every protocol.
//!
//! A later host version will hand plugins pre-opened sockets (restarts without dropping
//! clients, an append-only host-API addition): only `bind_listener` will then change.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};

use crate::sdk::BoxError;

/// Binds `address:port` for protocol `protocol`, non-blocking (ready for any async runtime).
/// A port in use fails with a message naming the protocol and the key to change.
pub fn bind_listener(protocol: &str, address: IpAddr, port: u16) -> Result<TcpListener, BoxError> {
    let address = SocketAddr::new(address, port);
    let listener = TcpListener::bind(address).map_err(|error| {
        format!(
            "protocol \"{protocol}\" cannot listen on {address}: {error}\nhint: another process may use this port; change server.protocols.{protocol}.port"
        )
    })?;
    listener.set_nonblocking(true)?;
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
