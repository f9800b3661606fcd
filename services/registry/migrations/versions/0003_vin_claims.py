"""VIN claims of the intake (rule 9 across licenses), and the indexes that read exports by case and by VIN.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Intake plumbing, not ledger content: a pending claim exists before its event is folded, so the table
    # does not follow from the log alone and stays out of the checksum (the exports table proves the VINs).
    op.execute(
        """
        CREATE TABLE vin_claims (
            vin                text PRIMARY KEY,
            declaration_number text NOT NULL,
            license_number     text NOT NULL,
            event_id           uuid NOT NULL,
            state              text NOT NULL CHECK (state IN ('pending', 'accepted', 'released')),
            claimed_at         timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX vin_claims_event ON vin_claims (event_id)")
    # The fold loads a case's accepted VINs; GET /vins/{vin}/exports finds every declaration naming a VIN.
    op.execute("CREATE INDEX exports_case ON exports (case_id)")
    op.execute("CREATE INDEX exports_vins ON exports USING gin (vins)")


def downgrade() -> None:
    op.execute("DROP INDEX exports_vins")
    op.execute("DROP INDEX exports_case")
    op.execute("DROP TABLE vin_claims")
