#!/usr/bin/env bash
# Every test: formatting, lints, unit and property tests, the pipeline against Apache Kafka 4.x
# (started here by scripts/kafka.sh; the managed broker's own tests start theirs), the CLI, the WebSocket bridge, the
# Python client interop, the benchmark command at small sizes, the page build, the page logic as
# wasm, and the page end to end in headless chromium. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${CASHFLOW_TOOLS:-$HOME/.cache/cashflow/tools}
export PATH="$TOOLS/bin:$TOOLS/venv/bin:$TOOLS/npm/node_modules/.bin:$HOME/.cargo/bin:$PATH"
started=$(date +%s)
step() { printf '\n\033[1m== %s (%ss)\033[0m\n' "$*" "$(( $(date +%s) - started ))" >&2; }

step "setup"
scripts/setup.sh test

step "Apache Kafka"
# Empty at every run: the data of earlier runs (thousands of test topics) would grow without
# bound and slow the broker's own restarts in the broker-restart tests.
scripts/kafka.sh fresh
# The broker-restart tests' own broker (they stop and start it, beside the shared one): they
# start it; its data goes at every run, like the shared one's.
export RESTART_KAFKA_PORT=${RESTART_KAFKA_PORT:-19492}
KAFKA_PORT=$RESTART_KAFKA_PORT scripts/kafka.sh clean
trap 'scripts/kafka.sh stop; KAFKA_PORT=$RESTART_KAFKA_PORT scripts/kafka.sh stop' EXIT
export CASHFLOW_TEST_BROKERS=127.0.0.1:${KAFKA_PORT:-19092}

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets -- -D warnings
cargo clippy -p cashflow-web --target wasm32-unknown-unknown -- -D warnings

step "cargo doc"
# The crate docs are the map of the code (server/src/lib.rs): their links must resolve.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p cashflow -p cashflow-shared

step "shared crate on wasm32"
cargo build -p cashflow-shared --target wasm32-unknown-unknown

step "cargo test"
target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target"
# The logs of the servers that tests start as separate processes, kept for a failing run.
export CASHFLOW_TEST_SERVER_LOG="$target/test-servers.log" CASHFLOW_TEST_SERVER_RUST_LOG=warn,cashflow=info
rm -f "$CASHFLOW_TEST_SERVER_LOG"
# Several tests at a time, each a process of its own (.config/nextest.toml says which wait for
# which); then the doc tests, which nextest leaves to cargo.
if ! cargo nextest run --no-fail-fast 2>&1 | tee "$target/cargo-test.log"; then
  # A failing test's message sits above its captured log and backtrace; CI shows only the tail.
  printf '\n\033[1m== why the failing tests failed\033[0m\n' >&2
  grep -A4 "panicked at" "$target/cargo-test.log" | grep -v '^stack backtrace' | tail -60 >&2
  exit 1
fi
cargo test --doc 2>&1 | tee "$target/doc-test.log"
# The summaries, gathered, so one closing line states the total.
passed=$(sed -n 's/.* tests\{0,1\} run: \([0-9]*\) passed.*/\1/p' "$target/cargo-test.log" | tail -1)
passed=$((${passed:-0} + $(grep -o 'test result: ok. [0-9]* passed' "$target/doc-test.log" | awk '{s+=$4} END {print s+0}')))

step "Python client interop (confluent-kafka)"
# The cashflow binary cargo test just built (a separate `cargo build` would resolve features
# differently and rebuild every dependency).
python3 server/tests/interop.py "$target/debug/cashflow"

step "page build (scripts/page.sh, as the demo builds it; trunk serve has its own test)"
scripts/page.sh dist

step "page size budget"
# The gzipped wasm a class downloads may not grow: 306 378 B after issue 21's cuts (from 353 KiB),
# then 313 061 B with the record flow's labels over its dots and following an account from it
# (+6.7 KB), then 318 607 B with the review's fixes (a snapshot's history read as changes, lag
# histories kept by group name: +5.5 KB), then 288 641 B with Leptos's erased component types
# (.cargo/config.toml), then 295 744 B with the replication lesson's node rows, their wire
# type and the badge naming the Kafka (issue 22: +7.1 KB), then 318 872 B with the views reading
# per-part memos and keyed lists (issue 23: +22 KB for a frame 2.6 times faster at 100 accounts,
# BENCHMARKS.md "Page: script time per frame"); a ratchet toward issue 21's target of 150 KB (not
# met; see BENCHMARKS.md, "Page size"). Lower it when the page shrinks; raise it only with a
# measured reason in the same commit.
budget=320000
wasm_gz=$(stat -c %s dist/cashflow-web-*_bg.wasm.gz)
echo "gzipped wasm: $wasm_gz B (budget $budget B)"
if [ "$wasm_gz" -gt "$budget" ]; then
  echo "the page's gzipped wasm grew past its budget: $wasm_gz > $budget B (twiggy top shows what grew)" >&2
  exit 1
fi

step "benchmark command, small (dev profile; its own broker on 19292)"
# The command that writes BENCHMARKS.md, at small sizes, so it cannot rot: each figure beside its
# peer, and the calculator's balances checked against the recomputation. The page just built.
BENCH_PAGE_DIST=dist scripts/bench.sh --small

step "page logic as WebAssembly in chromium (wasm-bindgen-test)"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test -p cashflow-web --target wasm32-unknown-unknown 2>&1 | tee "$target/wasm-test.log"
wasm=$(grep -o 'test result: ok. [0-9]* passed' "$target/wasm-test.log" | awk '{s+=$4} END {print s+0}')

step "browser end to end (chromium headless)"
# One test file at a time (261 s; two at a time took ~150 s): two files each starting Apache
# Kafka JVMs at once on 2 cores made the guided walk flaky in clean-clone CI (2 of 4 runs on
# 2026-12-07: a cluster node that exited at its start, read as an outage; an outage whose
# recovery passed the step's 120 s), never when run alone.
CASHFLOW_BIN="$target/debug/cashflow" CASHFLOW_DIST=dist CASHFLOW_ARTIFACTS="$target/e2e" \
  CASHFLOW_NODE_MODULES="$TOOLS/npm/node_modules" node --test --test-concurrency=1 web/e2e/ 2>&1 | tee "$target/e2e.log"
e2e=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$target/e2e.log")
echo "screenshots: $target/e2e/"

step "done"
echo "tests: $((passed + wasm + 1 + e2e)) passed, 0 failed"
