"""API keys: each maps to an agency and roles; only its SHA-256 is kept.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows are never deleted: a revoked or expired key stays, so who held which grant can be told later.
    op.execute(
        """
        CREATE TABLE credentials (
            key_id      text PRIMARY KEY,
            hash        text NOT NULL,
            agency_code text NOT NULL,
            roles       text[] NOT NULL CHECK (cardinality(roles) > 0),
            label       text NOT NULL DEFAULT '',
            created_at  timestamptz NOT NULL DEFAULT now(),
            expires_at  timestamptz,
            revoked_at  timestamptz
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE credentials")
