"""``licensectl keys``: issue, rotate, revoke and list the API keys the services accept (docs/access.md)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import asyncpg
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from rich.console import Console

from licensectl.failures import check_broker
from licensectl.output import Column, emit_json, show
from shared.contract import signatures
from shared.contract.refusal import Refusal
from shared.contract.trust import KeyScope
from shared.platform import access, signing
from shared.platform import trust as trust_log
from shared.platform.settings import ServiceSettings

T = TypeVar("T")
app = typer.Typer(
    help="API keys (issue, rotate, revoke, list; in DATABASE_URL's access schema) and trusted signing keys "
    "(root-signed statements on the trust topic).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print what was read as JSON on stdout, for a program.")]
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
    sender: Annotated[
        str | None,
        typer.Option(help="the intake sender it speaks for (its producer name): it reads that sender's refusals"),
    ] = None,
) -> None:
    """Issue a key; it is printed once and only its hash is kept. An officer's key names the officer; an agency's
    or customs' backend key may name its intake sender, to read its refused commands (GET /refusals)."""
    expires = datetime.now(UTC) + timedelta(days=days) if days else None
    try:
        key_id, key = _run(
            lambda c: access.create(
                c, agency_code=agency, roles=role, label=label, expires_at=expires, officer=officer, sender=sender
            )
        )
    except ValueError as wrong:
        console.print(f"[red]{wrong}")
        raise typer.Exit(2) from None
    holder = (f", officer {officer}" if officer else "") + (f", sender {sender}" if sender else "")
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
def list_(as_json: JsonOption = False) -> None:
    """Every key: its agency, roles, officer, label, and when it was made, expires or was revoked."""
    listed = [
        {
            "key_id": row["key_id"],
            "agency": row["agency_code"],
            "roles": list(row["roles"]),
            "officer": row["officer"],
            "sender": row["sender"],
            "label": row["label"],
            **{k: _when(row[k]) or None for k in ("created_at", "expires_at", "revoked_at")},
        }
        for row in _run(access.listing)
    ]
    if as_json:
        emit_json(listed)
        return
    columns = [Column("key id", whole=True), Column("agency"), Column("roles"), Column("officer", whole=True)]
    columns += [Column(c) for c in ("sender", "label", "created", "expires", "revoked")]
    stamps = ("created_at", "expires_at", "revoked_at")
    rows = [
        [k["key_id"], k["agency"], ", ".join(k["roles"]), k["officer"] or "", k["sender"] or "", k["label"]]
        + [k[s] or "" for s in stamps]
        for k in listed
    ]
    show(console, "API keys", columns, rows)


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


# Signing keys: which public key may sign events or commands for which producer, as root-signed statements on
# the trust topic (shared/platform/trust.py, docs/signing.md).

SERVICES = ("applications", "review", "registry")
RootKey = Annotated[
    Path | None,
    typer.Option(
        envvar="LEDGER_TRUST_ROOT_PRIVATE_KEY_FILE",
        help="the operator's root key that signs the statement: a file holding base64 of the raw private key",
    ),
]
root_app = typer.Typer(
    help="The operator's root key, which signs every trust statement.", no_args_is_help=True, rich_markup_mode=None
)
signing_app = typer.Typer(
    help="Signing keys for agencies' and customs' backends.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(root_app, name="root")
app.add_typer(signing_app, name="signing")


def _root(path: Path | None) -> Ed25519PrivateKey:
    if path is None:
        console.print("[red]no root key: give --root-key or set LEDGER_TRUST_ROOT_PRIVATE_KEY_FILE")
        raise typer.Exit(2)
    try:
        return signatures.private_key_from(path.expanduser().read_text())
    except (OSError, ValueError) as wrong:
        console.print(f"[red]cannot read the root key {path}: {wrong}")
        raise typer.Exit(2) from None


def _publish(statements: list[trust_log.TrustStatement], root: Path | None) -> None:
    settings = ServiceSettings()
    pinned = settings.trust_roots
    key = _root(root)
    if pinned and signatures.key_id(key.public_key()) not in pinned:
        console.print(
            "[yellow]warning: this root key is not among LEDGER_TRUST_ROOT_KEYS: readers ignore what it signs"
        )
    asyncio.run(trust_log.publish(settings.kafka, settings.topics.trust, statements, key))


def _write_secret(path: Path, text: str) -> None:
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text + "\n")


def _new_key_file(path: Path) -> Ed25519PrivateKey:
    """A new Ed25519 key, written to ``path`` (base64 of the raw private key, mode 600); never over another."""
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    try:
        _write_secret(path, base64.b64encode(raw).decode())
    except FileExistsError:
        console.print(f"[red]{path} exists: a key file is never overwritten")
        raise typer.Exit(2) from None
    return key


