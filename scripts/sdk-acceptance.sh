#!/usr/bin/env bash
# The Kuzzle JavaScript SDK's own acceptance suite (`features/` of kuzzleio/sdk-javascript
# 7.17.1: 47 cucumber scenarios, 50 runs) run unchanged against this server (issue 14).
#
# The suite is not copied into this repository: it is taken, in this order, from
#   1. $SWITCHYARD_SDK_SRC — anything `git clone` accepts (a path, a bare repository, a URL);
#   2. the local mirror /work/.mirror/kuzzleio+sdk-javascript/repo, when present;
#   3. https://github.com/kuzzleio/sdk-javascript.
# It is checked out at tag v7.17.1 and must be that release's commit, untouched. When no source
# can be had, the script says so loudly and exits 0, unless SWITCHYARD_REQUIRE_SDK_SUITE=1.
#
# Only the npm packages the suite runs on are installed (cucumber, ts-node, typescript, should,
# retry, @types/node and the SDK's `ws`, at the versions the SDK's package.json pins), into
# target/sdk-acceptance/deps/<hash>/, reused by later runs. Then the server is built (debug;
# SWITCHYARD_SDK_PROFILE=release for the release one), started on a fresh data folder with
# WebSocket on localhost:7512 (the suite hard-codes it: nothing else may use that port
# meanwhile, hence its own step in .ci/run, after scripts/test.sh), awaited on its ready line,
# and `cucumber-js` runs the suite with its own configuration (cucumber.config.cjs). That
# configuration stops at the first failure; SWITCHYARD_SDK_FAIL_FAST=0 runs every scenario.
# Extra arguments go to cucumber-js (e.g. `features/auth.feature`, `--name Login`).
# Any failed scenario fails the script.
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."
root=$PWD

sdk_tag=v7.17.1
sdk_commit=06ac62b64a931633272d6ab48603ec699e18c487
sdk_mirror=/work/.mirror/kuzzleio+sdk-javascript/repo
sdk_url=https://github.com/kuzzleio/sdk-javascript
# The packages the suite's steps, hooks and the SDK's own source import, with the TypeScript
# runner cucumber's configuration requires.
suite_packages=(@cucumber/cucumber ts-node typescript should retry @types/node ws)
port=7512

work=$root/target/sdk-acceptance
profile=${SWITCHYARD_SDK_PROFILE:-debug}
started=$(date +%s)

say() { printf '== sdk-acceptance: %s\n' "$*" >&2; }
elapsed() { echo "$(($(date +%s) - started)) s"; }

skip_or_fail() {
  printf '\n!!!!!!!! sdk-acceptance SKIPPED: %s\n!!!!!!!! (set SWITCHYARD_SDK_SRC to a copy of %s, or SWITCHYARD_REQUIRE_SDK_SUITE=1 to fail instead)\n\n' \
    "$1" "$sdk_url" >&2
  if [ "${SWITCHYARD_REQUIRE_SDK_SUITE:-0}" = 1 ]; then
    exit 1
  fi
  exit 0
}

# --- inside: the server, then the suite -------------------------------------------------
serve_and_run() {
  src=$SDK_ACCEPTANCE_SRC
  bin=$SDK_ACCEPTANCE_BIN
  started=$SDK_ACCEPTANCE_STARTED
  if [ "${SDK_ACCEPTANCE_NETNS:-0}" = 1 ]; then
    # A new network namespace has only a loopback interface, down.
    ip link set lo up
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    say "something already listens on localhost:$port; the suite hard-codes that port: stop it, or let this script use a network namespace of its own (root or user namespaces, unshare, ip)"
    exit 1
  fi
  server_log=$work/server.log
  # The server's standard output carries only the ready line; its logs go to server.log.
  exec {server_out}< <(exec "$bin" --config "$work/config.toml" 2>"$server_log")
  server_pid=$!
  stop_server() {
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  }
  trap stop_server EXIT

  ready=
  while IFS= read -r -t 60 -u "$server_out" line; do
    if [[ $line == *" ready in "* ]]; then
      ready=$line
      break
    fi
  done
  if [ -z "$ready" ]; then
    say "the server did not print its ready line within 60 s; its log:"
    cat "$server_log" >&2
    exit 1
  fi
  say "$ready"
  cat <&"$server_out" >/dev/null &

  # --- the suite ---------------------------------------------------------------------------
  config=cucumber.config.cjs
  if [ "${SWITCHYARD_SDK_FAIL_FAST:-1}" = 0 ]; then
    # The suite's configuration, every scenario run: written beside the SDK's tree, not in it
    # (cucumber takes the path relative to the working directory).
    config=../cucumber.all.cjs
    cat >"$src/$config" <<EOF
const suite = require("$src/cucumber.config.cjs");
module.exports = { default: { ...suite.default, failFast: false } };
EOF
  fi
  say "running the suite (cucumber-js -c $config --exit $*)"
  status=0
  (cd "$src" && npx --no-install cucumber-js -c "$config" --exit "$@") || status=$?
  if [ "$status" != 0 ]; then
    say "FAILED after $(elapsed) (server log: $server_log)"
    exit "$status"
  fi
  say "passed in $(elapsed)"
}

