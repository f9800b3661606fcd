"""Admin changes to reference data, checked before they reach the database."""

import pytest
from pydantic import ValidationError

from services.review import reference
from services.review.reference.api import ModelChange
from services.review.reference.store import inconsistencies

WHO = {"changed_by": "admin.li", "why": "MIIT announcement 2026-45"}


def test_a_model_change_sets_only_the_fields_it_names_and_null_unpublishes_the_price() -> None:
    change = ModelChange.model_validate({"reference_price_cny": None, **WHO})
    assert change.fields() == {"reference_price_cny": None}


@pytest.mark.parametrize(
    "body",
    [{}, {"ccc_valid_until": None}, {"ccc_certificate": None}, {"reference_price_cny": 0}, {"ccc_certificate": "x"}],
)
def test_a_model_change_that_changes_nothing_or_clears_the_certificate_is_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ModelChange.model_validate({**body, **WHO})


def test_inconsistent_reference_data_reports_each_problem_on_its_own() -> None:
    data = reference.document()
    data["models"] = [{**data["models"][0], "manufacturer": "9" * 18}, *data["models"][1:]]
    data["enterprises"] = [*data["enterprises"], data["enterprises"][0]]
    with pytest.raises(ValidationError) as refused:
        reference.ReferenceData.model_validate(data)
    problems = inconsistencies(refused.value)
    assert len(problems) == 2 and all(" is listed 2 times" in p or "unknown manufacturer" in p for p in problems)
