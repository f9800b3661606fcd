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

from shared import access, signing
from shared.refusal import Refusal
from shared.settings import ServiceSettings

T = TypeVar("T")
app = typer.Typer(
    help="API keys (issue, rotate, revoke, list) and trusted signing keys, in DATABASE_URL's access schema.",
    no_args_is_help=True,
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
DEMO_OFFICER = "officer.wang"
"""The officer the demo's officer key is issued to."""


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
    officer: Annotated[
        str | None, typer.Option(help="the officer it is issued to (role officer): their actions are attributed to it")
    ] = None,
) -> None:
    """Issue a key; it is printed once and only its hash is kept. An officer's key names the officer."""
    expires = datetime.now(UTC) + timedelta(days=days) if days else None
    try:
        key_id, key = _run(
            lambda c: access.create(c, agency_code=agency, roles=role, label=label, expires_at=expires, officer=officer)
        )
    except ValueError as wrong:
        console.print(f"[red]{wrong}")
        raise typer.Exit(2) from None
    holder = f", officer {officer}" if officer else ""
    console.print(f"key {key_id} for agency {agency}, roles {', '.join(sorted(set(role)))}{holder}; store it now:")
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
    """Every key: its agency, roles, officer, label, and when it was made, expires or was revoked."""
    view = Table(title="API keys")
    for column in ("key id", "agency", "roles", "officer", "label", "created", "expires", "revoked"):
        view.add_column(column)
    for row in _run(access.listing):
        stamps = [_when(row[k]) for k in ("created_at", "expires_at", "revoked_at")]
        roles = ", ".join(row["roles"])
        view.add_row(row["key_id"], row["agency_code"], roles, row["officer"] or "", row["label"], *stamps)
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
            found = await access.stored_credential(connection, access.key_id_of(key) or "")
            try:
                access.check(found, key, now)
            except Refusal:
                return False
            if found is not None and "officer" in found.roles and found.officer is None:
                return False  # made before keys named their officer: it could not act as one
        return True

    return keys if _run(honoured) else None


async def _create_demo_keys(connection: asyncpg.Connection) -> dict[str, Any]:
    made = {}
    for name, (agency, roles) in DEMO.items():
        officer = DEMO_OFFICER if "officer" in roles else None
        _, made[name] = await access.create(
            connection, agency_code=agency, roles=roles, label=f"demo {name}", officer=officer
        )
    return made


# Signing keys: which public key may sign events or commands for which producer (docs/signing.md).

SERVICES = ("applications", "review", "registry")


@app.command()
def trust(
    producer: Annotated[str, typer.Option(help="who signs with it: a service, or an agency's sender code")],
    public_key: Annotated[str, typer.Option(help="base64 of the raw Ed25519 public key, or a file holding that")],
) -> None:
    """Trust a public key to sign for ``producer`` from now on (several keys per producer: rotation)."""
    try:
        key = signing.public_key_from(public_key)
    except ValueError as wrong:
        console.print(f"[red]not an Ed25519 public key: {wrong}")
        raise typer.Exit(2) from None
    identifier = _run(lambda c: signing.trust(c, producer=producer, public_key=key))
    console.print(f"key {identifier} trusted for {producer}")


@app.command()
def untrust(
    producer: Annotated[str, typer.Option(help="the producer the key signs for")],
    key_id: Annotated[str, typer.Option(help="the key's id (SHA-256 of the raw public key, hex)")],
) -> None:
    """Revoke a signing key: records it signs from now on are refused; what it signed before stays valid."""
    if not _run(lambda c: signing.untrust(c, producer=producer, key_id=key_id)):
        console.print(f"[red]no key {key_id} in force for {producer}")
        raise typer.Exit(1)
    console.print(f"key {key_id} of {producer} revoked")


@app.command("trust-own")
def trust_own(
    service: Annotated[str, typer.Option(help=f"one of {', '.join(SERVICES)}")],
) -> None:
    """Trust a service's own signing key (from its <SERVICE>_SIGNING_KEY settings or its key dir)."""
    if service not in SERVICES:
        console.print(f"[red]no service {service}: one of {', '.join(SERVICES)}")
        raise typer.Exit(2)
    settings = _service_settings(service)
    secret = settings.signing_key.get_secret_value() if settings.signing_key else None
    try:
        private = signing.load_signing_key(
            key=secret,
            key_file=settings.signing_key_file,
            key_dir=settings.key_dir,
            file_name=f"{service}-signing.key",
            generate=False,
        )
    except FileNotFoundError as missing:
        console.print(f"[red]no signing key yet: {missing}")
        raise typer.Exit(1) from None
    identifier = _run(lambda c: signing.trust(c, producer=service, public_key=private.public_key()))
    console.print(f"key {identifier} of {service} trusted ({signing.public_b64(private.public_key())})")


@app.command()
def trusted() -> None:
    """Every trusted signing key: its producer, id, and when it was added or revoked."""
    view = Table(title="Trusted signing keys")
    for column in ("producer", "key id", "public key", "added", "revoked"):
        view.add_column(column)
    for row in _run(lambda c: c.fetch(signing.SELECT_KEYS + " ORDER BY producer, added_at")):
        view.add_row(
            row["producer"], row["key_id"], row["public_key"], _when(row["added_at"]), _when(row["revoked_at"])
        )
    console.print(view)


def _service_settings(service: str) -> ServiceSettings:
    if service == "applications":
        from services.applications.app import Settings as ApplicationsSettings

        return ApplicationsSettings()
    if service == "review":
        from services.review.app import Settings as ReviewSettings

        return ReviewSettings()
    from services.registry.app import Settings as RegistrySettings

    return RegistrySettings()
