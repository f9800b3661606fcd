#!/usr/bin/env bash
# A local three-node Apache Kafka cluster (KRaft, each node broker and controller), the production shape
# (deploy/cluster/) on one machine: replication factor 3, min.insync.replicas=2, no unclean leader election,
# the same SASL/SCRAM logins and ACLs as the single broker (kafka-config.sh), from the same Maven artifacts
# (kafka.sh install). It has ports and directories of its own, so the single broker of kafka.sh keeps running.
#
# Usage: deploy/local/kafka-cluster.sh {start|stop|status|purge|credentials|bootstrap|quorum} [NODE]
#        (also: deploy/local/kafka.sh cluster ...)
#
#   start [N]    start the three nodes (or node N alone) and wait until every started node serves
#   stop [N]     stop the three nodes (or node N alone): SIGTERM, then SIGKILL after KAFKA_STOP_TIMEOUT
#   status       each node's pid and port; exit 3 if any node is down
#   purge        stop, and delete the cluster's data (every topic); the jars stay cached
#   credentials  the admin's login as shell exports, KAFKA_BOOTSTRAP_SERVERS included
#   bootstrap    the comma-separated list of the nodes' client addresses
#   quorum       the KRaft quorum's status (LeaderId is the active controller), from Kafka's own tool
#
# Environment:
#   KAFKA_CLUSTER_PORT            client port of node 1; nodes 2 and 3 take the next two (default 19092)
#   KAFKA_CLUSTER_CONTROLLER_PORT controller port of node 1, likewise (default 19192)
#   KAFKA_CLUSTER_DIR             where configs, data, logs and pids live
#                                 (default $LEDGER_CACHE_DIR/kafka-$KAFKA_VERSION-cluster)
#   KAFKA_CLUSTER_HEAP            each node's heap (default "-Xms128m -Xmx384m": three JVMs share two cores)
#   KAFKA_VERSION, LEDGER_CACHE_DIR, KAFKA_STOP_TIMEOUT, KAFKA_START_TIMEOUT: as for kafka.sh
#
# Failover is tuned for a test that breaks nodes on purpose, not for throughput: a broker that stops
# heartbeating is fenced after 6 s (broker.session.timeout.ms), and a follower that stops fetching leaves
# the ISR after 10 s (replica.lag.time.max.ms); producers with acks=all wait at most that long for it.
set -euo pipefail

readonly LOG_PREFIX="[kafka-cluster]"
readonly NODES=(1 2 3)
HERE="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
CACHE_ROOT="${LEDGER_CACHE_DIR:-$HOME/.cache/export-ledger}"
LIBS_DIR="${KAFKA_HOME:+$KAFKA_HOME/libs}"
LIBS_DIR="${LIBS_DIR:-$CACHE_ROOT/kafka-$KAFKA_VERSION/libs}"
CLUSTER_DIR="${KAFKA_CLUSTER_DIR:-$CACHE_ROOT/kafka-$KAFKA_VERSION-cluster}"
PORT_BASE="${KAFKA_CLUSTER_PORT:-19092}"
CONTROLLER_PORT_BASE="${KAFKA_CLUSTER_CONTROLLER_PORT:-19192}"
HEAP="${KAFKA_CLUSTER_HEAP:--Xms128m -Xmx384m}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
CREDENTIALS_DIR="$CLUSTER_DIR/credentials"
ADMIN_PASSWORD_FILE="$CREDENTIALS_DIR/admin.password"
CONTROLLER_PASSWORD_FILE="$CREDENTIALS_DIR/controller.password"
ADMIN_CLIENT_CONFIG="$CREDENTIALS_DIR/admin.properties"
CLUSTER_ID_FILE="$CLUSTER_DIR/cluster.id"
TOOLS_LOG4J="$CLUSTER_DIR/tools-log4j2.properties"
readonly SASL_MECHANISM="SCRAM-SHA-512"

if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then JAVA="$JAVA_HOME/bin/java"; else JAVA="java"; fi

# shellcheck source=deploy/local/common.sh
source "$HERE/common.sh"
# shellcheck source=deploy/local/kafka-config.sh
source "$HERE/kafka-config.sh"

usage() {
    echo "usage: $0 {start|stop|status|purge|credentials|bootstrap|quorum} [NODE]" >&2
    exit 2
}

port_of() { printf '%s' $((PORT_BASE + $1 - 1)); }
controller_port_of() { printf '%s' $((CONTROLLER_PORT_BASE + $1 - 1)); }
node_dir() { printf '%s/node-%s' "$CLUSTER_DIR" "$1"; }
pid_file() { printf '%s/kafka.pid' "$(node_dir "$1")"; }

bootstrap() {
    local n list=()
    for n in "${NODES[@]}"; do list+=("127.0.0.1:$(port_of "$n")"); done
    (IFS=,; printf '%s' "${list[*]}")
}

voters() {
    local n list=()
    for n in "${NODES[@]}"; do list+=("$n@127.0.0.1:$(controller_port_of "$n")"); done
    (IFS=,; printf '%s' "${list[*]}")
}