@root_app.command("new")
def root_new(
    out: Annotated[Path, typer.Option(help="where to write the private key (mode 600); its public half to OUT.pub")],
    if_missing: Annotated[bool, typer.Option(help="keep a key already at OUT (a set-up run again)")] = False,
) -> None:
    """Make the operator's root key: keep the private half offline; pin the public half everywhere
    (LEDGER_TRUST_ROOT_KEYS, an auditor's --root-key)."""
    kept = if_missing and out.expanduser().exists()
    public = (_root(out) if kept else _new_key_file(out)).public_key()
    pub = out.expanduser().with_name(out.name + ".pub")
    pub.write_text(signatures.public_b64(public) + "\n")
    console.print(f"root key at {out}, its public half at {pub}")
    console.print(f"public key (pin it): {signatures.public_b64(public)}", soft_wrap=True)
    console.print(f"key id: {signatures.key_id(public)}", soft_wrap=True)


@root_app.command("public")
def root_public(root_key: RootKey = None) -> None:
    """Print the public half of the root key (what LEDGER_TRUST_ROOT_KEYS pins)."""
    console.print(signatures.public_b64(_root(root_key).public_key()), soft_wrap=True)


@signing_app.command("new")
def signing_new(
    producer: Annotated[str, typer.Option(help="the sender code the backend puts in its commands, e.g. gd-commerce")],
    out: Annotated[Path, typer.Option(help="where to write the private key (mode 600), for the backend to sign with")],
    agency: Annotated[str | None, typer.Option(help="an agency's: the agency it submits for (two digits)")] = None,
    port: Annotated[list[str] | None, typer.Option(help="customs': a port it records exports at; repeatable")] = None,
) -> None:
    """Make an Ed25519 signing key for an agency's or customs' backend, and print the command that trusts it."""
    public = _new_key_file(out).public_key()
    scope = f" --agency {agency}" if agency else "".join(f" --port {p}" for p in port or [])
    console.print(f"private key written to {out}: the backend signs each command's bytes with it (docs/signing.md)")
    console.print(f"public key: {signatures.public_b64(public)}", soft_wrap=True)
    console.print(f"key id: {signatures.key_id(public)}", soft_wrap=True)
    console.print("the operator trusts it with:", soft_wrap=True)
    console.print(
        f"  licensectl keys trust --producer {producer} --public-key {signatures.public_b64(public)} "
        f"--signs commands{scope} --root-key <root key file>",
        soft_wrap=True,
        markup=False,
    )
    role, home = ("submitter", agency) if agency else ("customs", "00")
    console.print("and gives its backend an API key that reads its refused commands (GET /refusals):", soft_wrap=True)
    console.print(
        f"  licensectl keys create --agency {home} --role {role} --sender {producer} --label {producer}",
        soft_wrap=True,
        markup=False,
    )


@app.command("trust")
def trust_key(
    producer: Annotated[str, typer.Option(help="who signs with it: a service, or an agency's or customs' sender code")],
    public_key: Annotated[str, typer.Option(help="base64 of the raw Ed25519 public key, or a file holding that")],
    signs: Annotated[str, typer.Option(help="events (our services) or commands (agencies, customs)")],
    agency: Annotated[str | None, typer.Option(help="commands: the agency it may submit for")] = None,
    port: Annotated[
        list[str] | None, typer.Option(help="commands: a port it may record exports at; repeatable")
    ] = None,
    event_type: Annotated[list[str] | None, typer.Option(help="events: a type it may sign; repeatable")] = None,
    root_key: RootKey = None,
) -> None:
    """Trust a public key to sign for ``producer`` from now on: a statement signed by the root key, on the trust
    topic (several keys per producer: rotation)."""
    try:
        key = signatures.public_key_from(public_key)
        scope = KeyScope(
            use=signs,
            agency_code=agency,
            ports=tuple(port) if port else None,
            event_types=tuple(event_type) if event_type else None,
        )
    except ValueError as wrong:
        console.print(f"[red]{wrong}")
        raise typer.Exit(2) from None
    _publish([trust_log.trusting(producer, key, scope)], root_key)
    console.print(f"key {signatures.key_id(key)} trusted for {producer} to sign {signs}", soft_wrap=True)


@app.command()
def untrust(
    producer: Annotated[str, typer.Option(help="the producer the key signs for")],
    key_id: Annotated[str, typer.Option(help="the key's id (SHA-256 of the raw public key, hex)")],
    root_key: RootKey = None,
) -> None:
    """Revoke a signing key: records it signs from now on are refused; what it signed before stays valid."""
    folded = _trusted()
    mine = [k for k in folded.trust.keys.get(key_id, []) if k.producer == producer and k.revoked_at is None]
    if not mine:
        console.print(f"[red]no key {key_id} in force for {producer}")
        raise typer.Exit(1)
    _publish([trust_log.statement("revoke", producer=producer, key_id=key_id)], root_key)
    console.print(f"key {key_id} of {producer} revoked", soft_wrap=True)


