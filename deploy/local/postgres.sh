#!/usr/bin/env bash
# Local PostgreSQL for development and CI, from Debian's packages.
#
# Usage: deploy/local/postgres.sh {install|start|stop|status}
#
# Runs a dedicated postgresql-common cluster named "ledger" (it does not use or
# depend on the "main" cluster Debian may create) with role/database "ledger"
# and prints the DATABASE_URL when started. The server runs as the "postgres"
# user (PostgreSQL refuses to run as root); pg_ctlcluster takes care of that.
# Works without systemd: pg_ctlcluster is always called with
# --skip-systemctl-redirect, so start/stop never go through systemctl.
#
# Environment:
#   PGPORT_LEDGER        port of the ledger cluster (default 54329)
#   LEDGER_PG_CLUSTER    name of the postgresql-common cluster (default "ledger"); another name and port make
#                        a second cluster beside it (the fault tests restart theirs, never the shared one)
#   PG_VERSION           major version for a new cluster (default: newest installed)
#   PG_START_TIMEOUT     seconds to wait for pg_isready (default 60)
#   LEDGER_CACHE_DIR     cache root for the lock file (default $HOME/.cache/export-ledger)
#
# Durability settings (fsync, synchronous_commit, full_page_writes) are left at
# their defaults on purpose.
set -euo pipefail

readonly LOG_PREFIX="[postgres]"
readonly CLUSTER="${LEDGER_PG_CLUSTER:-ledger}"
readonly DB_NAME="ledger"
readonly DB_USER="ledger"
readonly DB_PASSWORD="ledger"
readonly HOST="127.0.0.1"

PORT="${PGPORT_LEDGER:-54329}"
PG_START_TIMEOUT="${PG_START_TIMEOUT:-60}"
CACHE_ROOT="${LEDGER_CACHE_DIR:-$HOME/.cache/export-ledger}"
DATABASE_URL="postgresql://$DB_USER:$DB_PASSWORD@$HOST:$PORT/$DB_NAME"

# shellcheck source=deploy/local/common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"

