"""The spend CSV: a header row naming the API's row fields, then one row of spend per line.

Cells are text; an empty cell is an absent field. Rows carry the line they start on, so an
operator can find a bad one in the file.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from skeldir.domains.spend.rows import FIELDS, REQUIRED_FIELDS


class SpendFileError(ValueError):
    """A file whose header cannot be read as spend rows."""


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, str] | str]]:
    """(line number, row) for every data row of the file, the header being line 1; a line with
    the wrong number of cells comes as (line number, what is wrong) instead."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise SpendFileError(f"{path}: empty file; the first line names the columns")
        header = [name.strip() for name in header]
        unknown = [name for name in header if name not in FIELDS]
        missing = [name for name in REQUIRED_FIELDS if name not in header]
        if unknown or missing or len(set(header)) != len(header):
            raise SpendFileError(
                f"{path}: the header must name each column once, from: {', '.join(FIELDS)}"
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                + (f"; missing: {', '.join(missing)}" if missing else ""))
        line = reader.line_num + 1
        for cells in reader:
            if any(cells):
                if len(cells) != len(header):
                    yield line, f"row: {len(cells)} cells for {len(header)} columns"
                else:
                    yield line, dict(zip(header, cells, strict=True))
            line = reader.line_num + 1
