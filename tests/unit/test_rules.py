from datetime import date

import pytest

from licensectl import samples
from services.review import reference
from services.review.decisions import license_number
from services.review.rules import Grant, Reject, decide, validity
from shared.events import BatchMode

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
