# Helpers shared by kafka.sh and postgres.sh; each sets LOG_PREFIX before sourcing this.
# shellcheck shell=bash

log() { printf '%s %s\n' "$LOG_PREFIX" "$*"; }
err() { printf '%s ERROR: %s\n' "$LOG_PREFIX" "$*" >&2; }
die() { err "$*"; exit 1; }

now() { printf '%s' "$EPOCHREALTIME"; }
elapsed_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

usage() {
    echo "usage: $0 {install|start|stop|status|purge${USAGE_EXTRA:-}}" >&2
    exit 2
}
