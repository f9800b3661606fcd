#!/usr/bin/env bash
# Entry point of docker-compose.yml's Kafka container (apache/kafka image): the same broker as
# deploy/local/kafka.sh makes, single node in KRaft mode, SASL/SCRAM-SHA-512 for clients, SASL/PLAIN
# on the controller listener, and ACLs (deny unless allowed). The admin's SCRAM credential goes into
# the metadata when the storage is formatted, from KAFKA_ADMIN_PASSWORD; every other principal is made
# by `licensectl kafka setup` / `licensectl kafka grant` (docs/kafka-access.md).
set -euo pipefail
: "${KAFKA_ADMIN_PASSWORD:?set KAFKA_ADMIN_PASSWORD}"
: "${KAFKA_CONTROLLER_PASSWORD:?set KAFKA_CONTROLLER_PASSWORD}"
KAFKA=/opt/kafka
CONFIG=/tmp/server.properties
DATA=/var/lib/kafka/data
CLUSTER_ID="${CLUSTER_ID:-MkU3OEVBNTcwNTJENDM2Qg}"  # any 22-character base64 UUID

umask 077
# shellcheck source=deploy/local/kafka-config.sh
source /ledger/kafka-config.sh
kafka_server_properties 0.0.0.0 kafka 9092 9093 "$DATA" "$KAFKA_ADMIN_PASSWORD" "$KAFKA_CONTROLLER_PASSWORD" >"$CONFIG"
kafka_admin_client_properties "$KAFKA_ADMIN_PASSWORD" >/tmp/admin.properties
mkdir -p "$DATA"
"$KAFKA/bin/kafka-storage.sh" format --ignore-formatted -t "$CLUSTER_ID" -c "$CONFIG" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=$KAFKA_ADMIN_PASSWORD]"
exec "$KAFKA/bin/kafka-server-start.sh" "$CONFIG"
