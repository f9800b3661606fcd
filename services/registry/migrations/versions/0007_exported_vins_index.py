"""The exports table keeps the indexes its queries use, and indexes VINs only where there are some.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every export is written once per fold and every index on it is written with it. Only used vehicles'
    # exports carry VINs, a few in a hundred. The fold loads, for each case of a batch, the VINs its
    # accepted exports carried (store.LOAD_EXPORTED_VINS): through ``exports_case`` it read every export of
    # every case to find those few, and was the costliest statement of a replay into a fresh schema. This
    # index holds just the rows it wants, and ``exports_case`` served no other query.
    op.execute("CREATE INDEX exports_case_vins ON exports (case_id) WHERE outcome = 'accepted' AND vins <> '{}'")
    op.execute("DROP INDEX exports_case")
    # The lookup by VIN (reads.EXPORTS_OF_VIN) names the same condition, so the GIN index leaves out the
    # exports without VINs; ``exports_license`` served no query.
    op.execute("CREATE INDEX exports_with_vins ON exports USING gin (vins) WHERE vins <> '{}'")
    op.execute("DROP INDEX exports_vins")
    op.execute("DROP INDEX exports_license")


def downgrade() -> None:
    op.execute("CREATE INDEX exports_license ON exports (license_number)")
    op.execute("CREATE INDEX exports_vins ON exports USING gin (vins)")
    op.execute("DROP INDEX exports_with_vins")
    op.execute("CREATE INDEX exports_case ON exports (case_id)")
    op.execute("DROP INDEX exports_case_vins")
