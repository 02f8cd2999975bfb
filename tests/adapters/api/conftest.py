"""The report data set the report and export tests read, built once per module."""

from __future__ import annotations

import pytest

from report_data import build_report_data
from skeldir.base.config import Settings


@pytest.fixture(scope="module")
def data(database: Settings):
    return build_report_data(database)
