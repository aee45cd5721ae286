#!/usr/bin/env bash
# Apache Kafka 4.x, single node, KRaft mode, on loopback: for tests and for users without Docker.
#   scripts/kafka.sh fetch    resolve the broker's jars with mvn (cached in ~/.m2)
#   scripts/kafka.sh start    format storage if needed, start, wait until it accepts clients
#   scripts/kafka.sh fresh    stop it, delete its data, start it empty (the test suite: every
#                             test topic ever made would otherwise stay, and a restart of a
#                             broker holding ten thousand partitions takes minutes)
#   scripts/kafka.sh clean    stop it and delete its data (the suite's broker-restart tests'
#                             own broker, which they start themselves)
#   scripts/kafka.sh stop     stop it (SIGTERM, then SIGKILL after 20 s)
#   scripts/kafka.sh status   "running on 127.0.0.1:PORT" or "stopped" (exit 1)
#   scripts/kafka.sh kill     SIGKILL (crash tests)
#   scripts/kafka.sh tool CLASS ARGS…   run one of Kafka's tools (e.g.
#                             org.apache.kafka.tools.ConsumerPerformance, the class behind
#                             kafka-consumer-perf-test) with the resolved jars
# A 3-broker cluster (the outage and replication lesson), each node broker and controller,
# replication factor 3 and min.insync.replicas=2 by default; ports CLUSTER_PORT+1..3 (default
# 29190: 29191-29193), controllers +100; data in ~/.cache/cashflow/cluster-CLUSTER_PORT:
#   scripts/kafka.sh cluster start|fresh|stop|status
#   scripts/kafka.sh kill N      SIGKILL cluster node N (1-3): its partitions get new leaders
#   scripts/kafka.sh revive N    start cluster node N again: it catches up and rejoins the ISR
# Listeners: PLAINTEXT on KAFKA_PORT, the controller on +1, SASL_PLAINTEXT (mechanism PLAIN,
# user "cashflow", password "cashflow-test-secret": test credentials only) on +2, and SSL on +3
# with a self-signed certificate made on first start (clients trust KAFKA_DIR/tls/ca.pem).
# KAFKA_PORT (default 19092) and KAFKA_DIR (default ~/.cache/cashflow/kafka-PORT, shared by every
# checkout on the machine, so a second checkout finds the running broker) select the instance.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
PORT=${KAFKA_PORT:-19092}
CPORT=$((PORT + 1))
SPORT=$((PORT + 2))
TPORT=$((PORT + 3))
DIR=${KAFKA_DIR:-$HOME/.cache/cashflow/kafka-$PORT}
CP_FILE=${CASHFLOW_TOOLS:-$HOME/.cache/cashflow/tools}/kafka-classpath-$(sha1sum "$here/kafka/pom.xml" | cut -c1-12).txt
HEAP=${KAFKA_HEAP:-512m}

say() { printf '[kafka] %s\n' "$*" >&2; }

# The classpath also goes to kafka-classpath.txt beside it: the file the cashflow binary reads
# to run its managed broker (--kafka-classpath).
fetch() {
  local stable
  stable="$(dirname "$CP_FILE")/kafka-classpath.txt"
  if [ -s "$CP_FILE" ] && tr ':' '\n' <"$CP_FILE" | while read -r j; do [ -f "$j" ] || exit 1; done; then
    cmp -s "$CP_FILE" "$stable" || cp "$CP_FILE" "$stable"
    return 0
  fi
  say "resolving Apache Kafka jars with mvn (once)"
  mkdir -p "$(dirname "$CP_FILE")"
  mvn -q -B -f "$here/kafka/pom.xml" dependency:build-classpath -Dmdep.outputFile="$CP_FILE.tmp" >&2
  mv "$CP_FILE.tmp" "$CP_FILE"
  cp "$CP_FILE" "$stable"
}

