"""``licensectl``: set up the topics and schemas, and show the running system doing its job."""

from __future__ import annotations

import asyncio
import time

import httpx
import typer
from rich.console import Console

from licensectl import demo as demo_flow
from shared.db import migrate_all
from shared.kafka_admin import ensure_topics
from shared.settings import ServiceSettings

app = typer.Typer(help="Operate the export license ledger.", no_args_is_help=True)
console = Console()


@app.command()
def migrate() -> None:
    """Apply every service's migrations to DATABASE_URL."""
    settings = ServiceSettings()
    migrate_all(settings.database_url)
    console.print("migrations applied: applications, review, registry")


@app.command()
def topics() -> None:
    """Create the topics (idempotent) on KAFKA_BOOTSTRAP_SERVERS."""
    settings = ServiceSettings()
    created = asyncio.run(ensure_topics(settings.kafka_bootstrap_servers, settings.topics))
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
def demo(
    applications: str = "http://127.0.0.1:8001",
    registry: str = "http://127.0.0.1:8003",
) -> None:
    """Apply, get a license, export against it, and be refused past its balance."""
    try:
        asyncio.run(demo_flow.run(applications, registry, console))
    except demo_flow.DemoFailed as failed:
        console.print(f"[red]demo failed: {failed}")
        raise typer.Exit(1) from None


if __name__ == "__main__":
    app()
