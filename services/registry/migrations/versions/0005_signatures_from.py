"""Signatures are required from the offsets a ledger had reached when it learnt to verify them.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The records a ledger applied before this migration were written unsigned: they are folded as they
    # were, by the live ledger and by every replay alike, and every record after them must be signed.
    # The cut-off lives beside the trusted keys (access schema), where a replay into another schema reads
    # it too; a fresh ledger has no rows here, so its log is verified from offset 0. Since access revision
    # 0004 the cut-offs are root-signed statements on the trust topic (licensectl keys signed-from), and the
    # table is gone: there is nothing to record here then.
    op.execute(
        """
        DO $$ BEGIN
            IF to_regclass('access.signatures_from') IS NOT NULL THEN
                INSERT INTO access.signatures_from (topic, partition, first_offset)
                SELECT topic, partition, next_offset FROM partition_offsets WHERE next_offset > 0
                ON CONFLICT (topic, partition) DO NOTHING;
            END IF;
        END $$
        """
    )


def downgrade() -> None:
    pass  # the cut-offs stay with the trusted keys: they describe the log, not this ledger
