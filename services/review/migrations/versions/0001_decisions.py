"""Decisions taken, and license number sequences.

Revision ID: 0001
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per submission decided: a redelivered submission gets this decision again, never a second.
    op.execute(
        """
        CREATE TABLE decisions (
            submission_event_id uuid PRIMARY KEY,
            case_id             uuid NOT NULL,
            decision_type       text NOT NULL,
            event               bytea NOT NULL,
            decided_at          timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE license_sequences (
            issue_year  int  NOT NULL,
            agency_code text NOT NULL,
            last_number int  NOT NULL CHECK (last_number BETWEEN 1 AND 999999),
            PRIMARY KEY (issue_year, agency_code)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE license_sequences")
    op.execute("DROP TABLE decisions")
