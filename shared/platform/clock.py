"""The clocks: the instant in UTC, and the day in China that the regulation counts validity in."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

CHINA = ZoneInfo("Asia/Shanghai")
"""The regulation's dates (validity, working days, expiry) are China's."""


def utc_now() -> datetime:
    """The current instant in UTC (the only clock producers use for ``occurred_at``)."""
    return datetime.now(UTC)


def china_today() -> date:
    """Today's date in China, the date the regulation's validity is counted in."""
    return datetime.now(CHINA).date()
