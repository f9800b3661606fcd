"""``licensectl audit verify`` run on an auditor's request, its output kept for the page."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass

from services.console.web import HERE

ROOT = HERE.parents[1]
TIMEOUT = 300.0


@dataclass(frozen=True)
class AuditRun:
    passed: bool
    exit_code: int
    output: str


async def verify(public_key: str | None) -> AuditRun:
    """The audit's verdict and everything it printed (cut short after ``TIMEOUT`` seconds)."""
    pinned = ["--public-key", public_key] if public_key else []
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "licensectl",
        "audit",
        "verify",
        *pinned,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "160", "NO_COLOR": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        return AuditRun(False, -1, f"the audit did not finish within {TIMEOUT:.0f} s")
    code = process.returncode if process.returncode is not None else -1
    return AuditRun(code == 0, code, out.decode(errors="replace"))