require_root() {
    if [[ "$EUID" -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then
            exec sudo --preserve-env=PGPORT_LEDGER,LEDGER_PG_CLUSTER,PG_VERSION,PG_START_TIMEOUT,LEDGER_CACHE_DIR \
                "$(readlink -f "$0")" "$@"
        fi
        die "must run as root (apt-get, pg_createcluster, runuser)"
    fi
}

# Serialise install/start/stop across concurrent invocations (fd 9 is the lock).
# Anything that spawns the server is run with 9>&- so the postmaster does not
# inherit the lock.
take_lock() {
    mkdir -p "$CACHE_ROOT"
    exec 9>"$CACHE_ROOT/postgres.lock"
    if ! flock -w 120 9; then
        die "could not lock $CACHE_ROOT/postgres.lock (another postgres.sh still running?)"
    fi
}

# ---------------------------------------------------------------- install --

is_installed() {
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null \
        && command -v pg_createcluster >/dev/null 2>&1
}

do_install() {
    if is_installed; then
        log "PostgreSQL $(newest_installed_version) already installed"
        return 0
    fi
    local t0
    t0="$(now)"
    log "installing PostgreSQL from Debian packages"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
    is_installed || die "postgresql installed but no /usr/lib/postgresql/*/bin/postgres found"
    log "install took $(elapsed_since "$t0")s"
}

newest_installed_version() {
    local f
    for f in /usr/lib/postgresql/*/bin/postgres; do
        [[ -x "$f" ]] || continue
        f="${f#/usr/lib/postgresql/}"
        printf '%s\n' "${f%%/*}"
    done | sort -V | tail -n 1
}

# Version of the existing ledger cluster, if any.
cluster_version() {
    command -v pg_lsclusters >/dev/null 2>&1 || return 1
    local v
    v="$(pg_lsclusters -h 2>/dev/null | awk -v c="$CLUSTER" '$2 == c { print $1; exit }')"
    [[ -n "$v" ]] || return 1
    printf '%s' "$v"
}

pg_ctl_cluster() {
    pg_ctlcluster --skip-systemctl-redirect "$PG_VER" "$CLUSTER" "$@" 9>&-
}

is_running() {
    pg_ctl_cluster status >/dev/null 2>&1
}

# Run psql as the postgres superuser over the local socket.
psql_admin() {
    (cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PORT" -d postgres "$@")
}

conf_dir() { printf '/etc/postgresql/%s/%s' "$PG_VER" "$CLUSTER"; }

log_file() { printf '/var/log/postgresql/postgresql-%s-%s.log' "$PG_VER" "$CLUSTER"; }

show_log_hint() {
    err "server log: $(log_file)"
    if [[ -f "$(log_file)" ]]; then
        tail -n 20 "$(log_file)" >&2 || true
    fi
}

# ------------------------------------------------------------------ start --

create_cluster_if_needed() {
    if cluster_version >/dev/null; then
        return 0
    fi
    PG_VER="${PG_VERSION:-$(newest_installed_version)}"
    log "creating cluster $PG_VER/$CLUSTER on port $PORT"
    pg_createcluster "$PG_VER" "$CLUSTER" --port "$PORT" --locale C.UTF-8 9>&- >/dev/null
}

# Writes the cluster settings; returns 0 if anything changed.
write_config() {
    local dir changed=1
    dir="$(conf_dir)"
    local current_port
    current_port="$(pg_conftool -s "$PG_VER" "$CLUSTER" show port 2>/dev/null || true)"
    if [[ "$current_port" != "$PORT" ]]; then
        log "setting port $PORT (was ${current_port:-unset})"
        pg_conftool "$PG_VER" "$CLUSTER" set port "$PORT"
        changed=0
    fi

    local tuning="$dir/conf.d/90-ledger.conf" new
    new="$(
        cat <<'EOF'
# Managed by deploy/local/postgres.sh; rewritten on every start.
listen_addresses = '127.0.0.1'
max_connections = 200
shared_buffers = 256MB
# Loopback only, so TLS would only encrypt to ourselves: on two cores it cost the live path a third of its
# latency (docs/performance.md). Debian's clusters turn it on with a snakeoil certificate.
ssl = off
EOF
    )"
    mkdir -p "$dir/conf.d"
    if [[ ! -f "$tuning" || "$(<"$tuning")" != "$new" ]]; then
        printf '%s\n' "$new" >"$tuning"
        chown postgres:postgres "$tuning"
        changed=0
    fi
    return "$changed"
}

wait_until_ready() {
    local deadline=$((SECONDS + PG_START_TIMEOUT))
    until pg_isready -q -h "$HOST" -p "$PORT"; do
        if ((SECONDS >= deadline)); then
            err "server not ready on $HOST:$PORT after ${PG_START_TIMEOUT}s"
            show_log_hint
            return 1
        fi
        sleep 0.5
    done
}

ensure_role_and_db() {
    psql_admin <<EOF
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '$DB_USER') THEN
        CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
    ELSE
        ALTER ROLE $DB_USER WITH LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
    END IF;
END
\$\$;
EOF
    local exists
    exists="$(psql_admin -tA -c "SELECT 1 FROM pg_catalog.pg_database WHERE datname = '$DB_NAME'")"
    if [[ "$exists" != "1" ]]; then
        log "creating database $DB_NAME owned by $DB_USER"
        psql_admin -c "CREATE DATABASE $DB_NAME OWNER $DB_USER"
    else
        psql_admin -c "ALTER DATABASE $DB_NAME OWNER TO $DB_USER"
    fi
}

password_login_works() {
    env -u PGSERVICE -u PGPASSFILE PGPASSWORD="$DB_PASSWORD" PGCONNECT_TIMEOUT=5 \
        psql -X -q -w -h "$HOST" -p "$PORT" -U "$DB_USER" -d "$DB_NAME" \
        -tA -c 'SELECT 1' >/dev/null 2>&1
}

# Debian's default pg_hba.conf has "host all all 127.0.0.1/32 scram-sha-256";
# verify with a real password login and add an explicit rule if that fails.
ensure_password_login() {
    if password_login_works; then
        return 0
    fi
    local hba
    hba="$(conf_dir)/pg_hba.conf"
    local rule="host    $DB_NAME    $DB_USER    $HOST/32    scram-sha-256"
    if ! grep -qxF "$rule" "$hba"; then
        log "adding password rule for $DB_USER from $HOST to $hba"
        { printf '# added by deploy/local/postgres.sh\n%s\n' "$rule"; cat "$hba"; } >"$hba.new"
        chown postgres:postgres "$hba.new"
        chmod 640 "$hba.new"
        mv -f "$hba.new" "$hba"
        pg_ctl_cluster reload
    fi
    password_login_works || die "password login as $DB_USER on $HOST:$PORT fails; check $hba and $(log_file)"
}

do_start() {
    local t0
    t0="$(now)"
    take_lock
    do_install
    create_cluster_if_needed
    PG_VER="$(cluster_version)" || die "cluster $CLUSTER not found after pg_createcluster"

    local config_changed=1
    if write_config; then
        config_changed=0
    fi

    if is_running; then
        if ((config_changed == 0)); then
            log "configuration changed; restarting cluster $PG_VER/$CLUSTER"
            pg_ctl_cluster restart || { show_log_hint; exit 1; }
        else
            log "cluster $PG_VER/$CLUSTER already running"
        fi
    else
        log "starting cluster $PG_VER/$CLUSTER on $HOST:$PORT"
        pg_ctl_cluster start || { show_log_hint; exit 1; }
    fi
    wait_until_ready || exit 1
    ensure_role_and_db
    ensure_password_login
    log "running ($PG_VER/$CLUSTER, log $(log_file)); start took $(elapsed_since "$t0")s"
    log "DATABASE_URL=$DATABASE_URL"
}

do_stop() {
    take_lock
    if ! is_installed || ! PG_VER="$(cluster_version)"; then
        log "not running (no $CLUSTER cluster)"
        return 0
    fi
    if ! is_running; then
        log "not running"
        return 0
    fi
    log "stopping cluster $PG_VER/$CLUSTER"
    pg_ctl_cluster stop
    log "stopped"
}

do_status() {
    if ! is_installed || ! PG_VER="$(cluster_version)"; then
        log "stopped (no $CLUSTER cluster)"
        return 3
    fi
    if is_running; then
        local port
        port="$(pg_conftool -s "$PG_VER" "$CLUSTER" show port 2>/dev/null || echo "$PORT")"
        log "running ($PG_VER/$CLUSTER) on $HOST:$port"
        log "DATABASE_URL=postgresql://$DB_USER:$DB_PASSWORD@$HOST:$port/$DB_NAME"
        return 0
    fi
    log "stopped ($PG_VER/$CLUSTER)"
    return 3
}

# Stop and drop the ledger cluster with all its data; the next start creates it afresh.
do_purge() {
    do_stop
    if is_installed && PG_VER="$(cluster_version)"; then
        pg_dropcluster "$PG_VER" "$CLUSTER"
        log "cluster $PG_VER/$CLUSTER dropped"
    else
        log "no $CLUSTER cluster to drop"
    fi
}

main() {
    [[ $# -eq 1 ]] || usage
    case "$1" in
        install | start | stop | status | purge) ;;
        *) usage ;;
    esac
    require_root "$@"
    PG_VER=""
    case "$1" in
        install)
            take_lock
            do_install
            ;;
        start) do_start ;;
        stop) do_stop ;;
        status) do_status ;;
        purge) do_purge ;;
    esac
}

main "$@"
