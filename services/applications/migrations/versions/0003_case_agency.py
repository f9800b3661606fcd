"""Each case's agency, so that a submitter may withdraw or resubmit only its own agency's applications.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: cases followed before this revision keep no agency until the stream is followed again.
    op.execute("ALTER TABLE case_status ADD COLUMN agency_code text")


def downgrade() -> None:
    op.execute("ALTER TABLE case_status DROP COLUMN agency_code")
