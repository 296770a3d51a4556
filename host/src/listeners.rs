//! The listening sockets the host owns: lent to protocols (plugin-api 1.3's `listener` host
//! function) and to the admin listener, and handed to the next process in a hot upgrade
//! (`upgrade.rs`). A socket is named by who asked for it (a protocol's name, or `admin`), the
//! address and the port *as configured* (port 0 stays 0: the new process, reading the same
//! configuration, asks for the same key and gets the socket bound to the port the old one got).
//!
//! Lending a socket is a `dup`: the protocol owns its descriptor (and closes it when it stops
//! accepting), the host keeps its own until it hands them over or drops them. Both refer to
//! one socket, so clients queued on it stay queued whoever accepts them next.

use std::net::{IpAddr, SocketAddr, TcpListener};

use parking_lot::Mutex;

/// Who a listening socket is for, and where, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListenerKey {
    /// The protocol's name (`websocket`), or `admin` for the admin listener.
    pub owner: String,
    /// The configured address.
    pub address: IpAddr,
    /// The configured port (0: any free port, chosen when first bound).
    pub port: u16,
}

impl std::fmt::Display for ListenerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            self.owner,
            SocketAddr::new(self.address, self.port)
        )
    }
}

/// The host's listening sockets.
#[derive(Debug, Default)]
pub struct Listeners {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Received from the process this one replaced, not asked for yet.
    inherited: Vec<(ListenerKey, TcpListener)>,
    /// Bound here or inherited and asked for: what a hot upgrade hands over.
    owned: Vec<(ListenerKey, TcpListener)>,
}

impl Listeners {
    /// A table holding the sockets a hot upgrade handed over (none on a normal start).
    pub fn with_inherited(inherited: Vec<(ListenerKey, TcpListener)>) -> Listeners {
        Listeners {
            inner: Mutex::new(Inner {
                inherited,
                owned: Vec::new(),
            }),
        }
    }

    /// A listening socket for `key`: the inherited one with that key, else a new one bound
    /// now. Returns a descriptor of its own (blocking unless a previous holder of the socket
    /// changed it: the mode belongs to the socket, not to the descriptor), close-on-exec.
    pub fn take(&self, key: &ListenerKey) -> std::io::Result<TcpListener> {
        let mut inner = self.inner.lock();
        if let Some(at) = inner.inherited.iter().position(|(held, _)| held == key) {
            let entry = inner.inherited.swap_remove(at);
            inner.owned.push(entry);
        } else if inner.owned.iter().all(|(held, _)| held != key) {
            let socket = TcpListener::bind(SocketAddr::new(key.address, key.port))?;
            inner.owned.push((key.clone(), socket));
        }
        let (_, socket) = inner
            .owned
            .iter()
            .rev()
            .find(|(held, _)| held == key)
            .expect("pushed or found above");
        socket.try_clone()
    }

    /// Copies of every socket the host holds (owned and still-unclaimed inherited ones), for
    /// the next process.
    pub fn for_handover(&self) -> std::io::Result<Vec<(ListenerKey, TcpListener)>> {
        let inner = self.inner.lock();
        inner
            .owned
            .iter()
            .chain(&inner.inherited)
            .map(|(key, socket)| Ok((key.clone(), socket.try_clone()?)))
            .collect()
    }

    /// Drops the inherited sockets no one asked for (the new configuration no longer names
    /// them); returns their keys, to log.
    pub fn drop_unclaimed(&self) -> Vec<ListenerKey> {
        let mut inner = self.inner.lock();
        inner.inherited.drain(..).map(|(key, _)| key).collect()
    }

    /// Drops the host's own descriptors (after a hand-over: the new process holds the sockets).
    pub fn close_all(&self) {
        let mut inner = self.inner.lock();
        inner.owned.clear();
        inner.inherited.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(owner: &str, port: u16) -> ListenerKey {
        ListenerKey {
            owner: owner.to_string(),
            address: "127.0.0.1".parse().unwrap(),
            port,
        }
    }

    #[test]
    fn one_key_is_one_socket_and_an_inherited_one_is_reused() {
        let listeners = Listeners::default();
        let first = listeners.take(&key("ws", 0)).unwrap();
        let again = listeners.take(&key("ws", 0)).unwrap();
        assert_eq!(first.local_addr().unwrap(), again.local_addr().unwrap());

        let handed = listeners.for_handover().unwrap();
        assert_eq!(handed.len(), 1);
        let next = Listeners::with_inherited(handed);
        let inherited = next.take(&key("ws", 0)).unwrap();
        assert_eq!(inherited.local_addr().unwrap(), first.local_addr().unwrap());
        assert!(next.drop_unclaimed().is_empty());
    }

    #[test]
    fn a_port_in_use_is_an_error_and_holds_nothing() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let listeners = Listeners::default();
        let error = listeners.take(&key("ws2", port)).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
        assert!(listeners.for_handover().unwrap().is_empty());
    }
}
