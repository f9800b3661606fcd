"""Where each event was applied: an id applied in one partition is a duplicate there, and reused in another.
The identity of the log the ledger follows: its topic id and partition count (services/registry/guard.py).
The seal of each partition's rows (services/registry/seal.py), and the alarms audits raise.

A ledger with rows from before this revision has no seal: the registry refuses to build on it until
``licensectl replay --repair`` rebuilds it from the log and seals it.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null for the events applied before this revision: taken for duplicates wherever they appear again.
    op.execute("ALTER TABLE applied_events ADD COLUMN partition int")
    op.execute("CREATE TABLE log_identity (topic text PRIMARY KEY, topic_id text NOT NULL, partitions int NOT NULL)")
    op.execute("ALTER TABLE partition_offsets ADD COLUMN seal bytea")
    op.execute("CREATE TABLE ledger_alarms (raised_at timestamptz NOT NULL DEFAULT now(), reason text NOT NULL)")


def downgrade() -> None:
    op.execute("DROP TABLE ledger_alarms")
    op.execute("ALTER TABLE partition_offsets DROP COLUMN seal")
    op.execute("DROP TABLE log_identity")
    op.execute("ALTER TABLE applied_events DROP COLUMN partition")
