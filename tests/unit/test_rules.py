import importlib.util
import json
import re
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import samples
from services.review import reference
from services.review.decisions import license_number
from services.review.rules import (
    DEFAULT_POLICY,
    Escalate,
    Grant,
    Policy,
    Reject,
    Rule,
    Terms,
    after_sales_coverage,
    applicant_is_qualified,
    decide,
    due_date,
    license_year_is_open,
    model_is_listed,
    one_destination_port_and_contract,
    price_is_plausible,
    terms_refusals,
    validity,
    zero_mileage_borderline,
    zero_mileage_guard,
)
from shared.contract.events import BatchMode, Role

REF = reference.load()
TODAY = date(2026, 3, 10)
HAITONG = {"code": samples.HAITONG_EXPORT, "name": "Haitong Vehicle Export Co., Ltd.", "role": "distributor"}
SILK_ROAD = {"code": "91702861TC3FQGXXH6", "name": "Silk Road Auto Trading Co., Ltd.", "role": "distributor"}
UNKNOWN = {"code": "91110000ABCDEFGHJK", "name": "Shell Trading Co., Ltd.", "role": "distributor"}


def _codes(decision: object) -> list[str]:
    assert isinstance(decision, Reject)
    return [r.code for r in decision.reasons]


def test_a_qualified_manufacturer_with_a_listed_model_is_granted() -> None:
    decision = decide(samples.application(), REF, TODAY)
    assert decision == Grant(valid_from=TODAY, valid_to=date(2026, 9, 9), quantity=10, batch_mode=BatchMode.MULTI)


@pytest.mark.parametrize(
    ("overrides", "codes"),
    [
        ({"applicant": UNKNOWN}, ["applicant_not_qualified", "distributor_not_authorised"]),
        (
            {"applicant": {**HAITONG, "role": "manufacturer"}},
            ["manufacturer_mismatch"],
        ),
        (
            {"applicant": HAITONG, "brand": "Nanhai", "model_code": "NA7500BEV"},
            ["brand_not_authorised", "model_manufacturer_mismatch"],
        ),
        ({"applicant": SILK_ROAD}, ["distributor_not_authorised"]),
        (
            {
                "applicant": {"code": samples.BEILING_AUTO, "name": "Beiling", "role": "manufacturer"},
                "manufacturer": {"code": samples.BEILING_AUTO, "name": "Beiling"},
                "brand": "Beiling",
                "model_code": "BE7400BEV",
            },
            ["applicant_listing_suspended"],
        ),
        ({"model_code": "ZZ9999BEV"}, ["model_not_listed"]),
        ({"model_code": samples.QILIN_EXPIRED_CCC_MODEL}, ["ccc_expired"]),
        ({"brand": "QiStar"}, ["model_brand_mismatch"]),
        ({"port_of_exit": "CNZZZ"}, ["unknown_port"]),
        ({"commodity_code": "8701200000"}, ["commodity_not_licensed"]),
    ],
)
def test_rules_1_to_3_reject_with_every_failed_reason(overrides: dict[str, object], codes: list[str]) -> None:
    assert _codes(decide(samples.application(**overrides), REF, TODAY)) == codes


def test_an_authorised_distributor_is_granted() -> None:
    assert isinstance(decide(samples.application(applicant=HAITONG), REF, TODAY), Grant)


def test_several_failures_are_all_reported() -> None:
    codes = _codes(
        decide(samples.application(applicant=UNKNOWN, model_code="ZZ9999BEV", port_of_exit="CNZZZ"), REF, TODAY)
    )
    assert {"applicant_not_qualified", "model_not_listed", "unknown_port"} <= set(codes)


def test_a_qualification_for_another_year_does_not_count() -> None:
    assert _codes(decide(samples.application(), REF, date(2028, 1, 5))) == ["applicant_not_qualified", "ccc_expired"]


