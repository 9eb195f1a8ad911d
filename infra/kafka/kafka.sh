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
#   KAFKA_STOP_WAIT   seconds a broker gets to stop after SIGTERM before SIGKILL (default 8)
#
# Ownership: every broker this script starts runs as `kafka.Kafka <its dir>/server.properties`, and stop finds
# brokers by that command line, not by a pid file alone: it stops whatever a start of this data dir left running,
# whatever happened in between (a caller killed mid-start, a stop cut short, a pid file overwritten). start and stop
# of one data dir take a lock, so a start waits for a stop still in progress instead of finding the old broker's port
# open; a broker of this data dir left serving on the port is kept (and stopped by the next stop), one that is not
# serving, or was half-stopped, is stopped first: a data dir never has two brokers. A broker of another data dir
# already answering on the port is reused and left running by `stop`.
set -euo pipefail
# A caller that dies must not cut a stop short: writes to its closed pipe fail quietly instead of killing the script.
trap '' PIPE

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"
port="${KAFKA_PORT:-9092}"
controller_port="$((port + 1))"
data_dir="$(mkdir -p "${KAFKA_DATA_DIR:-./.data/kafka}" && cd "${KAFKA_DATA_DIR:-./.data/kafka}" && pwd)"
cache_dir="${KAFKA_CACHE_DIR:-$HOME/.cache/usage-metering/kafka-$version}"
libs="$cache_dir/libs"
pid_file="$data_dir/broker.pid"
log_file="$data_dir/broker.log"
stop_wait="${KAFKA_STOP_WAIT:-8}"

log() { echo "kafka.sh: $*" >&2 2>/dev/null || true; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }

fetch() {
  if [[ -f "$libs/.complete" ]]; then return 0; fi
  log "fetching Apache Kafka $version from Maven Central into $libs"
  mkdir -p "$libs"
  mvn -B -q -f "$here/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs" >&2
  touch "$libs/.complete"
}

# ready BOOTSTRAP [TIMEOUT_MS]: the broker at BOOTSTRAP answers metadata requests.
ready() {
  java -cp "$libs/*" "$here/Ready.java" "$1" "${2:-60000}" >/dev/null 2>&1 9>&-
}

# Pids of the brokers running with exactly this config file (how `launch` starts every broker).
pids_of() {
  ps -ww -eo pid=,args= | awk -v want="kafka.Kafka $1" '{
    pid = $1; sub(/^[ \t]*[0-9]+[ \t]+/, "")
    if (length($0) >= length(want) && substr($0, length($0) - length(want) + 1) == want) print pid
  }'
}

# A zombie counts as gone: it holds no port and no log dir lock, it only waits for its parent to reap it.
alive() {
  local stat
  stat="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [[ -n "$stat" && "$stat" != Z* ]]
}

any_alive() {
  local pid
  for pid in "$@"; do alive "$pid" && return 0; done
  return 1
}

# wait_gone TICKS PID...: up to TICKS quarter-seconds for every pid to be gone.
wait_gone() {
  local ticks="$1" i
  shift
  for ((i = 0; i < ticks; i++)); do
    any_alive "$@" || return 0
    sleep 0.25
  done
  ! any_alive "$@"
}

