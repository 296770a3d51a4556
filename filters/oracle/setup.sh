#!/usr/bin/env bash
# Installs npm koncorde (the oracle of the differential test and of the benchmark) into
# filters/oracle/node_modules and builds its native modules against the system's Node headers.
# Idempotent. Exits non-zero, loudly, if the oracle cannot be made to work.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

fail() {
  echo "error: filters/oracle: $*" >&2
  echo "hint: needs node >= 18, npm, a C++ toolchain (g++, make, python3) and Node headers (/usr/include/node)" >&2
  exit 1
}

command -v node >/dev/null || fail "node is not installed"
command -v npm >/dev/null || fail "npm is not installed"

check() {
  node -e '
    const { Koncorde } = require("koncorde");
    const k = new Koncorde();
    const a = k.register({ regexp: { s: "^a" } });
    const b = k.register({ geoDistance: { p: { lat: 0, lon: 0 }, distance: "1km" } });
    const c = k.register({ in: { e: ["1", "2"] } });
    const hit = k.test({ s: "ab", p: [0, 0], e: "2" }).sort();
    if (hit.join() !== [a, b, c].sort().join()) { throw new Error("koncorde answers wrongly"); }
  ' >/dev/null 2>&1
}

if [ -d node_modules/koncorde ] && check; then
  echo "filters/oracle: koncorde is ready ($(node -p 'require("koncorde/package.json").version'))"
  exit 0
fi

# The native modules (re2, boost-geospatial-index, espresso logic minimizer) build from source
# against the system's Node headers; re2 must not try to download a prebuilt binary.
export npm_config_nodedir="${npm_config_nodedir:-/usr}"
export RE2_DOWNLOAD_SKIP_PATH=1
export RE2_DOWNLOAD_MIRROR="${RE2_DOWNLOAD_MIRROR:-http://127.0.0.1:9}"

npm install --no-audit --no-fund --ignore-scripts >&2 || fail "npm install failed"
npm rebuild --foreground-scripts re2 boost-geospatial-index kuzzle-espresso-logic-minimizer >&2 \
  || fail "building koncorde's native modules failed"

check || fail "koncorde is installed but does not work (native modules missing?)"
echo "filters/oracle: koncorde is ready ($(node -p 'require("koncorde/package.json").version'))"
