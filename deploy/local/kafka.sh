#!/usr/bin/env bash
# Local single-node Apache Kafka 4.x (KRaft, combined broker+controller) for
# development and CI, built from Maven Central artifacts only (no tarball
# download from kafka.apache.org is needed).
#
# Usage: deploy/local/kafka.sh {install|start|stop|status|purge|credentials}
#        deploy/local/kafka.sh console {consume|produce|groups|topics} [ARGS...]
#        deploy/local/kafka.sh cluster {start|stop|status|purge|credentials|bootstrap|quorum} [NODE]
#
# `cluster` runs three nodes instead, replicated as in production, beside this broker (kafka-cluster.sh).
#
# `console` runs the broker's own command-line tools already logged in as the admin, so that an operator
# can look at a topic without Python: `console consume --topic licensing.dead-letter --from-beginning
# --property print.headers=true`, `console produce --topic ...`, `console groups --list`,
# `console topics --describe --topic licensing.cases`. ARGS are the tool's own (`console consume --help`).
#
# The broker requires a login: clients authenticate with SASL/SCRAM-SHA-512 on
# 127.0.0.1:$KAFKA_PORT, and ACLs (StandardAuthorizer, deny when no ACL matches)
# decide what each principal may do. The script creates one super user, "admin",
# whose password it generates once and keeps in $KAFKA_DIR/credentials/;
# `kafka.sh credentials` prints it as shell exports (KAFKA_USERNAME, KAFKA_PASSWORD,
# KAFKA_SASL_MECHANISM). Every other principal (one per service, one per outside
# publisher) and its ACLs are made by `licensectl kafka ...` (docs/kafka-access.md),
# from the table in shared/platform/kafka_access.py, so the grants live in one place.
# The controller listener (127.0.0.1:$KAFKA_CONTROLLER_PORT) uses SASL/PLAIN with
# its own generated password: KRaft cannot use SCRAM there, the SCRAM users live in
# the metadata the controller serves.
#
# Environment:
#   KAFKA_VERSION          Kafka version to resolve from Maven Central (default 4.1.1)
#   KAFKA_HOME             unpacked Kafka distribution; if set, $KAFKA_HOME/libs is
#                          used and the Maven install step is skipped
#   KAFKA_PORT             SASL_PLAINTEXT broker port (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller port (default 9093)
#   KAFKA_HEAP             broker heap options (default "-Xms512m -Xmx2g": a test run creates
#                          and deletes a few thousand partitions)
#   KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL (default 30)
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to answer (default 60)
#   LEDGER_CACHE_DIR       cache root (default $HOME/.cache/export-ledger)
#
# Layout under $LEDGER_CACHE_DIR:
#   m2/                        Maven local repository (shared by all versions)
#   kafka-$KAFKA_VERSION/      pom.xml, libs/, config/, data/, logs/, kafka.pid,
#                              credentials/ (mode 700: admin password, client config)
#
# Notes on Kafka 4.x:
#   * 4.1.1 resolves from Maven Central and runs on Java 17, so no fallback to
#     4.0.x was needed. KAFKA_VERSION=4.0.0 was also checked and works;
#     4.0.1 did not resolve here (connect-api/connect-json/connect-transforms
#     4.0.1, pulled in by kafka-tools, were not found on Maven Central).
#   * Kafka 4.x logs through slf4j-api 1.7.x + log4j 2 (log4j-api/log4j-core
#     come in transitively) but the slf4j->log4j2 binding is not a transitive
#     dependency, so org.apache.logging.log4j:log4j-slf4j-impl is added
#     explicitly (the slf4j 1.x binding; log4j-slf4j2-impl would be for slf4j 2).
#     The configuration is a log4j2 .properties file (no YAML needed).
#   * The quorum uses a static controller.quorum.voters entry, so storage is
#     formatted without --standalone (that flag is only for the dynamic quorum
#     configured with controller.quorum.bootstrap.servers).
set -euo pipefail

