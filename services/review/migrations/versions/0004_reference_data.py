"""Reference data in review's own tables: the rows admins change, each version loaded, and every change made.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = (
    """
    CREATE TABLE reference_enterprises (
        code text PRIMARY KEY,
        name text NOT NULL,
        role text NOT NULL CHECK (role IN ('manufacturer', 'distributor')),
        tier text CHECK (tier IN ('A', 'B', 'C'))
    )
    """,
    """
    CREATE TABLE reference_listings (
        enterprise text NOT NULL REFERENCES reference_enterprises (code) ON DELETE CASCADE,
        year       int  NOT NULL,
        status     text NOT NULL CHECK (status IN ('listed', 'suspended', 'cancelled')),
        PRIMARY KEY (enterprise, year)
    )
    """,
    """
    CREATE TABLE reference_authorisations (
        distributor  text   NOT NULL REFERENCES reference_enterprises (code) ON DELETE CASCADE,
        manufacturer text   NOT NULL REFERENCES reference_enterprises (code) ON DELETE CASCADE,
        year         int    NOT NULL,
        brands       text[] NOT NULL,
        status       text   NOT NULL CHECK (status IN ('active', 'withdrawn')),
        PRIMARY KEY (distributor, manufacturer, year)
    )
    """,
    """
    CREATE TABLE reference_models (
        model_code          text PRIMARY KEY,
        manufacturer        text NOT NULL REFERENCES reference_enterprises (code) ON DELETE CASCADE,
        brand               text NOT NULL,
        ccc_certificate     text NOT NULL,
        ccc_valid_until     date NOT NULL,
        reference_price_cny int  CHECK (reference_price_cny > 0)
    )
    """,
    """
    CREATE TABLE reference_outlets (
        enterprise text NOT NULL REFERENCES reference_enterprises (code) ON DELETE CASCADE,
        country    text NOT NULL,
        city       text NOT NULL,
        name       text NOT NULL,
        PRIMARY KEY (enterprise, country, city, name)
    )
    """,
    """
    CREATE TABLE reference_confirmations (
        number              text PRIMARY KEY,
        manufacturer        text NOT NULL REFERENCES reference_enterprises (code) ON DELETE CASCADE,
        vin                 text NOT NULL,
        destination_country text NOT NULL,
        confirmed_on        date NOT NULL
    )
    """,
    # Each version file loaded, whole: its small parts (ports, commodity codes, caps, FX, calendar) are
    # read from here, and a past decision can be explained against exactly what was loaded.
    """
    CREATE TABLE reference_versions (
        version   text PRIMARY KEY,
        document  jsonb NOT NULL,
        revision  bigint NOT NULL,
        loaded_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    # One row: the version in force and a counter every change moves. Every writer locks this row, so
    # changes are serialised; every instance compares the counter with its own before deciding.
    """
    CREATE TABLE reference_state (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        version   text REFERENCES reference_versions (version),
        revision  bigint NOT NULL
    )
    """,
    "INSERT INTO reference_state (version, revision) VALUES (NULL, 0)",
    """
    CREATE TABLE reference_changes (
        revision   bigint PRIMARY KEY,
        kind       text NOT NULL,
        target     text NOT NULL,
        before     jsonb,
        after      jsonb,
        changed_by text NOT NULL,
        why        text NOT NULL,
        changed_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    # The change log is evidence: a trigger, not a convention, keeps it append-only.
    """
    CREATE FUNCTION reference_changes_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'reference_changes is append-only';
    END $$
    """,
    """
    CREATE TRIGGER reference_changes_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON reference_changes
    FOR EACH STATEMENT EXECUTE FUNCTION reference_changes_append_only()
    """,
)


def upgrade() -> None:
    for statement in TABLES:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE reference_changes")
    op.execute("DROP FUNCTION reference_changes_append_only()")
    for table in ("state", "versions", "confirmations", "outlets", "models", "authorisations", "listings"):
        op.execute(f"DROP TABLE reference_{table}")
    op.execute("DROP TABLE reference_enterprises")