take_lock() {
    mkdir -p "$CLUSTER_DIR"
    exec 9>"$CLUSTER_DIR/.lock"
    flock -w 300 9 || die "could not lock $CLUSTER_DIR/.lock (another kafka-cluster.sh still running?)"
}

TOOL_JVM_OPTS=(-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true)
run_tool() { "$JAVA" "${TOOL_JVM_OPTS[@]}" "-Dlog4j2.configurationFile=$TOOLS_LOG4J" -cp "$LIBS_DIR/*" "$@"; }

ensure_password() {
    local file="$1"
    [[ -s "$file" ]] || (umask 077 && head -c 32 /dev/urandom | base64 | tr -d '/+=\n' >"$file")
    chmod 600 "$file"
}

# Node N's server.properties: the single broker's (kafka-config.sh: listeners, SASL, ACLs), then what a
# three-node cluster changes. A key given twice takes its last value (java.util.Properties).
node_properties() {
    local n="$1" dir
    dir="$(node_dir "$n")"
    kafka_server_properties 127.0.0.1 127.0.0.1 "$(port_of "$n")" "$(controller_port_of "$n")" "$dir/data" \
        "$(<"$ADMIN_PASSWORD_FILE")" "$(<"$CONTROLLER_PASSWORD_FILE")"
    cat <<EOF
# ---- three-node cluster (deploy/local/kafka-cluster.sh) ----
node.id=$n
controller.quorum.voters=$(voters)
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
broker.session.timeout.ms=6000
broker.heartbeat.interval.ms=1000
replica.lag.time.max.ms=10000
num.network.threads=2
num.io.threads=4
num.replica.fetchers=1
EOF
}

write_configs() {
    (umask 077 && mkdir -p "$CREDENTIALS_DIR")
    chmod 700 "$CREDENTIALS_DIR"
    ensure_password "$ADMIN_PASSWORD_FILE"
    ensure_password "$CONTROLLER_PASSWORD_FILE"
    (umask 077 && kafka_admin_client_properties "$(<"$ADMIN_PASSWORD_FILE")" >"$ADMIN_CLIENT_CONFIG")
    kafka_tools_log4j >"$TOOLS_LOG4J"
    [[ -s "$CLUSTER_ID_FILE" ]] || run_tool kafka.tools.StorageTool random-uuid >"$CLUSTER_ID_FILE"
    local n dir
    for n in "${NODES[@]}"; do
        dir="$(node_dir "$n")"
        mkdir -p "$dir/data" "$dir/logs"
        (umask 077 && node_properties "$n" >"$dir/server.properties")
        kafka_server_log4j "kafka-cluster-node-$n" >"$dir/log4j2.properties"
    done
}

# Each node's storage, formatted once with the cluster id and the admin's SCRAM credential (KIP-900).
format_storage() {
    local n dir
    for n in "${NODES[@]}"; do
        dir="$(node_dir "$n")"
        [[ -f "$dir/data/meta.properties" ]] && continue
        log "formatting node $n's storage in $dir/data"
        run_tool kafka.tools.StorageTool format --ignore-formatted -t "$(<"$CLUSTER_ID_FILE")" \
            -c "$dir/server.properties" \
            --add-scram "$SASL_MECHANISM=[name=admin,password=$(<"$ADMIN_PASSWORD_FILE")]" \
            >>"$dir/logs/kafka.out" 2>&1 || die "node $n: storage format failed; see $dir/logs/kafka.out"
    done
}

read_pid() {
    local file
    file="$(pid_file "$1")"
    [[ -s "$file" ]] || return 1
    local pid
    pid="$(<"$file")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    printf '%s' "$pid"
}

