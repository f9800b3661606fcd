"""Each license's states in stream order (point-in-time queries), and the outbox of license changes.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Ledger content: follows from the log (positions included), so it is part of the checksum.
    op.execute(
        """
        CREATE TABLE license_history (
            license_number text   NOT NULL,
            event_id       uuid   NOT NULL,
            partition      int    NOT NULL,
            "offset"       bigint NOT NULL,
            occurred_at    timestamptz NOT NULL,
            state          jsonb  NOT NULL,
            PRIMARY KEY (license_number, event_id)
        )
        """
    )
    op.execute('CREATE INDEX license_history_position ON license_history (license_number, "offset")')
    op.execute("CREATE INDEX license_history_time ON license_history (occurred_at)")
    # Delivery plumbing: written with the ledger rows, emptied once published.
    op.execute(
        """
        CREATE TABLE outbox (
            id             bigserial PRIMARY KEY,
            license_number text  NOT NULL,
            state          jsonb NOT NULL
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE outbox")
    op.execute("DROP TABLE license_history")
