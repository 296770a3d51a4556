//! Hot upgrade: the running process starts the binary now on disk and hands it its listening
//! sockets, so no client is refused while the host is replaced (`README.md`, "Upgrading").
//!
//! The old process (on SIGUSR2, which `switchyard upgrade` sends) makes a Unix socket pair
//! (`SOCK_SEQPACKET`: one message per send) and starts the new process with the same
//! arguments, the pair's other end as its standard input and `SWITCHYARD_UPGRADE=1` in its
//! environment, in a process group of its own (a Ctrl-C or a signal to the old process's group
//! does not reach it; it outlives the old process, whose child it no longer is once the old
//! one exits). Then, over the pair:
//!
//! 1. old → new: `listeners` and the sockets' keys as JSON, the sockets themselves attached
//!    (`SCM_RIGHTS`), in the same order;
//! 2. new → old: `checked` once the configuration loads and every library passed the loader's
//!    checks (the hooks, the ABI version and layout), or `failed` and the reason, and the new
//!    process exits non-zero; the old one logs the reason and keeps serving;
//! 3. after `checked`, the old process stops accepting and drains (`shutdown::hand_over`),
//!    then exits, closing its end: the new process reads the end of the stream, opens the
//!    document store (one process at a time holds it) and starts, its protocols taking the
//!    inherited sockets. Clients that connect meanwhile wait in the sockets' queues.
//!
//! No `unsafe` here: `rustix` passes the descriptors and hands back owned ones.

use std::ffi::OsString;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::TcpListener;
use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};

use crate::listeners::{ListenerKey, Listeners};

/// The environment variable that tells a process its standard input is an upgrade's socket.
pub const UPGRADE_ENV: &str = "SWITCHYARD_UPGRADE";
/// How long the old process waits for the new one's verdict (`checked` or `failed`).
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the new process waits for the old one's sockets.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest message on the pair (the listeners' keys as JSON).
const MAX_MESSAGE: usize = 64 * 1024;
/// The most sockets one upgrade hands over (the kernel caps one message at 253).
const MAX_SOCKETS: usize = 200;

/// How this process was started: what an upgrade starts again.
#[derive(Debug, Clone)]
pub struct Relaunch {
    /// The binary's path, read at start-up (`/proc/self/exe` later names a replaced binary
    /// "(deleted)"); the file now at that path is what starts.
    pub binary: PathBuf,
    /// The arguments after the binary's name.
    pub args: Vec<OsString>,
}

impl Relaunch {
    /// This process's binary and arguments.
    pub fn of_this_process() -> std::io::Result<Relaunch> {
        Ok(Relaunch {
            binary: std::env::current_exe()?,
            args: std::env::args_os().skip(1).collect(),
        })
    }
}

/// One socket's key as it travels.
#[derive(Debug, Serialize, Deserialize)]
struct WireKey {
    owner: String,
    address: std::net::IpAddr,
    port: u16,
}

/// A new process that passed its checks: the old one drains, then exits. Keep it until the
/// process exits: dropping it tells the new process the old one is gone.
#[derive(Debug)]
pub struct Successor {
    /// The new process's id.
    pub pid: u32,
    /// Our end of the pair; closed at exit.
    _socket: OwnedFd,
}

/// Old side: starts the new process and hands it the listeners. `Ok` once it passed its
/// checks; `Err` with its reason (its own words when it refused to start) otherwise, the new
/// process then gone.
pub fn start_successor(listeners: &Listeners, relaunch: &Relaunch) -> Result<Successor, String> {
    let (ours, theirs) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|error| format!("cannot make the upgrade's socket pair: {error}"))?;
    let mut child = Command::new(&relaunch.binary)
        .args(&relaunch.args)
        .env(UPGRADE_ENV, "1")
        .stdin(Stdio::from(theirs))
        // Its own process group: a signal to ours (a terminal's Ctrl-C) must not reach it.
        .process_group(0)
        .spawn()
        .map_err(|error| format!("cannot start {}: {error}", relaunch.binary.display()))?;
    let pid = child.id();
    let outcome = hand_listeners(&ours, listeners).and_then(|()| verdict(&ours));
    match outcome {
        Ok(()) => Ok(Successor { pid, _socket: ours }),
        Err(reason) => {
            drop(ours);
            Err(format!("{reason} ({})", reap(&mut child)))
        }
    }
}

/// The new process's exit, once it is gone (killed if it does not go by itself).
fn reap(child: &mut Child) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return format!("new process {} {status}", child.id()),
            Ok(None) if std::time::Instant::now() < deadline => {
                // Pacing: it is exiting after saying why.
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let status = child.wait();
                return format!(
                    "new process {} killed: {}",
                    child.id(),
                    status.map_or_else(|error| error.to_string(), |status| status.to_string())
                );
            }
        }
    }
}

fn hand_listeners(socket: &OwnedFd, listeners: &Listeners) -> Result<(), String> {
    let handed = listeners
        .for_handover()
        .map_err(|error| format!("cannot copy the listeners: {error}"))?;
    if handed.len() > MAX_SOCKETS {
        return Err(format!(
            "{} listeners to hand over, more than {MAX_SOCKETS}",
            handed.len()
        ));
    }
    let keys: Vec<WireKey> = handed
        .iter()
        .map(|(key, _)| WireKey {
            owner: key.owner.clone(),
            address: key.address,
            port: key.port,
        })
        .collect();
    let text = format!(
        "listeners\n{}",
        serde_json::to_string(&keys).expect("keys serialize")
    );
    let fds: Vec<BorrowedFd<'_>> = handed.iter().map(|(_, socket)| socket.as_fd()).collect();
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len().max(1)))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err("the listeners do not fit in one message".to_string());
    }
    rustix::net::sendmsg(
        socket,
        &[IoSlice::new(text.as_bytes())],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .map_err(|error| format!("cannot hand the listeners over: {error}"))?;
    Ok(())
}

