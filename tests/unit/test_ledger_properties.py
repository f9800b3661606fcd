"""Properties of the fold over generated case streams: whatever the events, the regulation's limits hold.

Each example is one case: a grant, then a random mix of exports (random quantities, ports, dates and
VINs from a small pool, so repeats are common) and every license lifecycle event the contract has.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

import samples
from shared.contract.events import (
    BatchMode,
    Envelope,
    Event,
    ExportRecorded,
    LicenseExpired,
    LicenseGranted,
    LicenseReinstated,
    LicenseReplaced,
    LicenseRevoked,
    LicenseStatus,
    LicenseSuspended,
    Reason,
)
from shared.fold import MAX_DECLARATIONS, Case, ExportEntry, LicenseEntry, Outcome, apply

CASE = uuid.uuid4()
FIRST, SUCCESSOR, UNKNOWN = "26-44-000001", "26-44-000002", "26-44-999999"
VALID_FROM, VALID_TO = date(2026, 3, 1), date(2026, 8, 31)
VINS = tuple(f"LA1AB2CD3EF45678{i}" for i in range(10))
PORTS = ("CNSZX", "CNSHA")
REASON = Reason(code="officer_action", message="m")

numbers = st.sampled_from((FIRST, FIRST, SUCCESSOR, UNKNOWN))
dates = st.dates(min_value=date(2026, 2, 20), max_value=date(2026, 9, 10))


@st.composite
def grants(draw: st.DrawFn) -> LicenseGranted:
    single = draw(st.booleans())
    vins = tuple(draw(st.lists(st.sampled_from(VINS), min_size=1, max_size=3, unique=True))) if single else ()
    return LicenseGranted(
        license_number=FIRST,
        applicant_code=samples.QILIN_MOTOR,
        valid_from=VALID_FROM,
        valid_to=VALID_TO,
        quantity=len(vins) if single else draw(st.integers(1, 60)),
        value="1470000",
        currency="CNY",
        port_of_exit="CNSZX",
        destination_country="MX",
        trade_mode="general trade",
        batch_mode=BatchMode.SINGLE if single else BatchMode.MULTI,
        vins=vins,
    )


@st.composite
def exports(draw: st.DrawFn, grant: LicenseGranted) -> ExportRecorded:
    """Mostly a declaration that could pass (so licenses do get used up), sometimes anything at all."""
    sequence, plausible = draw(st.integers(0, 10**9)), draw(st.integers(0, 3)) > 0
    if plausible and grant.batch_mode is BatchMode.SINGLE and draw(st.booleans()):
        quantity, vins = grant.quantity, list(draw(st.permutations(grant.vins)))
    elif plausible:
        quantity, vins = (
            draw(st.integers(1, 4)),
            draw(st.just([]) | st.lists(st.sampled_from(VINS), max_size=2, unique=True)),
        )
    else:  # duplicates included, on purpose
        quantity, vins = draw(st.integers(1, 8)), draw(st.lists(st.sampled_from(VINS), max_size=3))
    return ExportRecorded.model_validate(
        samples.declaration_data(
            draw(st.sampled_from((FIRST, FIRST, FIRST, SUCCESSOR)) if plausible else numbers),
            f"53162026{sequence:010d}",
            quantity=quantity,
            port_of_exit="CNSZX" if plausible else draw(st.sampled_from(PORTS)),
            export_date=draw(st.dates(VALID_FROM, VALID_TO) if plausible else dates).isoformat(),
            vins=vins,
        )
    )


@st.composite
def replacements(draw: st.DrawFn) -> LicenseReplaced:
    start, end = sorted((draw(dates), draw(dates)))
    return LicenseReplaced(
        license_number=FIRST,
        successor_license_number=SUCCESSOR,
        officer="officer.li",
        reason=REASON,
        valid_from=start,
        valid_to=end,
        port_of_exit=draw(st.sampled_from(PORTS)),
        destination_country="MX",
        quantity=draw(st.none() | st.integers(1, 40)),
    )


lifecycle = st.one_of(
    numbers.map(lambda n: LicenseSuspended(license_number=n, officer="officer.li", reason=REASON)),
    numbers.map(lambda n: LicenseReinstated(license_number=n, officer="officer.li")),
    numbers.map(lambda n: LicenseRevoked(license_number=n, officer="officer.li", reason=REASON)),
    numbers.map(lambda n: LicenseExpired(license_number=n, expired_on=date(2026, 9, 1))),
    replacements(),
)


@st.composite
def streams(draw: st.DrawFn) -> tuple[Event, list[Event]]:
    grant = draw(grants())
    # One event in twenty is a lifecycle event, so licenses are used up about as often as they are ended.
    events = st.integers(0, 19).flatmap(lambda kind: lifecycle if kind == 0 else exports(grant))
    length = draw(st.integers(0, 40))  # drawn first, so long streams are as likely as short ones
    return grant, draw(st.lists(events, min_size=length, max_size=length))


Steps = list[tuple[Case, Case, ExportEntry | None]]


def _fold(events: list[Event]) -> Steps:
    """Each step of the fold: the case before, the case after, the export entry it recorded."""
    case, steps = Case(case_id=CASE), []
    for event in events:
        after, entry = apply(case, Envelope.wrap(event, case_id=CASE, producer="test"))
        steps.append((case, after, entry))
        case = after
    return steps


def _accepted(steps: Steps) -> list[tuple[Case, ExportEntry]]:
    return [(before, e) for before, _, e in steps if e is not None and e.outcome is Outcome.ACCEPTED]


def no_balance_falls_below_zero_and_every_vehicle_is_accounted_for(steps: Steps) -> None:
    for _, after, _ in steps:
        assert all(lic.balance >= 0 for lic in after.licenses.values())
    used = Counter[str]()
    for _, entry in _accepted(steps):
        used[entry.license_number] += entry.quantity
    for lic in steps[-1][1].licenses.values():
        assert lic.quantity - lic.balance == used[lic.license_number]


def a_multi_batch_license_serves_at_most_twelve_declarations_a_single_batch_one(steps: Steps) -> None:
    served = Counter(entry.license_number for _, entry in _accepted(steps))
    for lic in steps[-1][1].licenses.values():
        limit = MAX_DECLARATIONS if lic.batch_mode is BatchMode.MULTI else 1
        assert served[lic.license_number] == lic.declarations_used <= limit


def exports_are_accepted_only_on_a_license_active_at_that_point_and_within_its_terms(steps: Steps) -> None:
    for before, entry in _accepted(steps):
        license_: LicenseEntry | None = before.licenses.get(entry.license_number)
        assert license_ is not None and license_.status is LicenseStatus.ACTIVE
        assert license_.valid_from <= entry.export_date <= license_.valid_to
        assert entry.port_of_exit == license_.port_of_exit
        assert entry.quantity <= license_.balance


def no_vin_is_accepted_twice_on_a_case(steps: Steps) -> None:
    accepted = [vin for _, entry in _accepted(steps) for vin in entry.vins]
    assert len(accepted) == len(set(accepted))
    assert steps[-1][1].exported_vins == set(accepted)


# One generated stream is checked against every property: generating it is what costs the time.
@settings(max_examples=200, deadline=None)
@given(streams())
def test_every_generated_case_stream_keeps_the_regulations_limits(stream: tuple[Event, list[Event]]) -> None:
    steps = _fold([stream[0], *stream[1]])
    no_balance_falls_below_zero_and_every_vehicle_is_accounted_for(steps)
    a_multi_batch_license_serves_at_most_twelve_declarations_a_single_batch_one(steps)
    exports_are_accepted_only_on_a_license_active_at_that_point_and_within_its_terms(steps)
    no_vin_is_accepted_twice_on_a_case(steps)


@settings(max_examples=50, deadline=None)  # a cheap check on top of the unit test of the same
@given(streams())
def test_the_fold_gives_the_same_ledger_every_time(stream: tuple[Event, list[Event]]) -> None:
    envelopes = [Envelope.wrap(e, case_id=CASE, producer="test") for e in [stream[0], *stream[1]]]

    def run() -> tuple[Case, list[ExportEntry]]:
        case, entries = Case(case_id=CASE), []
        for envelope in envelopes:
            case, entry = apply(case, envelope)
            entries.extend([entry] if entry else [])
        return case, entries

    assert run() == run()
