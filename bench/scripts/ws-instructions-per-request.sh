#!/usr/bin/env bash
# User-space instructions per WebSocket round trip, counted by valgrind's callgrind: the
# deterministic twin of `switchyard-bench ws-rtt` (whose timings move with the machine's load).
#
#   bench/scripts/ws-instructions-per-request.sh [switchyard|baseline] [REQUESTS] [PROFILE]
#
# MESSAGE=<json> measures another request than `server:now` (switchyard only), after SETUP (a
# JSON array of requests sent once before the warm-up), e.g. document:get of a document SETUP
# created. The store lives in a temporary data folder. AUTH=1 sends it as a logged-in user (a
# user with a profile is created and logged in first; its jwt goes in every request).
#
# Runs the release build of switchyard (WebSocket plugin only) or the bench's bare
# tokio-tungstenite baseline under callgrind, sends 200 unmeasured messages, then REQUESTS
# (default 5000) one at a time on one connection — `server:now` for switchyard, an `{"echo"…}`
# message for the baseline — and prints the instructions per round trip. With a third argument,
# keeps the callgrind profile in that file. TLS=1 (switchyard only) serves wss:// with a
# certificate made by the openssl command, the client trusting its CA: the cost of TLS per round
# trip. EXTRA_CONFIG=<toml> (switchyard only) appends tables to the host's config. BIN_DIR runs
# the binaries and plugins of another folder (default target/release), e.g. a copy kept from
# before a change. Needs valgrind and python3; build first:
# cargo build --release -p switchyard -p plugin-websocket -p switchyard-bench.
set -euo pipefail
what=${1:-switchyard}
requests=${2:-5000}
annotate=${3:-}
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
import base64, os, socket, ssl, struct, sys
import json
port, count, message = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode()
setup = [json.dumps(request).encode() for request in json.loads(sys.argv[4])] if len(sys.argv) > 4 else []
connection = socket.create_connection(("127.0.0.1", port))
connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
if os.environ.get("CA_FILE"):
    context = ssl.create_default_context(cafile=os.environ["CA_FILE"])
    connection = context.wrap_socket(connection, server_hostname="localhost")
key = base64.b64encode(os.urandom(16)).decode()
connection.sendall(("GET / HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
pending = b""
while b"\r\n\r\n" not in pending:
    chunk = connection.recv(65536)
    if not chunk:
        sys.exit("the server closed the connection during the handshake")
    pending += chunk
head, pending = pending.split(b"\r\n\r\n", 1)
if b" 101 " not in head.split(b"\r\n")[0]:
    sys.exit("handshake refused: %r" % head)
mask = b"\x01\x02\x03\x04"
def frame_of(message):
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(message))
    if len(message) < 126:
        return bytes([0x81, 0x80 | len(message)]) + mask + masked
    return bytes([0x81, 0x80 | 126]) + struct.pack(">H", len(message)) + mask + masked
frames = [frame_of(request) for request in setup] + [frame_of(message)] * count
answer = b""
for frame in frames:
    connection.sendall(frame)
    while True:
        if len(pending) >= 2:
            length, offset = pending[1] & 0x7F, 2
            if length == 126 and len(pending) >= 4:
                length, offset = struct.unpack(">H", pending[2:4])[0], 4
            elif length == 127 and len(pending) >= 10:
                length, offset = struct.unpack(">Q", pending[2:10])[0], 10
            if length < 126 or offset > 2:
                if len(pending) >= offset + length:
                    answer = pending[offset:offset + length]
                    pending = pending[offset + length:]
                    break
        chunk = connection.recv(65536)
        if not chunk:
            sys.exit("the server closed the connection")
        pending += chunk
if os.environ.get("PRINT_JWT"):
    print(json.loads(answer)["result"]["jwt"])
PY

out="$work/callgrind.out"
if [ "$what" = switchyard ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$work/config.toml" <<TOML
[server]
pluginDir = "$bin"
dataDir = "$work/data"
[server.protocols.websocket]
port = $port
address = "127.0.0.1"
TOML
  # EXTRA_CONFIG: more TOML tables for the host (e.g. "[storage]\ndocumentCacheBytes = 0").
  if [ -n "${EXTRA_CONFIG:-}" ]; then
    printf '%b\n' "$EXTRA_CONFIG" >>"$work/config.toml"
  fi
  if [ "${TLS:-0}" = 1 ]; then
    (cd "$work" &&
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
        -out ca.pem -days 1 -subj "/CN=bench CA" 2>/dev/null &&
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
        -out server.csr -subj "/CN=localhost" 2>/dev/null &&
      printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext &&
      openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 1 -days 1 \
        -out server.pem -extfile server.ext 2>/dev/null)
    printf '[server.protocols.websocket.ssl]\ncertificate = "%s"\nprivateKey = "%s"\n' \
      "$work/server.pem" "$work/server.key" >>"$work/config.toml"
    export CA_FILE="$work/ca.pem"
  fi
  valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$bin/switchyard" --config "$work/config.toml" >"$work/server.log" 2>&1 &
  server=$!
  ready="ready in"
  message=${MESSAGE:-'{"controller":"server","action":"now","requestId":"r"}'}
else
  valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$bin/switchyard-bench" __baseline-ws >"$work/server.log" 2>&1 &
  server=$!
  ready="listening on"
  message='{"echo":1,"requestId":"r"}'
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
  # As switchyard-bench's --auth: a role, a profile, a local user, its login; every measured
  # request then carries its token.
  auth_setup='[{"controller":"security","action":"createRole","_id":"bench","body":{"controllers":{"server":{"actions":{"now":true,"info":true}},"realtime":{"actions":{"*":true}},"document":{"actions":{"get":true,"search":true}},"auth":{"actions":{"*":true}}}}},
    {"controller":"security","action":"createProfile","_id":"bench","body":{"policies":[{"roleId":"bench"}]}},
    {"controller":"security","action":"createUser","_id":"bench","body":{"content":{"profileIds":["bench"]},"credentials":{"local":{"username":"bench","password":"bench-password-1"}}}},
    {"controller":"auth","action":"login","strategy":"local","body":{"username":"bench","password":"bench-password-1"}}]'
  jwt=$(PRINT_JWT=1 python3 "$work/client.py" "$port" 0 "{}" "$auth_setup")
  message=$(python3 -c 'import json,sys; m=json.loads(sys.argv[1]); m["jwt"]=sys.argv[2]; print(json.dumps(m, separators=(",", ":")))' "$message" "$jwt")
fi
python3 "$work/client.py" "$port" 200 "$message" "${SETUP:-[]}"
callgrind_control --zero "$server" >/dev/null 2>&1
python3 "$work/client.py" "$port" "$requests" "$message"
callgrind_control --dump "$server" >/dev/null 2>&1
sleep 1
dump=$(ls -t "$out"* | head -1)
total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "$what WebSocket${TLS:+ (TLS=$TLS)} round trip: $((total / requests)) instructions per request (user space, $requests requests: $message)"
if [ -n "$annotate" ]; then
  cp "$dump" "$annotate"
  echo "callgrind profile kept in $annotate (read it with callgrind_annotate [--inclusive=yes])"
fi
