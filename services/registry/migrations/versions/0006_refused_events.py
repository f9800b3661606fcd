"""The records of the case stream the fold refused, with the reason's code: ledger content, in the checksum.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Kept so that which records were refused is part of what a checkpoint's checksum covers: a replay that
    # trusts a signed checkpoint refuses exactly these below it instead of verifying every signature again.
    op.execute(
        """
        CREATE TABLE refused_events (
            topic       text   NOT NULL,
            partition   int    NOT NULL,
            "offset"    bigint NOT NULL,
            reason_code text   NOT NULL,
            PRIMARY KEY (topic, partition, "offset")
        )
        """
    )
    # A ledger that refused records before this migration did not keep them: it keeps them from the offsets
    # it has reached, and a replay into another schema keeps them from the same offsets (replay.py).
    op.execute("ALTER TABLE partition_offsets ADD COLUMN refusals_from bigint NOT NULL DEFAULT 0")
    op.execute("UPDATE partition_offsets SET refusals_from = next_offset")


def downgrade() -> None:
    op.execute("ALTER TABLE partition_offsets DROP COLUMN refusals_from")
    op.execute("DROP TABLE refused_events")
