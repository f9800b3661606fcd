"""``licensectl keys``: issue, rotate, revoke and list the API keys the services accept (docs/access.md)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from shared import access
from shared.settings import ServiceSettings

T = TypeVar("T")
app = typer.Typer(
    help="Issue, rotate, revoke and list API keys (in DATABASE_URL's access schema).", no_args_is_help=True
)
console = Console()
DEMO: dict[str, tuple[str, tuple[str, ...]]] = {
    "submitter": ("44", ("submitter",)),
    "officer": ("44", ("officer",)),
    "customs": ("00", ("customs",)),
    "auditor": ("00", ("auditor",)),
    "admin": ("00", ("admin",)),
}
"""The demo's credentials: agency 44's submitter and officer, and national customs, auditor and admin."""


def _run(work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    async def go() -> T:
        connection = await asyncpg.connect(ServiceSettings().database_url)
        try:
            async with connection.transaction():
                return await work(connection)
        finally:
            await connection.close()

    return asyncio.run(go())


@app.command()
def create(
    agency: Annotated[str, typer.Option(help="the agency code, two digits (00: national bodies)")],
    role: Annotated[list[str], typer.Option(help=f"one of {', '.join(access.ROLES)}; repeat for more")],
    label: Annotated[str, typer.Option(help="who holds it, for the listing")] = "",
    days: Annotated[int | None, typer.Option(help="expire after so many days")] = None,
) -> None:
    """Issue a key; it is printed once and only its hash is kept."""
    expires = datetime.now(UTC) + timedelta(days=days) if days else None
    try:
        key_id, key = _run(lambda c: access.create(c, agency_code=agency, roles=role, label=label, expires_at=expires))
    except ValueError as wrong:
        console.print(f"[red]{wrong}")
        raise typer.Exit(2) from None
    console.print(f"key {key_id} for agency {agency}, roles {', '.join(sorted(set(role)))}; store it now:")
    print(key)


@app.command()
def rotate(
    key_id: str,
    grace_hours: Annotated[float, typer.Option(help="the old key keeps working this long")] = 24.0,
) -> None:
    """Issue a new key with the same grants; the old one expires after the grace period."""
    try:
        new_id, key = _run(lambda c: access.rotate(c, key_id, grace=timedelta(hours=grace_hours)))
    except LookupError as missing:
        console.print(f"[red]{missing}")
        raise typer.Exit(1) from None
    console.print(f"key {new_id} replaces {key_id}, which expires in {grace_hours:g} h; store it now:")
    print(key)


@app.command()
def revoke(key_id: str) -> None:
    """Revoke a key at once (each service notices within its cache time, 5 s by default)."""
    if not _run(lambda c: access.revoke(c, key_id)):
        console.print(f"[red]no key {key_id} in force")
        raise typer.Exit(1)
    console.print(f"key {key_id} revoked")


@app.command("list")
def list_() -> None:
    """Every key: its agency, roles, label, and when it was made, expires or was revoked."""
    view = Table(title="API keys")
    for column in ("key id", "agency", "roles", "label", "created", "expires", "revoked"):
        view.add_column(column)
    for row in _run(access.listing):
        stamps = [_when(row[k]) for k in ("created_at", "expires_at", "revoked_at")]
        view.add_row(row["key_id"], row["agency_code"], ", ".join(row["roles"]), row["label"], *stamps)
    console.print(view)


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""


@app.command()
def bootstrap(
    file: Annotated[Path, typer.Option(help="where the demo keys are kept")] = Path(".run/demo-keys.json"),
) -> None:
    """Make the demo's keys (one per role) once; later runs reuse those in ``file`` while they are in force."""
    kept = _kept(file)
    if kept is not None:
        console.print(f"demo keys: reusing {file}")
        return
    keys = _run(_create_demo_keys)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(keys, indent=2) + "\n")
    os.chmod(file, 0o600)  # the keys themselves: readable by their owner only
    console.print(f"demo keys: {', '.join(keys)} written to {file}")


def _kept(file: Path) -> dict[str, str] | None:
    """The keys in ``file`` if every demo role has one that the database still honours."""
    try:
        keys: dict[str, str] = json.loads(file.read_text())
    except (OSError, ValueError):
        return None
    if set(keys) != set(DEMO):
        return None

    async def honoured(connection: asyncpg.Connection) -> bool:
        now = datetime.now(UTC)
        for key in keys.values():
            row = await connection.fetchrow(access.FIND, access.key_id_of(key) or "")
            found = access.Credential(**{**dict(row), "roles": frozenset(row["roles"])}) if row else None
            try:
                access.check(found, key, now)
            except access.Denied:
                return False
        return True

    return keys if _run(honoured) else None


async def _create_demo_keys(connection: asyncpg.Connection) -> dict[str, Any]:
    made = {}
    for name, (agency, roles) in DEMO.items():
        _, made[name] = await access.create(connection, agency_code=agency, roles=roles, label=f"demo {name}")
    return made
