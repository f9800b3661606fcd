"""The services as the console reads and acts on them: HTTP with the signed-in user's own credential, so each
API decides what that user may see and do (an agency's officer, its agency's cases)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Answer:
    """A service's answer: its status and JSON body (an error body's ``code`` and ``message`` when refused)."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> str:
        if isinstance(self.body, dict) and "code" in self.body:
            return f"{self.body['code']}: {self.body.get('message', '')}"
        return f"HTTP {self.status}"


class Ledger:
    """One user's view of the services."""

    def __init__(self, client: httpx.AsyncClient, urls: dict[str, str], credential: str | None) -> None:
        self.client, self.urls = client, urls
        self.headers = {"Authorization": f"Bearer {credential}"} if credential else {}

    async def get(self, service: str, path: str, **params: Any) -> Answer:
        query = {k: v for k, v in params.items() if v not in (None, "")}
        answer = await self.client.get(f"{self.urls[service]}{path}", params=query, headers=self.headers)
        return _answer(answer)

    async def post(self, service: str, path: str, body: dict[str, Any], idempotency_key: str | None = None) -> Answer:
        headers = {**self.headers, **({"Idempotency-Key": idempotency_key} if idempotency_key else {})}
        answer = await self.client.post(f"{self.urls[service]}{path}", json=body, headers=headers)
        return _answer(answer)


def _answer(answer: httpx.Response) -> Answer:
    try:
        body = answer.json()
    except ValueError:
        body = answer.text
    return Answer(answer.status_code, body)
