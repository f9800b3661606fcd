"""The trust list leaves the database: who may sign what is kept in root-signed statements on the trust topic.

A key inserted into access.producer_keys by SQL made a forged event legitimate, and neither replay nor
audit could tell: the audit relied on the database it audits. The statements on ``licensing.trust``
(shared/platform/trust.py) replace both tables. To upgrade a deployment, an operator re-trusts each producer's keys
with ``licensectl keys trust`` (and a pre-signature cut-off with ``licensectl keys signed-from``) before
the services restart: the rows dropped here are listed by ``licensectl keys trusted`` no more.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP TABLE signatures_from")
    op.execute("DROP TABLE producer_keys")


def downgrade() -> None:
    # The tables come back empty: their rows are the trust topic's statements now.
    op.execute(
        """
        CREATE TABLE producer_keys (
            producer text NOT NULL, key_id text NOT NULL, public_key text NOT NULL,
            added_at timestamptz NOT NULL DEFAULT now(), revoked_at timestamptz,
            PRIMARY KEY (producer, key_id)
        )
        """
    )
    op.execute("CREATE INDEX producer_keys_by_key ON producer_keys (key_id)")
    op.execute(
        "CREATE TABLE signatures_from (topic text NOT NULL, partition int NOT NULL, first_offset bigint NOT NULL, "
        "PRIMARY KEY (topic, partition))"
    )
