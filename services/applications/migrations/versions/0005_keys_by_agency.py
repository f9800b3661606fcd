"""An HTTP submission's Idempotency-Key is its agency's own: kept as ``http:<agency>:<key>``.

Before, every credential's keys and the intake's command keys (``intake:<sender>:<command id>``) shared one
namespace: a key one agency had used was refused to another as reused (telling it that someone had used it),
and an HTTP key spelled like a command's key could take that command's id before its sender sent it.

Each HTTP key kept so far moves under its agency: the one its stored event names, or, for a key kept without
its event (before revision 0004), the one of its case as followed. A retry of such a request then finds it.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        WITH http AS (
            SELECT k.key, coalesce(
                       convert_from(k.event, 'UTF8')::jsonb #>> '{payload,application,agency_code}',
                       s.application ->> 'agency_code'
                   ) AS agency
            FROM idempotency_keys k LEFT JOIN case_states s ON s.case_id = k.application_id
            WHERE coalesce(convert_from(k.event, 'UTF8')::jsonb #>> '{payload,channel}',
                           CASE WHEN k.key LIKE 'intake:%' THEN 'intake' ELSE 'http' END) = 'http'
        )
        UPDATE idempotency_keys k SET key = 'http:' || http.agency || ':' || k.key
        FROM http WHERE http.key = k.key AND http.agency IS NOT NULL
        """
    )


def downgrade() -> None:
    # Fails (a duplicate key) if two agencies have used the same key since: which one keeps it is not ours to pick.
    op.execute("UPDATE idempotency_keys SET key = regexp_replace(key, '^http:[^:]*:', '') WHERE key LIKE 'http:%'")
