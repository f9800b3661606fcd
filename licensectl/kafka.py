"""``licensectl kafka``: the broker's principals and their ACLs, from the table in shared/platform/kafka_access.py.

Run as the broker's admin (``KAFKA_USERNAME``/``KAFKA_PASSWORD``; ``eval "$(deploy/local/kafka.sh
credentials)"`` on the provisioned broker). Names and ACLs follow ``LEDGER_TOPIC_NAMESPACE``.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from licensectl.failures import check_broker
from licensectl.output import Column, emit_json, show
from shared.contract.topics import Topics
from shared.platform.kafka_access import SERVICES, KafkaConnection, Role
from shared.platform.kafka_admin import PrincipalError, grant, new_password, permissions, revoke
from shared.platform.settings import ServiceSettings

app = typer.Typer(
    help="Kafka principals (SASL/SCRAM users) and their ACLs.", no_args_is_help=True, rich_markup_mode=None
)
console = Console()


def _admin() -> tuple[KafkaConnection, Topics]:
    settings = ServiceSettings()
    if not settings.kafka.authenticated:
        console.print("[red]KAFKA_USERNAME and KAFKA_PASSWORD must name the broker's admin")
        raise typer.Exit(2)
    check_broker(settings.kafka)  # at once, not after the admin client's full timeout
    return settings.kafka, settings.topics


def service_principal(role: Role, topics: Topics) -> str:
    """A service's principal name: the service's, under the namespace (so tests and bench runs keep apart)."""
    return f"{topics.namespace}-{role.value}" if topics.namespace else role.value


def grant_services(kafka: KafkaConnection, topics: Topics, known: dict[str, str] | None = None) -> dict[str, str]:
    """Give each of our services its principal and ACLs; return their logins as ``<SERVICE>_KAFKA_USERNAME``
    and ``_PASSWORD`` variables. A password ``known`` holds for the same name is kept, else one is made."""
    known = known or {}
    logins: dict[str, str] = {}
    for role in SERVICES:
        prefix, name = role.value.upper(), service_principal(role, topics)
        kept = known.get(f"{prefix}_KAFKA_PASSWORD") if known.get(f"{prefix}_KAFKA_USERNAME") == name else None
        password = kept or new_password()
        grant(kafka, name, role, topics, password)
        logins |= {f"{prefix}_KAFKA_USERNAME": name, f"{prefix}_KAFKA_PASSWORD": password}
    return logins


def _read_env(file: Path) -> dict[str, str]:
    if not file.exists():
        return {}
    lines = (line.strip() for line in file.read_text().splitlines())
    pairs = (line.removeprefix("export ").split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def _write_env(file: Path, values: dict[str, str]) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write("# Written by licensectl kafka setup: each service's Kafka login. Keep it secret.\n")
        out.writelines(f"export {key}={value}\n" for key, value in sorted(values.items()))
    file.chmod(0o600)


@app.command()
def setup(
    env_file: Annotated[Path, typer.Option(help="Where each service's login is kept (mode 600); reused if present.")],
) -> None:
    """Give each of our services its own principal and ACLs, and write their logins to ENV_FILE."""
    kafka, topics = _admin()
    values = _read_env(env_file)
    values |= grant_services(kafka, topics, known=values)
    for role in SERVICES:
        console.print(f"principal {service_principal(role, topics)}: role {role.value}")
    _write_env(env_file, values)
    console.print(f"logins written to {env_file}")


@app.command("grant")
def grant_command(
    name: Annotated[str, typer.Argument(help="The principal's name, e.g. customs-shanghai or agency-44.")],
    role: Annotated[Role, typer.Option(help="What it may do (docs/kafka-access.md).")],
    password_file: Annotated[
        Path | None, typer.Option(help="Read its password from this file instead of making one.")
    ] = None,
) -> None:
    """Make NAME a SCRAM user with ROLE's ACLs; prints a new password once (idempotent with --password-file)."""
    kafka, topics = _admin()
    password = password_file.read_text().strip() if password_file else new_password()
    try:
        grant(kafka, name, role, topics, password)
    except PrincipalError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(2) from None
    console.print(f"principal {name}: role {role.value}")
    if password_file is None:
        console.print(f"password (shown once): {password}")


@app.command("revoke")
def revoke_command(name: Annotated[str, typer.Argument(help="The principal to remove.")]) -> None:
    """Refuse NAME's next login (its password replaced by a random one) and delete every ACL naming it."""
    kafka, _ = _admin()
    removed = revoke(kafka, name)
    console.print(f"principal {name}: password replaced by one no one holds, {removed} ACLs deleted")


@app.command("acls")
def acls_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the ACLs as JSON on stdout, for a program.")] = False,
) -> None:
    """List every ACL on the broker."""
    kafka, _ = _admin()
    found = permissions(kafka)
    if as_json:
        emit_json([asdict(p) for p in found])
        return
    columns = [Column("principal", whole=True), Column("resource"), Column("name", whole=True)]
    columns += [Column("pattern"), Column("operation")]
    show(console, "ACLs", columns, [[p.principal, p.resource, p.name, p.pattern, p.operation] for p in found])
