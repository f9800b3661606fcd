"""``licensectl status``: each service's health and metrics, as an operator reads them."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.table import Table


@dataclass
class ServiceStatus:
    name: str
    url: str
    health: str = "unreachable"
    appended: float = 0.0
    applied: float = 0.0
    applied_per_second: float = 0.0
    dead_letters: dict[str, float] = field(default_factory=dict)
    lag: dict[str, float] = field(default_factory=dict)  # "group topic/partition" -> records behind


def _sample(client: httpx.Client, url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    answer = client.get(f"{url}/metrics")
    answer.raise_for_status()  # 401/403: the key is missing or not an auditor's; shown as no metrics
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[sample.name].append((sample.labels, sample.value))
    return samples


def _total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    return sum(value for _, value in samples.get(name, []))


def collect(services: dict[str, str], interval: float = 1.0, *, key: str | None = None) -> list[ServiceStatus]:
    """Health and metrics of each service; the applied rate from two samples ``interval`` apart.
    /metrics asks for an auditor's or admin's ``key``."""
    statuses = [ServiceStatus(name, url) for name, url in services.items()]
    headers = {"Authorization": f"Bearer {key}"} if key else None
    with httpx.Client(timeout=10, headers=headers) as client:
        first: dict[str, float] = {}
        for status in statuses:
            try:
                status.health = client.get(f"{status.url}/health").json().get("status", "unknown")
                first[status.name] = _total(_sample(client, status.url), "ledger_events_applied_total")
            except httpx.HTTPError:
                continue
        started = time.monotonic()
        time.sleep(interval)
        for status in statuses:
            if status.name not in first:
                continue
            samples = _sample(client, status.url)
            status.applied = _total(samples, "ledger_events_applied_total")
            status.applied_per_second = (status.applied - first[status.name]) / (time.monotonic() - started)
            status.appended = _total(samples, "ledger_events_appended_total")
            status.dead_letters = {labels["reason"]: v for labels, v in samples.get("ledger_dead_letters_total", [])}
            status.lag = {
                f"{labels['group']} {labels['topic']}/{labels['partition']}": v
                for labels, v in samples.get("ledger_consumer_lag", [])
            }
    return statuses


def table(statuses: list[ServiceStatus]) -> Table:
    view = Table(title="export license ledger")
    for column in ("service", "health", "appended", "applied", "applied/s", "dead letters", "lag (records behind)"):
        view.add_column(column)
    for s in statuses:
        dead = ", ".join(f"{reason}: {n:.0f}" for reason, n in sorted(s.dead_letters.items())) or "0"
        behind = {k: v for k, v in s.lag.items() if v}
        lag = "\n".join(f"{k}: {v:.0f}" for k, v in sorted(behind.items())) or f"0 ({len(s.lag)} partitions)"
        view.add_row(
            s.name, s.health, f"{s.appended:.0f}", f"{s.applied:.0f}", f"{s.applied_per_second:.1f}", dead, lag
        )
    return view
