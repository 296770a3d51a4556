#!/usr/bin/env python3
"""Does the server give memory back after a load goes? (issue 19, item 3)

Starts the release `switchyard` (WebSocket only, port 0, a scratch data folder) and measures
its resident memory (VmRSS, /proc) before, at the peak (VmHWM) and after the issue's probe:
CONNECTIONS WebSocket clients each send an unfinished 1 MB text frame (all but its last byte;
what passes `maxTotalPartialBytes` is closed with 1009), then the last byte (every held
message is parsed and answered), then all close. "After" is read once RSS has not moved for
two seconds (at most 30 s).

Each run repeats the probe under an allocator setting (glibc malloc tunables through the
environment; no code change), so the figures say which one returns memory:

  scripts/memory-after-load.py [--connections 500] [--size 1048576] [--rounds 2]
                               [--settings default,trim,arenas]

Needs `cargo build --release` first (the host and libwebsocket.so in target/release).
Standard library only. Prints one line per setting and round; asserts nothing.
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target", "release")

# What each setting adds to the environment of the server.
SETTINGS = {
    # glibc's defaults: per-thread arenas (8 x cores), a dynamic mmap threshold that grows to
    # the largest freed block (up to 32 MB), trimming only at the top of the main heap.
    "default": {},
    # Large blocks stay mmapped (freed at once) and the heap is trimmed past 128 KB free.
    "trim": {
        "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=131072:glibc.malloc.trim_threshold=131072"
    },
    # Fewer arenas: freed chunks are reused across threads instead of kept per arena.
    "arenas": {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"},
}


def status(pid, key):
    """A /proc/<pid>/status value in MB (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def settle(pid, quiet=2.0, limit=30.0):
    """RSS once it has not changed by more than 1 MB for `quiet` seconds."""
    begun = time.monotonic()
    last, since = status(pid, "VmRSS"), time.monotonic()
    while time.monotonic() - begun < limit:
        time.sleep(0.2)
        now = status(pid, "VmRSS")
        if abs(now - last) > 1:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return status(pid, "VmRSS")


def start(env_extra, scratch):
    config = os.path.join(scratch, "config.toml")
    with open(config, "w") as f:
        f.write(
            f'[server]\ndataDir = "{scratch}/data"\n'
            "[server.protocols.websocket]\n"
            f'library = "{RELEASE}/libwebsocket.so"\n'
            'port = 0\naddress = "127.0.0.1"\n'
        )
    env = dict(os.environ, RUST_LOG="warn", **env_extra)
    server = subprocess.Popen(
        [os.path.join(RELEASE, "switchyard"), "--config", config],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    deadline = time.monotonic() + 60
    for line in server.stdout:
        found = re.search(r"ws://([0-9.]+):(\d+)", line)
        if " ready in " in line and found:
            return server, (found.group(1), int(found.group(2)))
        if time.monotonic() > deadline:
            break
    server.kill()
    sys.exit(f"the server did not get ready: {line!r}")


def handshake(address):
    sock = socket.create_connection(address, timeout=30)
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        answer += chunk
    if not answer.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(answer[:40])
    return sock


def frame(payload):
    """A masked text frame with a zero mask (the payload is sent as is)."""
    return b"\x81\xff" + len(payload).to_bytes(8, "big") + b"\0\0\0\0" + payload


def request(n, size):
    head = b'{"controller":"server","action":"now","requestId":"r%d","pad":"' % n
    return head + b"x" * (size - len(head) - 2) + b'"}'


def probe(address, connections, size):
    """The load; returns how many messages were answered (the others were refused)."""
    sockets = []
    for n in range(connections):
        sock = handshake(address)
        data = frame(request(n, size))
        try:
            sock.sendall(data[:-1])
            sockets.append((sock, data[-1:]))
        except OSError:
            sock.close()
    answered = 0
    for sock, last in sockets:
        try:
            sock.sendall(last)
        except OSError:
            continue
    for sock, _ in sockets:
        sock.settimeout(10)
        try:
            first = sock.recv(4096)
            # A text frame is an answer; a close frame (0x88) is the 1009 refusal.
            answered += bool(first) and first[0] == 0x81
        except OSError:
            pass
    for sock, _ in sockets:
        sock.close()
    return answered


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--size", type=int, default=1 << 20, help="bytes of each message")
    parser.add_argument("--rounds", type=int, default=2, help="probes per server")
    parser.add_argument("--settings", default="default,trim,arenas")
    args = parser.parse_args()
    for binary in ("switchyard", "libwebsocket.so"):
        if not os.path.exists(os.path.join(RELEASE, binary)):
            sys.exit(f"target/release/{binary} is missing: run `cargo build --release` first")
    print(
        f"{args.connections} WebSocket connections x a {args.size}-byte message, unfinished "
        "then finished, then closed; MB of RSS"
    )
    for name in args.settings.split(","):
        scratch = tempfile.mkdtemp(prefix="switchyard-memory-")
        server, address = start(SETTINGS[name], scratch)
        try:
            before = settle(server.pid)
            for round_ in range(1, args.rounds + 1):
                begun = time.monotonic()
                answered = probe(address, args.connections, args.size)
                took = time.monotonic() - begun
                peak = status(server.pid, "VmHWM")
                after = settle(server.pid)
                print(
                    f"{name:>8} round {round_}: before {before:6.0f}  peak {peak:6.0f}  "
                    f"after {after:6.0f}  (returned {100 * (peak - after) / max(peak - before, 1):3.0f} %"
                    f" of the growth; {answered} answered of {args.connections}, {took:.1f} s)"
                )
        finally:
            server.terminate()
            server.wait(timeout=30)
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
