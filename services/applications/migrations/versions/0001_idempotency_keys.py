"""Idempotency keys of HTTP submissions.

Revision ID: 0001
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE idempotency_keys (
            key            text PRIMARY KEY,
            application_id uuid NOT NULL,
            fingerprint    text NOT NULL,
            created_at     timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE idempotency_keys")
