"""The intake sender a credential speaks for: an agency's or customs' producer name, whose refused commands it may
read at the registry (GET /refusals). Null for credentials that speak for no sender.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(r"ALTER TABLE credentials ADD COLUMN sender text CHECK (sender ~ '^[a-z0-9][a-z0-9._-]{0,63}$')")


def downgrade() -> None:
    op.execute("ALTER TABLE credentials DROP COLUMN sender")