@pytest.mark.parametrize(
    ("issued", "valid_to"),
    [
        (date(2026, 1, 1), date(2026, 6, 30)),
        (date(2026, 3, 10), date(2026, 9, 9)),
        (date(2026, 8, 31), date(2026, 12, 31)),
        (date(2026, 12, 20), date(2026, 12, 31)),
    ],
)
def test_validity_is_six_months_at_most_and_ends_with_the_year(issued: date, valid_to: date) -> None:
    assert validity(issued) == (issued, valid_to)


def test_used_vehicles_are_licensed_as_one_batch() -> None:
    vehicle = {
        "vin": "LA1AB2CD3EF456789",
        "first_registration_date": "2025-06-01",
        "registered_owner": samples.QILIN_MOTOR,
        "transfer_date": "2026-02-01",
    }
    decision = decide(samples.application(condition="used", quantity=1, used_vehicles=[vehicle]), REF, TODAY)
    assert isinstance(decision, Grant) and decision.batch_mode is BatchMode.SINGLE


def test_license_numbers_read_year_agency_sequence() -> None:
    assert license_number(2026, "44", 7) == "26-44-000007"


# --- reference data 2026.2 ------------------------------------------------------------------------

GENERATOR = Path(reference.REFERENCE_DIR) / "generate.py"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("reference_generate", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_current_version_is_2026_2_and_its_file_is_what_the_generator_builds() -> None:
    assert reference.CURRENT_VERSION == REF.version == "2026.2"
    written = json.loads((reference.REFERENCE_DIR / "2026.2.json").read_text(encoding="utf-8"))
    assert written == _generator().build(), "run services/review/reference/generate.py"


def test_2026_2_keeps_every_2026_1_row_with_the_same_facts() -> None:
    old = reference.load("2026.1")
    for enterprise in old.enterprises:
        now = REF.enterprise(enterprise.code)
        assert now is not None and now.model_copy(update={"tier": None}) == enterprise
    assert set(old.authorisations) <= set(REF.authorisations)
    assert set(old.models) <= set(REF.models)
    assert old.ports == REF.ports and old.licensed_commodity_codes == REF.licensed_commodity_codes


def test_2026_2_has_realistic_volumes_and_the_top_destinations() -> None:
    assert len(REF.enterprises) >= 48 and len(REF.models) >= 300 and len(REF.authorisations) >= 100
    covered = {o.country for o in REF.after_sales_outlets}
    assert {"MX", "RU", "AE", "GB", "BR", "SA"} <= covered
    assert REF.outlets(samples.QILIN_MOTOR, "MX")
    assert not REF.outlets(samples.QILIN_MOTOR, samples.QILIN_UNCOVERED_COUNTRY)
    assert REF.confirmation(manufacturer=samples.QILIN_MOTOR, vin=samples.QILIN_CONFIRMED_VIN, destination="MX")
    assert all(m.tier for m in REF.enterprises if m.role is Role.MANUFACTURER)


def _raw() -> Any:
    return json.loads((reference.REFERENCE_DIR / "2026.2.json").read_text(encoding="utf-8"))


def _over_cap(data: dict[str, Any]) -> dict[str, Any]:
    beiling = [a for a in data["authorisations"] if a["manufacturer"] == samples.BEILING_AUTO and a["year"] == 2026]
    extra = [{**beiling[0], "distributor": d["code"]} for d in data["enterprises"][-4:]]
    return {**data, "authorisations": data["authorisations"] + extra}


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda d: {**d, "models": d["models"] + d["models"][:1]}, "model QI7010BEV is listed 2 times"),
        (_over_cap, "authorises 5 distributors for 2026, cap 3"),
        (
            lambda d: {**d, "authorisations": [{**d["authorisations"][0], "brands": ["Nanhai"]}]},
            "names brand 'Nanhai' it has no model of",
        ),
        (
            lambda d: {**d, "after_sales_outlets": [{**d["after_sales_outlets"][0], "enterprise": UNKNOWN["code"]}]},
            f"outlets of unknown enterprise {UNKNOWN['code']}",
        ),
        (lambda d: {**d, "cny_per_unit": {"XYZ": "1.0"}}, "ISO 4217"),
    ],
)
def test_inconsistent_reference_data_is_refused(
    mutate: Callable[[dict[str, Any]], dict[str, Any]], problem: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(problem)):
        reference.ReferenceData.model_validate(mutate(_raw()))


