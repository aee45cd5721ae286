#!/usr/bin/env bash
# The demo's first run as on a fresh machine (BENCHMARKS.md, "First run on a fresh machine"):
# an empty HOME, CARGO_HOME and RUSTUP_HOME under FOLDER, rustup's own binary run as
# rustup-init with no toolchain, a fresh clone of this repository's HEAD, then scripts/run.sh
# timed until it prints the URL; the demo is stopped after that.
#   scripts/bench/fresh-run.sh [FOLDER]   (default /tmp/cashflow-fresh; removed first)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
F=${1:-/tmp/cashflow-fresh}
rustup=$(command -v rustup)
rm -rf "$F"; mkdir -p "$F/home"
[ -f "$HOME/.npmrc" ] && cp "$HOME/.npmrc" "$F/home/"
cp "$rustup" "$F/rustup-init"
export HOME=$F/home CARGO_HOME=$F/home/.cargo RUSTUP_HOME=$F/home/.rustup
unset CARGO_TARGET_DIR CARGO_INCREMENTAL CASHFLOW_TOOLS CASHFLOW_TEST_BROKERS
export PATH=$CARGO_HOME/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
"$F/rustup-init" -y --default-toolchain none --no-modify-path -q >"$F/rustup-init.log" 2>&1
git clone -q "$repo" "$F/cashflow"
cd "$F/cashflow"
echo "commit $(git rev-parse --short HEAD)"
s=$(date +%s)
scripts/run.sh --listen 127.0.0.1:0 --kafka-listen 127.0.0.1:0 --ephemeral >"$F/run.out" 2>"$F/run.err" &
run=$!
until grep -q "running at" "$F/run.out" 2>/dev/null; do
  kill -0 "$run" 2>/dev/null || { tail -20 "$F/run.err"; echo "scripts/run.sh ended without a URL" >&2; exit 1; }
  sleep 1
done
echo "URL after $(($(date +%s) - s)) s; steps:"
sed 's/\x1b\[[0-9;]*m//g' "$F/run.err" | grep -E '^\[(run|setup|kafka|page)'
grep -h Finished target/run-server-build.log || true
# run.sh execs the server: its process is the demo.
kill -INT "$run"
wait "$run" || true
