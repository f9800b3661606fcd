"""The officers' queue, the licenses review has granted (and their state), and every officer action.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per case escalated: its latest escalation, open until an officer decides or the applicant withdraws.
    op.execute(
        """
        CREATE TABLE officer_queue (
            case_id             uuid PRIMARY KEY,
            submission_event_id uuid NOT NULL,
            application         jsonb NOT NULL,
            reasons             jsonb NOT NULL,
            due                 date NOT NULL,
            escalated_at        timestamptz NOT NULL,
            status              text NOT NULL DEFAULT 'open',
            closed_at           timestamptz
        )
        """
    )
    op.execute("CREATE INDEX officer_queue_open ON officer_queue (escalated_at) WHERE status = 'open'")
    # What review needs to act on a license: its case, terms and state as review's own events left it.
    op.execute(
        """
        CREATE TABLE licenses (
            license_number      text PRIMARY KEY,
            case_id             uuid NOT NULL,
            status              text NOT NULL,
            applicant_code      text NOT NULL,
            quantity            int  NOT NULL,
            valid_from          date NOT NULL,
            valid_to            date NOT NULL,
            port_of_exit        text NOT NULL,
            destination_country text NOT NULL,
            batch_mode          text NOT NULL,
            version             int  NOT NULL DEFAULT 0,
            successor           text,
            granted_at          timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # The licenses granted before this revision, from the decisions recorded with their events.
    op.execute(
        """
        INSERT INTO licenses (
            license_number, case_id, status, applicant_code, quantity, valid_from, valid_to,
            port_of_exit, destination_country, batch_mode, granted_at)
        SELECT p->>'license_number', case_id, 'active', p->>'applicant_code', (p->>'quantity')::int,
               (p->>'valid_from')::date, (p->>'valid_to')::date, p->>'port_of_exit', p->>'destination_country',
               p->>'batch_mode', decided_at
        FROM (
            SELECT case_id, decided_at, convert_from(event, 'UTF8')::jsonb->'payload' AS p
            FROM decisions WHERE decision_type = 'LicenseGranted'
        ) granted
        """
    )
    # Each action's event under its deterministic id: a retried request finds it and appends the same event.
    op.execute(
        """
        CREATE TABLE officer_actions (
            event_id uuid PRIMARY KEY,
            case_id  uuid NOT NULL,
            target   text NOT NULL,
            action   text NOT NULL,
            officer  text NOT NULL,
            event    bytea NOT NULL,
            acted_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX officer_actions_target ON officer_actions (target, acted_at)")


def downgrade() -> None:
    for table in ("officer_actions", "licenses", "officer_queue"):
        op.execute(f"DROP TABLE {table}")
