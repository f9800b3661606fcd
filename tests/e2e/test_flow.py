"""The three services as processes, on the real broker and database: the flow a user sees."""

from __future__ import annotations

import httpx

import samples
from tests.support import auth, eventually


async def _get_when(client: httpx.AsyncClient, url: str, ready) -> dict:  # type: ignore[no-untyped-def,type-arg]
    async def probe():  # type: ignore[no-untyped-def]
        answer = await client.get(url)
        return answer.json() if answer.status_code == 200 and ready(answer.json()) else None

    return await eventually(probe, timeout=30, what=url)


async def test_apply_grant_export_and_refuse_past_the_balance(services: dict[str, str]) -> None:
    applications, registry = services["applications"], services["registry"]
    async with httpx.AsyncClient(timeout=10, headers=auth()) as client:
        for name, url in services.items():
            health = (await client.get(f"{url}/health")).json()
            assert (health["service"], health["broker"], health["database"]) == (name, "ok", "ok")
        answer = await client.post(f"{applications}/applications", json=samples.application_data(quantity=10))
        assert answer.status_code == 202
        application_id = answer.json()["application_id"]

        decided = await _get_when(
            client, f"{registry}/applications/{application_id}", lambda b: b["status"] != "submitted"
        )
        assert decided["status"] == "approved", decided
        number = decided["license_number"]
        license_ = (await client.get(f"{registry}/licenses/{number}")).json()
        assert (license_["status"], license_["quantity"], license_["balance"]) == ("active", 10, 10)
        assert (license_["port_of_exit"], license_["destination_country"]) == ("CNSZX", "MX")

        for sequence, quantity in ((1, 6), (2, 5)):
            declaration = samples.declaration_data(number, f"53162026E2E{sequence:07d}", quantity=quantity)
            assert (await client.post(f"{registry}/exports", json=declaration)).status_code == 202
        first = await _get_when(client, f"{registry}/exports/53162026E2E0000001", bool)
        second = await _get_when(client, f"{registry}/exports/53162026E2E0000002", bool)
        license_ = (await client.get(f"{registry}/licenses/{number}")).json()

        rejected = await client.post(
            f"{applications}/applications", json=samples.application_data(model_code=samples.QILIN_EXPIRED_CCC_MODEL)
        )
        refusal = await _get_when(
            client, f"{registry}/applications/{rejected.json()['application_id']}", lambda b: b["status"] != "submitted"
        )
    assert first[0]["outcome"] == "accepted"
    assert second[0]["outcome"] == "refused" and second[0]["reason"]["code"] == "exceeds_balance"
    assert (license_["balance"], license_["declarations_used"]) == (4, 1)
    assert refusal["status"] == "rejected" and [r["code"] for r in refusal["reasons"]] == ["ccc_expired"]
