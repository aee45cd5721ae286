#!/usr/bin/env bash
# The demo: installs what is missing, builds the page and the server, starts the server (which
# starts and supervises its own Apache Kafka broker) and prints the URL. Extra arguments go to the server
# (e.g. scripts/run.sh --brokers 127.0.0.1:19092 --rate 20).
# On a fresh machine the server's release build (librdkafka, the broker) is the long step; it
# runs in the background while the page's tools are installed and the page is built (its own
# target folder, so neither waits for the other's lock). Each step says k of n and the time.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${CASHFLOW_TOOLS:-$HOME/.cache/cashflow/tools}
export PATH="$TOOLS/bin:$TOOLS/npm/node_modules/.bin:$HOME/.cargo/bin:$PATH"
target=${CARGO_TARGET_DIR:-target}
started=$(date +%s)
step() { printf '\033[1m[run %d/6, %ds]\033[0m %s\n' "$1" "$(($(date +%s) - started))" "$2" >&2; }

step 1 "Rust toolchain and build tools"
scripts/setup.sh rust
step 2 "building the server in the background (first time: 10–25 min on 2 cores; log: $target/run-server-build.log)"
mkdir -p "$target"
# Its own process group (setsid), so stopping it stops its rustc and build scripts too.
setsid -w cargo build --release -p cashflow >"$target/run-server-build.log" 2>&1 &
server_build=$!
trap 'kill -- -$server_build 2>/dev/null || kill $server_build 2>/dev/null || true' EXIT
step 3 "Java and the Apache Kafka jars (the broker cashflow runs)"
scripts/setup.sh kafka
step 4 "the page's tools (wasm-bindgen-cli, wasm-opt)"
scripts/setup.sh page
step 5 "building the page (scripts/page.sh)"
CARGO_TARGET_DIR="$target/page" scripts/page.sh dist
step 6 "waiting for the server build"
while kill -0 "$server_build" 2>/dev/null; do
  sleep 15
  kill -0 "$server_build" 2>/dev/null || break
  line=$({ grep -E '^\s+(Compiling|Finished|Downloaded|Blocking)' "$target/run-server-build.log" || true; } | tail -1 | sed 's/^ *//')
  printf '[run 6/6, %ds] %s\n' "$(($(date +%s) - started))" "${line:-…}" >&2
done
if ! wait "$server_build"; then
  tail -30 "$target/run-server-build.log" >&2
  echo "[run] the server build failed (whole log: $target/run-server-build.log)" >&2
  exit 1
fi
trap - EXIT
printf '\033[1m[run] ready after %ds\033[0m\n' "$(($(date +%s) - started))" >&2
exec "$target/release/cashflow" --web-dir dist "$@"
