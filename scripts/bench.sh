#!/usr/bin/env bash
# The one benchmark command: release builds, a benchmark Apache Kafka (full JIT, its own port and
# folder) and the broker cashflow runs itself (the default), each figure beside its peer from the same run, as a ratio.
#   scripts/bench.sh           the full run; writes the generated section of BENCHMARKS.md
#   scripts/bench.sh --small   the CI version (small sizes): prints the tables, writes nothing
# Environment: BENCH_ONLY="producer calculator …" runs some parts only (their tables are printed,
# BENCHMARKS.md is left as it is); KAFKA_PORT (default 19292); BENCH_PROFILE (release; dev for
# --small); BENCH_PAGE_DIST, a page already built by scripts/page.sh (else built here).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"
small=0
[ "${1:-}" = --small ] && small=1
export KAFKA_PORT=${KAFKA_PORT:-19292}
export KAFKA_DIR=${KAFKA_DIR:-$HOME/.cache/cashflow/kafka-bench-$KAFKA_PORT}
export KAFKA_BENCH=1 KAFKA_HEAP=${KAFKA_HEAP:-1g}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/cashflow/target}
TOOLS=${CASHFLOW_TOOLS:-$HOME/.cache/cashflow/tools}
export PATH="$TOOLS/bin:$TOOLS/venv/bin:$TOOLS/npm/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export CASHFLOW_TEST_BROKERS=127.0.0.1:$KAFKA_PORT
started=$(date +%s)
say() { printf '[bench %4ss] %s\n' "$(($(date +%s) - started))" "$*" >&2; }
only() { [ -z "${BENCH_ONLY:-}" ] || [[ " $BENCH_ONLY " == *" $1 "* ]]; }

if [ "$small" = 1 ]; then
  calc_apache=200000 calc_managed=20000
  prod_apache=50000 prod_managed=10000 prod_loop=1000
  latency_seconds=2 latency_rates=10,10000 fanout_seconds=2 fanout_viewers=0,10 idle_seconds=3 idle_warmup=3 accounts="2000"
  page_seconds=3 page_accounts="100" bandwidth_seconds=3
  export BENCH_PERF_RUNS=1 BENCH_CASHFLOW_RUNS=1 BENCH_ACCOUNTS_RUNS=1
  # The small run proves the command works, its figures are not kept: the dev profile, whose
  # dependencies `cargo test` has just built, instead of 3 minutes of release builds in CI.
  profile=${BENCH_PROFILE:-dev}
else
  calc_apache=10000000 calc_managed=1000000
  prod_apache=1000000 prod_managed=200000 prod_loop=10000
  latency_seconds=20 latency_rates=1,10,1000,10000 fanout_seconds=10 fanout_viewers=0,10,100,1000 idle_seconds=60 idle_warmup=120
  accounts="10000 1000000"
  page_seconds=120 page_accounts="10 100 1000" bandwidth_seconds=60
  profile=${BENCH_PROFILE:-release}
fi
# Where cargo puts that profile's binaries.
bin_dir=$CARGO_TARGET_DIR/$([ "$profile" = dev ] && echo debug || echo "$profile")

# The Python peer's client (confluent-kafka) is in $TOOLS/venv (scripts/setup.sh test).
python3 -c 'import confluent_kafka' 2>/dev/null || say "no confluent-kafka (scripts/setup.sh test installs it): the Python peers are left out"

say "building the $profile binary and the benchmarks"
benches=""
for b in producer calculator latency fanout idle accounts bandwidth; do
  only "$b" && benches="$benches --bench $b"
done
# shellcheck disable=SC2086 # one word per bench
[ -z "$benches" ] || cargo bench -p cashflow --profile "$profile" --no-run -q $benches >&2
# The binary the page part runs (the benches build it too).
only page && cargo build --profile "$profile" -q -p cashflow >&2

say "starting the benchmark broker on 127.0.0.1:$KAFKA_PORT"
"$here/kafka.sh" start >&2
trap '"$here/kafka.sh" stop >&2 || true' EXIT

rows=$(mktemp)
run() { # run NAME ENV… : one bench binary; its ROW lines are kept
  local name=$1; shift
  say "$name ${*}"
  env "$@" cargo bench -p cashflow --profile "$profile" -q --bench "$name" 2>&1 | tee -a /dev/stderr | grep '^ROW ' >>"$rows" || {
    say "$name failed"; exit 1; }
}

if only producer; then
  run producer BENCH_PRODUCE=$prod_apache BENCH_PRODUCE_LOOP=$prod_loop
  run producer BENCH_PRODUCE=$prod_managed BENCH_PRODUCE_LOOP=$prod_loop BENCH_BROKERS=managed