readonly LOG_PREFIX="[kafka]"
readonly USAGE_EXTRA="|credentials"

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
KAFKA_SCALA_VERSION="${KAFKA_SCALA_VERSION:-2.13}"
# log4j 2 version used by Kafka 4.0/4.1; only the slf4j binding is pinned here.
KAFKA_LOG4J_VERSION="${KAFKA_LOG4J_VERSION:-2.24.3}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP="${KAFKA_HEAP:--Xms512m -Xmx2g}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
MAVEN_DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

CACHE_ROOT="${LEDGER_CACHE_DIR:-$HOME/.cache/export-ledger}"
KAFKA_DIR="$CACHE_ROOT/kafka-$KAFKA_VERSION"
M2_REPO="$CACHE_ROOT/m2"
POM_FILE="$KAFKA_DIR/pom.xml"
CONFIG_DIR="$KAFKA_DIR/config"
DATA_DIR="$KAFKA_DIR/data"
LOG_DIR="$KAFKA_DIR/logs"
PID_FILE="$KAFKA_DIR/kafka.pid"
CLUSTER_ID_FILE="$KAFKA_DIR/cluster.id"
SERVER_PROPERTIES="$CONFIG_DIR/server.properties"
SERVER_LOG4J="$CONFIG_DIR/log4j2.properties"
TOOLS_LOG4J="$CONFIG_DIR/tools-log4j2.properties"
SERVER_LOG="$LOG_DIR/server.log"
SERVER_OUT="$LOG_DIR/kafka.out"
CREDENTIALS_DIR="$KAFKA_DIR/credentials"
ADMIN_PASSWORD_FILE="$CREDENTIALS_DIR/admin.password"
CONTROLLER_PASSWORD_FILE="$CREDENTIALS_DIR/controller.password"
ADMIN_CLIENT_CONFIG="$CREDENTIALS_DIR/admin.properties"
# Written after storage is formatted with the admin's SCRAM credential; storage formatted
# without it (by an earlier version of this script) is formatted again.
SASL_MARKER="$DATA_DIR/.sasl-scram"
readonly SASL_MECHANISM="SCRAM-SHA-512"  # as kafka-config.sh configures it
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"

if [[ -n "${KAFKA_HOME:-}" ]]; then
    LIBS_DIR="$KAFKA_HOME/libs"
else
    LIBS_DIR="$KAFKA_DIR/libs"
fi
INSTALL_MARKER="$KAFKA_DIR/libs/.installed"

if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    JAVA="$JAVA_HOME/bin/java"
else
    JAVA="java"
fi

# shellcheck source=deploy/local/common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"
# shellcheck source=deploy/local/kafka-config.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/kafka-config.sh"

# Serialise install/start/stop across concurrent invocations (fd 9 is the lock).
take_lock() {
    mkdir -p "$KAFKA_DIR"
    exec 9>"$KAFKA_DIR/.lock"
    if ! flock -w 120 9; then
        die "could not lock $KAFKA_DIR/.lock (another kafka.sh still running?)"
    fi
}

# ---------------------------------------------------------------- install --

write_pom() {
    cat >"$POM_FILE.tmp" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by deploy/local/kafka.sh; only used to resolve Kafka jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 https://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.export-ledger</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_$KAFKA_SCALA_VERSION</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$KAFKA_LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
    mv -f "$POM_FILE.tmp" "$POM_FILE"
}

pom_checksum() { sha256sum "$POM_FILE" | cut -d' ' -f1; }

is_installed() {
    [[ -f "$INSTALL_MARKER" && -f "$POM_FILE" ]] || return 1
    [[ "$(cat "$INSTALL_MARKER")" == "$(pom_checksum)" ]]
}

