"""The registry's HTTP API for a party outside the ledger: its refused commands, an application's state, a
license, an export's verdict. Each answer the ledger refuses is a :class:`LedgerError` with its reason code."""

from __future__ import annotations

import os
import uuid
from types import TracebackType
from typing import Any

import httpx


class LedgerError(Exception):
    """A refusal of the ledger's HTTP API: ``code`` (docs/reason-codes.md), ``message``, and ``errors`` (each field
    at fault, or the original reason of an application refused at intake)."""

    def __init__(self, status: int, code: str, message: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.errors = status, code, message, errors


class Ledger:
    """``async with Ledger(registry_url, api_key) as ledger: await ledger.refusals()``."""

    def __init__(self, registry_url: str, api_key: str, *, timeout: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"}
        self._client = httpx.AsyncClient(base_url=registry_url, headers=headers, timeout=timeout)

    @classmethod
    def from_env(cls) -> Ledger:
        """From ``LEDGER_REGISTRY_URL`` and ``LEDGER_API_KEY``."""
        return cls(os.environ["LEDGER_REGISTRY_URL"], os.environ["LEDGER_API_KEY"])

    async def __aenter__(self) -> Ledger:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self._client.aclose()

    async def refusals(self, *, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Your refused commands, oldest first, from after the id ``after``: each with its command id, the reason
        (``reason.code``, ``reason.message``), and whether a key trusted for you signed it (``verified``)."""
        page = await self._get("/refusals", params={"after": after, "limit": limit})
        items: list[dict[str, Any]] = page["items"]
        return items

    async def application(self, application_id: uuid.UUID | str) -> dict[str, Any]:
        """An application's status (and its license once granted). One refused at intake raises
        :class:`LedgerError` ``refused_at_intake``, whose ``errors`` hold the reason; one not in the ledger (yet)
        ``unknown_application``."""
        found: dict[str, Any] = await self._get(f"/applications/{application_id}")
        return found

    async def license(self, license_number: str) -> dict[str, Any]:
        found: dict[str, Any] = await self._get(f"/licenses/{license_number}")
        return found

    async def export(self, declaration_number: str) -> list[dict[str, Any]]:
        """How the ledger judged a declaration: ``outcome`` accepted or refused, with its ``reason``."""
        found: list[dict[str, Any]] = await self._get(f"/exports/{declaration_number}")
        return found

    async def _get(self, path: str, **options: Any) -> Any:
        answer = await self._client.get(path, **options)
        if answer.status_code >= 400:
            body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
            raise LedgerError(
                answer.status_code,
                body.get("code", "http_error"),
                body.get("message", answer.text),
                body.get("errors", []),
            )
        return answer.json()
