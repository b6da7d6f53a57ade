"""CSV briefs: one row, one clip; the header names template variables and job settings.

Columns are template variables, plus the optional columns ``aspect``, ``seed``, ``template``,
``duration``, ``resolution`` and ``output`` (a file name without ``.mp4``). An empty cell means
"not set" (the default applies). A file that is saved with a byte-order mark (Excel) reads the same.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import NamedTuple

from ..errors import CampaignError

__all__ = ["BriefRow", "read_briefs"]


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
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh, skipinitialspace=True)
            rows = list(reader)
    except FileNotFoundError:
        raise CampaignError(
            f"the campaign's CSV {rel!r} does not exist",
            file=str(path),
            field="campaign.csv",
            fix="check the path (it is relative to the campaign file)",
        ) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CampaignError(
            f"cannot read the CSV {rel!r}: {exc}",
            file=str(path),
            fix="save it as UTF-8 CSV with a header row",
        ) from None
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
