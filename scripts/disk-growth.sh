#!/usr/bin/env bash
# The embedded broker's disk at "max": starts the release binary with 100 accounts generating as
# fast as it can, prints the data folder's size every 15 s, stops it with SIGTERM.
#   scripts/disk-growth.sh [RETENTION_MB|default] [SECONDS]
# (`cargo build --release -p cashflow` first; RETENTION_MB is --retention-mb, per partition.)
set -euo pipefail
mb=${1:-default}; secs=${2:-240}
dir=$(mktemp -d "${TMPDIR:-/tmp}/cashflow-disk-XXXX")
bin=${CARGO_TARGET_DIR:-$HOME/.cache/cashflow/target}/release/cashflow
retention=(); [ "$mb" = default ] || retention=(--retention-mb "$mb")
"$bin" --data-dir "$dir/data" --rate max --accounts 100 "${retention[@]}" \
  --listen 127.0.0.1:0 --embedded-listen 127.0.0.1:0 > "$dir/out" 2> "$dir/err" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do grep -q http "$dir/out" 2>/dev/null && break; sleep 0.2; done
url=$(grep -o 'http://[0-9.:]*' "$dir/out" | head -1)
t0=$(date +%s)
while [ $(( $(date +%s) - t0 )) -lt "$secs" ]; do
  sleep 15
  delivered=$(curl -s "$url/api/producer" | python3 -c 'import sys, json; print(json.load(sys.stdin)["delivered"])')
  echo "$(( $(date +%s) - t0 )) s  delivered=$delivered  data=$(du -sm "$dir/data" | cut -f1) MB"
done