do_install() {
    if [[ -n "${KAFKA_HOME:-}" ]]; then
        [[ -d "$LIBS_DIR" ]] || die "KAFKA_HOME=$KAFKA_HOME has no libs/ directory"
        log "using KAFKA_HOME=$KAFKA_HOME (Maven install skipped)"
        return 0
    fi
    mkdir -p "$KAFKA_DIR"
    write_pom
    if is_installed; then
        log "Kafka $KAFKA_VERSION already installed in $LIBS_DIR"
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH"
    local t0
    t0="$(now)"
    log "resolving Kafka $KAFKA_VERSION from Maven Central into $LIBS_DIR"
    rm -rf "$LIBS_DIR"
    # Debian's Maven 3.8 prints ANSI resets even with -B; strip them (pipefail
    # keeps mvn's exit status).
    if ! mvn -q -B -Dstyle.color=never -f "$POM_FILE" \
        -Dmaven.repo.local="$M2_REPO" \
        "$MAVEN_DEPENDENCY_PLUGIN:copy-dependencies" \
        -DincludeScope=runtime \
        -DoutputDirectory="$LIBS_DIR" 2>&1 | sed -u $'s/\e\\[[0-9;]*m//g'; then
        die "Maven could not resolve Kafka $KAFKA_VERSION (see output above)"
    fi
    compgen -G "$LIBS_DIR/kafka_$KAFKA_SCALA_VERSION-*.jar" >/dev/null \
        || die "kafka_$KAFKA_SCALA_VERSION jar missing from $LIBS_DIR after resolution"
    pom_checksum >"$INSTALL_MARKER"
    log "install took $(elapsed_since "$t0")s ($(find "$LIBS_DIR" -name '*.jar' | wc -l) jars)"
}

ensure_installed() {
    if [[ -n "${KAFKA_HOME:-}" ]]; then
        do_install
        return 0
    fi
    mkdir -p "$KAFKA_DIR"
    write_pom
    is_installed || do_install
}

# ------------------------------------------------------------ credentials --

# A password made once and kept in a file only its owner can read.
ensure_password() {
    local file="$1"
    if [[ ! -s "$file" ]]; then
        (umask 077 && head -c 32 /dev/urandom | base64 | tr -d '/+=\n' >"$file")
    fi
    chmod 600 "$file"
}

ensure_credentials() {
    (umask 077 && mkdir -p "$CREDENTIALS_DIR")
    chmod 700 "$CREDENTIALS_DIR"
    ensure_password "$ADMIN_PASSWORD_FILE"
    ensure_password "$CONTROLLER_PASSWORD_FILE"
    local admin_password
    admin_password="$(<"$ADMIN_PASSWORD_FILE")"
    (umask 077 && kafka_admin_client_properties "$admin_password" >"$ADMIN_CLIENT_CONFIG")
}

# The admin's login as shell exports, for scripts/lib.sh and for a developer's shell.
do_credentials() {
    [[ -s "$ADMIN_PASSWORD_FILE" ]] || die "no credentials yet: run '$0 start' first"
    printf 'export KAFKA_SASL_MECHANISM=%s\n' "$SASL_MECHANISM"
    printf 'export KAFKA_USERNAME=admin\n'
    printf 'export KAFKA_PASSWORD=%s\n' "$(<"$ADMIN_PASSWORD_FILE")"
}

# ----------------------------------------------------------------- config --

write_configs() {
    mkdir -p "$CONFIG_DIR" "$DATA_DIR" "$LOG_DIR"
    ensure_credentials
    local admin_password controller_password
    admin_password="$(<"$ADMIN_PASSWORD_FILE")"
    controller_password="$(<"$CONTROLLER_PASSWORD_FILE")"

    # Holds the passwords: readable by its owner only.
    touch "$SERVER_PROPERTIES"
    chmod 600 "$SERVER_PROPERTIES"
    kafka_server_properties 127.0.0.1 127.0.0.1 "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$DATA_DIR" \
        "$admin_password" "$controller_password" >"$SERVER_PROPERTIES"

    kafka_server_log4j kafka-local >"$SERVER_LOG4J"
    kafka_tools_log4j >"$TOOLS_LOG4J"
}