# --- every rule, passing and failing, one table per rule ------------------------------------------

NORTHERN_GATE = {"code": "912542362N7XBYR61G", "name": "Northern Gate Auto Export Co., Ltd.", "role": "distributor"}
PEARL_RIVER = {"code": "91821720E8K1M3JRX7", "name": "Pearl River Motors Export Co., Ltd.", "role": "distributor"}
NANHAI = {"code": "916413411ML4AUQKTP", "name": "Nanhai Smart Mobility Co., Ltd."}
DONGFANG = {"code": "919305472L5KC8NPEJ", "name": "Dongfang Xingche Automobile Co., Ltd."}
BEILING = {
    "applicant": {"code": samples.BEILING_AUTO, "name": "Beiling", "role": "manufacturer"},
    "manufacturer": {"code": samples.BEILING_AUTO, "name": "Beiling"},
    "brand": "Beiling",
    "model_code": "BE7400BEV",
}
UNCONFIRMED_VIN = "LA1AB2CD3EF456789"


def _used(vin: str, days_registered: int, **vehicle: Any) -> dict[str, Any]:
    """A used-vehicle application whose one vehicle was first registered this many days before TODAY."""
    registered = TODAY - timedelta(days=days_registered)
    return {
        "condition": "used",
        "quantity": 1,
        "unit_price": "98000.00",
        "used_vehicles": [samples.used_vehicle_data(vin, registered, **vehicle)],
    }