fi
if only calculator; then
  run calculator BENCH_RECORDS=$calc_apache
  # The same with a second member in the process (the page's "add a member"): two apply loops.
  run calculator BENCH_RECORDS=$calc_apache BENCH_MEMBERS=2 BENCH_PYTHON=0 BENCH_COUNT_ONLY=0
  run calculator BENCH_RECORDS=$calc_managed BENCH_BROKERS=managed
fi
if only latency; then
  run latency BENCH_LATENCY_SECONDS=$latency_seconds BENCH_LATENCY_RATES=$latency_rates
  run latency BENCH_LATENCY_SECONDS=$latency_seconds BENCH_LATENCY_RATES=$latency_rates BENCH_BROKERS=managed
fi
if only fanout; then
  run fanout BENCH_FANOUT_SECONDS=$fanout_seconds BENCH_FANOUT_VIEWERS=$fanout_viewers
fi
if only idle; then
  run idle BENCH_IDLE_SECONDS=$idle_seconds BENCH_IDLE_WARMUP=$idle_warmup
fi
if only bandwidth; then
  run bandwidth BENCH_BANDWIDTH_SECONDS=$bandwidth_seconds
fi
if only accounts; then
  for n in $accounts; do run accounts BENCH_ACCOUNTS=$n; done
fi
if only page; then
  # The page as the demo builds it, in headless chromium against the binary.
  page_dist=${BENCH_PAGE_DIST:-$CARGO_TARGET_DIR/bench-page}
  if [ -z "${BENCH_PAGE_DIST:-}" ]; then
    say "page build for the frame-time part"
    CARGO_TARGET_DIR=$CARGO_TARGET_DIR/page scripts/page.sh "$page_dist"
  fi
  for n in $page_accounts; do
    say "page frame time, $n accounts"
    CASHFLOW_BIN=$bin_dir/cashflow CASHFLOW_DIST=$page_dist PERF_SHOT=$CARGO_TARGET_DIR/bench-page-$n.png \
      node web/e2e/perf.mjs "$page_seconds" "$n" 500 | tail -1 | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
s = r["last_10s"]
cells = [str(r["accounts"]), str(r["polylines"]), "%.0f" % s["frames"], "%.2f" % s["avg_ms"],
         "%.2f" % s["recent_avg_ms"], "%.1f" % s["recent_max_ms"], "%.1f" % s["max_ms"]]
print("ROW page | " + " | ".join(cells) + " |")
' >>"$rows" || { say "page frame time failed"; exit 1; }
  done
fi

