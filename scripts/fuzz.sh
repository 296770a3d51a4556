#!/usr/bin/env bash
# Runs every fuzz target for a short time (default 20 s each), one after the other, niced, one
# libFuzzer process at a time (no -jobs: libFuzzer's -jobs=1 would fork a second process). Usage: scripts/fuzz.sh [seconds] [target...]
#
# Needs a nightly toolchain and cargo-fuzz (`rustup toolchain install nightly`,
# `cargo install cargo-fuzz`). The committed seeds (fuzz/corpus/<target>) are read, never
# written: what libFuzzer finds goes to target/fuzz-corpus/<target>, which later runs reuse.
# A crash, hang (5 s) or allocation over 2 GB stops the script; libFuzzer leaves the input in
# fuzz/artifacts/<target>/, and `cargo +nightly fuzz run <target> <that file>` replays it.
# Each run's last line (`#runs cov: ft: corp: exec/s:`) is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  targets=(ws_frame ws_handshake ws_inflate mqtt_codec socketio_packets http_request host_request filters config)
fi

nice -n 19 env CARGO_BUILD_JOBS=1 cargo +nightly fuzz build -O --fuzz-dir fuzz

summary=()
for target in "${targets[@]}"; do
  scratch="target/fuzz-corpus/$target"
  mkdir -p "$scratch"
  log="target/fuzz-corpus/$target.log"
  printf '== %s: %s s\n' "$target" "$seconds" >&2
  nice -n 19 env CARGO_BUILD_JOBS=1 cargo +nightly fuzz run -O --fuzz-dir fuzz "$target" \
    "$scratch" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=5 -max_len=65536 \
    -print_final_stats=1 2>"$log" || {
      tail -40 "$log" >&2
      printf '== %s FAILED: see %s and fuzz/artifacts/%s/\n' "$target" "$log" "$target" >&2
      exit 1
    }
  summary+=("$target: $(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$log" | tail -1)")
done
printf '%s\n' "${summary[@]}"