fn verdict(socket: &OwnedFd) -> Result<(), String> {
    rustix::net::sockopt::set_socket_timeout(
        socket,
        rustix::net::sockopt::Timeout::Recv,
        Some(CHECK_TIMEOUT),
    )
    .map_err(|error| error.to_string())?;
    let mut buffer = vec![0u8; MAX_MESSAGE];
    let received = rustix::net::recv(socket, &mut buffer[..], RecvFlags::empty());
    let length = match received {
        Ok((0, _)) => return Err("the new process exited before its checks ended".to_string()),
        Ok((length, _)) => length.min(buffer.len()),
        Err(rustix::io::Errno::AGAIN) => {
            return Err(format!(
                "the new process did not finish its checks within {} s",
                CHECK_TIMEOUT.as_secs()
            ))
        }
        Err(error) => return Err(format!("cannot read the new process's answer: {error}")),
    };
    let text = String::from_utf8_lossy(&buffer[..length]);
    match text.split_once('\n').unwrap_or((&text, "")) {
        ("checked", _) => Ok(()),
        ("failed", reason) => Err(reason.to_string()),
        _ => Err(format!("the new process answered {text:?}")),
    }
}

/// The sockets a hot upgrade's new process received, by key.
pub type Inherited = Vec<(ListenerKey, TcpListener)>;

/// New side: an upgrade's socket (standard input) and the sockets received on it.
#[derive(Debug)]
pub struct Inheritance {
    socket: OwnedFd,
}

impl Inheritance {
    /// When this process was started by an upgrade (`SWITCHYARD_UPGRADE=1`): receives the old
    /// process's listeners from standard input. `None` on a normal start.
    pub fn receive() -> Option<std::io::Result<(Inheritance, Inherited)>> {
        if std::env::var_os(UPGRADE_ENV).is_none_or(|value| value != "1") {
            return None;
        }
        Some(receive_from_stdin())
    }

    /// Tells the old process this one passed its checks: it drains and exits.
    pub fn checked(&self) -> std::io::Result<()> {
        self.send("checked\n")
    }

    /// Tells the old process why this one will not start: it keeps serving.
    pub fn failed(&self, reason: &str) -> std::io::Result<()> {
        self.send(&format!("failed\n{reason}"))
    }

    fn send(&self, text: &str) -> std::io::Result<()> {
        let text = &text.as_bytes()[..text.len().min(MAX_MESSAGE)];
        rustix::net::send(&self.socket, text, SendFlags::NOSIGNAL)?;
        Ok(())
    }

    /// Waits until the old process is gone (its end of the pair closed, at its exit), at most
    /// `timeout`; true if it is.
    pub fn wait_for_release(self, timeout: Duration) -> bool {
        let _ = rustix::net::sockopt::set_socket_timeout(
            &self.socket,
            rustix::net::sockopt::Timeout::Recv,
            Some(timeout.max(Duration::from_millis(1))),
        );
        let mut byte = [0u8; 1];
        loop {
            match rustix::net::recv(&self.socket, &mut byte[..], RecvFlags::empty()) {
                // The end of the stream, or a reset: the old process closed its end.
                Ok((0, _)) | Err(rustix::io::Errno::CONNRESET) => return true,
                Ok(_) | Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return false,
            }
        }
    }
}

fn receive_from_stdin() -> std::io::Result<(Inheritance, Inherited)> {
    let socket = std::io::stdin().as_fd().try_clone_to_owned()?;
    rustix::net::sockopt::set_socket_timeout(
        &socket,
        rustix::net::sockopt::Timeout::Recv,
        Some(RECEIVE_TIMEOUT),
    )?;
    let mut buffer = vec![0u8; MAX_MESSAGE];
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = rustix::net::recvmsg(
        &socket,
        &mut [IoSliceMut::new(&mut buffer)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    let text = String::from_utf8_lossy(&buffer[..received.bytes.min(buffer.len())]);
    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let json = text
        .strip_prefix("listeners\n")
        .ok_or_else(|| invalid(format!("the old process sent {text:?}")))?;
    let keys: Vec<WireKey> = serde_json::from_str(json)
        .map_err(|error| invalid(format!("the old process's listeners: {error}")))?;
    if keys.len() != fds.len() {
        return Err(invalid(format!(
            "the old process named {} listeners and sent {} sockets",
            keys.len(),
            fds.len()
        )));
    }
    let listeners = keys
        .into_iter()
        .zip(fds)
        .map(|(key, fd)| {
            (
                ListenerKey {
                    owner: key.owner,
                    address: key.address,
                    port: key.port,
                },
                TcpListener::from(fd),
            )
        })
        .collect();
    Ok((Inheritance { socket }, listeners))
}

/// `switchyard upgrade`: sends SIGUSR2 to the process whose id `pid_file` holds.
pub fn signal_running(pid_file: &std::path::Path) -> Result<u32, String> {
    let text = std::fs::read_to_string(pid_file)
        .map_err(|error| format!("cannot read the pid file {}: {error}", pid_file.display()))?;
    let pid: i32 = text.trim().parse().map_err(|_| {
        format!(
            "the pid file {} does not hold a process id: {:?}",
            pid_file.display(),
            text.trim()
        )
    })?;
    let target = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| format!("the pid file {} holds {pid}", pid_file.display()))?;
    rustix::process::kill_process(target, rustix::process::Signal::USR2)
        .map_err(|error| format!("cannot signal process {pid}: {error}"))?;
    Ok(pid as u32)
}

/// This process's id, for the pid file.
pub fn own_pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}