RULE_CASES: list[tuple[Rule, dict[str, Any], list[str]]] = [
    # rule 1: qualified applicant, authorised distributor
    (applicant_is_qualified, {}, []),
    (applicant_is_qualified, {"applicant": HAITONG}, []),
    (applicant_is_qualified, {"applicant": HAITONG, "brand": "QiStar", "model_code": "QI7000BEV"}, []),
    (applicant_is_qualified, {**BEILING, "license_year": 2027}, []),  # suspended for 2026, listed for 2027
    (applicant_is_qualified, BEILING, ["applicant_listing_suspended"]),
    (
        applicant_is_qualified,
        {"applicant": NORTHERN_GATE, "manufacturer": NANHAI, "brand": "Nanhai"},
        ["applicant_listing_cancelled"],
    ),
    (
        applicant_is_qualified,
        {"applicant": PEARL_RIVER, "manufacturer": DONGFANG, "brand": "Xingche"},
        ["distributor_not_authorised"],
    ),
    (applicant_is_qualified, {"applicant": UNKNOWN}, ["applicant_not_qualified", "distributor_not_authorised"]),
    (
        applicant_is_qualified,
        {"applicant": HAITONG, "license_year": 2028},
        ["applicant_not_qualified", "distributor_not_authorised"],
    ),
    # rule 2: MIIT-listed model with valid CCC, of that manufacturer and brand
    (model_is_listed, {}, []),
    (model_is_listed, {"model_code": "ZZ9999BEV"}, ["model_not_listed"]),
    (model_is_listed, {"model_code": samples.QILIN_EXPIRED_CCC_MODEL}, ["ccc_expired"]),
    (model_is_listed, {"model_code": "HU7100BEV"}, ["model_manufacturer_mismatch", "model_brand_mismatch"]),
    (model_is_listed, {"license_year": 2028}, ["ccc_expired"]),  # valid to 2027-12-31: not when the license starts
    # rule 3: one known port, licensed goods, one contract and trade mode
    (one_destination_port_and_contract, {}, []),
    (one_destination_port_and_contract, {"contract_number": "QM/2026/MX-0042"}, []),
    (one_destination_port_and_contract, {"port_of_exit": "CNZZZ"}, ["unknown_port"]),
    (one_destination_port_and_contract, {"commodity_code": "8701200000"}, ["commodity_not_licensed"]),
    (one_destination_port_and_contract, {"contract_number": "QM-0042, QM-0043"}, ["several_contracts"]),
    (one_destination_port_and_contract, {"trade_mode": "general trade; barter"}, ["several_trade_modes"]),
    # rule 4: after-sales coverage in the destination
    (after_sales_coverage, {}, []),
    (after_sales_coverage, {"applicant": HAITONG}, []),
    (after_sales_coverage, {"applicant": UNKNOWN}, []),  # rule 1 rejects it already
    (after_sales_coverage, {"destination_country": samples.QILIN_UNCOVERED_COUNTRY}, ["no_after_sales_coverage"]),
    # rule 5: zero-mileage guard (TODAY - 180 days is still inside it)
    (zero_mileage_guard, {}, []),
    (zero_mileage_guard, _used(samples.QILIN_CONFIRMED_VIN, 59), []),
    (zero_mileage_guard, _used(UNCONFIRMED_VIN, 181, registered_owner=HAITONG["code"]), []),
    (zero_mileage_guard, _used(UNCONFIRMED_VIN, 59), ["zero_mileage_unconfirmed"]),
    (zero_mileage_guard, _used(UNCONFIRMED_VIN, 180), ["zero_mileage_unconfirmed"]),
    (
        zero_mileage_guard,
        {**_used(samples.QILIN_CONFIRMED_VIN, 59), "destination_country": "RU"},
        ["zero_mileage_unconfirmed"],
    ),
    (
        zero_mileage_guard,
        _used(samples.QILIN_CONFIRMED_VIN, 0, registered_owner=HAITONG["code"]),
        ["registered_owner_not_applicant"],
    ),
    # rule 5, escalating: just past the line
    (zero_mileage_borderline, _used(UNCONFIRMED_VIN, 180), []),
    (zero_mileage_borderline, _used(UNCONFIRMED_VIN, 181), ["zero_mileage_borderline"]),
    (zero_mileage_borderline, _used(UNCONFIRMED_VIN, 187), ["zero_mileage_borderline"]),
    (zero_mileage_borderline, _used(UNCONFIRMED_VIN, 188), []),
    # rule 6, escalating: price against the reference (QI7010BEV: 90,000 CNY; floor 60%)
    (price_is_plausible, {}, []),
    (price_is_plausible, {"unit_price": "54000.00"}, []),
    (price_is_plausible, {"unit_price": "53999.99"}, ["price_below_reference"]),
    (price_is_plausible, {"unit_price": "10000.00", "currency": "USD"}, []),
    (price_is_plausible, {"unit_price": "7000.00", "currency": "USD"}, ["price_below_reference"]),
    (price_is_plausible, {"unit_price": "20000.00", "currency": "CHF"}, ["price_unverifiable"]),
    (price_is_plausible, {"model_code": samples.QILIN_UNPRICED_MODEL}, ["reference_price_missing"]),
    (price_is_plausible, {"model_code": "ZZ9999BEV"}, []),  # rule 2 rejects it
    # rule 7: the license year
    (license_year_is_open, {}, []),
    (license_year_is_open, {"license_year": 2026}, []),
    (license_year_is_open, {"license_year": 2027}, ["next_year_not_open"]),
    (license_year_is_open, {"license_year": 2025}, ["license_year_not_open"]),
]


@pytest.mark.parametrize(("rule", "overrides", "codes"), RULE_CASES)
def test_each_rule_passes_or_names_what_fails(rule: Rule, overrides: dict[str, Any], codes: list[str]) -> None:
    reasons = list(rule(samples.application(**overrides), REF, TODAY, DEFAULT_POLICY))
    assert [r.code for r in reasons] == codes
    assert all(r.message for r in reasons)


