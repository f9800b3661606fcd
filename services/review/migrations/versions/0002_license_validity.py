"""Each license's validity, folded from the case stream, for the expiry scheduler.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # expired_on: the LicenseExpired read back from the stream; expiry_sent_at: this service appended one.
    # Either stops a (restarted, or second) scheduler from sending it again; ended (revoked, replaced) too.
    op.execute(
        """
        CREATE TABLE license_validity (
            license_number text PRIMARY KEY,
            case_id        uuid NOT NULL,
            valid_to       date NOT NULL,
            expired_on     date,
            ended          boolean NOT NULL DEFAULT false,
            expiry_sent_at timestamptz
        )
        """
    )
    op.execute(
        "CREATE INDEX license_validity_due ON license_validity (valid_to) "
        "WHERE expired_on IS NULL AND NOT ended AND expiry_sent_at IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP TABLE license_validity")
