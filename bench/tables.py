"""Plain-text tables for the benchmark scripts."""

from __future__ import annotations


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """First column left-aligned, the others right-aligned, a rule under the header."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(
        [headers[0].ljust(widths[0])]
        + [h.rjust(w) for h, w in zip(headers[1:], widths[1:], strict=True)]
    )
    print(line)
    print("-" * len(line))
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        print("  ".join(cells))
