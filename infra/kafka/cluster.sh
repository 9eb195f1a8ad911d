#!/usr/bin/env bash
# A local 3-broker Apache Kafka (KRaft) cluster for the tests that need replication and broker loss. Each node is a
# combined broker + controller (a 3-voter quorum), so killing one keeps both the quorum and the data (replication
# factor 3, min ISR 2 by default for every topic, the internal ones included).
#
#   infra/kafka/cluster.sh start             fetch if needed, format each node once, start all three, wait until ready
#   infra/kafka/cluster.sh stop              stop every node this script started (SIGTERM, then SIGKILL)
#   infra/kafka/cluster.sh stop-broker N [SIG]   stop node N (1-3) with SIG (default TERM; KILL for a crash)
#   infra/kafka/cluster.sh start-broker N    start node N again on its data
#   infra/kafka/cluster.sh status            exit 0 when every node answers
#   infra/kafka/cluster.sh brokers           print the bootstrap list (127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3)
#
# Environment:
#   KAFKA_CLUSTER_PORT  first broker port on 127.0.0.1 (default 19792): brokers on P, P+1, P+2, controllers on
#                       P+10, P+11, P+12
#   KAFKA_DATA_DIR      nodes' log dirs, pid files and logs (default ./.data/kafka-cluster), node N under node-N/
#   KAFKA_CACHE_DIR     where the jars are kept (shared with kafka.sh)
#   KAFKA_HEAP          JVM heap per node (default 384m)
# `infra/kafka/kafka.sh cluster-start|cluster-stop|…` runs the same commands.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
base="${KAFKA_CLUSTER_PORT:-19792}"
data_dir="$(mkdir -p "${KAFKA_DATA_DIR:-./.data/kafka-cluster}" && cd "${KAFKA_DATA_DIR:-./.data/kafka-cluster}" && pwd)"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"
cache_dir="${KAFKA_CACHE_DIR:-$HOME/.cache/usage-metering/kafka-$version}"
libs="$cache_dir/libs"
nodes=(1 2 3)

log() { echo "cluster.sh: $*" >&2; }
port_of() { echo $((base + $1 - 1)); }
controller_of() { echo $((base + 9 + $1)); }
node_dir() { echo "$data_dir/node-$1"; }
pid_file() { echo "$(node_dir "$1")/broker.pid"; }
alive() { [[ -f "$(pid_file "$1")" ]] && kill -0 "$(cat "$(pid_file "$1")")" 2>/dev/null; }

brokers() {
  local list=()
  for n in "${nodes[@]}"; do list+=("127.0.0.1:$(port_of "$n")"); done
  (IFS=,; echo "${list[*]}")
}

write_config() {
  local n="$1" dir voters=()
  dir="$(node_dir "$n")"
  mkdir -p "$dir"
  for m in "${nodes[@]}"; do voters+=("$m@127.0.0.1:$(controller_of "$m")"); done
  cat >"$dir/server.properties" <<CONF
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(IFS=,; echo "${voters[*]}")
listeners=PLAINTEXT://127.0.0.1:$(port_of "$n"),CONTROLLER://127.0.0.1:$(controller_of "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(port_of "$n")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/logs
num.partitions=1
auto.create.topics.enable=false
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
log.retention.hours=-1
log.retention.bytes=-1
unclean.leader.election.enable=false
CONF
}

launch() {
  local n="$1" dir
  dir="$(node_dir "$n")"
  # setsid: the node gets its own session, so a Ctrl-C in the caller's terminal reaches only the caller.
  setsid java -Xms128m -Xmx"${KAFKA_HEAP:-384m}" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$here/log4j.properties" \
    -cp "$libs/*" kafka.Kafka "$dir/server.properties" >>"$dir/broker.log" 2>&1 </dev/null &
  echo $! >"$(pid_file "$n")"
}

ready() { java -cp "$libs/*" "$here/Ready.java" "127.0.0.1:$(port_of "$1")" "${2:-90000}" >/dev/null 2>&1; }

start() {
  bash "$here/kafka.sh" fetch
  local cluster_id=""
  [[ -f "$data_dir/cluster.id" ]] && cluster_id="$(cat "$data_dir/cluster.id")"
  if [[ -z "$cluster_id" ]]; then
    cluster_id="$(java -cp "$libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
    echo "$cluster_id" >"$data_dir/cluster.id"
  fi
  local started
  started="$(date +%s%N)"
  for n in "${nodes[@]}"; do
    if alive "$n"; then log "node $n already running"; continue; fi
    write_config "$n"
    if [[ ! -f "$(node_dir "$n")/logs/meta.properties" ]]; then
      java -cp "$libs/*" -Dlog4j.configuration="file:$here/log4j.properties" kafka.tools.StorageTool format \
        -t "$cluster_id" -c "$(node_dir "$n")/server.properties" >>"$(node_dir "$n")/broker.log" 2>&1
    fi
    launch "$n"
  done
  for n in "${nodes[@]}"; do
    if ! ready "$n" 120000; then
      log "node $n did not become ready; last lines of its log:"
      tail -n 30 "$(node_dir "$n")/broker.log" >&2 || true
      stop
      exit 1
    fi
  done
  log "cluster ready on $(brokers) in $(( ($(date +%s%N) - started) / 1000000 )) ms"
}

stop_node() {
  local n="$1" sig="${2:-TERM}" pid
  [[ -f "$(pid_file "$n")" ]] || return 0
  pid="$(cat "$(pid_file "$n")")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -"$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "node $n ($pid) did not stop within 15 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
  fi
  rm -f "$(pid_file "$n")"
}

stop() {
  # In parallel: a controlled shutdown of one node waits for the others to take its leaderships.
  for n in "${nodes[@]}"; do stop_node "$n" TERM & done
  wait
  log "cluster stopped"
}

check_node() {
  [[ "$1" =~ ^[123]$ ]] || { echo "node must be 1, 2 or 3, got '$1'" >&2; exit 2; }
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  stop-broker) check_node "${2:-}"; stop_node "$2" "${3:-TERM}"; log "node $2 stopped (SIG${3:-TERM})" ;;
  start-broker)
    check_node "${2:-}"
    if alive "$2"; then log "node $2 already running"; exit 0; fi
    write_config "$2"; launch "$2"
    ready "$2" 120000 || { log "node $2 did not become ready"; exit 1; }
    log "node $2 started"
    ;;
  status) for n in "${nodes[@]}"; do ready "$n" 3000 || exit 1; done ;;
  brokers) brokers ;;
  *) echo "usage: $0 start|stop|stop-broker N [SIG]|start-broker N|status|brokers" >&2; exit 2 ;;
esac
