"""The hash chain head of each partition, stored with its offset (services/registry/chain.py).

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # In the row the batch transaction already writes, so the head can never disagree with the offset.
    op.execute(
        """
        ALTER TABLE partition_offsets
            ADD COLUMN chain_head  bytea  NOT NULL DEFAULT decode(repeat('00', 32), 'hex'),
            ADD COLUMN chain_start bigint NOT NULL DEFAULT 0
        """
    )
    # A ledger that applied records before this migration cannot hash them without the log: its chain
    # starts at the offsets it has reached, and says so (a replay or an audit chains from there).
    op.execute("UPDATE partition_offsets SET chain_start = next_offset")


def downgrade() -> None:
    op.execute("ALTER TABLE partition_offsets DROP COLUMN chain_start, DROP COLUMN chain_head")
