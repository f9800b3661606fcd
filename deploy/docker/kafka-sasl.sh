#!/usr/bin/env bash
# Entry point of docker-compose.yml's Kafka container (apache/kafka image): the same broker as
# deploy/local/kafka.sh makes, single node in KRaft mode, SASL/SCRAM-SHA-512 for clients, SASL/PLAIN
# on the controller listener, and ACLs (deny unless allowed). The admin's SCRAM credential goes into
# the metadata when the storage is formatted, from KAFKA_ADMIN_PASSWORD; every other principal is made
# by `licensectl kafka setup` / `licensectl kafka grant` (docs/kafka-access.md).
# Clients in the Compose network use kafka:9092; clients on the host KAFKA_EXTERNAL_HOST:KAFKA_EXTERNAL_PORT
# (localhost:9094 by default).
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
EXTERNAL_HOST="${KAFKA_EXTERNAL_HOST:-localhost}"
EXTERNAL_PORT="${KAFKA_EXTERNAL_PORT:-9094}"
kafka_server_properties 0.0.0.0 kafka 9092 9093 "$DATA" "$KAFKA_ADMIN_PASSWORD" "$KAFKA_CONTROLLER_PASSWORD" >"$CONFIG"
# An external listener for clients on the host (docker-compose.yml publishes its port): the same SASL/SCRAM logins
# and ACLs, advertised as the host reaches it. Later keys of a properties file override earlier ones.
cat >>"$CONFIG" <<EOF
listeners=SASL_PLAINTEXT://0.0.0.0:9092,EXTERNAL://0.0.0.0:$EXTERNAL_PORT,CONTROLLER://0.0.0.0:9093
advertised.listeners=SASL_PLAINTEXT://kafka:9092,EXTERNAL://$EXTERNAL_HOST:$EXTERNAL_PORT
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,EXTERNAL:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
listener.name.external.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
EOF
kafka_admin_client_properties "$KAFKA_ADMIN_PASSWORD" >/tmp/admin.properties
mkdir -p "$DATA"
"$KAFKA/bin/kafka-storage.sh" format --ignore-formatted -t "$CLUSTER_ID" -c "$CONFIG" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=$KAFKA_ADMIN_PASSWORD]"
exec "$KAFKA/bin/kafka-server-start.sh" "$CONFIG"
