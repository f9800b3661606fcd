"""The refusals of intake commands, kept from the dead-letter topic for each sender to read its own.

Not ledger content (not in the checksum): a record of what the services told senders, rebuilt from the
dead-letter topic by reading it again. A replay's swap carries it over as it stands.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE refusals (
            id                 bigserial UNIQUE,
            source             text PRIMARY KEY,  -- topic/partition/offset of the refused record
            service            text NOT NULL,
            command_type       text,
            command_id         uuid,
            sender             text,
            verified           boolean NOT NULL,
            agency_code        text,
            application_id     uuid,
            declaration_number text,
            license_number     text,
            reason_code        text NOT NULL,
            reason             text NOT NULL,
            refused_at         timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX refusals_sender ON refusals (sender, id)")
    op.execute("CREATE INDEX refusals_agency ON refusals (agency_code, id)")
    op.execute("CREATE INDEX refusals_application ON refusals (application_id)")


def downgrade() -> None:
    op.execute("DROP TABLE refusals")