# terminate PID...: SIGTERM (a controlled shutdown), SIGKILL after KAFKA_STOP_WAIT s; returns once all are gone.
terminate() {
  [[ $# -gt 0 ]] || return 0
  kill -TERM "$@" 2>/dev/null || true
  wait_gone "$((stop_wait * 4))" "$@" && return 0
  log "broker(s) $* did not stop within $stop_wait s; killing"
  kill -KILL "$@" 2>/dev/null || true
  wait_gone 40 "$@" || log "broker(s) $* still there 10 s after SIGKILL"
}

# lock FILE: one start or stop at a time per data dir (released when the script exits, however it exits).
lock() {
  exec 9>"$1"
  if ! flock -n 9; then
    log "waiting for another kafka.sh start or stop of $(dirname "$1")"
    flock -w 300 9 || { log "gave up waiting for the lock $1"; exit 1; }
  fi
}

# launch DIR HEAP: starts `kafka.Kafka DIR/server.properties` in its own session (Ctrl-C in the caller's terminal
# reaches only the caller, which then stops the broker in order) and records its pid in DIR/broker.pid.
launch() {
  local dir="$1" heap="$2" config="$1/server.properties" pid="" spawned
  # 9>&-: the broker must not inherit the lock, or the lock would live as long as the broker.
  setsid java -Xms128m -Xmx"$heap" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$here/log4j.properties" \
    -cp "$libs/*" kafka.Kafka "$config" >>"$dir/broker.log" 2>&1 </dev/null 9>&- &
  spawned=$!
  # $! is the JVM unless setsid had to fork (it does when the shell runs with job control): find it by name.
  for _ in $(seq 1 40); do
    pid="$(pids_of "$config" | head -n1)"
    [[ -n "$pid" ]] && break
    sleep 0.05
  done
  echo "${pid:-$spawned}" >"$dir/broker.pid"
}

# format DIR CLUSTER_ID: once per log dir.
format() {
  if [[ ! -f "$1/logs/meta.properties" ]]; then
    java -cp "$libs/*" -Dlog4j.configuration="file:$here/log4j.properties" \
      kafka.tools.StorageTool format -t "$2" -c "$1/server.properties" >>"$1/broker.log" 2>&1 9>&-
  fi
}

new_cluster_id() { java -cp "$libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null 9>&- | tail -n1; }

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
  local left
  left="$(pids_of "$data_dir/server.properties" | tr '\n' ' ')"
  if [[ -n "$left" ]]; then
    # A broker of this data dir is already running. Serving on this port and not half-stopped: it is this data
    # dir's broker, left by a start whose caller went away; keep it (stop will stop it). Otherwise (a stop that was
    # cut short, another port, not answering) finish it off, so this start never leans on a broker on its way out.
    if [[ ! -f "$data_dir/broker.stopping" ]] &&
      grep -qx "listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port" \
        "$data_dir/server.properties" && ready "127.0.0.1:$port" 10000; then
      echo "${left%% *}" >"$pid_file"
      log "the broker of $data_dir is already running on 127.0.0.1:$port (pid ${left% }); using it"
      return 0
    fi
    log "a broker of $data_dir is still running (pid ${left% }), half-stopped or not serving on 127.0.0.1:$port; stopping it first"
    # shellcheck disable=SC2086
    terminate $left
  fi
  rm -f "$data_dir/broker.stopping"
  if port_open "$port"; then
    log "a broker is already listening on 127.0.0.1:$port; reusing it"
    return 0
  fi
  fetch
  write_config
  [[ -f "$data_dir/logs/meta.properties" ]] || format "$data_dir" "$(new_cluster_id)"
  local started
  started="$(now_ms)"
  launch "$data_dir" "${KAFKA_HEAP:-512m}"
  if ! ready "127.0.0.1:$port" 90000; then
    log "broker did not become ready; last lines of $log_file:"
    tail -n 30 "$log_file" >&2 2>/dev/null || true
    stop
    exit 1
  fi
  log "broker ready on 127.0.0.1:$port in $(($(now_ms) - started)) ms (pid $(cat "$pid_file"), log $log_file)"
}

stop() {
  local pids
  pids="$(pids_of "$data_dir/server.properties")"
  rm -f "$pid_file"
  if [[ -z "$pids" ]]; then
    log "no broker started from $data_dir"
    return 0
  fi
  # Marks a stop in progress: should this script die before the broker is gone, the next start finishes the job
  # instead of taking the half-stopped broker for a live one.
  touch "$data_dir/broker.stopping"
  # shellcheck disable=SC2086
  terminate $pids
  rm -f "$data_dir/broker.stopping"
  log "broker stopped"
}

case "${1:-}" in
  cluster-*) cmd="${1#cluster-}"; shift; exec bash "$here/cluster.sh" "$cmd" "$@" ;;
  fetch) fetch ;;
  start) lock "$data_dir/kafka.sh.lock" && start ;;
  stop) lock "$data_dir/kafka.sh.lock" && stop ;;
  status) port_open "$port" ;;
  *) echo "usage: $0 fetch|start|stop|status|cluster-start|cluster-stop|cluster-stop-broker N [SIG]|cluster-start-broker N|cluster-status" >&2; exit 2 ;;
esac