# Run a Kafka command-line class with a small, fast-starting JVM.
TOOL_JVM_OPTS=(-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1
    -Djava.awt.headless=true "-Dlog4j2.configurationFile=$TOOLS_LOG4J")
run_tool() {
    "$JAVA" "${TOOL_JVM_OPTS[@]}" -cp "$LIBS_DIR/*" "$@"
}

format_storage_if_needed() {
    if [[ -f "$DATA_DIR/meta.properties" && -f "$SASL_MARKER" ]]; then
        return 0
    fi
    if [[ -f "$DATA_DIR/meta.properties" ]]; then
        log "storage in $DATA_DIR predates SASL (its metadata has no admin credential): formatting it again, deleting its topics (reset a ledger built from them too: scripts/down --purge)"
        rm -rf "$DATA_DIR"
        mkdir -p "$DATA_DIR"
    fi
    local cluster_id
    if [[ -s "$CLUSTER_ID_FILE" ]]; then
        cluster_id="$(<"$CLUSTER_ID_FILE")"
    else
        cluster_id="$(run_tool kafka.tools.StorageTool random-uuid)"
        printf '%s\n' "$cluster_id" >"$CLUSTER_ID_FILE"
    fi
    log "formatting storage in $DATA_DIR (cluster id $cluster_id)"
    # The admin's SCRAM credential goes into the metadata at format time (KIP-900): the broker
    # logs in to itself with it before anyone could create it through the API.
    run_tool kafka.tools.StorageTool format --ignore-formatted \
        -t "$cluster_id" -c "$SERVER_PROPERTIES" \
        --add-scram "$SASL_MECHANISM=[name=admin,password=$(<"$ADMIN_PASSWORD_FILE")]" \
        >>"$SERVER_OUT" 2>&1 \
        || die "storage format failed; see $SERVER_OUT"
    touch "$SASL_MARKER"
}

# ---------------------------------------------------------------- process --

read_pid() {
    [[ -s "$PID_FILE" ]] || return 1
    local pid
    pid="$(<"$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    printf '%s' "$pid"
}

# True if the pid file names a live kafka.Kafka process (guards against pid reuse).
is_running() {
    local pid
    pid="$(read_pid)" || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'
}

port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

broker_answers() {
    port_open "$KAFKA_PORT" || return 1
    timeout 30 "$JAVA" "${TOOL_JVM_OPTS[@]}" -cp "$LIBS_DIR/*" \
        org.apache.kafka.tools.BrokerApiVersionsCommand \
        --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CLIENT_CONFIG" >/dev/null 2>&1
}

wait_until_ready() {
    local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! is_running; then
            err "broker process exited during startup"
            show_log_hint
            return 1
        fi
        if broker_answers; then
            return 0
        fi
        sleep 1
    done
    err "broker did not answer on $BOOTSTRAP within ${KAFKA_START_TIMEOUT}s"
    show_log_hint
    return 1
}

show_log_hint() {
    err "broker log: $SERVER_LOG"
    err "stdout/stderr: $SERVER_OUT"
    if [[ -f "$SERVER_LOG" ]]; then
        tail -n 20 "$SERVER_LOG" >&2 || true
    fi
    if [[ -s "$SERVER_OUT" ]]; then
        tail -n 20 "$SERVER_OUT" >&2 || true
    fi
}

