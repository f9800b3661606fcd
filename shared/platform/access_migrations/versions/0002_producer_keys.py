"""Trusted signing keys: which public key may sign for which producer, and from when to when.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows are never deleted: a revoked key still verifies what it signed before its revocation, so that
    # a replay refuses and accepts exactly what the live reader did (docs/signing.md).
    op.execute(
        """
        CREATE TABLE producer_keys (
            producer   text NOT NULL,
            key_id     text NOT NULL,
            public_key text NOT NULL,
            added_at   timestamptz NOT NULL DEFAULT now(),
            revoked_at timestamptz,
            PRIMARY KEY (producer, key_id)
        )
        """
    )
    op.execute("CREATE INDEX producer_keys_by_key ON producer_keys (key_id)")
    # Where each partition's signed records begin: a log written before events were signed is folded
    # unverified below these offsets (filled by the registry's migration 0005), signed from them on.
    op.execute(
        """
        CREATE TABLE signatures_from (
            topic        text NOT NULL,
            partition    integer NOT NULL,
            first_offset bigint NOT NULL,
            PRIMARY KEY (topic, partition)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE signatures_from")
    op.execute("DROP TABLE producer_keys")
