"""How licensectl shows what it read: a table that never cuts an id, or the same rows as JSON for a program.

A table whose columns do not fit the terminal (80 columns, say) is shown as one block per row instead, each value
on a line of its own and whole: an id cut to ``lk_3f9…`` is worse than no table, since an operator copies it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class Column:
    """A column of a table; ``whole`` (ids, topic names) is never broken across lines nor cut."""

    name: str
    whole: bool = False


def show(console: Console, title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> None:
    """``rows`` as a table if it fits the console's width with every ``whole`` value on one line, else as blocks."""
    if _narrowest(columns, rows) <= console.width:
        table = Table(title=title)
        for column in columns:
            table.add_column(column.name, no_wrap=column.whole, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    console.print(title, style="bold", markup=False)
    for row in rows:
        first, *rest = zip(columns, row, strict=True)
        console.print(f"{first[0].name}: {first[1]}", markup=False, soft_wrap=True)
        for column, value in rest:
            # A whole value goes on one line, however long (the terminal wraps it, nothing is cut); text wraps.
            lines = value.splitlines() or [""]
            if len(lines) == 1:
                console.print(f"  {column.name}: {value}", markup=False, soft_wrap=column.whole)
                continue
            console.print(f"  {column.name}:", markup=False)
            for line in lines:
                console.print(f"    {line}", markup=False, soft_wrap=column.whole)


def _narrowest(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> int:
    """The width of the table with no word broken: a whole column as wide as its longest line, any other as its
    longest word; each column's padding and rule (3), and the table's edge (1)."""
    widths = []
    for index, column in enumerate(columns):
        texts = [column.name, *(row[index] for row in rows)]
        if column.whole:
            widths.append(max(len(line) for text in texts for line in text.splitlines() or [""]))
        else:
            widths.append(max(len(word) for text in texts for word in text.split() or [""]))
    return sum(widths) + 3 * len(columns) + 1


def emit_json(document: Any) -> None:
    """``document`` as JSON on stdout, as is (no wrapping, no colours), for a program to read."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()
