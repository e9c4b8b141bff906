"""Plain-text tables for people (the console command prints these; ``--json`` is for machines)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def format_cell(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0 or 1e-3 <= abs(value) < 1e5:
            return f"{value:.4f}"
        return f"{value:.2e}"
    if isinstance(value, (tuple, list)):
        return "x".join(str(v) for v in value)
    return str(value)


def format_table(rows: Sequence[Mapping], columns: Sequence[str]) -> str:
    """Left-aligned text columns, a header and a rule; ``columns`` picks and orders the keys."""
    cells = [[format_cell(row.get(col, "")) for col in columns] for row in rows]
    widths = [max([len(col)] + [len(r[i]) for r in cells]) for i, col in enumerate(columns)]
    lines = ["  ".join(col.ljust(w) for col, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)
