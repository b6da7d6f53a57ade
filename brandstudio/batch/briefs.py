"""CSV briefs: one row, one clip; the header names template variables and job settings.

Columns are template variables, plus the optional columns ``aspect``, ``seed``, ``template``,
``duration``, ``resolution`` and ``output`` (a file name without ``.mp4``). An empty cell means
"not set" (the default applies). A file that is saved with a byte-order mark (Excel) reads the same.

The file is read through :func:`brandstudio.files.read_user_bytes` (a FIFO, folder, symlink
loop or unreadable file is a :class:`~brandstudio.errors.CampaignError`) and within limits,
each raised by an environment variable: its size (``BRANDSTUDIO_MAX_CSV_BYTES``), its rows
(``BRANDSTUDIO_MAX_CSV_ROWS``) and the characters of one cell (``BRANDSTUDIO_MAX_CSV_CELL``).
Text that is not UTF-8 and null bytes are errors naming the line.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from ..errors import CampaignError
from ..files import MAX_CSV_BYTES, MAX_CSV_CELL, MAX_CSV_ROWS, decode_utf8, read_user_bytes

__all__ = ["BriefRow", "parse_briefs", "read_briefs"]


class BriefRow(NamedTuple):
    """A row of a brief: where it is (``briefs.csv:7``), its non-empty cells by column, and what
    is wrong with it, if anything (then its job fails with that message; the others go on)."""

    source: str
    values: dict[str, str]
    problem: str | None = None


def read_briefs(path: Path, rel: str) -> list[BriefRow]:
    """One :class:`BriefRow` per non-empty row of the CSV at ``path`` (``rel``: as the campaign
    file names it); empty cells are left out. An unreadable file or header is an error; a bad
    row is not (see :class:`BriefRow`)."""
    data = read_user_bytes(
        path, limit=MAX_CSV_BYTES, error=CampaignError, what=f"the campaign's CSV {rel!r}", field="campaign.csv",
        missing_fix="check the path (it is relative to the campaign file)",
    )  # fmt: skip
    return parse_briefs(data, path, rel)


def parse_briefs(data: bytes, path: Path, rel: str, *, max_rows: int | None = None) -> list[BriefRow]:
    """:func:`read_briefs` of bytes already read (an upload): ``path`` only names the file in
    messages and row sources. ``max_rows``: a lower row limit than ``BRANDSTUDIO_MAX_CSV_ROWS``."""
    path = Path(path)
    where = {"file": str(path), "field": "campaign.csv"}
    text = decode_utf8(data, error=CampaignError, what=f"the CSV {rel!r}", **where)
    if (nul := text.find("\x00")) >= 0:
        raise CampaignError(
            f"the CSV {rel!r} holds a null byte (\\x00) on line {text.count(chr(10), 0, nul) + 1}",
            fix="save it again as UTF-8 CSV (a NUL is not text: the file may be UTF-16 or binary)", **where,
        )  # fmt: skip
    rows = _rows(text, rel, where, max_rows)
    if not rows or not any(c.strip() for c in rows[0]):
        raise CampaignError(
            f"the CSV {rel!r} has no header row",
            file=str(path),
            fix="the first row names the columns: template variables and aspect/seed/template/output",
        )
    header = [c.strip() for c in rows[0]]
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes or "" in header:
        raise CampaignError(
            f"the CSV {rel!r} has " + (f"duplicate columns {dupes}" if dupes else "an empty column name"),
            file=str(path),
            value=dupes or "",
            fix="give every column one unique name",
        )
    out = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        source = f"{path.name}:{lineno}"
        problem = None
        if len(row) > len(header):
            problem = f"{source}: the row has {len(row)} cells but the header has {len(header)} columns"
        values = {k: v for k, v in zip(header, row, strict=False) if v != ""}
        out.append(BriefRow(source, values, problem))
    return out


def _rows(text: str, rel: str, where: dict, limit: int | None = None) -> list[list[str]]:
    """The CSV's rows, within the row and cell limits; a malformed row is an error naming its line."""
    max_rows, max_cell = MAX_CSV_ROWS.value(), MAX_CSV_CELL.value()
    own_limit = limit is not None and limit < max_rows
    max_rows = limit if own_limit else max_rows
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    rows: list[list[str]] = []
    with _field_size_limit(max_cell):
        try:
            for row in reader:
                if len(rows) > max_rows:  # the header row is not counted
                    too_many = f"over {max_rows}; the limit is {max_rows} rows" if own_limit else \
                        MAX_CSV_ROWS.exceeded(f"over {max_rows}")
                    raise CampaignError(
                        f"the CSV {rel!r} has too many rows: {too_many}",
                        fix="split it into several files" + ("" if own_limit else f"; or {MAX_CSV_ROWS.fix()}"),
                        **where,
                    )  # fmt: skip
                rows.append(row)
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise CampaignError(
                    f"the CSV {rel!r} has a cell that is too long on line {reader.line_num}: "
                    + MAX_CSV_CELL.exceeded(f"over {max_cell} characters"),
                    fix=f"shorten the cell (a quote left open makes the rest of the file one cell); or {MAX_CSV_CELL.fix()}",
                    **where,
                ) from None
            raise CampaignError(
                f"cannot read the CSV {rel!r} at line {reader.line_num}: {exc}",
                fix="save it as UTF-8 CSV with a header row", **where,
            ) from None  # fmt: skip
    return rows


@contextlib.contextmanager
def _field_size_limit(limit: int) -> Iterator[None]:
    """The csv module's cell limit (process-wide state) set for one read, then put back."""
    previous = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(previous)
