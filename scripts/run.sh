#!/usr/bin/env bash
# The demo: installs what is missing, builds the page and the server, starts the server with
# the embedded Kafka broker and prints the URL. Extra arguments go to the server
# (e.g. scripts/run.sh --brokers 127.0.0.1:19092 --rate 20).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CASHFLOW_TOOLS:-$HOME/.cache/cashflow/tools}/bin:${CASHFLOW_TOOLS:-$HOME/.cache/cashflow/tools}/npm/node_modules/.bin:$HOME/.cargo/bin:$PATH"
scripts/setup.sh demo
echo "[run] building the page (trunk build --release; the first build takes a few minutes)" >&2
trunk build --release >&2
echo "[run] building the server (the first build compiles librdkafka and the broker: ~10 min on 2 cores)" >&2
cargo build --release -p cashflow >&2
exec "${CARGO_TARGET_DIR:-target}/release/cashflow" --web-dir dist "$@"
