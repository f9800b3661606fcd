"""Each case as the ledger's fold leaves it, followed from the case stream (shared/following.py).

Replaces case_status: a withdrawal or resubmission is judged against the fold's own state, and answered
once the service has seen whether its event took effect. Followed under a new consumer group, from the
start of the stream, so that every case's state is complete. An idempotency key keeps the event it
appended, so that a retry appends nothing.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

from shared.following import TABLES

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in TABLES:
        op.execute(statement)
    op.execute("DROP TABLE case_status")
    # The event a key's submission appended: a retry returns it and appends nothing (no second copy in the log).
    # Keys of Kafka commands too ("intake:<sender>:<command id>"): a redelivered command appends nothing either.
    op.execute("ALTER TABLE idempotency_keys ADD COLUMN event bytea")


def downgrade() -> None:
    # case_status comes back empty: the old follower fills it as it reads the stream again from the start.
    op.execute(
        """
        CREATE TABLE case_status (
            application_id uuid PRIMARY KEY, status text NOT NULL, applicant_code text NOT NULL,
            returned_event_id uuid, updated_at timestamptz NOT NULL DEFAULT now(), agency_code text
        )
        """
    )
    op.execute("DROP TABLE case_licenses, case_events, followed_positions, case_states")
    op.execute("ALTER TABLE idempotency_keys DROP COLUMN event")
