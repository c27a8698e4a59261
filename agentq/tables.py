"""Tables for a person at a terminal, plain rows for a pipe.

At a terminal, a table fits the terminal's width: the columns marked ``keep`` (ids,
statuses, a cron) are never cut nor wrapped, the others wrap, folding a word longer than
their width rather than cutting it. Anything else (a pipe, a file) gets every value
whole, one row a line, tab-separated under a header line, for grep, cut and awk.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

Cell = str | Text


@dataclass(frozen=True)
class Column:
    header: str
    keep: bool = False  # never cut nor wrapped: the table grows wider than the terminal instead
    justify: Literal["left", "right"] = "left"


def _plain(cell: Cell) -> str:
    text = cell.plain if isinstance(cell, Text) else cell
    # One row a line, one value a field, whatever the value holds.
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


# The narrowest a wrapping column is squeezed to, and the space between two columns.
MIN_WRAP = 4
GAP = 2


def widths(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], total: int) -> list[int]:
    """Each column's width within ``total``: the kept ones as wide as their widest value, the
    others sharing what is left, the narrow ones whole first. (Rich's own layout lets a
    column shrink to nothing, and cuts the others when the table cannot fit.) Where even
    that is too wide, the sum exceeds ``total``."""
    natural = [
        max([cell_len(column.header), *(cell_len(_plain(row[index])) for row in rows)])
        for index, column in enumerate(columns)
    ]
    sized = [width if column.keep else 0 for width, column in zip(natural, columns, strict=True)]
    left = total - sum(sized) - GAP * (len(columns) - 1)
    wrapping = sorted((natural[i], i) for i, column in enumerate(columns) if not column.keep)
    for count, (width, index) in enumerate(wrapping):
        share = left // (len(wrapping) - count)
        sized[index] = min(width, max(share, MIN_WRAP))
        left -= sized[index]
    return sized


def render(console: Console, columns: Sequence[Column], rows: Iterable[Sequence[Cell]]) -> None:
    rows = list(rows)
    if not console.is_terminal:
        lines = ["\t".join(column.header for column in columns)]
        lines += ["\t".join(_plain(cell) for cell in row) for row in rows]
        console.file.write("\n".join(lines) + "\n")
        console.file.flush()
        return
    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, GAP // 2))
    sized = widths(columns, rows, console.width)
    for column, width in zip(columns, sized, strict=True):
        table.add_column(
            column.header,
            justify=column.justify,
            width=width,
            no_wrap=column.keep,
            overflow="fold",  # a word wider than its column goes on the next line, never cut
        )
    for row in rows:
        table.add_row(*row)
    needed = sum(sized) + GAP * (len(columns) - 1)
    if needed <= console.width:
        console.print(table)
        return
    # Too wide for the terminal even squeezed: whole lines, which the terminal wraps,
    # rather than cut ones.
    width = console.width
    console.width = needed
    try:
        console.print(table, crop=False)
    finally:
        console.width = width