is_running() {
    local pid
    pid="$(read_pid "$1")" || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

start_node() {
    local n="$1" dir
    dir="$(node_dir "$n")"
    if is_running "$n"; then
        log "node $n already running (pid $(read_pid "$n"))"
        return 0
    fi
    local port
    for port in "$(port_of "$n")" "$(controller_port_of "$n")"; do
        port_open "$port" && die "port 127.0.0.1:$port is already in use by another process"
    done
    rm -f "$(pid_file "$n")"  # a node killed (by a test) leaves its pid file behind
    local -a heap
    read -r -a heap <<<"$HEAP"
    printf '\n===== %s starting node %s =====\n' "$(date -Is)" "$n" >>"$dir/logs/kafka.out"
    # As kafka.sh starts its broker: detached (setsid), the pid file naming the JVM, the lock not inherited.
    # shellcheck disable=SC2016
    setsid bash -c 'echo "$$" >"$0"; exec "$@"' "$(pid_file "$n")" \
        nohup "$JAVA" "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent \
        -XX:TieredStopAtLevel=1 -XX:CICompilerCount=2 -XX:ParallelGCThreads=1 -XX:ConcGCThreads=1 \
        -Djava.awt.headless=true -Dkafka.logs.dir="$dir/logs" -Dlog4j2.configurationFile="$dir/log4j2.properties" \
        -cp "$LIBS_DIR/*" kafka.Kafka "$dir/server.properties" >>"$dir/logs/kafka.out" 2>&1 </dev/null 9>&- &
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s "$(pid_file "$n")" ]] && break
        sleep 0.1
    done
    read_pid "$n" >/dev/null || die "node $n did not start (no pid file); see $dir/logs/kafka.out"
    log "node $n started (pid $(read_pid "$n")) on 127.0.0.1:$(port_of "$n")"
}

# The brokers the cluster's metadata lists as serving (registered and not fenced), by node id.
serving_nodes() {
    timeout 60 "$JAVA" "${TOOL_JVM_OPTS[@]}" "-Dlog4j2.configurationFile=$TOOLS_LOG4J" -cp "$LIBS_DIR/*" \
        org.apache.kafka.tools.BrokerApiVersionsCommand \
        --bootstrap-server "$(bootstrap)" --command-config "$ADMIN_CLIENT_CONFIG" 2>/dev/null \
        | sed -n 's/^127\.0\.0\.1:[0-9]* (id: \([0-9]*\) .*/\1/p' | sort -u
}

wait_serving() {
    local want=("$@") deadline=$((SECONDS + KAFKA_START_TIMEOUT)) serving n missing
    while ((SECONDS < deadline)); do
        for n in "${want[@]}"; do
            is_running "$n" || { err "node $n exited during start-up; see $(node_dir "$n")/logs"; tail -n 20 "$(node_dir "$n")/logs/kafka.out" >&2; return 1; }
        done
        serving="$(serving_nodes || true)"
        missing=0
        for n in "${want[@]}"; do grep -qx "$n" <<<"$serving" || missing=1; done
        ((missing == 0)) && return 0
        sleep 1
    done
    err "nodes ${want[*]} not all serving within ${KAFKA_START_TIMEOUT}s (serving: ${serving//$'\n'/ })"
    return 1
}

do_start() {
    local t0
    t0="$(now)"
    "$HERE/kafka.sh" install >/dev/null
    take_lock
    write_configs
    format_storage
    local nodes=("$@") n
    [[ $# -gt 0 ]] || nodes=("${NODES[@]}")
    for n in "${nodes[@]}"; do start_node "$n"; done
    wait_serving "${nodes[@]}" || exit 1
    log "serving: nodes ${nodes[*]}; bootstrap $(bootstrap); start took $(elapsed_since "$t0")s"
}

stop_node() {
    local n="$1" pid
    if ! is_running "$n"; then
        rm -f "$(pid_file "$n")"
        log "node $n not running"
        return 0
    fi
    pid="$(read_pid "$n")"
    kill -CONT "$pid" 2>/dev/null || true  # a node paused by a test must be able to hear the TERM
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            log "node $n still alive after ${KAFKA_STOP_TIMEOUT}s; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 1
            break
        fi
        sleep 0.3
    done
    rm -f "$(pid_file "$n")"
    log "node $n stopped"
}

do_stop() {
    take_lock
    local n
    if [[ $# -gt 0 ]]; then
        stop_node "$1"
        return
    fi
    # All at once: a controller quorum stopping one node at a time waits on the last two to agree.
    for n in "${NODES[@]}"; do stop_node "$n" & done
    wait
}

do_status() {
    local n down=0
    for n in "${NODES[@]}"; do
        if is_running "$n"; then
            log "node $n running (pid $(read_pid "$n")) on 127.0.0.1:$(port_of "$n")"
        else
            log "node $n stopped"
            down=1
        fi
    done
    ((down == 0)) || return 3
}

do_purge() {
    do_stop
    rm -rf "$CLUSTER_DIR"
    log "data deleted: $CLUSTER_DIR (the next start formats fresh storage)"
}

do_credentials() {
    [[ -s "$ADMIN_PASSWORD_FILE" ]] || die "no credentials yet: run '$0 start' first"
    printf 'export KAFKA_BOOTSTRAP_SERVERS=%s\n' "$(bootstrap)"
    printf 'export KAFKA_SASL_MECHANISM=%s\n' "$SASL_MECHANISM"
    printf 'export KAFKA_USERNAME=admin\n'
    printf 'export KAFKA_PASSWORD=%s\n' "$(<"$ADMIN_PASSWORD_FILE")"
}

do_quorum() {
    [[ -s "$ADMIN_CLIENT_CONFIG" ]] || die "no credentials yet: run '$0 start' first"
    run_tool org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "$(bootstrap)" \
        --command-config "$ADMIN_CLIENT_CONFIG" describe --status
}

main() {
    [[ $# -ge 1 && $# -le 2 ]] || usage
    local command="$1"
    shift
    if [[ $# -eq 1 ]]; then
        [[ "$1" =~ ^[123]$ ]] || die "node must be 1, 2 or 3 (got $1)"
    fi
    case "$command" in
        start) do_start "$@" ;;
        stop) do_stop "$@" ;;
        status) do_status ;;
        purge) do_purge ;;
        credentials) do_credentials ;;
        bootstrap) bootstrap && echo ;;
        quorum) do_quorum ;;
        *) usage ;;
    esac
}

main "$@"