@pytest.mark.parametrize(
    ("today", "license_year", "codes"),
    [
        (date(2026, 12, 14), 2027, ["next_year_not_open"]),
        (date(2026, 12, 15), 2027, []),
        (date(2026, 12, 31), 2027, []),
        (date(2026, 12, 15), 2028, ["license_year_not_open"]),
        (date(2027, 1, 2), 2026, ["license_year_not_open"]),
    ],
)
def test_next_years_licenses_open_mid_december(today: date, license_year: int, codes: list[str]) -> None:
    reasons = license_year_is_open(samples.application(license_year=license_year), REF, today)
    assert [r.code for r in reasons] == codes


# --- decisions: reject, escalate, grant -----------------------------------------------------------


def test_a_next_year_license_is_valid_from_1_january() -> None:
    decision = decide(samples.application(license_year=2027), REF, date(2026, 12, 15))
    assert decision == Grant(date(2027, 1, 1), date(2027, 6, 30), quantity=10, batch_mode=BatchMode.MULTI)


def test_a_license_applied_for_before_mid_december_is_rejected() -> None:
    assert _codes(decide(samples.application(license_year=2027), REF, date(2026, 12, 14))) == ["next_year_not_open"]


@pytest.mark.parametrize(
    ("submitted", "due"),
    [(None, date(2026, 3, 13)), (date(2026, 3, 6), date(2026, 3, 11))],  # TODAY is a Tuesday; 6 March a Friday
)
def test_a_low_price_is_escalated_due_in_three_working_days(submitted: date | None, due: date) -> None:
    decision = decide(samples.application(unit_price="40000.00"), REF, TODAY, submitted=submitted)
    assert isinstance(decision, Escalate) and decision.due == due
    assert [r.code for r in decision.reasons] == ["price_below_reference"]


def test_every_escalation_is_reported() -> None:
    app = samples.application(model_code=samples.QILIN_UNPRICED_MODEL, **_used(UNCONFIRMED_VIN, 183))
    decision = decide(app, REF, TODAY)
    assert isinstance(decision, Escalate)
    assert [r.code for r in decision.reasons] == ["zero_mileage_borderline", "reference_price_missing"]


def test_rejection_wins_over_escalation_and_lists_only_rejecting_reasons() -> None:
    assert _codes(decide(samples.application(unit_price="40000.00", port_of_exit="CNZZZ"), REF, TODAY)) == [
        "unknown_port"
    ]


def test_every_failed_rule_from_1_to_7_is_reported() -> None:
    app = samples.application(
        port_of_exit="CNZZZ",
        destination_country=samples.QILIN_UNCOVERED_COUNTRY,
        license_year=2025,
        **_used(UNCONFIRMED_VIN, 30),
    )
    assert _codes(decide(app, REF, TODAY)) == [
        "applicant_not_qualified",
        "unknown_port",
        "no_after_sales_coverage",
        "zero_mileage_unconfirmed",
        "license_year_not_open",
    ]


def test_a_confirmed_recent_used_vehicle_is_granted_as_one_batch() -> None:
    decision = decide(
        samples.used_application(samples.used_vehicle_data(samples.QILIN_CONFIRMED_VIN, date(2026, 1, 10))), REF, TODAY
    )
    assert decision == Grant(TODAY, date(2026, 9, 9), quantity=1, batch_mode=BatchMode.SINGLE)


