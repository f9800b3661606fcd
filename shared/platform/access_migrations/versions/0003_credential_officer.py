"""The officer a credential belongs to: officer actions are attributed to it, not to what a body declares.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null for keys that are not a person's (a portal's, customs'), and for officer keys issued before this:
    # those can no longer act as an officer until a key naming the officer replaces them (docs/access.md).
    op.execute(
        r"""
        ALTER TABLE credentials ADD COLUMN officer text
            CHECK (officer ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$')
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE credentials DROP COLUMN officer")
