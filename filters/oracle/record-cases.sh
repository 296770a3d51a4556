#!/usr/bin/env bash
# Regenerates filters/tests/data/koncorde_suite_cases.json: runs Koncorde 4.6.0's own mocha
# suite (github kuzzleio/koncorde, tag 4.6.0 test/ folder) against the oracle install
# (filters/oracle/node_modules/koncorde) with record-cases.js recording every #validation and
# #matching case. Needs `bash filters/oracle/setup.sh` first, git, a checkout of the koncorde
# sources, and the npm registry for mocha/should/sinon (installed into a temporary directory).
# Usage: bash filters/oracle/record-cases.sh <path to a kuzzleio/koncorde checkout at 4.6.0>
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

repo="${1:-}"
if [ -z "$repo" ] || ! git -C "$repo" cat-file -e HEAD:test 2>/dev/null; then
  echo "usage: bash filters/oracle/record-cases.sh <kuzzleio/koncorde checkout at tag 4.6.0>" >&2
  exit 2
fi

suite="$work/suite"
mkdir -p "$suite"
cp -r "$here/node_modules/koncorde/lib" "$here/node_modules/koncorde/package.json" "$suite/"
git -C "$repo" archive HEAD test | tar -x -C "$suite"
ln -s "$here/node_modules" "$suite/node_modules"

deps="$work/deps"
mkdir -p "$deps"
(cd "$deps" && echo '{"private":true}' > package.json \
  && npm install --no-audit --no-fund --silent mocha@10.2.0 should@13.2.3 should-sinon@0.0.6 sinon@19.0.2 >&2)

cd "$suite"
KONCORDE_SUITE_DIR="$suite" KONCORDE_CASES_OUT="$here/../tests/data/koncorde_suite_cases.json" \
  NODE_PATH="$deps/node_modules" \
  node "$deps/node_modules/mocha/bin/mocha.js" --recursive --reporter dot \
  --require should-sinon --require "$here/record-cases.js" 'test/**/*.test.js' || true
echo "recorded $(grep -c '"file"' "$here/../tests/data/koncorde_suite_cases.json") cases" >&2
