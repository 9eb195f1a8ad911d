#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft) for development, tests and CI.
#
#   infra/kafka/kafka.sh fetch            resolve the broker jars from Maven Central into the cache
#   infra/kafka/kafka.sh start            fetch if needed, format the log dir once, start, wait until ready
#   infra/kafka/kafka.sh stop             stop the broker this script started (SIGTERM, then SIGKILL)
#   infra/kafka/kafka.sh status           exit 0 when a broker answers on the port
#   infra/kafka/kafka.sh cluster-start|cluster-stop|cluster-stop-broker N [SIG]|cluster-start-broker N|cluster-status
#                                         a local 3-broker KRaft cluster (infra/kafka/cluster.sh)
#
# Environment:
#   KAFKA_PORT        broker port on 127.0.0.1 (default 9092); the controller uses KAFKA_PORT+1
#   KAFKA_DATA_DIR    log dir, pid file and broker.log (default ./.data/kafka)
#   KAFKA_CACHE_DIR   where the jars are kept between runs (default ~/.cache/usage-metering/kafka-<version>)
#   KAFKA_HEAP        JVM heap (default 512m)
#   KAFKA_PARTITIONS  default partition count for auto-created internal topics (default 1)
#
# A broker already answering on the port is reused and left running by `stop`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"
port="${KAFKA_PORT:-9092}"
controller_port="$((port + 1))"
data_dir="$(mkdir -p "${KAFKA_DATA_DIR:-./.data/kafka}" && cd "${KAFKA_DATA_DIR:-./.data/kafka}" && pwd)"
cache_dir="${KAFKA_CACHE_DIR:-$HOME/.cache/usage-metering/kafka-$version}"
libs="$cache_dir/libs"
pid_file="$data_dir/broker.pid"
log_file="$data_dir/broker.log"

log() { echo "kafka.sh: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

fetch() {
  if [[ -f "$libs/.complete" ]]; then return 0; fi
  log "fetching Apache Kafka $version from Maven Central into $libs"
  mkdir -p "$libs"
  mvn -B -q -f "$here/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs" >&2
  touch "$libs/.complete"
}

ready() {
  java -cp "$libs/*" "$here/Ready.java" "127.0.0.1:$port" "${1:-60000}" >/dev/null 2>&1
}

write_config() {
  cat >"$data_dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data_dir/logs
num.partitions=${KAFKA_PARTITIONS:-1}
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
log.retention.hours=-1
log.retention.bytes=-1
EOF
}

start() {
  if port_open "$port"; then
    log "a broker is already listening on 127.0.0.1:$port; reusing it"
    return 0
  fi
  fetch
  write_config
  if [[ ! -f "$data_dir/logs/meta.properties" ]]; then
    local cluster_id
    cluster_id="$(java -cp "$libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
    java -cp "$libs/*" -Dlog4j.configuration="file:$here/log4j.properties" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$data_dir/server.properties" >>"$log_file" 2>&1
  fi
  local started
  started="$(date +%s%N)"
  # setsid: the broker gets its own session, so Ctrl-C in the caller's terminal reaches only the caller,
  # which then stops the broker in order.
  setsid java -Xms128m -Xmx"${KAFKA_HEAP:-512m}" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$here/log4j.properties" \
    -cp "$libs/*" kafka.Kafka "$data_dir/server.properties" >>"$log_file" 2>&1 </dev/null &
  echo $! >"$pid_file"
  if ! ready 90000; then
    log "broker did not become ready; last lines of $log_file:"
    tail -n 30 "$log_file" >&2 || true
    stop
    exit 1
  fi
  log "broker ready on 127.0.0.1:$port in $(( ($(date +%s%N) - started) / 1000000 )) ms (pid $(cat "$pid_file"), log $log_file)"
}

stop() {
  [[ -f "$pid_file" ]] || { log "no broker started from $data_dir"; return 0; }
  local pid
  pid="$(cat "$pid_file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 32); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "broker $pid did not stop within 8 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pid_file"
  log "broker stopped"
}

case "${1:-}" in
  cluster-*) cmd="${1#cluster-}"; shift; exec bash "$here/cluster.sh" "$cmd" "$@" ;;
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) port_open "$port" ;;
  *) echo "usage: $0 fetch|start|stop|status|cluster-start|cluster-stop|cluster-stop-broker N [SIG]|cluster-start-broker N|cluster-status" >&2; exit 2 ;;
esac
