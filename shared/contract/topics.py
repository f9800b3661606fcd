"""Topic names and their settings: the one place that says which streams exist."""

from __future__ import annotations

from dataclasses import dataclass

CASES = "licensing.cases"
INTAKE_APPLICATIONS = "licensing.intake.applications"
INTAKE_EXPORTS = "licensing.intake.exports"
LICENSE_CHANGES = "licensing.license-changes"
DEAD_LETTER = "licensing.dead-letter"
CHECKPOINTS = "licensing.checkpoints"
TRUST = "licensing.trust"


@dataclass(frozen=True)
class TopicSpec:
    """How one topic is created: its partitions and its topic-level configuration."""

    name: str
    partitions: int
    config: dict[str, str]


SPECS: tuple[TopicSpec, ...] = (
    # The event store: kept forever, one partition per group of cases.
    TopicSpec(CASES, 6, {"retention.ms": "-1", "retention.bytes": "-1"}),
    TopicSpec(INTAKE_APPLICATIONS, 3, {"retention.ms": str(7 * 24 * 3600 * 1000)}),
    TopicSpec(INTAKE_EXPORTS, 3, {"retention.ms": str(7 * 24 * 3600 * 1000)}),
    TopicSpec(LICENSE_CHANGES, 3, {"cleanup.policy": "compact"}),
    TopicSpec(DEAD_LETTER, 1, {"retention.ms": str(30 * 24 * 3600 * 1000)}),
    # The registry's signed checkpoints: kept forever (each one is evidence) in one partition, in one order.
    TopicSpec(CHECKPOINTS, 1, {"retention.ms": "-1", "retention.bytes": "-1"}),
    # Who is trusted to sign what: root-signed statements, kept forever in one order (shared/platform/trust.py).
    TopicSpec(TRUST, 1, {"retention.ms": "-1", "retention.bytes": "-1"}),
)


@dataclass(frozen=True)
class Topics:
    """The topic names in force: the base names under an optional namespace (tests use one each)."""

    namespace: str = ""

    def name(self, base: str) -> str:
        return f"{self.namespace}.{base}" if self.namespace else base

    @property
    def cases(self) -> str:
        return self.name(CASES)

    @property
    def intake_applications(self) -> str:
        return self.name(INTAKE_APPLICATIONS)

    @property
    def intake_exports(self) -> str:
        return self.name(INTAKE_EXPORTS)

    @property
    def license_changes(self) -> str:
        return self.name(LICENSE_CHANGES)

    @property
    def dead_letter(self) -> str:
        return self.name(DEAD_LETTER)

    @property
    def checkpoints(self) -> str:
        return self.name(CHECKPOINTS)

    @property
    def trust(self) -> str:
        return self.name(TRUST)

    def group(self, base: str) -> str:
        """A consumer group's id under the same namespace as the topics it reads."""
        return self.name(base)

    def base(self, name: str) -> str:
        """The base name of topic ``name`` of this namespace (``t1.licensing.cases`` -> ``licensing.cases``)."""
        prefix = f"{self.namespace}." if self.namespace else ""
        if not name.startswith(prefix):
            raise ValueError(f"{name} is not a topic of namespace {self.namespace!r}")
        return name[len(prefix) :]

    def specs(self) -> tuple[TopicSpec, ...]:
        return tuple(TopicSpec(self.name(s.name), s.partitions, s.config) for s in SPECS)


def sibling(topic: str, base: str) -> str:
    """The topic ``base`` of the namespace ``topic`` is in (``t1.licensing.cases`` -> ``t1.licensing.trust``)."""
    for known in (CASES, INTAKE_APPLICATIONS, INTAKE_EXPORTS, LICENSE_CHANGES, DEAD_LETTER, CHECKPOINTS, TRUST):
        if topic == known or topic.endswith("." + known):
            return topic[: len(topic) - len(known)] + base
    raise ValueError(f"{topic} is none of the ledger's topics: name its trust topic")