commit=$(git rev-parse --short HEAD)
[ -n "$(git status --porcelain -- . ':!BENCHMARKS.md')" ] && commit="$commit+changes"
section=$(mktemp)
{
  echo "<!-- bench:begin (generated by scripts/bench.sh: do not edit by hand) -->"
  echo "## Against peers, in one run"
  echo
  echo "\`scripts/bench.sh\` on $(date -u +%Y-%m-%d), commit \`$commit\`, $(nproc) cores"
  echo "($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(($(grep MemTotal /proc/meminfo | awk '{print $2}') / 1048576)) GiB),"
  echo "$profile profile; Apache Kafka $(grep -m1 -o '<kafka.version>[^<]*' scripts/kafka/pom.xml | cut -d'>' -f2) (KRaft, one node, $KAFKA_HEAP heap, JVM defaults) on the same machine."
  echo
  if grep -q '^ROW producer ' "$rows"; then
    echo "### Producer against Kafka's own and Python's"
    echo
    echo "Records per second, from the first record until every delivery report is in, each producer"
    echo "idempotent with \`acks=all\`, ~230-byte records, a fresh topic of 6 partitions. *defaults*: each"
    echo "client at its own batching defaults (linger.ms 5 in all three; batch.size 1 MB in librdkafka,"
    echo "16 KiB in Java); *tuned*: all at linger.ms 20, batch.size 256 KiB. cashflow: the release binary,"
    echo "a \`burst\` of N over its WebSocket (calculator paused, logging consumer running), tuned through"
    echo "\`set_batching\`. kafka-producer-perf-test: \`--record-size 230\`, unkeyed. Python: confluent-kafka"
    echo "keyed by account, each transaction made (random values, JSON) as it is sent, produce without"
    echo "waiting, one flush at the end (at most 300 000 records). Ratios are cashflow / peer."
    echo
    echo "| broker | settings | records | cashflow | kafka-producer-perf-test | ratio | Python batched | ratio |"
    echo "|---|---|---|---|---|---|---|---|"
    grep '^ROW producer ' "$rows" | sed 's/^ROW producer //'
    echo
    echo "The original's producer loop (produce, then flush, one message at a time; keyed \"transaction\","
    echo "so one partition), without its sleep, against cashflow's rate at defaults above:"
    echo
    echo "| broker | records | Python loop | cashflow / loop |"
    echo "|---|---|---|---|"
    grep '^ROW producer-loop' "$rows" | sed 's/^ROW producer-loop //'
    echo
  fi
  if grep -q '^ROW calculator' "$rows"; then
    echo "### Balance calculator against Kafka's own consumer"
    echo
    echo "Records per second over a pre-filled topic (6 partitions, 1 000 accounts, ~230-byte records),"
    echo "all three with the same fetch settings. cashflow: the release binary with snapshots on, its"
    echo "calculator started paused while the topic was filled, timed from the resume (its first fetch)"
    echo "until the group's committed offsets reach the end (in brackets: until the last record is"
    echo "applied), balances then compared with a recomputation. kafka-consumer-perf-test: its"
    echo "\`fetch.nMsg.sec\`, the median of three runs (cashflow's figure too: the median of three runs,"
    echo "each a fresh server in a fresh group). Python: confluent-kafka, \`consume(1000)\`, the"
    echo "same arithmetic, offsets stored after processing. Ratios are cashflow / peer. \"2 members\":"
    echo "the calculator's group with a second member in the same process (the page's *add a member*),"
    echo "each applying its partitions on its own task; each row has its own perf-tool runs."
    echo
    echo "| broker | records | cashflow | kafka-consumer-perf-test | ratio | Python confluent-kafka | ratio | balances exact |"
    echo "|---|---|---|---|---|---|---|---|"
    grep '^ROW calculator' "$rows" | sed 's/^ROW calculator //'
    echo
    if grep -q '^ROW ceiling' "$rows"; then
      echo "The client library's own ceiling, same topic and fetch settings, right after: a rust-rdkafka"
      echo "\`StreamConsumer\` (the one cashflow consumes through, with its \`fetch.queue.backoff.ms\`) that"
      echo "only counts the records and their bytes. What separates cashflow from it is cashflow's own"
      echo "work a record (parse, ledger, offsets); what separates it from the perf tool is the client."
      echo
      echo "| broker | records | counting only | vs perf tool | cashflow (median) | cashflow / counting only |"
      echo "|---|---|---|---|---|---|"
      grep '^ROW ceiling' "$rows" | sed 's/^ROW ceiling //'
      echo
    fi
  fi
  if grep -q '^ROW latency' "$rows"; then
    echo "### Latency: produce → the WebSocket frame that carries it"
    echo
    echo "The release binary generating at each rate (20 accounts, all shown), one WebSocket client"
    echo "noting each frame's arrival; the topic read back afterwards. Balance: a frame's new count"
    echo "for an account covers that account's records (in partition order) not carried before; each"
    echo "one's latency is the frame's arrival minus the transaction's timestamp (set as the producer"
    echo "makes it). Log line: arrival minus the line's record timestamp. ${latency_seconds} s per rate"
    echo "(three times that at 1 tx/s), after 2 s of warming up. Milliseconds. Target: p99 ≤ 100."
    echo
    echo "| broker | tx/s | balance p50 | p99 | max | log line p50 | p99 | max | frames/s |"
    echo "|---|---|---|---|---|---|---|---|---|"
    grep '^ROW latency' "$rows" | sed 's/^ROW latency //'
    echo
  fi
  if grep -q '^ROW fanout' "$rows"; then
    echo "### Fan-out: viewers at 1 000 tx/s"
    echo
    echo "The release binary, default demo (its managed broker, 100 accounts) at 1 000 tx/s; N WebSocket"
    echo "viewers in the bench process reading every frame. The server's CPU (user + system, from"
    echo "\`/proc\`) over ${fanout_seconds} s, as % of one core, and what each viewer received. Target:"
    echo "1 000 viewers cost ≤ 1 core above none."
    echo
    echo "| viewers | server CPU | above 0 viewers | frames/s per viewer | bytes/s per viewer |"
    echo "|---|---|---|---|---|"
    grep '^ROW fanout' "$rows" | sed 's/^ROW fanout //'
    echo
    echo "Viewers that stop reading (connected, never read) while the same load runs, resident memory"
    echo "of the server:"
    echo
    echo "| stalled viewers | before (MiB) | at most (MiB) | growth (MiB) |"
    echo "|---|---|---|---|"
    grep '^ROW stalled' "$rows" | sed 's/^ROW stalled //'
    echo
  fi
  if grep -q '^ROW bandwidth' "$rows"; then
    echo "### One viewer's bytes: the page on a classroom's Wi-Fi"
    echo
    echo "The release binary generating at each rate over 100 accounts; one WebSocket viewer counts"
    echo "every payload byte for ${bandwidth_seconds} s from its first snapshot (snapshots sent again"
    echo "count too), and what each part of the deltas weighed. Peer: the records themselves (keys and"
    echo "values written in the same window), what a client streaming the topic would receive. Targets:"
    echo "≤ 2 kB/s at 2 tx/s, ≤ 20 kB/s at 1 000 tx/s."
    echo
    echo "| broker | tx/s | seconds | frames/s | viewer (kB/s) | snapshots again | the records (kB/s) | viewer / records | heaviest parts (kB/s) |"
    echo "|---|---|---|---|---|---|---|---|---|"
    grep '^ROW bandwidth' "$rows" | sed 's/^ROW bandwidth //'
    echo
  fi
  if grep -q '^ROW idle' "$rows"; then
    echo "### Idle cost"
    echo
    echo "The release binary left running with no viewer; its CPU (user + system) over the window after"
    echo "${idle_warmup} s of settling (the broker JVM's JIT done), as % of one core, and its managed broker's JVM beside it. Target: ≤ 2 %"
    echo "for the default demo, cashflow and its broker together."
    echo
    echo "| setting | seconds | cashflow | its broker | together |"
    echo "|---|---|---|---|---|"
    grep '^ROW idle' "$rows" | sed 's/^ROW idle //'
    echo
  fi
  if grep -q '^ROW accounts' "$rows"; then
    echo "### Memory per account"
    echo
    echo "N accounts, one Credit each, written by a plain producer to Apache Kafka; the release binary"
    echo "(\`--paused\`) applies them. The ledger alone is measured with a counting allocator. The server"
    echo "runs three phases, each ending with a viewer and a walk through every page of \`/api/balances\`:"
    echo "a warm-up (20 000 records of 100 accounts), a control (N records of the same 100 accounts)"
    echo "and the measured phase (N records of N new accounts). Its growth per account is the measured"
    echo "phase's peak resident memory less the control's, over N: the memory records take (fetch"
    echo "buffers the allocator keeps) is in both. The median of \`BENCH_ACCOUNTS_RUNS\` runs (each on"
    echo "a fresh server), the runs in brackets lowest first; beside it, the same against the warm-up"
    echo "instead of the control (what the earlier measure compared with; the control now runs in"
    echo "between). The same once settled: resident memory read every 250 ms after the viewer until"
    echo "2 s of readings lie within 256 KiB (the allocator returns freed pages a second after their"
    echo "last use), so what the server keeps rather than what its last burst of work took; each"
    echo "settled column from the settled figure's median run. Target: ≤ 100 B per account beyond"
    echo "the ledger."
    echo
    echo "| accounts | ledger (B/account) | server growth, peak (B/account) | beyond the ledger, peak (B/account) | beyond the ledger, settled (B/account) | peak against the warm-up (B/account) | server RSS, peak: warm → control → measured | settled: control → measured | applied in | largest frame (B) |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    grep '^ROW accounts' "$rows" | sed 's/^ROW accounts //'
    echo
  fi
  if grep -q '^ROW page' "$rows"; then
    echo "### Page: script time per frame"
    echo
    echo "\`web/e2e/perf.mjs\`: the release binary at 500 tx/s with N accounts in the ledger (the page"
    echo "charts at most 100), the page as \`scripts/page.sh\` builds it, in headless chromium at"
    echo "1280×720 for ${page_seconds} s; the time from a frame's state update until its effects ran"
    echo "(\`window.__cashflow_stats\`), over every frame and over the last 120."
    echo
    echo "| accounts | lines drawn | frames | mean (ms) | last 120: mean (ms) | last 120: max (ms) | worst (ms) |"
    echo "|---|---|---|---|---|---|---|"
    grep '^ROW page' "$rows" | sed 's/^ROW page //'
    echo
  fi
  echo "<!-- bench:end -->"
} >"$section"

if [ "$small" = 1 ] || [ -n "${BENCH_ONLY:-}" ]; then
  # A part of the run (BENCH_ONLY) would leave the other tables out of the file: printed only.
  cat "$section"
else
  python3 - "$section" <<'EOF'
import re, sys
new = open(sys.argv[1]).read().rstrip("\n")
text = open("BENCHMARKS.md").read()
pattern = re.compile(r"<!-- bench:begin.*?<!-- bench:end -->", re.S)
if pattern.search(text):
    text = pattern.sub(lambda _: new, text)
else:
    head, sep, rest = text.partition("\n## ")
    text = head.rstrip("\n") + "\n\n" + new + "\n" + (sep + rest if sep else "")
open("BENCHMARKS.md", "w").write(text)
EOF
  say "BENCHMARKS.md updated"
fi
say "done"