pid() { [ -f "$DIR/pid" ] && kill -0 "$(cat "$DIR/pid")" 2>/dev/null && cat "$DIR/pid"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

# Tests start brokers often and load them lightly: the quick C1 JIT and the serial collector.
# Benchmarks (KAFKA_BENCH=1) get the JVM's defaults, as a production broker would.
jvm_flags() { [ "${KAFKA_BENCH:-0}" = 1 ] || echo "-XX:+UseSerialGC -XX:TieredStopAtLevel=1"; }

java_run() {
  # shellcheck disable=SC2046 # the flags are words
  java -Xms"$HEAP" -Xmx"$HEAP" $(jvm_flags) \
    -Dlog4j2.configurationFile="$here/kafka/log4j2.properties" -cp "$(cat "$CP_FILE")" "$@"
}

# A self-signed certificate for 127.0.0.1/localhost and the broker's PKCS12 keystore (test only).
tls() {
  [ -s "$DIR/tls/broker.p12" ] && return 0
  mkdir -p "$DIR/tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=cashflow test broker" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -keyout "$DIR/tls/broker.key" -out "$DIR/tls/ca.pem" 2>/dev/null
  openssl pkcs12 -export -in "$DIR/tls/ca.pem" -inkey "$DIR/tls/broker.key" -name broker \
    -out "$DIR/tls/broker.p12.tmp" -passout pass:cashflow-test-secret
  mv "$DIR/tls/broker.p12.tmp" "$DIR/tls/broker.p12"
}

# The broker's configuration.
props() {
  cat <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT,SASL_PLAINTEXT://127.0.0.1:$SPORT,SSL://127.0.0.1:$TPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,SASL_PLAINTEXT://127.0.0.1:$SPORT,SSL://127.0.0.1:$TPORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL
ssl.keystore.type=PKCS12
ssl.keystore.location=$DIR/tls/broker.p12
ssl.keystore.password=cashflow-test-secret
ssl.key.password=cashflow-test-secret
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_cashflow="cashflow-test-secret";
log.dirs=$DIR/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
log.segment.bytes=16777216
PROPS
}

start() {
  if p=$(pid); then
    if [ "$(props)" = "$(cat "$DIR/server.properties" 2>/dev/null)" ]; then
      say "already running (pid $p) on 127.0.0.1:$PORT"; return 0
    fi
    say "running with an older configuration: restarting"
    stop TERM
  fi
  if port_open; then
    say "127.0.0.1:$PORT is already taken by another process; stop it or set KAFKA_PORT"; exit 1
  fi
  fetch
  mkdir -p "$DIR"
  tls
  props >"$DIR/server.properties"
  if [ ! -f "$DIR/data/meta.properties" ]; then
    say "formatting storage in $DIR/data"
    java_run kafka.tools.StorageTool format -t "$(java_run kafka.tools.StorageTool random-uuid)" \
      -c "$DIR/server.properties" >"$DIR/format.log" 2>&1 || { cat "$DIR/format.log" >&2; exit 1; }
  fi
  say "starting on 127.0.0.1:$PORT (log: $DIR/server.log)"
  nohup bash -c "exec java -Xms$HEAP -Xmx$HEAP $(jvm_flags) \
    -Dlog4j2.configurationFile='$here/kafka/log4j2.properties' -cp '$(cat "$CP_FILE")' \
    kafka.Kafka '$DIR/server.properties'" >"$DIR/server.log" 2>&1 </dev/null &
  echo $! >"$DIR/pid"
  for _ in $(seq 1 240); do
    if ! kill -0 "$(cat "$DIR/pid")" 2>/dev/null; then
      say "exited during start-up:"; tail -30 "$DIR/server.log" >&2; exit 1
    fi
    if port_open && grep -q "Kafka Server started\|BrokerServer id=1\] Transition from STARTING to STARTED" "$DIR/server.log"; then
      say "ready on 127.0.0.1:$PORT"; return 0
    fi
    sleep 0.5
  done
  say "not ready after 120 s:"; tail -30 "$DIR/server.log" >&2; exit 1
}

stop() {
  local sig=${1:-TERM} p
  p=$(pid) || { say "not running"; return 0; }
  kill -"$sig" "$p"
  for _ in $(seq 1 80); do kill -0 "$p" 2>/dev/null || { rm -f "$DIR/pid"; say "stopped"; return 0; }; sleep 0.25; done
  kill -KILL "$p" 2>/dev/null || true; rm -f "$DIR/pid"; say "killed after 20 s"
}

# ---- the 3-broker cluster ----
CLUSTER_PORT=${CLUSTER_PORT:-29190}
CLUSTER_DIR=${CLUSTER_DIR:-$HOME/.cache/cashflow/cluster-$CLUSTER_PORT}
CLUSTER_HEAP=${CLUSTER_HEAP:-384m}

node_port() { echo $((CLUSTER_PORT + $1)); }
node_dir() { echo "$CLUSTER_DIR/node-$1"; }
node_pid() { local f; f="$(node_dir "$1")/pid"; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"; }
node_open() { (exec 3<>"/dev/tcp/127.0.0.1/$(node_port "$1")") 2>/dev/null; }
check_node() { case "${1:-}" in 1|2|3) ;; *) say "node must be 1, 2 or 3, got '${1:-}'"; exit 2 ;; esac; }

node_props() {
  local n=$1 voters=""
  for i in 1 2 3; do voters="$voters${voters:+,}$i@127.0.0.1:$((CLUSTER_PORT + 100 + i))"; done
  cat <<PROPS
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(node_port "$n"),CONTROLLER://127.0.0.1:$((CLUSTER_PORT + 100 + n))
advertised.listeners=PLAINTEXT://127.0.0.1:$(node_port "$n")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$(node_dir "$n")/data
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
auto.create.topics.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
group.initial.rebalance.delay.ms=0
log.segment.bytes=16777216
# A dead follower leaves the ISR after 10 s (Kafka's default is 30 s) so the lesson shows it.
replica.lag.time.max.ms=10000
PROPS
}