if [ "${1:-}" = __serve-and-run ]; then
  shift
  serve_and_run "$@"
  exit
fi

# --- the suite's source ------------------------------------------------------------------
mkdir -p "$work"
src=$work/sdk-javascript
rm -rf "$src"
if [ -n "${SWITCHYARD_SDK_SRC:-}" ]; then
  origin=$SWITCHYARD_SDK_SRC
elif [ -d "$sdk_mirror" ]; then
  origin=$sdk_mirror
else
  origin=$sdk_url
fi
say "taking the suite from $origin ($sdk_tag)"
if ! git clone --quiet --no-checkout "$origin" "$src" 2>"$work/clone.log"; then
  cat "$work/clone.log" >&2
  skip_or_fail "cannot clone the Kuzzle SDK from $origin"
fi
if ! git -C "$src" -c advice.detachedHead=false checkout --quiet "$sdk_tag" 2>>"$work/clone.log"; then
  cat "$work/clone.log" >&2
  skip_or_fail "$origin has no tag $sdk_tag"
fi
actual_commit=$(git -C "$src" rev-parse HEAD)
if [ "$actual_commit" != "$sdk_commit" ]; then
  say "$origin's $sdk_tag is commit $actual_commit, not the release's $sdk_commit"
  exit 1
fi

# --- the npm packages it runs on (cached) ------------------------------------------------
command -v node >/dev/null && command -v npm >/dev/null || {
  say "node and npm are needed (scripts/test.sh installs them)"
  exit 1
}
manifest=$(node -e '
  const sdk = require(process.argv[1]);
  const pinned = { ...sdk.dependencies, ...sdk.devDependencies };
  const dependencies = {};
  for (const name of process.argv.slice(2)) {
    if (!pinned[name]) { console.error("the SDK pins no version of " + name); process.exit(1); }
    dependencies[name] = pinned[name];
  }
  console.log(JSON.stringify({ name: "sdk-acceptance-deps", private: true, dependencies }, null, 2));
' "$src/package.json" "${suite_packages[@]}")
deps=$work/deps/$(printf '%s' "$manifest" | sha256sum | cut -c1-16)
if [ ! -e "$deps/.installed" ]; then
  say "installing the suite's npm packages into $deps"
  rm -rf "$deps"
  mkdir -p "$deps"
  printf '%s\n' "$manifest" >"$deps/package.json"
  (cd "$deps" && npm install --no-audit --no-fund --loglevel=error)
  touch "$deps/.installed"
fi
# A link to the cache, excluded in the clone's own .git (the SDK's .gitignore names only a
# node_modules directory): the checkout stays exactly as tagged, which the status check proves.
ln -s "$deps/node_modules" "$src/node_modules"
echo /node_modules >>"$src/.git/info/exclude"
if [ -n "$(git -C "$src" status --porcelain)" ]; then
  say "the SDK checkout is not the pristine $sdk_tag:"
  git -C "$src" status --short >&2
  exit 1
fi

# --- the server --------------------------------------------------------------------------
say "building the server ($profile)"
build_flags=()
[ "$profile" = release ] && build_flags=(--release)
# What a user runs (the default members: the host and the shipped plugins).
cargo build "${build_flags[@]}"
bin=$root/target/$profile/switchyard

data=$work/data
rm -rf "$data"
cat >"$work/config.toml" <<EOF
# Written by scripts/sdk-acceptance.sh: WebSocket on Kuzzle's port, where the SDK suite looks.
[server]
pluginDir = "$root/target/$profile"
dataDir = "$data"

[server.protocols.websocket]
port = $port
EOF

# The server and the suite run in a network namespace of their own when the system allows it
# (root, or unprivileged user namespaces; util-linux's unshare and iproute2's ip): localhost:7512
# is then theirs whatever else runs on this machine. Otherwise on the machine's own loopback,
# once the port is seen free. SWITCHYARD_SDK_NETNS=0 never tries.
export SDK_ACCEPTANCE_SRC=$src SDK_ACCEPTANCE_BIN=$bin SDK_ACCEPTANCE_STARTED=$started
if [ "${SWITCHYARD_SDK_NETNS:-1}" != 0 ] && command -v ip >/dev/null \
  && unshare --net --map-root-user true 2>/dev/null; then
  say "running in a private network namespace (its own localhost:$port)"
  SDK_ACCEPTANCE_NETNS=1 exec unshare --net --map-root-user "$self" __serve-and-run "$@"
fi
exec "$self" __serve-and-run "$@"
