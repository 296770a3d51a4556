#!/usr/bin/env bash
# User-space instructions per HTTP request, counted by valgrind's callgrind: unlike the
# timings of `switchyard-bench http`, the count is the same from run to run whatever else the
# machine does, so it shows what a change to the request path saves.
#
#   bench/scripts/instructions-per-request.sh [switchyard|baseline] [REQUESTS] [PATH] [PROFILE]
#
# Runs the release build of switchyard (HTTP plugin only, one request thread) or the bench's
# bare hyper baseline under callgrind, sends 200 unmeasured requests, then REQUESTS (default
# 5000) `GET PATH` (default /_now) one at a time on one keep-alive connection, and prints the
# instructions per request; with a fourth argument, keeps the callgrind profile in that file
# (to split a difference by function with callgrind_annotate). AUTH=1 (switchyard only) sends
# them as a logged-in user: the user of `ws-instructions-per-request.sh`'s AUTH=1 is created
# and logged in over `POST /_query` first, and its token goes in every request
# (`Authorization: Bearer`).
# BIN_DIR runs the switchyard binary and plugins of another folder (default target/release),
# e.g. a copy kept from before a change. Needs valgrind and python3; build first:
# cargo build --release.
set -euo pipefail
what=${1:-switchyard}
requests=${2:-5000}
path=${3:-/_now}
annotate=${4:-}
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${BIN_DIR:-$root/target/release}
work=$(mktemp -d)
stop() {
  if [ -n "${server:-}" ]; then
    kill -9 "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap stop EXIT

cat >"$work/client.py" <<'PY'
import json, os, socket, sys
port, count, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
connection = socket.create_connection(("127.0.0.1", port))
connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
header = "Authorization: Bearer %s\r\n" % os.environ["JWT"] if os.environ.get("JWT") else ""
request = ("GET %s HTTP/1.1\r\nHost: bench\r\n%s\r\n" % (path, header)).encode()
setup = [json.dumps(r).encode() for r in json.loads(os.environ.get("SETUP", "[]"))]
last = b""
pending = b""
posts = [b"POST /_query HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
         b"Content-Length: %d\r\n\r\n%s" % (len(body), body) for body in setup]
for message in posts + [request] * count:
    connection.sendall(message)
    while True:
        end = pending.find(b"\r\n\r\n")
        if end >= 0:
            head = pending[:end].decode().lower().split("\r\n")
            length = int(next(l for l in head if l.startswith("content-length")).split(":")[1])
            if len(pending) >= end + 4 + length:
                last = pending[end + 4:end + 4 + length]
                pending = pending[end + 4 + length:]
                break
        chunk = connection.recv(65536)
        if not chunk:
            sys.exit("the server closed the connection")
        pending += chunk
if setup:
    print(json.loads(last)["result"]["jwt"])
PY

out="$work/callgrind.out"
if [ "$what" = switchyard ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$work/config.toml" <<TOML
[server]
pluginDir = "$bin"
dataDir = "$work/data"
[server.protocols.http]
port = $port
address = "127.0.0.1"
workerThreads = 1
TOML
  valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$bin/switchyard" --config "$work/config.toml" >"$work/server.log" 2>&1 &
  server=$!
  ready="ready in"
else
  valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$root/target/release/switchyard-bench" __baseline-http >"$work/server.log" 2>&1 &
  server=$!
  ready="listening on"
fi
for _ in $(seq 1 300); do
  grep -q "$ready" "$work/server.log" && break
  sleep 0.2
done
grep -q "$ready" "$work/server.log" || { cat "$work/server.log"; exit 1; }
if [ "$what" != switchyard ]; then
  port=$(grep -o "listening on [0-9.:]*" "$work/server.log" | sed 's/.*://')
fi
if [ "${AUTH:-0}" = 1 ] && [ "$what" = switchyard ]; then
  # As ws-instructions-per-request.sh's AUTH=1: a role, a profile, a local user, its login.
  export JWT
  JWT=$(SETUP='[{"controller":"security","action":"createRole","_id":"bench","body":{"controllers":{"server":{"actions":{"now":true,"info":true}},"realtime":{"actions":{"*":true}},"document":{"actions":{"get":true,"search":true}},"auth":{"actions":{"*":true}}}}},
    {"controller":"security","action":"createProfile","_id":"bench","body":{"policies":[{"roleId":"bench"}]}},
    {"controller":"security","action":"createUser","_id":"bench","body":{"content":{"profileIds":["bench"]},"credentials":{"local":{"username":"bench","password":"bench-password-1"}}}},
    {"controller":"auth","action":"login","strategy":"local","body":{"username":"bench","password":"bench-password-1"}}]' \
    python3 "$work/client.py" "$port" 0 "$path")
fi
python3 "$work/client.py" "$port" 200 "$path"
callgrind_control --zero "$server" >/dev/null 2>&1
python3 "$work/client.py" "$port" "$requests" "$path"
callgrind_control --dump "$server" >/dev/null 2>&1
sleep 1
dump=$(ls -t "$out"* | head -1)
total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "$what GET $path${JWT:+ (logged-in user)}: $((total / requests)) instructions per request (user space, $requests requests)"
if [ -n "$annotate" ]; then
  cp "$dump" "$annotate"
  echo "callgrind profile kept in $annotate (read it with callgrind_annotate [--inclusive=yes])"
fi
