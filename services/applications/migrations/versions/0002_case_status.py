"""Each application's status, followed from the case stream, to check withdrawals and resubmissions.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # returned_event_id: the officer's return a resubmission answers (one resubmission per return).
    op.execute(
        """
        CREATE TABLE case_status (
            application_id    uuid PRIMARY KEY,
            status            text NOT NULL,
            applicant_code    text NOT NULL,
            returned_event_id uuid,
            updated_at        timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE case_status")
