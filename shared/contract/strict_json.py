"""Reading JSON as strictly on every path: an HTTP body and an intake command refuse the same things alike.

A key named twice in one object (``"quantity":1,"quantity":90000``: which one did the sender mean?), a text
holding a control, format or separator character anywhere (a value or a key), nesting too deep to read,
bytes that are not UTF-8 JSON: each is a :class:`Refusal` with its own code, before any field is validated.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from .events import unclean_characters
from .refusal import Refusal

STATUS = 422


def loads(raw: bytes | str) -> Any:
    """The JSON value of ``raw``; a :class:`Refusal` if it is not JSON, names a key twice, nests too deep, or
    holds a character no text may hold."""
    try:
        value = json.loads(raw, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise Refusal(
            STATUS, "too_deeply_nested", "the JSON nests arrays or objects too deeply to be read; no request needs that"
        ) from None
    except _DuplicateKey as exc:
        raise Refusal(
            STATUS, "duplicate_key", f"the JSON names key {exc.key!r} twice in one object; name each key once"
        ) from None
    except ValueError as exc:  # not JSON, not UTF-8, or a number too long to convert
        raise Refusal(STATUS, "malformed_json", f"not valid JSON: {exc}") from None
    unclean = [(path, bad) for path, text in strings(value) if (bad := unclean_characters(text))]
    if unclean:
        where = "; ".join(f"{path}: {', '.join(bad)}" for path, bad in unclean[:5])
        raise Refusal(
            STATUS,
            "invalid_text",
            f"text must not hold control, format (bidirectional, zero-width) or separator characters: {where}",
        )
    return value


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _DuplicateKey(key)
        data[key] = value
    return data


def strings(value: Any) -> Iterator[tuple[str, str]]:
    """Every string in a JSON value, keys too, with its dotted path, in document order; iterative, so any depth
    that JSON allows is read."""
    stack: list[tuple[str, Any, bool]] = [("", value, False)]
    while stack:
        path, item, is_key = stack.pop()
        if is_key or isinstance(item, str):
            yield path or "(body)", item
        elif isinstance(item, dict):
            for key, inner in reversed(item.items()):
                where = f"{path}.{key}" if path else str(key)
                stack += [(where, inner, False), (where, key, True)]
        elif isinstance(item, list):
            stack += [(f"{path}.{i}" if path else str(i), inner, False) for i, inner in reversed(list(enumerate(item)))]
