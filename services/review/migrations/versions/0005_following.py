"""Each case as the ledger's fold leaves it (shared/following.py); decisions and officer actions sent once.

An officer's action is judged against the fold's own state of the case (an exhausted or expired license
is known as such), and answered once review has seen its event take effect; review's own table of
licenses, which knew only review's events, goes. A decision keeps whether its event reached the log, so
that a redelivered submission sends nothing again. An officer action keeps what was asked, so that a
retry is told apart from another decision. Followed under a new consumer group, from the start of the
stream.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

from shared.following import TABLES

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in TABLES:
        op.execute(statement)
    # Decided before this revision: sent, as review sent every decision before its Kafka commit.
    op.execute("ALTER TABLE decisions ADD COLUMN sent boolean NOT NULL DEFAULT false")
    op.execute("UPDATE decisions SET sent = true")
    op.execute("ALTER TABLE officer_actions ADD COLUMN request text NOT NULL DEFAULT ''")
    op.execute("DROP TABLE licenses")


def downgrade() -> None:
    op.execute(
        """
        CREATE TABLE licenses (
            license_number text PRIMARY KEY, case_id uuid NOT NULL, status text NOT NULL,
            applicant_code text NOT NULL, quantity int NOT NULL, valid_from date NOT NULL, valid_to date NOT NULL,
            port_of_exit text NOT NULL, destination_country text NOT NULL, batch_mode text NOT NULL,
            version int NOT NULL DEFAULT 0, successor text, granted_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("ALTER TABLE officer_actions DROP COLUMN request")
    op.execute("ALTER TABLE decisions DROP COLUMN sent")
    op.execute("DROP TABLE case_licenses, case_events, followed_positions, case_states")
