"""Each declaration once, and VIN claims only while a declaration is being judged.

``declarations`` keeps each declaration number's content, and whether its verdict is in the log: the same
declaration sent again is answered with that verdict and appends nothing; the number sent again with other
content is refused (declaration_conflict). Filled from the exports the ledger holds.

``vin_claims`` keeps only pending claims: an accepted export's row of ``exports`` (ledger content, in the
checksum) holds its VINs, so no row outside the checksum can free a VIN (docs/vin-uniqueness.md).

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE declarations (
            declaration_number text PRIMARY KEY,
            license_number     text NOT NULL,
            content            jsonb NOT NULL,
            appended           boolean NOT NULL DEFAULT false,
            declared_at        timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        INSERT INTO declarations (declaration_number, license_number, appended, content)
        SELECT DISTINCT ON (declaration_number) declaration_number, license_number, true,
               jsonb_build_object(
                   'declaration_number', declaration_number, 'license_number', license_number,
                   'port_of_exit', port_of_exit, 'export_date', export_date, 'quantity', quantity,
                   'vins', to_jsonb(vins), 'value', value::text, 'currency', currency)
        FROM exports ORDER BY declaration_number, recorded_at, event_id
        """
    )
    op.execute("DELETE FROM vin_claims WHERE state <> 'pending'")
    op.execute("ALTER TABLE vin_claims DROP COLUMN state")


def downgrade() -> None:
    op.execute("ALTER TABLE vin_claims ADD COLUMN state text NOT NULL DEFAULT 'pending'")
    op.execute(
        """
        INSERT INTO vin_claims (vin, declaration_number, license_number, event_id, state)
        SELECT DISTINCT ON (vin) vin, declaration_number, license_number, event_id, 'accepted'
        FROM exports, unnest(vins) AS vin WHERE outcome = 'accepted' ORDER BY vin, recorded_at
        ON CONFLICT (vin) DO NOTHING
        """
    )
    op.execute("DROP TABLE declarations")
