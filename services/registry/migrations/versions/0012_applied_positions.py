"""Where each applied event lies in the log, and whose case it is: an auditor reads a case's records back from the
log (``GET /cases/{case_id}/events``) to see each one as signed. Rows applied before this have neither.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute('ALTER TABLE applied_events ADD COLUMN case_id uuid, ADD COLUMN "offset" bigint')
    op.execute("CREATE INDEX applied_events_case ON applied_events (case_id) WHERE case_id IS NOT NULL")


def downgrade() -> None:
    op.execute("DROP INDEX applied_events_case")
    op.execute('ALTER TABLE applied_events DROP COLUMN case_id, DROP COLUMN "offset"')
