"""Reading exchange-rate files: strict, clear errors, exact decimal rates."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from skeldir.operations.exchange_rates import RateFileError, Rate, read_rates


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rates.csv"
    path.write_text(text)
    return path


def test_reads_rates_exactly(tmp_path):
    path = write(tmp_path, "date,base,quote,rate\n2026-03-01,eur,USD,1.0850\n2026-03-02,JPY,USD,0.0067\n")
    assert read_rates(path) == [
        Rate(date(2026, 3, 1), "EUR", "USD", Decimal("1.0850")),
        Rate(date(2026, 3, 2), "JPY", "USD", Decimal("0.0067")),
    ]


@pytest.mark.parametrize("line, message", [
    ("2026-13-01,EUR,USD,1.1", "line 2"),
    ("2026-03-01,EUR,XXQ,1.1", "line 2"),
    ("2026-03-01,EUR,USD,-1", "line 2"),
    ("2026-03-01,EUR,USD,0", "line 2"),
    ("2026-03-01,EUR,USD,1e3", "line 2"),
    ("2026-03-01,EUR,USD,NaN", "line 2"),
    ("2026-03-01,EUR,EUR,1", "same currency"),
])
def test_rejects_bad_lines_with_their_number(tmp_path, line, message):
    with pytest.raises(RateFileError, match=message):
        read_rates(write(tmp_path, f"date,base,quote,rate\n{line}\n"))


def test_requires_the_header(tmp_path):
    with pytest.raises(RateFileError, match="header"):
        read_rates(write(tmp_path, "day,from,to,value\n2026-03-01,EUR,USD,1.1\n"))