node_start() {
  local n=$1 d; d=$(node_dir "$n")
  if p=$(node_pid "$n"); then say "node $n already running (pid $p)"; return 0; fi
  if node_open "$n"; then say "127.0.0.1:$(node_port "$n") is taken by another process"; exit 1; fi
  mkdir -p "$d"
  node_props "$n" >"$d/server.properties"
  if [ ! -f "$d/data/meta.properties" ]; then
    java_run kafka.tools.StorageTool format -t "$(cat "$CLUSTER_DIR/cluster.id")" \
      -c "$d/server.properties" >"$d/format.log" 2>&1 || { cat "$d/format.log" >&2; exit 1; }
  fi
  nohup bash -c "exec java -Xms$CLUSTER_HEAP -Xmx$CLUSTER_HEAP -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile='$here/kafka/log4j2.properties' -cp '$(cat "$CP_FILE")' \
    kafka.Kafka '$d/server.properties'" >"$d/server.log" 2>&1 </dev/null &
  echo $! >"$d/pid"
  say "node $n starting on 127.0.0.1:$(node_port "$n")"
}

# Waits until node N serves clients.
node_wait() {
  local n=$1 d; d=$(node_dir "$n")
  for _ in $(seq 1 360); do
    if ! kill -0 "$(cat "$d/pid")" 2>/dev/null; then
      say "node $n exited during start-up:"; tail -30 "$d/server.log" >&2; exit 1
    fi
    if node_open "$n" && grep -q "Kafka Server started\|BrokerServer id=$n\] Transition from STARTING to STARTED" "$d/server.log"; then
      say "node $n ready on 127.0.0.1:$(node_port "$n")"; return 0
    fi
    sleep 0.5
  done
  say "node $n not ready after 180 s:"; tail -30 "$d/server.log" >&2; exit 1
}

node_stop() {
  local n=$1 sig=${2:-TERM} p
  p=$(node_pid "$n") || return 0
  kill -"$sig" "$p" 2>/dev/null || true
  for _ in $(seq 1 80); do kill -0 "$p" 2>/dev/null || { rm -f "$(node_dir "$n")/pid"; say "node $n stopped"; return 0; }; sleep 0.25; done
  kill -KILL "$p" 2>/dev/null || true; rm -f "$(node_dir "$n")/pid"; say "node $n killed after 20 s"
}

cluster() {
  case "${1:-start}" in
    start)
      fetch
      mkdir -p "$CLUSTER_DIR"
      [ -s "$CLUSTER_DIR/cluster.id" ] || java_run kafka.tools.StorageTool random-uuid >"$CLUSTER_DIR/cluster.id"
      # All three at once: each waits for a quorum of controllers.
      for n in 1 2 3; do node_start "$n"; done
      for n in 1 2 3; do node_wait "$n"; done
      say "cluster ready: bootstrap 127.0.0.1:$(node_port 1),127.0.0.1:$(node_port 2),127.0.0.1:$(node_port 3)" ;;
    fresh) cluster stop; rm -rf "$CLUSTER_DIR"; cluster start ;;
    # All at once: the last one standing would otherwise wait for a controller quorum.
    stop) for n in 1 2 3; do p=$(node_pid "$n") && { kill -TERM "$p" || true; }; done; for n in 1 2 3; do node_stop "$n" TERM; done ;;
    status)
      local up=0
      for n in 1 2 3; do
        if p=$(node_pid "$n"); then echo "node $n running on 127.0.0.1:$(node_port "$n") (pid $p)"; up=$((up + 1));
        else echo "node $n stopped"; fi
      done
      [ "$up" -gt 0 ] ;;
    *) echo "usage: $0 cluster start|fresh|stop|status" >&2; exit 2 ;;
  esac
}

case "${1:-}" in
  cluster) cluster "${2:-start}" ;;
  revive) check_node "${2:-}"; node_start "$2"; node_wait "$2" ;;
  fetch) fetch ;;
  tool) shift; fetch; KAFKA_BENCH=1 HEAP=${KAFKA_TOOL_HEAP:-1g} java_run "$@" ;;
  start) start ;;
  fresh) stop TERM; rm -rf "$DIR/data"; start ;;
  clean) stop TERM; rm -rf "$DIR/data" ;;
  stop) stop TERM ;;
  kill) if [ -n "${2:-}" ]; then check_node "$2"; node_stop "$2" KILL; else stop KILL; fi ;;
  status) if p=$(pid); then echo "running on 127.0.0.1:$PORT (pid $p)"; else echo stopped; exit 1; fi ;;
  *) echo "usage: $0 fetch|start|fresh|clean|stop|kill [N]|status|cluster start|fresh|stop|status|revive N" >&2; exit 2 ;;
esac
