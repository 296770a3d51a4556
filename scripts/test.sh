#!/usr/bin/env bash
# The README's test command: installs what the tests need when it is missing, then runs the
# whole suite. Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p switchyard`).
#
# What it installs, only when absent: Node.js 18+ and npm (Debian), the npm test clients
# (`tests/js`: the Kuzzle SDK, socket.io-client; `filters/oracle`: koncorde), Debian's
# `mosquitto` and `mosquitto-clients`, Debian's `redis-server` (cluster tests), Debian's
# `postgresql` (the PostgreSQL store's tests start a throwaway server of their own from its
# binaries: `initdb` in a temporary folder, a free loopback port), `openssl` and `curl` (the TLS
# tests' CA and HTTPS client), Debian's `chromium`
# (the admin page's browser test, driven by npm `playwright-core`, which downloads no browser),
# PyPI's `paho-mqtt`. Debian packages need root or sudo. With the set-up done,
# `SWITCHYARD_REQUIRE_POSTGRES=1` makes a missing PostgreSQL fail the tests instead of skipping
# them.
# `SWITCHYARD_TEST_SETUP=0` skips the set-up (plain `cargo test --workspace` works too, for
# those who have the tools).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '== %s\n' "$*" >&2; }

apt_install() {
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || {
      say "missing Debian packages: $*; install them as root (apt-get install $*)"
      exit 1
    }
    sudo=(sudo)
  fi
  say "installing Debian packages: $*"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

setup() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt_install nodejs npm libnode-dev
  fi
  node -e 'if (Number(process.versions.node.split(".")[0]) < 18) { console.error("Node >= 18 required, found " + process.version); process.exit(1); }'

  # npm ci only when the lock file changed since the last install.
  local stamp=tests/js/node_modules/.switchyard-lock-sha256
  local lock
  lock="$(sha256sum tests/js/package-lock.json | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$lock" ]; then
    say "installing the JavaScript test clients and playwright-core (tests/js)"
    (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock" >"$stamp"
  fi
  bash filters/oracle/setup.sh

  if ! command -v mosquitto >/dev/null || ! command -v mosquitto_sub >/dev/null; then
    apt_install mosquitto mosquitto-clients
  fi
  if ! command -v redis-server >/dev/null; then
    apt_install redis-server
  fi
  if ! command -v initdb >/dev/null && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    apt_install postgresql
  fi
  export SWITCHYARD_REQUIRE_POSTGRES=1
  # The TLS tests make their CA with the openssl command and call curl.
  if ! command -v openssl >/dev/null || ! command -v curl >/dev/null; then
    apt_install openssl curl
  fi
  if [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null; then
    apt_install chromium
  fi
  if ! python3 -c "import paho.mqtt.client" 2>/dev/null; then
    say "installing paho-mqtt (PyPI)"
    python3 -m pip install --quiet --user paho-mqtt 2>/dev/null \
      || python3 -m pip install --quiet --user --break-system-packages paho-mqtt 2>/dev/null \
      || python3 -m pip install --quiet --break-system-packages paho-mqtt
  fi
}

if [ "${SWITCHYARD_TEST_SETUP:-1}" != 0 ]; then
  setup
fi
exec cargo test --workspace "$@"
