#!/usr/bin/env bash
# Apache Kafka 4.x, single node, KRaft mode, on loopback: for tests and for users without Docker.
#   scripts/kafka.sh fetch    resolve the broker's jars with mvn (cached in ~/.m2)
#   scripts/kafka.sh start    format storage if needed, start, wait until it accepts clients
#   scripts/kafka.sh fresh    stop it, delete its data, start it empty (the test suite: every
#                             test topic ever made would otherwise stay, and a restart of a
#                             broker holding ten thousand partitions takes minutes)
#   scripts/kafka.sh stop     stop it (SIGTERM, then SIGKILL after 20 s)
#   scripts/kafka.sh status   "running on 127.0.0.1:PORT" or "stopped" (exit 1)
#   scripts/kafka.sh kill     SIGKILL (crash tests)
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

fetch() {
  if [ -s "$CP_FILE" ] && tr ':' '\n' <"$CP_FILE" | while read -r j; do [ -f "$j" ] || exit 1; done; then
    return 0
  fi
  say "resolving Apache Kafka jars with mvn (once)"
  mkdir -p "$(dirname "$CP_FILE")"
  mvn -q -B -f "$here/kafka/pom.xml" dependency:build-classpath -Dmdep.outputFile="$CP_FILE.tmp" >&2
  mv "$CP_FILE.tmp" "$CP_FILE"
}

pid() { [ -f "$DIR/pid" ] && kill -0 "$(cat "$DIR/pid")" 2>/dev/null && cat "$DIR/pid"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

java_run() {
  java -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
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
  nohup bash -c "exec java -Xms$HEAP -Xmx$HEAP -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
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

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  fresh) stop TERM; rm -rf "$DIR/data"; start ;;
  stop) stop TERM ;;
  kill) stop KILL ;;
  status) if p=$(pid); then echo "running on 127.0.0.1:$PORT (pid $p)"; else echo stopped; exit 1; fi ;;
  *) echo "usage: $0 fetch|start|fresh|stop|kill|status" >&2; exit 2 ;;
esac