do_start() {
    local t0
    t0="$(now)"
    take_lock
    ensure_installed

    if is_running; then
        local pid
        pid="$(read_pid)"
        if broker_answers; then
            log "already running (pid $pid) on $BOOTSTRAP"
            return 0
        fi
        log "process $pid is alive but not answering yet; waiting"
        wait_until_ready || exit 1
        log "running (pid $pid) on $BOOTSTRAP"
        return 0
    fi
    rm -f "$PID_FILE"

    local port
    for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
        if port_open "$port"; then
            die "port 127.0.0.1:$port is already in use by another process"
        fi
    done

    write_configs
    format_storage_if_needed

    local -a heap_opts
    read -r -a heap_opts <<<"$KAFKA_HEAP"
    log "starting broker (log: $SERVER_LOG)"
    {
        printf '\n===== %s starting Kafka %s =====\n' "$(date -Is)" "$KAFKA_VERSION"
    } >>"$SERVER_OUT"
    # setsid: detach from the caller's session/process group so the broker
    # survives the shell (or CI step) that started it. The inner bash writes
    # its own pid and then execs java, so the pid file names the JVM.
    # 9>&- keeps the broker from inheriting (and holding) the script's lock.
    # shellcheck disable=SC2016  # $$/$0/$@ expand in the child shell
    setsid bash -c 'echo "$$" >"$0"; exec "$@"' "$PID_FILE" \
        nohup "$JAVA" "${heap_opts[@]}" \
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
        -Dkafka.logs.dir="$LOG_DIR" \
        -Dlog4j2.configurationFile="$SERVER_LOG4J" \
        -cp "$LIBS_DIR/*" kafka.Kafka "$SERVER_PROPERTIES" \
        >>"$SERVER_OUT" 2>&1 </dev/null 9>&- &

    # Wait for the pid file written by the detached child.
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s "$PID_FILE" ]] && break
        sleep 0.1
    done
    read_pid >/dev/null || die "broker did not start (no pid file); see $SERVER_OUT"

    if ! wait_until_ready; then
        exit 1
    fi
    log "running (pid $(read_pid)) on $BOOTSTRAP; start took $(elapsed_since "$t0")s"
}

do_stop() {
    take_lock
    if ! is_running; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    local pid
    pid="$(read_pid)"
    log "stopping broker (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            log "still alive after ${KAFKA_STOP_TIMEOUT}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 1
            break
        fi
        sleep 0.5
    done
    rm -f "$PID_FILE"
    log "stopped"
}

do_status() {
    if is_running; then
        local pid
        pid="$(read_pid)"
        if port_open "$KAFKA_PORT"; then
            log "running (pid $pid) bootstrap=$BOOTSTRAP"
        else
            log "running (pid $pid, not accepting connections yet) bootstrap=$BOOTSTRAP"
        fi
        return 0
    fi
    log "stopped"
    return 3
}

# Stop the broker and delete its data (every topic); the jars stay cached.
do_purge() {
    do_stop
    rm -rf "$DATA_DIR"
    log "data deleted: $DATA_DIR (the next start formats fresh storage)"
}

# The broker's own tools, logged in as the admin (the client config ensure_credentials wrote).
do_console() {
    local tool="${1:-}" class config_flag
    shift || true
    case "$tool" in
        consume) class=org.apache.kafka.tools.consumer.ConsoleConsumer config_flag=--consumer.config ;;
        produce) class=org.apache.kafka.tools.ConsoleProducer config_flag=--producer.config ;;
        groups) class=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand config_flag=--command-config ;;
        topics) class=org.apache.kafka.tools.TopicCommand config_flag=--command-config ;;
        *) die "usage: $0 console {consume|produce|groups|topics} [ARGS...] (each tool's --help lists its ARGS)" ;;
    esac
    is_installed || die "Kafka is not installed: run '$0 start' first"
    [[ -s "$ADMIN_CLIENT_CONFIG" ]] || die "no credentials yet: run '$0 start' first"
    run_tool "$class" --bootstrap-server "127.0.0.1:$KAFKA_PORT" "$config_flag" "$ADMIN_CLIENT_CONFIG" "$@"
}

main() {
    if [[ "${1:-}" == cluster ]]; then
        shift
        exec "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/kafka-cluster.sh" "$@"
    fi
    if [[ "${1:-}" == console ]]; then
        shift
        do_console "$@"
        return
    fi
    [[ $# -eq 1 ]] || usage
    case "$1" in
        install)
            take_lock
            do_install
            ;;
        start) do_start ;;
        stop) do_stop ;;
        status) do_status ;;
        purge) do_purge ;;
        credentials) do_credentials ;;
        *) usage ;;
    esac
}

main "$@"
