"""``licensectl``: set up the topics and schemas, and show the running system doing its job."""

from __future__ import annotations

import asyncio
import datetime
import sys
import time
from collections.abc import Coroutine
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress

from licensectl import demo as demo_flow
from licensectl import failures
from licensectl import kafka as kafka_cli
from licensectl import keys as keys_cli
from licensectl import status as service_status
from licensectl.output import emit_json, show
from shared.platform.db import migrate_all
from shared.platform.kafka_admin import ensure_topics
from shared.platform.settings import ServiceSettings

if TYPE_CHECKING:
    from services.registry.replay import ReplayResult

# The replay and the audit (the registry's fold and its dependencies) are imported by their commands only: every
# other command starts in half the time without them.

# No local variables in a crash's traceback: the settings among them hold DATABASE_URL and its password. Help in
# click's plain layout (rich_markup_mode=None): rich's table cuts long option names at 80 columns.
app = typer.Typer(
    help="Operate the export license ledger.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)
audit_app = typer.Typer(
    help="Check the log and the registry's signed checkpoints, offline.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(audit_app, name="audit")
app.add_typer(keys_cli.app, name="keys")
app.add_typer(kafka_cli.app, name="kafka")
console = Console()
err_console = Console(stderr=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print what was read as JSON on stdout, for a program.")]


def main() -> None:
    """The ``licensectl`` command: what keeps a command from reading what it reports (a service, the broker or the
    database out of reach, a credential refused) ends it with the reason and exit code 3 or 4, not a traceback."""
    try:
        app()
    except Exception as exc:
        failure = failures.explain(exc)
        if failure is None:
            raise
        failures.exit_with(failure, as_json="--json" in sys.argv)


def _version(asked: bool) -> None:
    if asked:
        print(f"licensectl {metadata.version('export-license-ledger')}")
        raise typer.Exit()


@app.callback()
def options(
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_version, help="Print the version and exit.")
    ] = False,
) -> None:
    """Operate the export license ledger. Exit codes: 0 all is well; 1 what was read is wrong; 2 a usage error;
    3 a service, the broker or the database could not be reached; 4 a credential was refused."""


@app.command()
def migrate() -> None:
    """Apply every service's migrations to DATABASE_URL."""
    settings = ServiceSettings()
    migrate_all(settings.database_url)
    console.print("migrations applied: access, applications, review, registry")


@app.command()
def topics() -> None:
    """Create the topics (idempotent) on KAFKA_BOOTSTRAP_SERVERS."""
    settings = ServiceSettings()
    created = asyncio.run(
        ensure_topics(settings.kafka, settings.topics, replication_factor=settings.topic_replication_factor)
    )
    console.print(f"topics: {len(created)} created, {len(settings.topics.specs()) - len(created)} already there")


@app.command()
def wait(urls: list[str], timeout: float = 60.0) -> None:
    """Wait until each service's /health answers 200."""
    deadline = time.monotonic() + timeout
    for url in urls:
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                console.print(f"[red]{url} is not healthy after {timeout}s")
                raise typer.Exit(1)
            time.sleep(0.3)
    console.print(f"healthy: {', '.join(urls)}")


@app.command()
def replay(
    swap: bool = typer.Option(False, help="Make the rebuilt ledger live, atomically, if it matches."),
    repair: bool = typer.Option(
        False,
        help="Make the rebuilt ledger live even if the live one differs (it was altered), naming every row that "
        "changes; refused if the log itself is broken. Run where the registry's signing key is (REGISTRY_* "
        "settings): the rebuilt ledger is sealed with it, and the registry resumes on it.",
    ),
    keep: bool = typer.Option(False, help="Keep the rebuilt schema for inspection."),
    processes: int | None = typer.Option(
        None, min=1, help="Fold with this many processes (default: one per core for a log of 20,000 events or more)."
    ),
    trust_checkpoints: bool = typer.Option(
        False,
        help="Rely on the registry's latest signed checkpoint (its key from the REGISTRY_* settings): the records "
        "below it are held to its chain heads and checksum instead of checking each signature again.",
    ),
    checkpoint_key: Annotated[
        list[str] | None,
        typer.Option(
            help="As --trust-checkpoints, with checkpoints signed by this key (base64 or a file); repeatable."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Rebuild the ledger from the case stream and prove it equals the live one (exit 1 if not)."""
    from licensectl import audit
    from services.registry import seal
    from services.registry.replay import replay as replay_ledger
    from shared.contract.signatures import key_id
    from shared.platform.collector import collect_less

    collect_less()  # this process may fold the log itself
    settings = ServiceSettings()
    keys = audit.trusted_keys(checkpoint_key or [])
    seal_key = None
    if trust_checkpoints or swap or repair:
        from services.registry.app import Settings as RegistrySettings

        try:
            private = audit.registry_signing_key(RegistrySettings())
        except FileNotFoundError as missing:
            console.print(f"[red]no registry signing key (to trust its checkpoints, or to seal the ledger): {missing}")
            raise typer.Exit(2) from None
        seal_key = seal.key_of(private)
        if trust_checkpoints:
            keys[key_id(private.public_key())] = private.public_key()
    failures.check_broker(settings.kafka)  # a refused login said at once, not after the client's retries
    if not settings.trust_roots:
        err_console.print(
            "[yellow]no LEDGER_TRUST_ROOT_KEYS pinned: no statement is trusted, so every event is refused"
        )
    # With --json the progress goes to stderr, so that stdout holds the document alone.
    with Progress(
        *Progress.get_default_columns(), MofNCompleteColumn(), console=err_console if as_json else console
    ) as bar:
        task = bar.add_task("folding licensing.cases", total=None)
        result = _replayed(
            replay_ledger(
                database_url=settings.database_url,
                kafka=settings.kafka,
                topic=settings.topics.cases,
                swap=swap,
                repair=repair,
                keep=keep,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                processes=processes,
                checkpoints_topic=settings.topics.checkpoints,
                checkpoint_keys=keys,
                trust_topic=settings.topics.trust,
                roots=settings.trust_roots,
                seal_key=seal_key,
            ),
            as_json=as_json,
        )
    if as_json:
        emit_json(_replay_document(result, keep=keep))
    else:
        _show_replay(result, keep=keep, repair=repair)
    if not result.matches and not result.swapped:
        raise typer.Exit(1)


def _replay_document(result: ReplayResult, *, keep: bool) -> dict[str, Any]:
    return {
        "matches": result.matches,
        "events": result.events,
        "fold_seconds": round(result.fold_seconds, 3),
        "seconds": round(result.seconds, 3),
        "live": {"digest": result.live.digest, "rows": result.live.rows},
        "rebuilt": {"digest": result.rebuilt.digest, "rows": result.rebuilt.rows},
        "offsets": {str(p): o for p, o in sorted(result.offsets.items())},
        "differences": [d.describe() for d in result.differences],
        "chain_breaks": [b.describe() for b in result.chain_breaks],
        "checkpoint": result.checkpoint.label if result.checkpoint is not None else None,
        "notes": result.notes,
        "swapped": result.swapped,
        "kept_schema": result.schema if keep and not result.swapped else None,
    }


def _show_replay(result: ReplayResult, *, keep: bool, repair: bool) -> None:
    rate = result.events / result.fold_seconds if result.fold_seconds else 0.0
    console.print(
        f"events folded: {result.events} in {result.fold_seconds:.2f} s ({rate:,.0f} events/s; "
        f"{result.seconds:.2f} s with the checksums)"
    )
    if result.checkpoint is not None:
        console.print(f"from {result.checkpoint.label}: signatures below it not checked again, its checksum held")
    for note in result.notes:
        console.print(f"[yellow]{note}")
    console.print(f"live ledger:    {result.live.digest} ({result.live.rows} rows)", soft_wrap=True)
    console.print(f"rebuilt ledger: {result.rebuilt.digest} ({result.rebuilt.rows} rows)", soft_wrap=True)
    if not result.matches:
        console.print("[red bold]MISMATCH: the live ledger does not follow from the log")
        for broken in result.chain_breaks:
            console.print(f"  {broken.describe()}", markup=False, soft_wrap=True)
        for difference in result.differences:
            console.print(f"  {difference.describe()}", markup=False, soft_wrap=True)
        if result.swapped:
            console.print("[green bold]repaired: the ledger that follows from the log is live, sealed anew")
            console.print("the altered one is kept as a retired schema; the rows above are what changed")
        elif repair:
            console.print("[red]not repaired: the log itself is broken (restore it first)")
        return
    console.print("[green bold]equal: the live ledger follows from the log")
    if result.swapped:
        console.print("the rebuilt ledger is live; the previous one is kept as a retired schema")
    elif keep:
        console.print(f"rebuilt schema kept: {result.schema}")


def _replayed(work: Coroutine[Any, Any, ReplayResult], *, as_json: bool) -> ReplayResult:
    """The replay's result; or exit 1 with what kept it from replaying the log (never a traceback)."""
    from services.registry.replay import FoldFailed, LogIncomplete, ReplayStalled

    try:
        return asyncio.run(work)
    except (LogIncomplete, ReplayStalled, FoldFailed) as failed:
        if as_json:
            emit_json({"matches": False, "error": {"reason": "cannot_replay", "message": str(failed), "exit_code": 1}})
        err_console.print(f"[red bold]cannot replay: {failed}", soft_wrap=True)
        raise typer.Exit(1) from None


@audit_app.command("verify")
def audit_verify(
    public_key: Annotated[
        list[str] | None,
        typer.Option(help="A trusted checkpoint key: base64 of the raw Ed25519 public key, or a file; repeatable."),
    ] = None,
    live: bool = typer.Option(False, help="Also replay against the live ledger in DATABASE_URL (rows and chains)."),
    ledger: bool = typer.Option(
        True, help="Check each checkpoint's ledger checksum by a replay into a scratch schema."
    ),
    cases_topic: str | None = typer.Option(None, help="Read the log from this topic (a copy, say)."),
    trust_topic: str | None = typer.Option(None, help="Read the trust statements from this topic (a copy, say)."),
    root_key: Annotated[
        list[str] | None,
        typer.Option(
            help="A pinned root key (base64 of the raw public key, or a file): who was trusted to sign what comes "
            "from the trust topic's statements it signed; repeatable. Default: LEDGER_TRUST_ROOT_KEYS."
        ),
    ] = None,
    alarm: bool = typer.Option(
        True, help="With --live: if the live ledger differs from the log, stop the registry until it is repaired."
    ),
    as_json: JsonOption = False,
) -> None:
    """Recompute the log's hash chains and check each signed checkpoint against them and a replay (exit 1 if not)."""
    from licensectl import audit

    settings = ServiceSettings()
    failures.check_broker(settings.kafka)  # a refused login said at once, not after the client's retries
    report = asyncio.run(
        audit.verify(
            kafka=settings.kafka,
            cases_topic=cases_topic or settings.topics.cases,
            checkpoints_topic=settings.topics.checkpoints,
            trusted=audit.trusted_keys(public_key or []),
            database_url=settings.database_url,
            ledgers=ledger,
            live_schema="registry" if live else None,
            roots=audit.trusted_keys(root_key) if root_key else settings.trust_roots,
            trust_topic=trust_topic or settings.topics.trust,
            raise_alarm=alarm,
        )
    )
    if as_json:
        emit_json(audit.document(report))
    else:
        audit.render(report, console)
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("public-key")
def audit_public_key() -> None:
    """Print the registry's checkpoint public key and key id (from its REGISTRY_SIGNING_KEY settings)."""
    from licensectl import audit
    from services.registry.app import Settings as RegistrySettings

    try:
        key = audit.registry_public_key(RegistrySettings())
    except FileNotFoundError as missing:
        console.print(f"[red]no signing key yet: {missing}")
        raise typer.Exit(1) from None
    console.print(key)


@app.command()
def status(
    applications: str = "http://127.0.0.1:8001",
    review: str = "http://127.0.0.1:8002",
    registry: str = "http://127.0.0.1:8003",
    key: Annotated[str | None, typer.Option(envvar="LEDGER_API_KEY", help="an auditor's or admin's key")] = None,
    as_json: JsonOption = False,
) -> None:
    """Each service's readiness, events appended and applied (with the rate), dead letters and lag. Exit 1 if a
    service is not ready, 3 if one cannot be reached, 4 if its /metrics refuses the key (401, 403)."""
    services = {"applications": applications, "review": review, "registry": registry}
    statuses = service_status.collect(services, key=key)
    for s in statuses:
        if s.problem is not None:
            err_console.print(f"licensectl: {s.name}: {s.problem}", style="red", markup=False, soft_wrap=True)
    if as_json:
        emit_json(service_status.document(statuses))
    else:
        show(console, "export license ledger", service_status.COLUMNS, service_status.rows(statuses))
    code = service_status.outcome(statuses)
    if code:
        raise typer.Exit(code)


class ReportFormat(StrEnum):
    pdf = "pdf"
    csv = "csv"
    html = "html"


@app.command()
def report(
    date_from: Annotated[datetime.datetime, typer.Option("--from", formats=["%Y-%m-%d"], help="first day")],
    date_to: Annotated[datetime.datetime, typer.Option("--to", formats=["%Y-%m-%d"], help="last day")],
    format: Annotated[ReportFormat, typer.Option(help="pdf, csv or html")] = ReportFormat.pdf,
    lang: Annotated[str, typer.Option(help="en or zh")] = "en",
    out: Annotated[Path | None, typer.Option(help="where to write it (default: ledger-report-FROM-TO.FORMAT)")] = None,
    registry: str = "http://127.0.0.1:8003",
    key: Annotated[
        str | None, typer.Option(envvar="LEDGER_API_KEY", help="an officer's, auditor's or admin's key")
    ] = None,
) -> None:
    """The console's report for a period (exports by month and destination, exported against licensed, refusals
    by reason, licenses by status, time to decision), from the registry's GET /statistics, as PDF, CSV or HTML."""
    from services.console import report as rendering

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    period = {"from": date_from.date().isoformat(), "to": date_to.date().isoformat()}
    answer = httpx.get(f"{registry}/statistics", params=period, headers=headers, timeout=30)
    if answer.status_code != 200:  # refused (4), or not the statistics (3): never a report of what was not read
        code = failures.REFUSED if answer.status_code in (401, 403) else failures.UNREACHABLE
        reason = f"{registry}/statistics answered {answer.status_code}: {answer.text[:300]}"
        raise failures.CannotRead(code, f"http_{answer.status_code}", reason)
    figures = answer.json()
    rendered = {
        ReportFormat.pdf: lambda: rendering.pdf(figures, lang),
        ReportFormat.csv: lambda: rendering.csv_text(figures).encode("utf-8-sig"),
        ReportFormat.html: lambda: rendering.html(figures, lang).encode(),
    }[format]()
    target = out or Path(f"ledger-report-{period['from']}-{period['to']}.{format.value}")
    target.write_bytes(rendered)
    console.print(f"wrote {target} ({len(rendered)} bytes)")


@app.command()
def docs(check: bool = typer.Option(False, help="Fail if the committed documents differ from the code.")) -> None:
    """Write the OpenAPI and AsyncAPI documents of each service under docs/api/ (from the code)."""
    from licensectl import docs as contract_docs

    if check:
        stale = contract_docs.stale()
        if stale:
            console.print(f"[red]out of date: {', '.join(stale)}; run licensectl docs")
            raise typer.Exit(1)
        console.print("docs/api is up to date")
        return
    for path in contract_docs.write():
        console.print(f"wrote {path}")


@app.command()
def demo(
    applications: str = "http://127.0.0.1:8001",
    registry: str = "http://127.0.0.1:8003",
    keys: Annotated[Path, typer.Option(help="the demo's keys, as licensectl keys bootstrap wrote them")] = Path(
        ".run/demo-keys.json"
    ),
) -> None:
    """Apply, get a license, export against it, and be refused past its balance."""
    try:
        asyncio.run(demo_flow.run(applications, registry, console, demo_flow.read_keys(keys)))
    except demo_flow.DemoFailed as failed:
        console.print(f"[red]demo failed: {failed}")
        raise typer.Exit(1) from None


if __name__ == "__main__":
    app()
