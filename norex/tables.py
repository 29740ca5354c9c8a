"""How commands print rows for a person (`--json` prints the same rows for a script)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Aligned columns under upper-case headers; lists joined with commas, missing values as '-'."""

    def cell(value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(value) or "-"
        return "-" if value is None else str(value)

    cells = [[c.upper().replace("_", " ") for c in columns]] + [[cell(r[c]) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in cells)
