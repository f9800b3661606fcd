"""The license ledger, its exports, and what it has applied from the case stream.

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
        CREATE TABLE applications (
            application_id      uuid PRIMARY KEY,
            status              text NOT NULL,
            applicant_code      text NOT NULL,
            applicant_name      text NOT NULL,
            agency_code         text NOT NULL,
            destination_country text NOT NULL,
            port_of_exit        text NOT NULL,
            quantity            int  NOT NULL,
            reasons             jsonb NOT NULL DEFAULT '[]',
            license_number      text,
            submitted_at        timestamptz NOT NULL,
            decided_at          timestamptz
        )
        """
    )
    op.execute(
        """
        CREATE TABLE licenses (
            license_number      text PRIMARY KEY,
            case_id             uuid NOT NULL,
            status              text NOT NULL,
            applicant_code      text NOT NULL,
            quantity            int  NOT NULL,
            balance             int  NOT NULL CHECK (balance >= 0),
            declarations_used   int  NOT NULL CHECK (declarations_used BETWEEN 0 AND 12),
            valid_from          date NOT NULL,
            valid_to            date NOT NULL,
            port_of_exit        text NOT NULL,
            destination_country text NOT NULL,
            batch_mode          text NOT NULL,
            vins                text[] NOT NULL,
            granted_at          timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX licenses_case ON licenses (case_id)")
    op.execute("CREATE INDEX licenses_applicant ON licenses (applicant_code)")
    op.execute(
        """
        CREATE TABLE exports (
            event_id            uuid PRIMARY KEY,
            declaration_number  text NOT NULL,
            license_number      text NOT NULL,
            case_id             uuid NOT NULL,
            outcome             text NOT NULL,
            reason_code         text,
            reason_message      text,
            quantity            int  NOT NULL,
            port_of_exit        text NOT NULL,
            export_date         date NOT NULL,
            vins                text[] NOT NULL,
            value               numeric NOT NULL,
            currency            text NOT NULL,
            recorded_at         timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX exports_declaration ON exports (declaration_number)")
    op.execute("CREATE INDEX exports_license ON exports (license_number)")
    # Written in the same transaction as the rows above: what is applied, and where each partition is.
    op.execute("CREATE TABLE applied_events (event_id uuid PRIMARY KEY)")
    op.execute(
        """
        CREATE TABLE partition_offsets (
            topic       text   NOT NULL,
            partition   int    NOT NULL,
            next_offset bigint NOT NULL,
            PRIMARY KEY (topic, partition)
        )
        """
    )


def downgrade() -> None:
    for table in ("partition_offsets", "applied_events", "exports", "licenses", "applications"):
        op.execute(f"DROP TABLE {table}")