@app.command("trust-own")
def trust_own(
    service: Annotated[str, typer.Option(help=f"one of {', '.join(SERVICES)}")],
    root_key: RootKey = None,
) -> None:
    """Trust a service's own signing key (from its <SERVICE>_SIGNING_KEY settings or its key dir, made there if
    there is none yet) to sign the events the contract gives the service, for all time."""
    if service not in SERVICES:
        console.print(f"[red]no service {service}: one of {', '.join(SERVICES)}")
        raise typer.Exit(2)
    statement = own_statement(service)
    assert statement.key_id is not None
    if any(k.producer == service for k in _trusted().trust.keys.get(statement.key_id, [])):
        console.print(f"key {statement.key_id} of {service} is trusted already", soft_wrap=True)
        return
    _publish([statement], root_key)
    console.print(f"key {statement.key_id} of {service} trusted ({statement.public_key})", soft_wrap=True)


def own_statement(service: str) -> trust_log.TrustStatement:
    """The statement that trusts service ``service``'s own signing key (as its settings load it, made once if
    there is none yet) to sign the events the contract gives the service, for all time."""
    settings = _service_settings(service)
    secret = settings.signing_key.get_secret_value() if settings.signing_key else None
    private = signing.load_signing_key(
        key=secret,
        key_file=settings.signing_key_file,
        key_dir=settings.key_dir,
        file_name=f"{service}-signing.key",
        setting=f"{service.upper()}_SIGNING_KEY",
    )
    return trust_log.trusting(service, private.public_key(), trust_log.service_scope(service), at=signing.ALWAYS)


@app.command("signed-from")
def signed_from(
    partition: Annotated[int, typer.Option(min=0, help="a partition of the case stream")],
    offset: Annotated[int, typer.Option(min=0, help="its first offset that is signed")],
    root_key: RootKey = None,
) -> None:
    """Say that the case stream's ``partition`` holds unsigned records below ``offset`` (a log older than
    signatures): they are folded unverified, live, in replay and in audit; every record from it on is checked."""
    topic = ServiceSettings().topics.cases
    _publish([trust_log.statement("signed_from", topic=topic, partition=partition, first_offset=offset)], root_key)
    console.print(f"{topic}/{partition}: signed from offset {offset}")


def _trusted() -> trust_log.Folded:
    settings = ServiceSettings()
    check_broker(settings.kafka)  # a refused login said at once, not after the client's retries
    return asyncio.run(trust_log.read_log(settings.kafka, settings.topics.trust, settings.trust_roots))


@app.command()
def trusted(as_json: JsonOption = False) -> None:
    """Every trusted signing key, as the trust topic's statements signed by a pinned root key say: its
    producer, id, what it signs, and when it was added or revoked; and every record of the topic skipped."""
    folded = _trusted()
    keys = sorted((k for keys in folded.trust.keys.values() for k in keys), key=lambda k: (k.producer, k.added_at))
    if as_json:
        listed = [
            {
                "producer": k.producer,
                "key_id": k.key_id,
                "signs": _scope(k.scope),
                "added_at": _when(k.added_at) or None,
                "revoked_at": _when(k.revoked_at) or None,
            }
            for k in keys
        ]
        skipped = [{"offset": offset, "reason": why} for offset, why in folded.skipped]
        emit_json({"keys": listed, "skipped": skipped})
        return
    columns = [Column("producer", whole=True), Column("key id", whole=True), Column("signs")]
    columns += [Column("added"), Column("revoked")]
    rows = [[k.producer, k.key_id, _scope(k.scope), _when(k.added_at), _when(k.revoked_at)] for k in keys]
    show(console, "Trusted signing keys", columns, rows)
    for offset, why in folded.skipped:
        console.print(f"[yellow]trust topic record {offset} skipped: {why}", soft_wrap=True)


def _scope(scope: KeyScope) -> str:
    if scope.use == "events":
        return "events: " + (", ".join(scope.event_types) if scope.event_types else "any type")
    if scope.agency_code:
        return f"commands of agency {scope.agency_code}"
    return "commands" + (f" at {', '.join(scope.ports)}" if scope.ports else "")


def _service_settings(service: str) -> ServiceSettings:
    if service == "applications":
        from services.applications.app import Settings as ApplicationsSettings

        return ApplicationsSettings()
    if service == "review":
        from services.review.app import Settings as ReviewSettings

        return ReviewSettings()
    from services.registry.app import Settings as RegistrySettings

    return RegistrySettings()