@pytest.mark.parametrize(
    ("policy", "overrides", "outcome"),
    [
        (Policy(price_floor=Decimal("0.4")), {"unit_price": "40000.00"}, Grant),
        (Policy(price_floor=Decimal("0.5")), {"unit_price": "40000.00"}, Escalate),
        (Policy(zero_mileage_days=90), _used(UNCONFIRMED_VIN, 100), Grant),
        (Policy(zero_mileage_days=90), _used(UNCONFIRMED_VIN, 90), Reject),
        (Policy(zero_mileage_margin_days=0), _used(UNCONFIRMED_VIN, 181), Grant),
        (Policy(next_year_opens=(12, 1)), {"license_year": 2027}, Reject),
    ],
)
def test_the_policy_numbers_are_configuration(policy: Policy, overrides: dict[str, Any], outcome: type) -> None:
    assert isinstance(decide(samples.application(**overrides), REF, TODAY, policy=policy), outcome)


def test_next_year_opening_is_configuration() -> None:
    early = Policy(next_year_opens=(12, 1))
    assert isinstance(decide(samples.application(license_year=2027), REF, date(2026, 12, 1), policy=early), Grant)


def test_the_samples_other_tests_rely_on_decide_as_they_expect() -> None:
    today = date(2026, 11, 28)
    assert isinstance(decide(samples.application(), REF, today), Grant)
    assert _codes(decide(samples.application(model_code=samples.QILIN_EXPIRED_CCC_MODEL), REF, today)) == [
        "ccc_expired"
    ]
    unknown = samples.application(model_code="ZZ9999BEV", port_of_exit="CNZZZ")
    assert _codes(decide(unknown, REF, today)) == ["model_not_listed", "unknown_port"]


# --- rule 12: decisions due within 3 working days -------------------------------------------------


@pytest.mark.parametrize(
    ("submitted", "due"),
    [
        (date(2026, 3, 9), date(2026, 3, 12)),  # Monday -> Thursday
        (date(2026, 3, 11), date(2026, 3, 16)),  # Wednesday -> Monday
        (date(2026, 3, 13), date(2026, 3, 18)),  # Friday -> Wednesday
        (date(2026, 3, 14), date(2026, 3, 18)),  # Saturday -> Wednesday
        (date(2026, 3, 15), date(2026, 3, 18)),  # Sunday -> Wednesday
    ],
)
def test_a_decision_is_due_three_working_days_after_submission(submitted: date, due: date) -> None:
    assert due_date(submitted) == due


@pytest.mark.parametrize(
    ("submitted", "due"),
    [
        (date(2026, 3, 10), date(2026, 3, 13)),  # an ordinary week
        (date(2026, 9, 30), date(2026, 10, 10)),  # National Day week off; Saturday 10 October is worked
        (date(2026, 2, 12), date(2026, 2, 24)),  # Saturday 14 February is worked, then the Spring Festival
    ],
)
def test_the_reference_calendar_skips_holidays_and_counts_worked_weekends(submitted: date, due: date) -> None:
    assert due_date(submitted, is_working_day=REF.is_working_day) == due


@settings(max_examples=150, deadline=None)
@given(
    port=st.sampled_from(["CNSZX", "CNSHA", "CNTXG", "CNZZZ", "CNXXX"]),
    destination=st.sampled_from(["MX", "PE", "RU", "CL", "NZ", "US", "BR"]),
    quantity=st.integers(1, 10),
)
def test_every_path_that_sets_a_licenses_terms_refuses_them_as_a_first_grant_would(
    port: str, destination: str, quantity: int
) -> None:
    """Rule for rule, ``terms_refusals`` (approval, replacement, reinstatement) refuses the terms a first grant
    refuses: the same codes, in the same order, as ``decide`` on the application made out for those terms."""
    app = samples.application()
    made_out = samples.application(port_of_exit=port, destination_country=destination, quantity=quantity)
    valid_from, valid_to = validity(TODAY)
    terms = Terms(valid_from, valid_to, quantity, port, destination)
    decided = decide(made_out, REF, TODAY)
    expected = [r.code for r in decided.reasons] if isinstance(decided, Reject) else []
    assert [r.code for r in terms_refusals(app, terms, REF, TODAY)] == expected
