#!/usr/bin/env bash
# The default demo at idle, per thread (BENCHMARKS.md, "The managed Apache Kafka broker"): the
# release cashflow with its own broker, WARM seconds of warm-up (120), then every thread's CPU
# time (user + system, from /proc) of cashflow and of its JVM over WINDOW seconds (60), as % of
# one core; with REQUESTS=1 also the broker's requests in that window, by kind (the broker logs
# each one: CASHFLOW_KAFKA_REQUEST_LOG). Extra arguments go to cashflow.
#   scripts/bench/idle-threads.sh [cashflow args…]    (WARM=… WINDOW=… REQUESTS=1 in the environment)
set -euo pipefail
bin=${CARGO_TARGET_DIR:-$HOME/.cache/cashflow/target}/release/cashflow
warm=${WARM:-120} window=${WINDOW:-60}
log=$(mktemp)
[ "${REQUESTS:-0}" = 1 ] && export CASHFLOW_KAFKA_REQUEST_LOG=1
"$bin" --listen 127.0.0.1:0 --kafka-listen 127.0.0.1:0 --ephemeral "$@" >"$log" 2>&1 &
cf=$!
trap 'kill $cf 2>/dev/null; wait $cf 2>/dev/null; rm -f "$log"' EXIT
sleep "$warm"
jvm=$(pgrep -P "$cf" java | head -1)
# The broker's log: beside the log4j2.properties its command line names.
broker_log=$(tr '\0' '\n' <"/proc/$jvm/cmdline" | sed -n 's/^-Dlog4j2.configurationFile=\(.*\)log4j2.properties$/\1server.log/p')
lines_before=$(wc -l <"$broker_log")
sample() { python3 - "$1" "$2" "$window" <<'PY'
import collections, os, sys, time
name, pid, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
def snap():
    d = {}
    for t in os.listdir(f'/proc/{pid}/task'):
        try:
            s = open(f'/proc/{pid}/task/{t}/stat').read()
            f = s[s.rindex(')') + 2:].split()
            d[t] = (s[s.index('(') + 1:s.rindex(')')], int(f[11]) + int(f[12]))
        except OSError:
            pass
    return d
a = snap(); time.sleep(secs); b = snap()
by = collections.Counter()
for t, (comm, v) in b.items():
    if t in a:
        by[comm] += v - a[t][1]
hz = os.sysconf('SC_CLK_TCK')
pct = lambda v: v / hz / secs * 100
print(f"{name}: {pct(sum(by.values())):.2f} % of a core")
for comm, v in by.most_common(12):
    print(f"  {pct(v):6.2f} % {comm}")
PY
}
sample "its broker (JVM $jvm)" "$jvm" >"$log.jvm" &
sample "cashflow ($cf)" "$cf"
wait $!
cat "$log.jvm"; rm -f "$log.jvm"
if [ "${REQUESTS:-0}" = 1 ]; then
  # REQUESTS_OUT=FILE keeps the lines themselves (which client, which topic).
  tail -n +"$((lines_before + 1))" "$broker_log" | tee "${REQUESTS_OUT:-/dev/null}" | python3 -c '
import collections, re, sys
names = {0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit",
         9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat",
         14: "SyncGroup", 15: "DescribeGroups", 16: "ListGroups", 18: "ApiVersions",
         22: "InitProducerId", 32: "DescribeConfigs", 60: "DescribeCluster",
         62: "BrokerRegistration", 63: "BrokerHeartbeat", 68: "ConsumerGroupHeartbeat"}
by = collections.Counter()
for line in sys.stdin:
    m = re.search(r"\"requestApiKey\":(\d+)", line)
    if m and "Completed request" in line:
        by[names.get(int(m.group(1)), "api " + m.group(1))] += 1
secs = float(sys.argv[1])
print(f"broker requests: {sum(by.values()) / secs:.1f} a second")
for k, v in by.most_common():
    print(f"  {v / secs:5.2f}/s {k}")
' "$window"
fi
echo "resident: cashflow $(($(ps -o rss= -p "$cf") / 1024)) MiB, JVM $(($(ps -o rss= -p "$jvm") / 1024)) MiB"
