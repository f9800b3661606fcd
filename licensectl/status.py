"""``licensectl status``: each service's readiness and metrics, as an operator reads them.

A service that cannot be read is reported as such, with the reason (out of reach; its /metrics refused the key with
401 or 403), and never as a row of zeros: a script reading "0 dead letters" must be able to trust it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from licensectl.failures import CHECK_FAILED, REFUSED, UNREACHABLE, CannotRead
from licensectl.output import Column

Samples = dict[str, list[tuple[dict[str, str], float]]]


@dataclass
class Lag:
    group: str
    topic: str
    partition: int
    records: float


@dataclass
class ServiceStatus:
    """What one service said; ``problem`` is why some of it could not be read (then the numbers are None)."""

    name: str
    url: str
    ready: bool | None = None
    checks: dict[str, str] = field(default_factory=dict)  # each readiness check: "ok" or why not
    appended: float | None = None
    applied: float | None = None  # the registry's ledger; None where the service exports no such series
    followed: float | None = None  # applications' and review's views of the cases
    per_second: float | None = None  # applied (or followed) per second, over the sampling interval
    dead_letters: dict[str, float] | None = None
    lag: list[Lag] | None = None
    problem: CannotRead | None = None

    def to_json(self) -> dict[str, Any]:
        found = asdict(self)
        found["problem"] = self.problem.to_json() if self.problem else None
        return found


def collect(services: dict[str, str], interval: float = 1.0, *, key: str | None = None) -> list[ServiceStatus]:
    """Readiness and metrics of each service; the rate from two samples ``interval`` apart.
    /metrics asks for an auditor's or admin's ``key``."""
    statuses = [ServiceStatus(name, url) for name, url in services.items()]
    headers = {"Authorization": f"Bearer {key}"} if key else None
    with httpx.Client(timeout=10, headers=headers) as client:
        first: dict[str, Samples] = {}
        for status in statuses:
            try:
                _read_readiness(client, status)
                first[status.name] = _sample(client, status.url, key)
            except CannotRead as problem:
                status.problem = problem
        started = time.monotonic()
        time.sleep(interval)
        for status in statuses:
            if status.name not in first:
                continue
            try:
                samples = _sample(client, status.url, key)
            except CannotRead as problem:
                status.problem = problem
                continue
            _read_metrics(status, first[status.name], samples, time.monotonic() - started)
    return statuses


def _get(client: httpx.Client, url: str) -> httpx.Response:
    try:
        return client.get(url)
    except httpx.TransportError as exc:
        raise CannotRead(
            UNREACHABLE, "service_unreachable", f"cannot reach {url}: {exc or type(exc).__name__}"
        ) from exc


def _read_readiness(client: httpx.Client, status: ServiceStatus) -> None:
    url = f"{status.url}/health/ready"
    answer = _get(client, url)
    try:
        body = answer.json()
    except ValueError:
        body = None
    if answer.status_code not in (200, 503) or not isinstance(body, dict):
        raise CannotRead(UNREACHABLE, "unexpected_answer", f"{url} answered {answer.status_code}, not a readiness")
    status.ready = answer.status_code == 200
    status.checks = {k: str(v) for k, v in body.items() if k not in ("service", "status")}


def _sample(client: httpx.Client, url: str, key: str | None) -> Samples:
    answer = _get(client, f"{url}/metrics")
    if answer.status_code in (401, 403):
        raise _refusal(f"{url}/metrics", answer, key)
    if answer.status_code != 200:
        raise CannotRead(UNREACHABLE, f"http_{answer.status_code}", f"{url}/metrics answered {answer.status_code}")
    samples: Samples = defaultdict(list)
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[sample.name].append((sample.labels, sample.value))
    return samples


def _refusal(url: str, answer: httpx.Response, key: str | None) -> CannotRead:
    try:
        body = answer.json()
        code, message = str(body["code"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        code, message = f"http_{answer.status_code}", answer.text[:200]
    hint = " (give --key or set LEDGER_API_KEY: an auditor's or admin's key)" if answer.status_code == 401 else ""
    return CannotRead(REFUSED, code, f"{url} answered {answer.status_code} {code}: {message}{hint}")


def _total(samples: Samples, name: str) -> float | None:
    found = samples.get(name)
    return None if found is None else sum(value for _, value in found)


def _read_metrics(status: ServiceStatus, before: Samples, samples: Samples, seconds: float) -> None:
    status.appended = _total(samples, "ledger_events_appended_total") or 0.0
    status.applied = _total(samples, "ledger_events_applied_total")
    status.followed = _total(samples, "ledger_events_followed_total")
    counted = "ledger_events_applied_total" if status.applied is not None else "ledger_events_followed_total"
    now, then = _total(samples, counted), _total(before, counted)
    status.per_second = (now - then) / seconds if now is not None and then is not None and seconds else None
    status.dead_letters = {labels["reason"]: v for labels, v in samples.get("ledger_dead_letters_total", [])}
    status.lag = sorted(
        (
            Lag(labels["group"], labels["topic"], int(labels["partition"]), v)
            for labels, v in samples.get("ledger_consumer_lag", [])
        ),
        key=lambda lag: (lag.group, lag.topic, lag.partition),
    )


def outcome(statuses: list[ServiceStatus]) -> int:
    """The exit code: the gravest of what kept a service from being read (4 refused, 3 unreachable), else 1 if a
    service is not ready, else 0."""
    codes = [s.problem.exit_code for s in statuses if s.problem is not None]
    if codes:
        return max(codes)
    return CHECK_FAILED if any(not s.ready for s in statuses) else 0


def document(statuses: list[ServiceStatus]) -> dict[str, Any]:
    """What ``status --json`` prints."""
    code = outcome(statuses)
    return {"ok": code == 0, "exit_code": code, "services": [s.to_json() for s in statuses]}


COLUMNS = (
    Column("service"),
    Column("ready"),
    Column("appended"),
    Column("applied"),
    Column("per second"),
    Column("dead letters", whole=True),
    Column("lag (records behind)", whole=True),
)


def rows(statuses: list[ServiceStatus]) -> list[list[str]]:
    """One row per service for the table; a service that could not be read says why in place of its numbers."""
    return [_row(s) for s in statuses]


def _readiness(s: ServiceStatus) -> str:
    if s.ready is None:
        return "-"
    return "yes" if s.ready else "NO: " + "; ".join(f"{k}: {v}" for k, v in s.checks.items() if v != "ok")


def _row(s: ServiceStatus) -> list[str]:
    ready = _readiness(s)
    if s.problem is not None or s.lag is None or s.dead_letters is None:
        reason = f"not read: {s.problem}" if s.problem else "not read"
        return [s.name, ready, reason, "", "", "", ""]
    counted = s.applied if s.applied is not None else s.followed
    applied = "-" if counted is None else f"{counted:.0f}" + (" followed" if s.applied is None else "")
    dead = "\n".join(f"{reason}: {n:.0f}" for reason, n in sorted(s.dead_letters.items())) or "0"
    behind = [lag for lag in s.lag if lag.records]
    lag = (
        "\n".join(f"{x.group} {x.topic}/{x.partition}: {x.records:.0f}" for x in behind)
        or f"0 ({len(s.lag)} partitions)"
    )
    rate = "-" if s.per_second is None else f"{s.per_second:.1f}"
    return [s.name, ready, f"{s.appended or 0:.0f}", applied, rate, dead, lag]
